import { celEnv, celFunc, celMethod, CelScalar, mapType, objectType, type CelEnv } from '@bufbuild/cel';
import { DurationSchema, timestampMs, TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import { RE2JS } from '@bufbuild/re2';
import { isIP } from 'node:net';
import { cidrProblem as addressRangeProblem, ipSet, normaliseIp, type IpSet } from '../lib/ip.js';
import { BOOL, listOf, mapOf, objectOf, STRING, TIMESTAMP, DYN, type RuleType } from './rule-types.js';
import type { CostBudget } from './check-expression.js';

/**
 * What attribute rules see, declared once: the variables (typed, for the checker), the functions
 * beyond CEL's standard ones, and the budgets every expression must fit at load.
 */

/** The variables a rule may name, and their types. */
export const RULE_VARIABLES: ReadonlyMap<string, RuleType> = new Map<string, RuleType>([
  ['request', objectOf('request', {
    method: STRING,
    path: STRING,
    params: mapOf(STRING, STRING),
    headers: mapOf(STRING, STRING),
    time: TIMESTAMP,
  })],
  ['client', objectOf('client', { ip: STRING })],
  ['identity', objectOf('identity', {
    sub: STRING,
    roles: listOf(STRING),
    scopes: listOf(STRING),
    tenant: STRING,
    method: STRING,
    keyId: STRING,
    tier: STRING,
  })],
  ['claims', mapOf(STRING, DYN)],
]);

/** Variables that exist only when a request is authenticated. */
export const IDENTITY_VARIABLES: ReadonlySet<string> = new Set(['identity', 'claims']);

/** inCidr(ip, cidr): the function the checker knows; its type here for the table in the docs. */
export const IN_CIDR_TYPE = { args: [STRING, STRING], result: BOOL } as const;

/**
 * The budgets (docs/policy.md, "Cost"). A rule is evaluated on every request of its route, so its
 * worst case is bounded at load: the tree's size, how deep comprehensions nest, and an estimate
 * in which a comprehension's body counts once per element of the longest list a rule can be
 * given. Lists and maps longer than `maxListLength` are never given to a rule (the evaluation
 * fails closed), so the estimate is an upper bound, not a guess.
 */
export const RULE_BUDGET: CostBudget = Object.freeze({
  maxNodes: 200,
  maxComprehensionDepth: 1,
  maxCost: 50_000,
  maxListLength: 1000,
});

/** Longest `when` expression, in characters. */
export const MAX_EXPRESSION_CHARS = 2000;
/** Most rules on one route. */
export const MAX_RULES_PER_ROUTE = 32;
/** Deepest nesting of a claim value given to a rule (objects and arrays). */
export const MAX_CLAIM_DEPTH = 16;

/** A CIDR literal's problem, or null: the same forms as ipRules (IPv4-mapped IPv6 refused: clients are matched as IPv4). */
export function cidrProblem(cidr: string): string | null {
  const problem = addressRangeProblem(cidr);
  return problem === null ? null : `${problem}: write an address or CIDR like 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`;
}

/** A time zone literal's problem, or null: an IANA zone name Node knows (Europe/Berlin, UTC) or a fixed offset (+02:00, -09:30; the sign may be left out for +), as CEL defines them. */
export function zoneProblem(zone: string): string | null {
  const fixed = /^[+-]?(\d\d):(\d\d)$/.exec(zone);
  if (fixed !== null) return Number(fixed[1]) <= 23 && Number(fixed[2]) <= 59 ? null : `"${zone}" is not an offset: write hours up to 23 and minutes up to 59, like +02:00 or -09:30`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return null;
  } catch {
    return `"${zone}" is not a time zone: write an IANA name like Europe/Berlin, America/New_York or UTC, or a fixed offset like +02:00`;
  }
}

/** A regular expression literal's problem (`matches`), or null: RE2 syntax, as CEL defines it (no lookaround, no backreferences). */
export function patternProblem(pattern: string): string | null {
  try {
    RE2JS.compile(pattern);
    return null;
  } catch (err) {
    return `"${pattern.length > 60 ? `${pattern.slice(0, 57)}...` : pattern}" is not an RE2 regular expression (${(err as Error).message}): write RE2 syntax, like "^/v[0-9]+/" (no lookaround or backreferences)`;
  }
}

/** The calendar fields of one minute in one zone; seconds and milliseconds come from the instant itself. */
interface ZonedMinute {
  readonly minuteMs: number;
  readonly fullYear: number;
  readonly month: number;
  readonly date: number;
  readonly dayOfWeek: number;
  readonly dayOfYear: number;
  readonly hours: number;
  readonly minutes: number;
}

const WEEKDAYS: Readonly<Record<string, number>> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/**
 * Calendar fields of instants in the zones the rules name. A formatter per zone is built once (at
 * compile), and the last minute computed is kept: every offset in use today is a whole number of
 * minutes, so all instants of one minute share their calendar fields. CEL's standard methods build
 * a formatter per call and go through the process's local zone; these do neither.
 */
class ZoneCalendar {
  private readonly format: Intl.DateTimeFormat | null;
  private readonly offsetMs: number;
  private last: ZonedMinute | null = null;

  constructor(zone: string) {
    const fixed = /^([+-]?)(\d\d):(\d\d)$/.exec(zone);
    this.offsetMs = fixed === null ? 0 : (fixed[1] === '-' ? -1 : 1) * (Number(fixed[2]) * 60 + Number(fixed[3])) * 60_000;
    this.format = fixed === null && zone !== 'UTC'
      ? new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', weekday: 'short' })
      : null;
  }

  at(ms: number): ZonedMinute {
    const minuteMs = Math.floor(ms / 60_000) * 60_000;
    const last = this.last;
    if (last !== null && last.minuteMs === minuteMs) return last;
    const fields = this.format === null ? utcFields(minuteMs + this.offsetMs, minuteMs) : zonedFields(this.format, minuteMs);
    this.last = fields;
    return fields;
  }
}

function utcFields(shifted: number, minuteMs: number): ZonedMinute {
  const d = new Date(shifted);
  const fullYear = d.getUTCFullYear();
  return {
    minuteMs, fullYear, month: d.getUTCMonth(), date: d.getUTCDate(), dayOfWeek: d.getUTCDay(),
    dayOfYear: Math.floor((Date.UTC(fullYear, d.getUTCMonth(), d.getUTCDate()) - Date.UTC(fullYear, 0, 1)) / 86_400_000),
    hours: d.getUTCHours(), minutes: d.getUTCMinutes(),
  };
}

function zonedFields(format: Intl.DateTimeFormat, minuteMs: number): ZonedMinute {
  let fullYear = 0, month = 0, date = 1, hours = 0, minutes = 0, dayOfWeek = 0;
  for (const part of format.formatToParts(minuteMs)) {
    switch (part.type) {
      case 'year': fullYear = Number(part.value); break;
      case 'month': month = Number(part.value) - 1; break;
      case 'day': date = Number(part.value); break;
      case 'hour': hours = Number(part.value); break;
      case 'minute': minutes = Number(part.value); break;
      case 'weekday': dayOfWeek = WEEKDAYS[part.value] ?? 0; break;
      default: break;
    }
  }
  const dayOfYear = Math.floor((Date.UTC(fullYear, month, date) - Date.UTC(fullYear, 0, 1)) / 86_400_000);
  return { minuteMs, fullYear, month, date, dayOfWeek, dayOfYear, hours, minutes };
}

type CalendarField = (z: ZonedMinute, ms: number) => number;
/** CEL's timestamp accessors (langdef "Timestamp/Duration functions"): months, days of month and of year count from 0; getDate from 1; Sunday is 0. */
const ACCESSORS: Readonly<Record<string, CalendarField>> = {
  getFullYear: (z) => z.fullYear,
  getMonth: (z) => z.month,
  getDayOfYear: (z) => z.dayOfYear,
  getDayOfMonth: (z) => z.date - 1,
  getDate: (z) => z.date,
  getDayOfWeek: (z) => z.dayOfWeek,
  getHours: (z) => z.hours,
  getMinutes: (z) => z.minutes,
  getSeconds: (_z, ms) => Math.floor((ms % 60_000 + 60_000) % 60_000 / 1000),
  getMilliseconds: (_z, ms) => (ms % 1000 + 1000) % 1000,
};

/** A dotted-quad IPv4 address as a 32-bit number, or null when `text` is not one (leading zeros refused, as node:net does). */
function ipv4Number(text: string): number | null {
  let n = 0;
  let octets = 0;
  let i = 0;
  while (octets < 4) {
    const start = i;
    let octet = 0;
    for (; i < text.length && i - start < 4; i++) {
      const d = text.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      octet = octet * 10 + d;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && text.charCodeAt(start) === 0x30)) return null;
    n = n * 256 + octet;
    octets++;
    if (octets < 4) {
      if (text.charCodeAt(i) !== 0x2e) return null;
      i++;
    }
  }
  return i === text.length ? n : null;
}

/**
 * An IPv4 CIDR range checked by arithmetic (node's BlockList builds a SocketAddress per lookup,
 * most of a rule's time); null for an IPv6 range, which ipSet checks. Addresses are normalised
 * before the check, so an IPv4-mapped IPv6 client is an IPv4 address here.
 */
function ipv4Range(cidr: string): IpSet | null {
  const [address = '', bits] = cidr.split('/', 2);
  const network = ipv4Number(address);
  if (network === null) return null;
  const prefix = bits === undefined ? 32 : Number(bits);
  const size = 2 ** (32 - prefix);
  const first = network - (network % size);
  return { size: 1, has: (ip) => { const n = ipv4Number(ip); return n !== null && n >= first && n < first + size; } };
}

/** A timestamp or duration as CEL hands it to a method: a reflected message. */
interface TimeValue {
  readonly message: { readonly $typeName: string; readonly seconds: bigint; readonly nanos: number };
}

const TIMESTAMP_TYPE = 'google.protobuf.Timestamp';
const DURATION_TYPE = 'google.protobuf.Duration';
/** CEL's duration accessors: whole hours, minutes, seconds, milliseconds of the duration. */
const DURATION_ACCESSORS: Readonly<Record<string, (seconds: bigint, nanos: number) => bigint>> = {
  getHours: (s) => s / 3600n,
  getMinutes: (s) => s / 60n,
  getSeconds: (s) => s,
  getMilliseconds: (_s, n) => BigInt(n) / 1_000_000n,
};

function isTimeValue(v: unknown, typeName: string): v is TimeValue {
  const message = (v as { message?: { $typeName?: unknown } } | null)?.message;
  return typeof message === 'object' && message !== null && message.$typeName === typeName;
}

/**
 * The CEL environment rules are planned in: the variables (as maps: the checker has typed them
 * already), inCidr over the CIDR literals the rules name, `matches` over the patterns they name,
 * and the timestamp accessors over the zones they name (all compiled here, once). A CIDR, pattern
 * or zone not compiled here cannot reach these functions: the checker admits only literals, and
 * every literal is compiled.
 *
 * The accessors replace CEL's standard ones, and the first of each name takes any target and
 * tells a timestamp from a duration itself: the standard dispatch tries each overload in turn and
 * builds a type object for the target at every try, which cost more than the whole rule.
 */
export function ruleEnvironment(cidrs: ReadonlySet<string>, zones: ReadonlySet<string>, patterns: ReadonlySet<string> = new Set()): CelEnv {
  const regexes = new Map<string, RE2JS>([...patterns].map((p) => [p, RE2JS.compile(p)]));
  const ranges = new Map<string, IpSet>([...cidrs].map((c) => [c, ipv4Range(c) ?? ipSet([c])]));
  const calendars = new Map<string, ZoneCalendar>([...zones, 'UTC'].map((z) => [z, new ZoneCalendar(z)]));
  const utc = calendars.get('UTC') as ZoneCalendar;
  const timestamp = objectType(TimestampSchema);
  const duration = objectType(DurationSchema);
  const methods = Object.entries(ACCESSORS).flatMap(([name, field]) => {
    const ofDuration = DURATION_ACCESSORS[name];
    const inZone = function (this: unknown, zone: string): bigint {
      if (!isTimeValue(this, TIMESTAMP_TYPE)) throw new Error(`${name}(zone) takes a timestamp`);
      const calendar = calendars.get(zone);
      if (calendar === undefined) throw new Error(`time zone ${zone} was not compiled`);
      const ms = timestampMs(this.message as Timestamp);
      return BigInt(field(calendar.at(ms), ms));
    };
    const inUtc = function (this: unknown): bigint {
      if (isTimeValue(this, TIMESTAMP_TYPE)) {
        const ms = timestampMs(this.message as Timestamp);
        return BigInt(field(utc.at(ms), ms));
      }
      if (ofDuration !== undefined && isTimeValue(this, DURATION_TYPE)) return ofDuration(this.message.seconds, this.message.nanos);
      throw new Error(`${name}() takes a timestamp${ofDuration === undefined ? '' : ' or a duration'}`);
    };
    // Any target first (no type object built per call), then the standard signatures, replaced by the same code.
    return [
      celMethod(name, CelScalar.DYN, [CelScalar.STRING], CelScalar.INT, inZone),
      celMethod(name, CelScalar.DYN, [], CelScalar.INT, inUtc),
      celMethod(name, timestamp, [CelScalar.STRING], CelScalar.INT, inZone),
      celMethod(name, timestamp, [], CelScalar.INT, inUtc),
      ...(ofDuration === undefined ? [] : [celMethod(name, duration, [], CelScalar.INT, inUtc)]),
    ];
  });
  const inCidr = celFunc('inCidr', [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, (ip: string, cidr: string) => {
    const range = ranges.get(cidr);
    if (range === undefined) throw new Error(`range ${cidr} was not compiled`);
    const address = normaliseIp(ip);
    if (isIP(address) === 0) throw new Error('client.ip is not an address');
    return range.has(address);
  });
  // CEL's standard matches compiles its pattern on every call: these are compiled here, once.
  const matches = celMethod('matches', CelScalar.STRING, [CelScalar.STRING], CelScalar.BOOL, function (this: string, pattern: string): boolean {
    const regex = regexes.get(pattern);
    if (regex === undefined) throw new Error(`pattern ${pattern} was not compiled`);
    return regex.test(this);
  });
  const map = mapType(CelScalar.STRING, CelScalar.DYN);
  return celEnv({
    variables: { request: map, client: map, identity: map, claims: map },
    funcs: [inCidr, matches, ...methods],
  });
}
