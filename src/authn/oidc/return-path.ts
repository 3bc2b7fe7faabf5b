/**
 * Where a browser goes back to after login or logout. The value arrives from the client (a query
 * parameter, a form field), so it is an open-redirect vector (CWE-601) unless it can only name a
 * path on this origin. Browsers and servers disagree in the details — WHATWG URL strips TAB, CR
 * and LF anywhere and reads `\` as `/`, so `/\evil.com` and `/<TAB>/evil.com` become
 * `//evil.com`, a scheme-relative URL (RFC 3986 §4.2) naming another host — so this accepts a
 * narrow shape and refuses everything else rather than trying to repair it.
 *
 * `@` is accepted: relative to the origin, `/@evil.com` is a path segment; `@` only separates user
 * information after `//`, which is refused. A fragment is accepted and dropped (browsers never send
 * one to the server, so a return URL that carried one came from a link, and keeping it would only
 * let more characters reach the `Location` header).
 */

/** The longest return path taken, in characters (the emitted form is checked against it too). */
export const MAX_RETURN_PATH_LENGTH = 2048;

/** An origin no request can have: the path is resolved against it and must stay on it. */
const PROBE_ORIGIN = 'https://return-path.invalid';

/**
 * Percent-encodings refused anywhere, also double-encoded (`%25` repeated before them): `/` `\`
 * and `.` (a server or browser decoding once more would make `//`, `/\` or dot segments of them),
 * and every control character (C0 and DEL), which some component may decode into TAB, CR, LF or NUL.
 */
const HOSTILE_ENCODING = /%(?:25)*(?:[01][0-9a-f]|2e|2f|5c|7f)/i;
/** A `%` not starting a two-hex-digit escape: components differ in what they make of it. */
const BARE_PERCENT = /%(?![0-9a-f]{2})/i;

/**
 * The string to put in `Location` for a requested return path, or null when it is not a plain
 * same-origin path (the caller then uses `/`). Accepted: starts with exactly one `/` not followed by
 * `\`, printable ASCII only, no backslash, at most MAX_RETURN_PATH_LENGTH characters, no hostile
 * percent-encoding, and resolving it against an origin keeps that origin with a path not starting
 * `//` (`/..//evil` resolves to `//evil`). The answer is the resolved path and query as WHATWG URL
 * serialises them, and it passes these same checks itself.
 */
export function safeReturnPath(raw: string | null | undefined): string | null {
  if (typeof raw !== 'string') return null;
  const emitted = resolved(raw);
  // Idempotent by construction in every case tested; checked so a serialiser change cannot make
  // the emitted form something the checks would have refused.
  return emitted !== null && resolved(emitted) === emitted ? emitted : null;
}

function resolved(raw: string): string | null {
  if (raw.length === 0 || raw.length > MAX_RETURN_PATH_LENGTH) return null;
  if (raw.charCodeAt(0) !== 0x2f /* / */) return null;
  const second = raw.charCodeAt(1);
  if (second === 0x2f || second === 0x5c /* \ */) return null;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    // Printable ASCII only: no controls (TAB, CR, LF are stripped by browsers), no DEL, nothing
    // beyond ASCII (fullwidth solidus and other look-alikes), and no backslash anywhere.
    if (c < 0x20 || c > 0x7e || c === 0x5c) return null;
  }
  if (HOSTILE_ENCODING.test(raw) || BARE_PERCENT.test(raw)) return null;
  let url: URL;
  try { url = new URL(raw, PROBE_ORIGIN); } catch { return null; }
  if (url.origin !== PROBE_ORIGIN || url.username !== '' || url.password !== '') return null;
  if (url.pathname.startsWith('//')) return null;
  const out = url.pathname + url.search;
  return out.length <= MAX_RETURN_PATH_LENGTH ? out : null;
}
