import { ipSet, type IpSet } from '../lib/ip.js';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigSource } from '../config/config-source.js';
import { deny } from '../pipeline/denials.js';
import type { Stage } from '../pipeline/exchange.js';

/** Allow and deny lists of client addresses, compiled. */
export interface IpRules {
  /** Null: any address not denied. */
  readonly allow: IpSet | null;
  readonly deny: IpSet | null;
}

/** `ipRules` as written: CIDR lists (IPv4 and IPv6; a bare address is its own /32 or /128). */
export interface RawIpRules {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

/**
 * Compiles allow and deny lists, each entry checked on its own so a bad one is reported where it
 * is (`at(list, i)`); null when there are none or any entry is wrong.
 */
export function compileIpRules(raw: RawIpRules | undefined, at: (...path: (string | number)[]) => (string | number)[], loaded: ConfigSource, problems: ConfigProblem[]): IpRules | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const list = (name: 'allow' | 'deny'): IpSet | null => {
    const cidrs = raw[name];
    if (cidrs === undefined || cidrs.length === 0) return null;
    cidrs.forEach((cidr, i) => {
      // Client addresses are compared with IPv4-mapped IPv6 read as IPv4: a mapped entry would never match.
      if (/^::ffff:/i.test(cidr)) problems.push(loaded.problem(at(name, i), `"${cidr}" is an IPv4-mapped IPv6 form: write the IPv4 address or range itself (clients connecting as ::ffff:a.b.c.d are matched as a.b.c.d)`));
      else {
        try { ipSet([cidr]); } catch (err) { problems.push(loaded.problem(at(name, i), `${(err as Error).message}: write an address or CIDR like 203.0.113.0/24, 198.51.100.7 or 2001:db8::/32`)); }
      }
    });
    return problems.length > before ? null : ipSet(cidrs);
  };
  const allow = list('allow');
  const denied = list('deny');
  if (problems.length > before || (allow === null && denied === null)) return null;
  return { allow, deny: denied };
}

/**
 * Refuses a client address the rules do not admit (403 ip_denied): one on the deny list, or, when
 * there is an allow list, one not on it. The address is the client's as resolved through the
 * trusted proxies (a spoofed X-Forwarded-For from anyone else is not believed), IPv4-mapped IPv6
 * read as IPv4. `scope` says whose rules these are in the audit record: `ipRules` or the route's.
 */
export function ipRulesStage(rules: IpRules, scope: string): Stage {
  return {
    name: 'ip-rules',
    run(ex) {
      // Resolved and normalised already (an IPv4-mapped peer is its IPv4 address).
      const address = ex.clientIp;
      if (rules.deny?.has(address) === true) return deny('ip_denied', `${address} is on the deny list of ${scope}`);
      if (rules.allow !== null && !rules.allow.has(address)) return deny('ip_denied', `${address} is not on the allow list of ${scope}`);
      return undefined;
    },
  };
}
