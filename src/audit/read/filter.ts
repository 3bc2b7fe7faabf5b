// Which records `audit tail` and `audit stats` show: the filters of their command lines, parsed once
// into a value, then matched against each parsed record. Records come from a file anyone with write
// access may have edited, so every member is checked for its type before it is compared.
import { parseDuration } from '../../lib/duration.js';

/** The kinds of record a trail holds (docs/audit.md, "Records" and "Other records"). */
export const RECORD_KINDS = ['request', 'admin', 'alert', 'gap', 'checkpoint', 'file', 'start'] as const;

/** What `--kind` selects when it is not given: everything but the chain's own bookkeeping (file, start, checkpoint). */
export const DEFAULT_KINDS: ReadonlySet<string> = new Set(['request', 'admin', 'alert', 'gap']);

export const DECISIONS = ['allow', 'deny', 'error', 'abort'] as const;

/** One `--status` term: an exact status (`401`) or a class (`4xx`: 400 to 499). */
export interface StatusMatch {
  readonly from: number;
  readonly to: number;
}

export interface RecordFilter {
  /** Matches `identity.subject` or `identity.keyId`, exactly. */
  readonly identity?: string;
  /** Any of these statuses; records without a status never match. */
  readonly status?: readonly StatusMatch[];
  /** The matched route's name, exactly. */
  readonly route?: string;
  readonly decision?: string;
  /** The kinds shown; null for every kind. */
  readonly kinds: ReadonlySet<string> | null;
  /** Inclusive bounds on `time`, ms since the epoch. */
  readonly sinceMs?: number;
  readonly untilMs?: number;
}

const STATUS_TERM = /^([1-5])(xx|[0-9]{2})$/;

/** `4xx`, `401`, `4xx,503`: the statuses `--status` selects, or null when `text` is none of these. */
export function parseStatus(text: string): StatusMatch[] | null {
  const terms = text.split(',');
  if (terms.length > 16) return null;
  const out: StatusMatch[] = [];
  for (const term of terms) {
    const m = STATUS_TERM.exec(term.trim().toLowerCase());
    if (m === null) return null;
    const hundreds = Number(m[1]) * 100;
    if (m[2] === 'xx') out.push({ from: hundreds, to: hundreds + 99 });
    else out.push({ from: hundreds + Number(m[2]), to: hundreds + Number(m[2]) });
  }
  return out;
}

/** ISO 8601 in UTC or with an offset (`2026-11-30`, `2026-11-30T10:00Z`, `2026-11-30T10:00:00.250+01:00`). */
const ISO = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * A `--since`/`--until` value in ms since the epoch: an ISO 8601 time (a date alone is midnight
 * UTC; a time needs `Z` or an offset, so no reader's time zone changes the answer) or a duration
 * before `nowMs` (`15m`, `24h`, `7d`). Null when `text` is neither.
 */
export function parseTime(text: string, nowMs: number): number | null {
  const ago = parseDuration(text);
  if (ago !== null) return nowMs - ago;
  if (!ISO.test(text) || !isCalendarDate(text.slice(0, 10))) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

/** Whether `YYYY-MM-DD` names a day that exists: Date.parse takes `2026-02-30` for 2 March. */
function isCalendarDate(date: string): boolean {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/** A record's `time` in ms, or NaN when it has none that parses. */
export function recordTimeMs(record: Readonly<Record<string, unknown>>): number {
  const time = record.time;
  return typeof time === 'string' ? Date.parse(time) : Number.NaN;
}

function identityMatches(identity: unknown, wanted: string): boolean {
  if (identity === null || typeof identity !== 'object') return false;
  const { subject, keyId } = identity as { subject?: unknown; keyId?: unknown };
  return subject === wanted || keyId === wanted;
}

/** Whether `record` passes every filter given. A record whose time does not parse fails a time bound. */
export function matches(record: Readonly<Record<string, unknown>>, filter: RecordFilter): boolean {
  if (filter.kinds !== null && !(typeof record.kind === 'string' && filter.kinds.has(record.kind))) return false;
  if (filter.decision !== undefined && record.decision !== filter.decision) return false;
  if (filter.route !== undefined && record.route !== filter.route) return false;
  if (filter.identity !== undefined && !identityMatches(record.identity, filter.identity)) return false;
  if (filter.status !== undefined) {
    const status = record.status;
    if (typeof status !== 'number' || !filter.status.some((s) => status >= s.from && status <= s.to)) return false;
  }
  if (filter.sinceMs !== undefined || filter.untilMs !== undefined) {
    const ms = recordTimeMs(record);
    if (!Number.isFinite(ms)) return false;
    if (filter.sinceMs !== undefined && ms < filter.sinceMs) return false;
    if (filter.untilMs !== undefined && ms > filter.untilMs) return false;
  }
  return true;
}
