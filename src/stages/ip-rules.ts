import { cidrProblem, ipSet, type IpSet } from '../lib/ip.js';
import { COUNTRY_CODE_MISTAKES, COUNTRY_CODES } from '../lib/country-codes.js';
import type { CountryLookup } from '../lib/country-database.js';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigSource } from '../config/config-source.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Stage } from '../pipeline/exchange.js';

/** Allow and deny lists of client addresses, and of countries, compiled. */
export interface IpRules {
  /** Null: any address not denied. */
  readonly allow: IpSet | null;
  readonly deny: IpSet | null;
  /** Null: no country rules. */
  readonly countries: CountryRules | null;
}

/** `ipRules.countries`, compiled, with the database they are looked up in. */
export interface CountryRules {
  /** Null: any country not denied. */
  readonly allow: ReadonlySet<string> | null;
  readonly deny: ReadonlySet<string> | null;
  /** With an allow list, whether an address the database places in no country passes (never by default). */
  readonly admitUnknown: boolean;
  readonly database: CountryLookup;
}

/** `ipRules` as written: CIDR lists (IPv4 and IPv6; a bare address is its own /32 or /128), and country lists. */
export interface RawIpRules {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
  readonly countries?: {
    readonly allow?: readonly string[];
    readonly deny?: readonly string[];
    readonly unknown?: 'allow' | 'deny';
  };
}

/** The country database country rules are looked up in, as config compilation found it. */
export interface CountrySource {
  /** Null: none configured, or the configured file could not be used (a problem says why). */
  readonly database: CountryLookup | null;
  /** Whether `geoDatabase` (or `audit.anomalies.geoDatabase`) names a file. */
  readonly configured: boolean;
}

/**
 * Compiles allow and deny lists, each entry checked on its own so a bad one is reported where it
 * is (`at(list, i)`); null when there are none or any entry is wrong.
 */
export function compileIpRules(raw: RawIpRules | undefined, at: (...path: (string | number)[]) => (string | number)[], loaded: ConfigSource, problems: ConfigProblem[], geo: CountrySource = { database: null, configured: false }): IpRules | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const list = (name: 'allow' | 'deny'): IpSet | null => {
    const cidrs = raw[name];
    if (cidrs === undefined || cidrs.length === 0) return null;
    cidrs.forEach((cidr, i) => {
      const problem = cidrProblem(cidr);
      if (problem !== null) problems.push(loaded.problem(at(name, i), `${problem}: write an address or CIDR like 203.0.113.0/24, 198.51.100.7 or 2001:db8::/32`));
    });
    return problems.length > before ? null : ipSet(cidrs);
  };
  const allow = list('allow');
  const denied = list('deny');
  const countries = compileCountryRules(raw.countries, (...path) => at('countries', ...path), loaded, problems, geo);
  if (problems.length > before || (allow === null && denied === null && countries === null)) return null;
  return { allow, deny: denied, countries };
}

function compileCountryRules(raw: RawIpRules['countries'], at: (...path: (string | number)[]) => (string | number)[], loaded: ConfigSource, problems: ConfigProblem[], geo: CountrySource): CountryRules | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const list = (name: 'allow' | 'deny'): ReadonlySet<string> | null => {
    const codes = raw[name];
    if (codes === undefined || codes.length === 0) return null;
    codes.forEach((code, i) => {
      if (COUNTRY_CODES.has(code)) return;
      const meant = COUNTRY_CODE_MISTAKES[code];
      problems.push(loaded.problem(at(name, i), meant === undefined
        ? `"${code}" is not an assigned ISO 3166-1 alpha-2 country code, so no address is ever in it: write one like DE, US or JP`
        : `"${code}" is not the ISO 3166-1 code of that country (databases say ${meant}): write ${meant}`));
    });
    return new Set(codes);
  };
  const allow = list('allow');
  const denied = list('deny');
  if (allow === null && denied === null) problems.push(loaded.problem(at(), 'names no country: give allow or deny (ISO 3166-1 alpha-2 codes), or remove countries'));
  if (raw.unknown !== undefined && allow === null) problems.push(loaded.problem(at('unknown'), 'decides only addresses an allow list would refuse for want of a country; without countries.allow, such addresses pass already: add countries.allow, or remove unknown'));
  if (geo.database === null && !geo.configured) {
    problems.push(loaded.problem(at(), 'country rules need a country database: set geoDatabase (or audit.anomalies.geoDatabase) to a MaxMind-format .mmdb file, such as GeoLite2-Country.mmdb or dbip-country-lite.mmdb'));
  }
  if (problems.length > before || geo.database === null) return null;
  return { allow, deny: denied, admitUnknown: raw.unknown === 'allow', database: geo.database };
}

/**
 * Refuses a client address the rules do not admit (403 ip_denied): one on the deny list, or, when
 * there is an allow list, one not on it; then the same for the country the database places it in
 * (every list must admit it). An address in no country the database knows (private, loopback,
 * unrouted) is refused by a country allow list unless `unknown: allow`, and passes a deny list;
 * an address the database cannot judge (IPv6, in a database of IPv4 addresses only) is refused by
 * a deny list too (only an allow list's `unknown: allow` admits it).
 * The address is the client's as resolved through the trusted proxies (a spoofed X-Forwarded-For
 * from anyone else is not believed), IPv4-mapped IPv6 read as IPv4. `scope` says whose rules
 * these are in the audit record: `ipRules` or the route's.
 */
export function ipRulesStage(rules: IpRules, scope: string): Stage {
  const judge = (ex: Exchange, looked: (country: string | null) => void): Denial | undefined => {
    // Resolved and normalised already (an IPv4-mapped peer is its IPv4 address).
    const address = ex.clientIp;
    if (rules.deny?.has(address) === true) return deny('ip_denied', `${address} is on the deny list of ${scope}`);
    if (rules.allow !== null && !rules.allow.has(address)) return deny('ip_denied', `${address} is not on the allow list of ${scope}`);
    const countries = rules.countries;
    if (countries === null) return undefined;
    const country = countries.database.country(address);
    looked(country);
    // An IPv6 client judged by a database of IPv4 addresses only: its country is not known to be
    // none, it is not known at all. Passing it would let every IPv6 client past a deny list; only
    // an allow list's `unknown: allow` (which admits whatever has no country) lets it through.
    if (country === null && !countries.database.answers(address) && !(countries.allow !== null && countries.admitUnknown)) {
      return deny('ip_denied', `${address} is an IPv6 address and the country database holds IPv4 addresses only, so the country rules of ${scope} cannot place it`);
    }
    if (country === null) {
      return countries.allow !== null && !countries.admitUnknown
        ? deny('ip_denied', `${address} is in no country the country database knows, and the country rules of ${scope} allow listed countries only`)
        : undefined;
    }
    if (countries.deny?.has(country) === true) return deny('ip_denied', `${address} is in ${country}, on the country deny list of ${scope}`);
    if (countries.allow !== null && !countries.allow.has(country)) return deny('ip_denied', `${address} is in ${country}, not on the country allow list of ${scope}`);
    return undefined;
  };
  const ignore = (): void => undefined;
  return {
    name: 'ip-rules',
    run: (ex) => judge(ex, ignore),
    explain(ex) {
      let looked: string | null | undefined;
      const result = judge(ex, (country) => { looked = country; });
      const where = looked === undefined ? '' : `, country ${looked ?? 'unknown (not in the country database)'}`;
      return { result, note: `client address ${ex.clientIp}${where} (rules of ${scope})` };
    },
  };
}
