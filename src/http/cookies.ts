/**
 * The gateway's own cookies: reading one from the `Cookie` header, removing them before a request
 * goes upstream, and writing `Set-Cookie`. Parsing follows RFC 6265 §5.4 as browsers send it
 * (`name=value` pairs separated by `; `); HTTP/2 lets a client split the header into several
 * fields (RFC 9113 §8.2.3), which are joined with `; ` first.
 */

/** The longest cookie value taken (RFC 6265 §6.1: browsers keep at least 4096 bytes per cookie). */
export const MAX_COOKIE_VALUE_LENGTH = 4096;
/**
 * The longest Cookie header (all fields joined) parsed. Node's own header limit (16 KiB by default)
 * stops most before; past this nothing in it is trusted.
 */
export const MAX_COOKIE_HEADER_LENGTH = 65_536;
/**
 * The prefix every gateway cookie name has (RFC 6265bis §4.1.3.2): a browser keeps such a cookie
 * only when it was set Secure, from a secure origin, with `Path=/` and no `Domain`, so a sibling
 * subdomain or a plain-HTTP response cannot plant one (cookie tossing, session fixation).
 */
export const HOST_COOKIE_PREFIX = '__Host-';
/** Prefix of every cookie the gateway sets (sessions, logins in flight): never forwarded upstream, on any route. */
export const GATEWAY_COOKIE_PREFIX = '__Host-portcullis-';

/**
 * A Cookie header value without the gateway's own cookies, or null when nothing is left. An
 * upstream never receives a session id: it could replay it at the gateway as the user.
 */
export function withoutGatewayCookies(value: string): string | null {
  return value.includes(GATEWAY_COOKIE_PREFIX) ? withoutCookies(value, (name) => name.startsWith(GATEWAY_COOKIE_PREFIX), GATEWAY_COOKIE_PREFIX) : value;
}

/**
 * Whether an upstream's `Set-Cookie` line sets (or removes) a gateway cookie. The gateway owns
 * these names both ways: an upstream never reads them (withoutGatewayCookies) and never writes
 * them — one that could would plant its chosen session id in a user's browser (session fixation:
 * the user then acts in the planter's session) or end the user's session. The name is compared
 * as browsers read it (RFC 6265 §5.2: trimmed of whitespace) and without regard to case (RFC
 * 6265bis §4.1.3: browsers match the `__Host-` prefix case-insensitively).
 */
export function setsGatewayCookie(line: string): boolean {
  const eq = line.indexOf('=');
  const semi = line.indexOf(';');
  const end = eq === -1 ? (semi === -1 ? line.length : semi) : semi !== -1 && semi < eq ? semi : eq;
  return trimOws(line.slice(0, end)).toLowerCase().startsWith(GATEWAY_COOKIE_PREFIX_LOWER);
}

const GATEWAY_COOKIE_PREFIX_LOWER = GATEWAY_COOKIE_PREFIX.toLowerCase();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // RFC 9110 §5.6.2 token: a valid cookie-name
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * The value of the cookie called `name` (exact, case-sensitive). `absent`: no such cookie.
 * `ambiguous`: it is there but not as one usable value — sent twice (a second cookie of the same
 * name, set for another path or by a sibling domain, is how cookie tossing works: which one a
 * server reads differs), longer than MAX_COOKIE_VALUE_LENGTH, or in a header longer than
 * MAX_COOKIE_HEADER_LENGTH. Callers refuse `ambiguous`; they never pick one of the values.
 */
export function readCookie(header: string | string[] | undefined, name: string): { value: string } | 'absent' | 'ambiguous' {
  const text = joined(header);
  if (text === undefined) return 'absent';
  if (text.length > MAX_COOKIE_HEADER_LENGTH) return text.includes(name) ? 'ambiguous' : 'absent';
  let found: string | undefined;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    // RFC 6265 §5.2: a pair without `=` is ignored (6265bis reads it as a nameless value); neither is a match.
    if (eq === -1 || trimOws(pair.slice(0, eq)) !== name) continue;
    if (found !== undefined) return 'ambiguous';
    found = trimOws(pair.slice(eq + 1));
    if (found.length > MAX_COOKIE_VALUE_LENGTH) return 'ambiguous';
  }
  return found === undefined ? 'absent' : { value: found };
}

/**
 * The Cookie header to send upstream: the client's cookies without the gateway's own (those whose
 * name starts with `commonPrefix` and that `names` picks), each other pair byte for byte, joined
 * with `; `. Null when nothing is left. Runs on every request that has a Cookie header, so when
 * `commonPrefix` does not occur at all the header is returned as it came (several fields joined).
 */
export function withoutCookies(
  header: string | string[] | undefined,
  names: (name: string) => boolean,
  commonPrefix: string = HOST_COOKIE_PREFIX,
): string | null {
  const text = joined(header);
  if (text === undefined || text === '') return null;
  if (!text.includes(commonPrefix)) return text;
  const kept: string[] = [];
  for (const raw of text.split(';')) {
    const pair = trimOws(raw);
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const pairName = eq === -1 ? '' : trimOws(pair.slice(0, eq));
    if (pairName.startsWith(commonPrefix) && names(pairName)) continue;
    kept.push(pair);
  }
  return kept.length === 0 ? null : kept.join('; ');
}

/**
 * A `Set-Cookie` value for a gateway cookie: `Path=/; Secure; HttpOnly; SameSite=Lax` (Lax so the
 * cookie comes back on the top-level redirect from the identity provider; cross-site POSTs are
 * stopped by crossSiteRefusal), with `Max-Age` when given (null: a browser-session cookie).
 * `sameSite: 'None'` is for a cookie that must come back on a cross-site POST (the provider's
 * form_post response, RFC 6265bis §5.4.7). Throws on a name without the `__Host-` prefix, a value
 * that is not base64url or too long, or a Max-Age that is not a non-negative integer: each is a
 * bug in the gateway, not in a request.
 */
export function setCookie(name: string, value: string, maxAgeSeconds: number | null, sameSite: 'Lax' | 'None' = 'Lax'): string {
  if (!name.startsWith(HOST_COOKIE_PREFIX) || name.length === HOST_COOKIE_PREFIX.length || !TOKEN.test(name)) throw new Error(`cookie name ${JSON.stringify(name)} is not a __Host- token`);
  if (!BASE64URL.test(value) || value.length > MAX_COOKIE_VALUE_LENGTH) throw new Error(`cookie ${name}: the value is not base64url of at most ${MAX_COOKIE_VALUE_LENGTH} characters`);
  if (maxAgeSeconds !== null && (!Number.isSafeInteger(maxAgeSeconds) || maxAgeSeconds < 0)) throw new Error(`cookie ${name}: Max-Age ${maxAgeSeconds} is not a non-negative integer`);
  const cookie = `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=${sameSite}`;
  return maxAgeSeconds === null ? cookie : `${cookie}; Max-Age=${maxAgeSeconds}`;
}

/** A `Set-Cookie` value that removes the gateway cookie `name` (empty value, `Max-Age=0`, RFC 6265 §5.3 step 3). */
export function expiredCookie(name: string): string {
  return setCookie(name, '', 0);
}

function joined(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  return typeof header === 'string' ? header : header.join('; ');
}

/** Trims the optional whitespace around names and values (RFC 6265 §5.2: space and horizontal tab). */
function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isOws(s.charCodeAt(start))) start++;
  while (end > start && isOws(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}
