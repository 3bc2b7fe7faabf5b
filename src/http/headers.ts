import { isIP } from 'node:net';
import type { IpSet } from '../lib/ip.js';
import { normaliseIp } from '../lib/ip.js';

/**
 * Identity headers the gateway asserts to upstreams (DESIGN.md invariant 3). They are removed from
 * every inbound request, in any case and with `_` for `-`, before any stage runs.
 */
export const IDENTITY_HEADERS: readonly string[] = [
  'x-user-id', 'x-tenant-id', 'x-roles', 'x-scopes', 'x-auth-method', 'x-client-cert-subject', 'x-request-id',
];
/** Whole families the gateway owns: any inbound header starting with one of these is removed. */
const IDENTITY_PREFIXES: readonly string[] = ['x-client-cert-', 'x-portcullis-'];

/** Hop-by-hop fields (RFC 9110 §7.6.1) plus fields the gateway sets itself towards the upstream. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'http2-settings', 'expect',
]);

/** Response fields never relayed from an upstream to the client. */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate',
]);

/** Lower case, `_` read as `-`: the spelling an upstream framework may fold headers into. */
export function normaliseHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') ? lower.replace(/_/g, '-') : lower;
}

function isProtected(normalised: string, protectedNames: ReadonlySet<string>): boolean {
  if (protectedNames.has(normalised)) return true;
  for (const prefix of IDENTITY_PREFIXES) if (normalised.startsWith(prefix)) return true;
  return false;
}

/** The inbound facts the gateway needs, read in the same single pass that builds upstream headers. */
export interface InboundHeaders {
  /** Flat `[name, value, …]` list for the upstream: hop-by-hop, identity and forwarding headers removed. */
  readonly forward: string[];
  readonly host: string | null;
  readonly hostCount: number;
  readonly xForwardedFor: string | null;
  readonly xForwardedProto: string | null;
  readonly xForwardedHost: string | null;
  /** The client's X-Request-Id (or configured name); used only when the peer is a trusted proxy. */
  readonly requestId: string | null;
  /** Names of identity headers the client tried to send, for the audit record. */
  readonly spoofed: readonly string[];
}

/**
 * One pass over `rawHeaders`. Drops hop-by-hop fields and those named in `Connection` (RFC 9110
 * §7.6.1), every protected identity header (so none can be spoofed), and the forwarding headers
 * the gateway recomputes. `Forwarded` and `X-Real-IP` pass only from trusted proxies.
 */
export function readInboundHeaders(
  raw: readonly string[], connection: string | undefined, peerTrusted: boolean,
  protectedNames: ReadonlySet<string>, requestIdHeader: string,
): InboundHeaders {
  const forward: string[] = [];
  const spoofed: string[] = [];
  let connectionTokens: Set<string> | null = null;
  // `keep-alive` and `close` name no other header: skip building a set for the common case.
  if (connection !== undefined && connection !== '' && connection !== 'keep-alive' && connection !== 'close') {
    connectionTokens = new Set(connection.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
  }
  let host: string | null = null;
  let hostCount = 0;
  let xff: string | null = null;
  let xfp: string | null = null;
  let xfh: string | null = null;
  let requestId: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    const underscored = lower.includes('_');
    // CGI, WSGI, Rack and PHP read `X_Forwarded_For` as `X-Forwarded-For`: match both spellings,
    // and believe only the dash spelling, and only from a trusted proxy.
    const normalised = underscored ? lower.replace(/_/g, '-') : lower;
    switch (normalised) {
      case 'host': if (!underscored) { hostCount++; host ??= value; } continue;
      case 'x-forwarded-for': if (!underscored) xff = xff === null ? value : `${xff}, ${value}`; continue;
      case 'x-forwarded-proto': if (!underscored) xfp ??= value; continue;
      case 'x-forwarded-host': if (!underscored) xfh ??= value; continue;
      case 'forwarded': case 'x-real-ip': if (peerTrusted && !underscored) forward.push(name, value); continue;
      default: break;
    }
    if (HOP_BY_HOP.has(normalised) || connectionTokens?.has(lower) === true) continue;
    if (isProtected(normalised, protectedNames)) {
      if (lower === requestIdHeader) requestId ??= value;
      else spoofed.push(lower);
      continue;
    }
    forward.push(name, value);
  }
  return { forward, host, hostCount, xForwardedFor: xff, xForwardedProto: xfp, xForwardedHost: xfh, requestId, spoofed };
}

/**
 * The client address. Without trusted proxies, or when the peer is not one, it is the socket peer.
 * Otherwise X-Forwarded-For is walked from the right, skipping trusted hops; the first untrusted
 * address is the client. A malformed entry ends the walk at the last trusted hop, so a client
 * cannot inject garbage to hide behind.
 */
export function resolveClientIp(peer: string, xff: string | null, peerTrusted: boolean, trusted: IpSet): string {
  if (!peerTrusted || xff === null) return peer;
  const hops = xff.split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normaliseIp((hops[i] ?? '').trim());
    if (isIP(hop) === 0) return client;
    client = hop;
    if (!trusted.has(hop)) return hop;
  }
  return client;
}

/** Copies upstream response headers for the client, dropping hop-by-hop ones and those named in `Connection`. */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  const listed = typeof connection === 'string' ? connection.toLowerCase().split(',').map((t) => t.trim()) : null;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || RESPONSE_HOP_BY_HOP.has(name) || listed?.includes(name) === true) continue;
    out[name] = value;
  }
  return out;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** An inbound request id is accepted only if short and printable (and only from a trusted proxy). */
export function isAcceptableRequestId(value: string): boolean {
  return REQUEST_ID.test(value);
}
