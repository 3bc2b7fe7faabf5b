/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
 * request headers, parsed strictly. The gateway believes them only from a trusted proxy; a value
 * that is not exactly what the specification allows is not believed at all (the request starts a
 * trace of its own), so no client-chosen text ever becomes a trace or span id.
 */

/** The parent a valid `traceparent` names: lower-case hex ids and the sampled flag. */
export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero: the caller's span. */
  readonly parentId: string;
  /** The caller recorded its span (flag 01): this trace is sampled. */
  readonly sampled: boolean;
}

/** Most list members of a `tracestate` (§3.3.1.1). */
export const MAX_TRACESTATE_MEMBERS = 32;
/** Most characters of a `tracestate` kept; a longer one is not propagated (§3.3.1.5 asks for at least 512). */
export const MAX_TRACESTATE_CHARS = 512;

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';
/** `version-format` of version 00: `00-<32 hex>-<16 hex>-<2 hex>`, 55 characters. */
const V00_LENGTH = 55;

/**
 * The parent named by the `traceparent` fields of a request, or null when there is none or it is
 * invalid: repeated (two fields could be read differently by two hops, §3.2), a version `ff` or
 * not two lower-case hex digits, version 00 with any other length, upper-case hex, an all-zero
 * trace or parent id. A version above 00 is read as 00 is, on its first 55 characters, when what
 * follows starts with `-` (§4.3: future versions extend the format at the end).
 */
export function parseTraceparent(values: readonly string[] | null): TraceParent | null {
  if (values === null || values.length !== 1) return null;
  const value = values[0] as string;
  if (value.length < V00_LENGTH) return null;
  const version = value.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return null;
  if (version === '00' ? value.length !== V00_LENGTH : value.length > V00_LENGTH && value.charCodeAt(V00_LENGTH) !== 45) return null;
  if (value.charCodeAt(2) !== 45 || value.charCodeAt(35) !== 45 || value.charCodeAt(52) !== 45) return null;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return null;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null;
  return { traceId, parentId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** `key`: a simple key, or `tenant@system` (§3.3.1.3.1). */
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_*/-]{0,255}|[a-z0-9][a-z0-9_*/-]{0,240}@[a-z][a-z0-9_*/-]{0,13})$/;
/** `value`: printable ASCII but `,` and `=`, up to 256, not ending in a space (§3.3.1.3.2). */
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * The `tracestate` of a request whose `traceparent` was believed, as one field to pass on, or
 * null when there is none or it is not valid: several fields are one list (§3.3.1.1), at most
 * MAX_TRACESTATE_MEMBERS members and MAX_TRACESTATE_CHARS characters, each `key=value` with a
 * valid key and value, no key twice. An invalid list is dropped whole, never repaired.
 */
export function parseTracestate(values: readonly string[] | null): string | null {
  if (values === null) return null;
  const joined = values.join(',');
  if (joined.length > MAX_TRACESTATE_CHARS) return null;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of joined.split(',')) {
    const member = raw.trim();
    if (member === '') continue; // empty list elements are allowed (§3.3.1.1)
    const eq = member.indexOf('=');
    if (eq <= 0) return null;
    const key = member.slice(0, eq);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(member.slice(eq + 1)) || keys.has(key)) return null;
    keys.add(key);
    members.push(member);
    if (members.length > MAX_TRACESTATE_MEMBERS) return null;
  }
  return members.length === 0 ? null : members.join(',');
}

/** A version 00 `traceparent` value. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
