import { hasParam, withoutParams } from '../http/query.js';
import type { Exchange, Route, UpstreamRequest } from '../pipeline/exchange.js';

/** What the assembly needs from the config. */
export interface UpstreamRequestSettings {
  readonly requestIdHeader: string;
  /** Query parameters that carry credentials: removed on every route. */
  readonly credentialQueryParams: ReadonlySet<string>;
  /** The credential parameters and `_method`: removed on routes without allowMethodOverride. */
  readonly removedQueryParams: ReadonlySet<string>;
}


/**
 * The one place the upstream request is assembled, from the exchange's facts: the client's
 * surviving headers (the header pass removed what a client may not assert), minus the credential
 * headers the identity stage dropped, plus what the gateway asserts — forwarding facts, the host
 * the request was routed on, an allowed method override, the request id, the trace context and
 * the identity — and the canonical path with the route's rewrite and without credential query parameters. Assembled
 * once per exchange (it takes over the header pass's list).
 */
export function upstreamRequest(ex: Exchange, settings: UpstreamRequestSettings): UpstreamRequest {
  if (ex.sent !== null) return ex.sent;
  const inbound = ex.inbound as NonNullable<Exchange['inbound']>;
  const route = ex.route as Route;
  const target = ex.target as NonNullable<Exchange['target']>;
  const asserted = ex.asserted;
  let headers = inbound.forward;
  const token = ex.upstreamToken;
  if ((asserted !== null && asserted.strip.size > 0) || token !== null) {
    // With the gateway's own token, every client Authorization goes, in any case, whatever the route says.
    const strip = asserted?.strip;
    const kept: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      const lower = name.toLowerCase();
      if (strip?.has(lower) !== true && (token === null || lower !== 'authorization')) kept.push(name, headers[i + 1] as string);
    }
    headers = kept;
  }
  if (token !== null) headers.push('authorization', `Bearer ${token}`);
  const xff = ex.peerTrusted && inbound.xForwardedFor !== null ? `${inbound.xForwardedFor}, ${ex.peer}` : ex.peer;
  const sentProto = inbound.xForwardedProto?.trim().toLowerCase();
  // The scheme the client used to reach this gateway, unless a trusted proxy in front says which it used.
  const own = ex.wire.tls !== null ? 'https' : 'http';
  const proto = ex.peerTrusted && (sentProto === 'http' || sentProto === 'https') ? sentProto : own;
  // The host the request was routed on: a proxy's X-Forwarded-Host (often the client's own, passed
  // through) would let the upstream build URLs for another host than the one policy was chosen for.
  const routedHost = inbound.host ?? '';
  headers.push('x-forwarded-for', xff, 'x-forwarded-proto', proto, 'x-forwarded-host', routedHost);
  if (route.upstream?.preserveHost === true) headers.push('host', routedHost);
  const override = inbound.methodOverride;
  if (override !== null && route.allowMethodOverride) headers.push(override.name, override.value.trim());
  headers.push(settings.requestIdHeader, ex.requestId);
  const trace = ex.trace;
  if (trace !== null) {
    // This trace, with the forwarding span as the parent; a trusted proxy's valid tracestate passes on.
    headers.push('traceparent', trace.upstreamTraceparent());
    if (trace.tracestate !== null) headers.push('tracestate', trace.tracestate);
  } else if (inbound.traceparent !== null || inbound.tracestate !== null) {
    // Tracing off: a trusted proxy's trace context passes through as it was received (the header pass took no one else's).
    for (const value of inbound.traceparent ?? []) headers.push('traceparent', value);
    for (const value of inbound.tracestate ?? []) headers.push('tracestate', value);
  }
  if (asserted !== null) for (const value of asserted.headers) headers.push(value);

  // Credentials never travel on in the query; neither does a method override the route does not allow.
  const removed = route.allowMethodOverride ? settings.credentialQueryParams : settings.removedQueryParams;
  let query = ex.forwardQuery ?? target.query;
  if (target.query !== '' && hasParam(target.query, removed)) query = withoutParams(query, removed);
  ex.sent = { path: upstreamPath(target.path, route) + query, headers };
  return ex.sent;
}

/**
 * The upstream request with another gateway token in its Authorization (a retry after the upstream
 * refused the first one with 401); the exchange records it as what was sent.
 */
export function withUpstreamToken(ex: Exchange, sent: UpstreamRequest, token: string): UpstreamRequest {
  const headers = [...sent.headers];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'authorization') headers[i + 1] = `Bearer ${token}`;
  }
  ex.upstreamToken = token;
  ex.sent = { path: sent.path, headers };
  return ex.sent;
}

/** The path sent upstream: the canonical path, with the route's prefix rewrite applied. */
export function upstreamPath(path: string, route: Route): string {
  let out = path;
  if (route.stripPrefix !== null && (out === route.stripPrefix || out.startsWith(route.stripPrefix + '/'))) {
    out = out.slice(route.stripPrefix.length);
    if (out === '') out = '/';
  }
  if (route.addPrefix !== null) out = out === '/' ? route.addPrefix + '/' : route.addPrefix + out;
  return out;
}
