import { isIP } from 'node:net';
import { setsGatewayCookie, withoutGatewayCookies } from './cookies.js';
import type { IpSet } from '../lib/ip.js';
import { isIpv4Compatible, normaliseIp } from '../lib/ip.js';
import { isProxyAsserted, isTraceContext, METHOD_OVERRIDE_HEADERS } from './header-families.js';

/**
 * Identity headers the gateway asserts to upstreams (DESIGN.md invariant 3). They are removed from
 * every inbound request, in any case and with `_` for `-`, before any stage runs.
 */
export const IDENTITY_HEADERS: readonly string[] = [
  'x-user-id', 'x-tenant-id', 'x-roles', 'x-scopes', 'x-auth-method', 'x-client-cert-subject', 'x-request-id',
];
/** Hop-by-hop fields (RFC 9110 §7.6.1) plus fields the gateway sets itself towards the upstream. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'http2-settings', 'expect',
]);

/**
 * Response fields never relayed from an upstream to the client: hop-by-hop, and the
 * connection-specific fields an HTTP/2 message may not carry (RFC 9113 §8.2.2).
 */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'http2-settings',
]);

/** Lower case, `_` read as `-`: the spelling an upstream framework may fold headers into. */
export function normaliseHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') ? lower.replace(/_/g, '-') : lower;
}

/** How inbound headers are cleaned; compiled once from the config. Names are normalised. */
export interface HeaderPolicy {
  /** Identity headers the gateway asserts (and any `headers.protected`): never taken from a client. */
  readonly protectedNames: ReadonlySet<string>;
  /** The request id header (lower case); taken only from a trusted proxy. */
  readonly requestIdHeader: string;
  /**
   * Headers a stage decides on (tenant header, `Content-Type`, `header:` rate-limit keys): they
   * must arrive at most once, with no `_` twin and not named in `Connection`, so the upstream
   * reads exactly the value that was checked.
   */
  readonly decisionHeaders: ReadonlySet<string>;
  /** Headers authenticators read API keys from: never forwarded (`Authorization` is handled per route). */
  readonly credentialHeaders: ReadonlySet<string>;
  /** `Authorization` schemes (lower case) an authenticator reads a key from (`apikey`): such a header is never forwarded. */
  readonly strippedAuthorizationSchemes: ReadonlySet<string>;
  /** Proxy-asserted headers a trusted proxy may pass (`headers.fromTrustedProxies`). */
  readonly fromTrustedProxies: ReadonlySet<string>;
  /** Keep header names containing `_` (off by default, as in nginx). */
  readonly allowUnderscores: boolean;
}

/** The inbound facts the gateway needs, read in the same single pass that builds upstream headers. */
export interface InboundHeaders {
  /** Flat `[name, value, …]` list for the upstream: hop-by-hop, identity and forwarding headers removed. */
  readonly forward: string[];
  readonly host: string | null;
  readonly hostCount: number;
  readonly xForwardedFor: string | null;
  /**
   * Every X-Forwarded-Proto field, joined with ", " as RFC 9110 §5.3 reads repeated fields: two
   * fields say the same as one with a list, so neither spelling is believed as a single scheme
   * (a proxy that appends its own field after a client's cannot be overridden by the first one).
   */
  readonly xForwardedProto: string | null;
  /** The client's X-Request-Id (or configured name); used only when the peer is a trusted proxy. */
  readonly requestId: string | null;
  /** The first method-override header the client sent (name and value), kept out of `forward`; the route decides. */
  readonly methodOverride: { readonly name: string; readonly value: string } | null;
  /** How many method-override headers the client sent (more than one is ambiguous where overrides are allowed). */
  readonly methodOverrides: number;
  /** Why a decision header is ambiguous (repeated, `_` twin, named in `Connection`), or null. */
  readonly ambiguous: string | null;
  /**
   * HTTP/2: the request has both `:authority` and a `Host` naming another host (RFC 9113 §8.3.1),
   * or several `Host` fields besides `:authority`. `host` is then the first `Host`.
   */
  readonly authorityMismatch: boolean;
  /**
   * W3C Trace Context fields (`traceparent`, `tracestate`) as a trusted proxy sent them, every
   * field in order; null when it sent none. Never read from anyone else, and kept out of `forward`:
   * the upstream request assembly decides what is sent (proxy/upstream-request.ts).
   */
  readonly traceparent: readonly string[] | null;
  readonly tracestate: readonly string[] | null;
}

/**
 * One pass over `rawHeaders`. HTTP/2 pseudo-header fields are never forwarded: `:authority` is the
 * request's Host when it has none (RFC 9113 §8.3.1), the others are read from the request itself;
 * the cookie fields HTTP/2 splits are joined into one for the HTTP/1.1 upstream (§8.2.3). Drops hop-by-hop fields and those named in `Connection` (RFC 9110
 * §7.6.1), every protected identity header (so none can be spoofed), the headers other servers
 * believe a proxy set (see header-families.ts), names with `_` (unless allowed), API key
 * carriers, and the forwarding headers the gateway recomputes. `Forwarded` and `X-Real-IP` pass
 * only from trusted proxies; so does trace context in any format (header-families.ts). Notes any ambiguity in a header a stage decides on.
 */
export function readInboundHeaders(raw: readonly string[], connection: string | undefined, peerTrusted: boolean, policy: HeaderPolicy): InboundHeaders {
  const forward: string[] = [];
  let connectionTokens: Set<string> | null = null;
  let ambiguous: string | null = null;
  // `keep-alive` and `close` name no other header: skip building a set for the common case.
  if (connection !== undefined && connection !== '' && connection !== 'keep-alive' && connection !== 'close') {
    connectionTokens = new Set(connection.split(',').map((t) => normaliseHeaderName(t.trim())).filter((t) => t !== ''));
    for (const token of connectionTokens) {
      // A client's `Connection: x-org` would remove the header a stage checked before it reaches the upstream.
      if (policy.decisionHeaders.has(token) || token === 'host' || token === 'content-length') ambiguous ??= `Connection names ${token}`;
    }
  }
  const { decisionHeaders } = policy;
  let decisionSeen = null as Set<string> | null;
  let host: string | null = null;
  let hostCount = 0;
  let xff: string | null = null;
  let xfp: string | null = null;
  let requestId: string | null = null;
  let methodOverride: { name: string; value: string } | null = null;
  let methodOverrides = 0;
  let authority: string | null = null;
  // Where the joined cookie value is in `forward` (HTTP/2 only), or -1.
  let cookieAt = -1;
  let http2 = false;
  let traceparent: string[] | null = null;
  let tracestate: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // `:` cannot start an HTTP/1.x field name; on HTTP/2 it marks a pseudo-header, all before the regular fields.
    if (name.charCodeAt(0) === 58) {
      http2 = true;
      if (name === ':authority') authority ??= value;
      continue;
    }
    const lower = name.toLowerCase();
    const underscored = lower.includes('_');
    // CGI, WSGI, Rack and PHP read `X_Forwarded_For` as `X-Forwarded-For`: match both spellings,
    // and believe only the dash spelling, and only from a trusted proxy.
    const normalised = underscored ? lower.replace(/_/g, '-') : lower;
    if (decisionHeaders.has(normalised)) {
      if (underscored) ambiguous ??= `${name} is a second spelling of ${normalised}`;
      else if (decisionSeen?.has(normalised) === true) ambiguous ??= `${normalised} is repeated`;
      else (decisionSeen ??= new Set()).add(normalised);
    }
    switch (normalised) {
      case 'host': if (!underscored) { hostCount++; host ??= value; } continue;
      case 'x-forwarded-for': if (!underscored) xff = xff === null ? value : `${xff}, ${value}`; continue;
      case 'x-forwarded-proto': if (!underscored) xfp = xfp === null ? value : `${xfp}, ${value}`; continue;
      case 'x-forwarded-host': continue; // recomputed from Host, which routing used
      // A client must not choose trace ids in the systems behind the gateway (nor join a trace it
      // does not own): only a trusted proxy's trace context is taken, and never forwarded as is here.
      case 'traceparent': if (peerTrusted && connectionTokens?.has(normalised) !== true) (traceparent ??= []).push(value); continue;
      case 'tracestate': if (peerTrusted && connectionTokens?.has(normalised) !== true) (tracestate ??= []).push(value); continue;
      default: break;
    }
    // gunicorn builds PATH_INFO from a client's SCRIPT_NAME header; nginx drops such names too.
    if (underscored && !policy.allowUnderscores) continue;
    if (HOP_BY_HOP.has(normalised) || connectionTokens?.has(normalised) === true) continue;
    if (policy.protectedNames.has(normalised)) {
      if (lower === policy.requestIdHeader) requestId ??= value;
      continue;
    }
    if (policy.credentialHeaders.has(normalised)) continue;
    // B3, Jaeger, Datadog, X-Ray, baggage…: the backends' tracers read them as traceparent is read.
    if (!peerTrusted && isTraceContext(normalised)) continue;
    if (normalised === 'authorization' && policy.strippedAuthorizationSchemes.size > 0 && policy.strippedAuthorizationSchemes.has(authorizationScheme(value))) continue;
    if (isProxyAsserted(normalised)) {
      if (METHOD_OVERRIDE_HEADERS.has(normalised) && !underscored) {
        methodOverrides++;
        methodOverride ??= { name: lower, value };
      } else if (peerTrusted && !underscored && policy.fromTrustedProxies.has(normalised)) {
        forward.push(name, value);
      }
      continue;
    }
    let forwarded = value;
    if (lower === 'cookie') {
      const kept = withoutGatewayCookies(value);
      if (kept === null) continue;
      forwarded = kept;
      if (http2) {
        if (cookieAt !== -1) { forward[cookieAt] = `${forward[cookieAt] ?? ''}; ${forwarded}`; continue; }
        cookieAt = forward.length + 1;
      }
    }
    forward.push(name, forwarded);
  }
  let authorityMismatch = false;
  if (authority !== null) {
    if (hostCount === 0) { host = authority; hostCount = 1; }
    else authorityMismatch = hostCount > 1 || (host as string).toLowerCase() !== authority.toLowerCase();
  }
  return { forward, host, hostCount, xForwardedFor: xff, xForwardedProto: xfp, requestId, methodOverride, methodOverrides, ambiguous, authorityMismatch, traceparent, tracestate };
}

/** The scheme of an `Authorization` value followed by its credential, lower case; '' when there is none. */
function authorizationScheme(value: string): string {
  return SCHEME.exec(value)?.[1]?.toLowerCase() ?? '';
}

const SCHEME = /^\s*(\S+)\s/;

/**
 * One `X-Forwarded-For` hop as an address: a bare IPv4 or IPv6 address, or the `ip:port` and
 * `[v6]:port` forms some load balancers send, in the one spelling `normaliseIp` gives (IPv6
 * canonical, IPv4-mapped and NAT64 forms as IPv4). Null when it is not a client address: IPv4
 * with a leading zero in an octet (`010.1.2.3` is octal 8.1.2.3 to some parsers and 10.1.2.3 to
 * others), a zone id, the deprecated IPv4-compatible `::a.b.c.d`, anything else node does not
 * read as an address.
 */
export function forwardedHopAddress(hop: string): string | null {
  let text = hop.trim();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return null;
    const rest = text.slice(close + 1);
    if (rest !== '' && (rest.charAt(0) !== ':' || !isPort(rest.slice(1)))) return null;
    text = text.slice(1, close);
    return isIP(text) === 6 && !text.includes('%') ? believedV6(text) : null;
  }
  const colon = text.indexOf(':');
  if (colon !== -1 && colon === text.lastIndexOf(':')) {
    // One colon: IPv4 with a port. (An IPv6 address has at least two.)
    if (!isPort(text.slice(colon + 1))) return null;
    text = text.slice(0, colon);
    return isIP(text) === 4 ? text : null;
  }
  // A zone id (`fe80::1%eth0`) names an interface of the sender's host, never a client.
  const family = isIP(text);
  if (family === 4) return text;
  return family === 0 || text.includes('%') ? null : believedV6(text);
}

/** An IPv6 hop normalised, or null when it is IPv4-compatible (see isIpv4Compatible). */
function believedV6(text: string): string | null {
  const address = normaliseIp(text);
  return isIP(address) === 6 && isIpv4Compatible(address) ? null : address;
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) <= 65535;
}

/**
 * The client address. Without trusted proxies, or when the peer is not one, it is the socket peer.
 * Otherwise X-Forwarded-For is walked from the right, skipping trusted hops; the first untrusted
 * address is the client. A hop that is not an address, reached while every hop to its right was
 * trusted, gives null: the request cannot be attributed, and is refused rather than attributed to
 * the proxy (which would make every client behind it share one address's limits and blocks).
 */
export function resolveClientIp(peer: string, xff: string | null, peerTrusted: boolean, trusted: IpSet): string | null {
  if (!peerTrusted || xff === null) return peer;
  const hops = xff.split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const text = hops[i] ?? '';
    // Empty list elements are allowed by the list syntax (RFC 9110 §5.6.1) and name no hop.
    if (text.trim() === '') continue;
    const hop = forwardedHopAddress(text);
    if (hop === null) return null;
    client = hop;
    if (!trusted.has(hop)) return hop;
  }
  return client;
}

/**
 * Copies upstream response headers for the client, dropping hop-by-hop ones, those named in
 * `Connection`, and every `Set-Cookie` for a gateway cookie (an upstream may not set or remove a
 * session or pre-login cookie: see setsGatewayCookie).
 */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  // Repeated Connection fields are one list (RFC 9110 §5.3): a header the second one names is as
  // hop-by-hop as one the first names.
  const connection = Array.isArray(headers.connection) ? headers.connection.join(',') : headers.connection;
  // `keep-alive` and `close` name no other header (the common case, without building a list).
  const listed = typeof connection === 'string' && connection !== 'keep-alive' && connection !== 'close'
    ? connection.toLowerCase().split(',').map((t) => t.trim()) : null;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || RESPONSE_HOP_BY_HOP.has(name) || listed?.includes(name) === true) continue;
    if (name === 'set-cookie') {
      const kept = typeof value === 'string' ? (setsGatewayCookie(value) ? [] : [value]) : value.filter((line) => !setsGatewayCookie(line));
      if (kept.length > 0) out[name] = kept;
      continue;
    }
    out[name] = value;
  }
  return out;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** An inbound request id is accepted only if short and printable (and only from a trusted proxy). */
export function isAcceptableRequestId(value: string): boolean {
  return REQUEST_ID.test(value);
}
