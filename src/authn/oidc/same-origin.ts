/**
 * Cross-site request forgery check for cookie-authenticated routes. A browser attaches the session
 * cookie to a cross-site form POST when SameSite allows it (Lax still sends it on top-level GETs,
 * and same-site subdomains are never stopped by SameSite at all), so a state-changing request must
 * show that the page that made it is ours: Fetch Metadata (`Sec-Fetch-Site`, W3C Fetch Metadata
 * Request Headers) where the browser sends it, the `Origin` header (RFC 6454 §7, the Fetch
 * standard) otherwise or as well. A request with neither is refused: every browser that can hold
 * the session cookie sends `Origin` on unsafe methods, so only non-browser clients lack both, and
 * those authenticate with bearer tokens, not session cookies.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

/** Methods that must not change state (RFC 9110 §9.2.1): never checked. Method names are case-sensitive. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The longest `Origin` value looked at: scheme, a 253-character host and a port, with room to spare. */
const MAX_ORIGIN_LENGTH = 300;
const ORIGIN_SHAPE = /^([A-Za-z]+):\/\/(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::([0-9]{1,5}))?$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DEFAULT_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

/**
 * An origin in its one canonical spelling: scheme and host lower-cased, the scheme's default port
 * dropped (`HTTPS://App.Example.com:443` → `https://app.example.com`). Null for anything that is not
 * an http or https origin: `null` (opaque origins), a path or trailing slash, user information,
 * an empty or trailing-dot label, a port outside 1–65535, a list of origins.
 */
export function normaliseOrigin(s: string): string | null {
  if (s.length > MAX_ORIGIN_LENGTH) return null;
  const m = ORIGIN_SHAPE.exec(s);
  if (m === null) return null;
  const scheme = (m[1] ?? '').toLowerCase();
  const host = (m[2] ?? '').toLowerCase();
  const defaultPort = DEFAULT_PORT[scheme];
  if (defaultPort === undefined) return null;
  if (host.startsWith('[')) {
    if (isIP(host.slice(1, -1)) !== 6) return null;
  } else if (!host.split('.').every((label) => LABEL.test(label))) {
    return null;
  }
  if (m[3] === undefined) return `${scheme}://${host}`;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return port === defaultPort ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

/**
 * Null when a request may go on to a cookie-authenticated route, else the private reason (for the
 * audit record, never the client). Safe methods always pass. For the others:
 * - a repeated `Origin` or `Sec-Fetch-Site` (an array, or values Node joined with commas) is refused;
 * - `Sec-Fetch-Site: same-origin` passes when `Origin`, if sent, is one of `ownOrigins`;
 * - `same-site` or `cross-site` pass only with an `Origin` that `allowedByCors` admits (a route's
 *   CORS policy allowing that origin with credentials): a sibling subdomain is not trusted by default;
 * - `none` (typed URL, bookmark) is refused: such a navigation is never a state-changing request;
 * - without `Sec-Fetch-Site`, `Origin` must be one of `ownOrigins` or admitted by `allowedByCors`;
 * - `Origin: null` and a request with neither header are refused.
 *
 * `ownOrigins` holds normalised origins (normaliseOrigin's spelling); `allowedByCors` is asked with
 * the normalised origin.
 */
export function crossSiteRefusal(
  method: string,
  headers: IncomingHttpHeaders,
  ownOrigins: ReadonlySet<string>,
  allowedByCors: (origin: string) => boolean,
): string | null {
  if (SAFE_METHODS.has(method)) return null;
  const rawOrigin = single(headers.origin);
  const site = single(headers['sec-fetch-site']);
  if (rawOrigin === REPEATED) return 'Origin header repeated';
  if (site === REPEATED) return 'Sec-Fetch-Site header repeated';
  let origin: string | undefined;
  if (rawOrigin !== undefined) {
    if (rawOrigin === 'null') return 'Origin is null (an opaque origin: sandboxed frame, file: page or cross-origin redirect)';
    const normalised = normaliseOrigin(rawOrigin);
    if (normalised === null) return 'Origin is not a serialised http(s) origin';
    origin = normalised;
  }
  switch (site) {
    case undefined:
      if (origin === undefined) return 'neither Origin nor Sec-Fetch-Site (a non-browser client must use a bearer token, not the session cookie)';
      return ownOrigins.has(origin) || allowedByCors(origin) ? null : `cross-origin request from ${origin} not allowed by the route`;
    case 'same-origin':
      return origin === undefined || ownOrigins.has(origin) ? null : `Sec-Fetch-Site same-origin but Origin ${origin} is not the gateway's own`;
    case 'same-site':
    case 'cross-site':
      if (origin === undefined) return `Sec-Fetch-Site ${site} without Origin`;
      return allowedByCors(origin) ? null : `${site} request from ${origin} not allowed by the route's CORS policy`;
    case 'none':
      return 'Sec-Fetch-Site none (user-initiated navigation) on a state-changing method';
    default:
      return 'Sec-Fetch-Site has an unknown value';
  }
}

const REPEATED: unique symbol = Symbol('repeated');

/** The one value of a header, undefined when absent, REPEATED when sent more than once. */
function single(value: string | string[] | undefined): string | typeof REPEATED | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    if (value.length !== 1) return value.length === 0 ? undefined : REPEATED;
    value = value[0] ?? '';
  }
  // Node joins repeated headers with ", "; neither an origin nor a Fetch Metadata token has a comma.
  return value.includes(',') ? REPEATED : value;
}
