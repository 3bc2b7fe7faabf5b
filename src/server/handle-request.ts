import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledConfig } from '../config/compile.js';
import { isAcceptableRequestId, readInboundHeaders, resolveClientIp, type InboundHeaders } from '../http/headers.js';
import { parseTarget } from '../http/target.js';
import { normaliseIp } from '../lib/ip.js';
import { DENIALS, deny, type Denial, type DenialCode } from '../pipeline/denials.js';
import { Exchange } from '../pipeline/exchange.js';
import { sendProblem } from '../pipeline/problem.js';
import { forward } from '../proxy/forward.js';
import { limitHeaders } from '../ratelimit/headers.js';
import type { Upstream } from '../proxy/upstream.js';
import type { Logger } from '../observability/logger.js';

/** The config and the upstream pools a request runs against; swapped as one on reload. */
export interface Runtime {
  readonly config: CompiledConfig;
  readonly upstreams: ReadonlyMap<string, Upstream>;
}

/** What the handler needs from the gateway that owns it. */
export interface HandlerHost {
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly draining: boolean;
  auditHealthy(): boolean;
  /** Registers the exchange as the one in progress on its connection. */
  track(exchange: Exchange): void;
  /** Called once per exchange when its response is over (finished, failed or aborted). */
  finish(exchange: Exchange): void;
}

/** Denials after which the connection is not reused: the client's framing or intent is suspect. */
const CLOSES_CONNECTION: ReadonlySet<DenialCode> = new Set(['body_too_large', 'headers_too_large', 'bad_request', 'request_timeout', 'expectation_failed']);

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/**
 * The request path, in order. Everything before routing applies to every request; everything
 * after it is the matched route's precomputed stage list, then the proxy. Any stage may end the
 * request with a Denial, rendered in one place; nothing is forwarded after a denial.
 */
export async function handleRequest(host: HandlerHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const runtime = host.runtime; // this request keeps the config it started with, whatever reloads happen
  const config = runtime.config;
  const peer = normaliseIp(req.socket.remoteAddress ?? '');
  const peerTrusted = config.trustedProxies.has(peer);
  // Header hygiene happens first: identity headers the client sent are gone before any stage runs.
  const inbound = readInboundHeaders(req.rawHeaders, req.headers.connection, peerTrusted, config.protectedHeaders, config.requestIdHeader);
  const requestId = peerTrusted && inbound.requestId !== null && isAcceptableRequestId(inbound.requestId) ? inbound.requestId : randomUUID();
  const ex = new Exchange(req, res, config, requestId, peer, resolveClientIp(peer, inbound.xForwardedFor, peerTrusted, config.trustedProxies), peerTrusted);
  host.track(ex);
  res.once('close', () => { if (ex.settle()) host.finish(ex); });
  if (host.draining) res.setHeader('connection', 'close');
  try {
    const denial = await runPipeline(host, ex, inbound, runtime);
    // A connection-level rejection (see Gateway.onClientError) may have decided meanwhile.
    if (denial !== undefined && ex.denial === null) reply(ex, denial);
  } catch (err) {
    host.logger.error({ err, requestId }, 'request handling failed');
    if (!res.headersSent) reply(ex, deny('internal_error', `unexpected error: ${(err as Error).message}`));
    else { ex.decision = 'error'; ex.reason = 'unexpected error mid-response'; res.destroy(); }
  } finally {
    if (ex.settle()) host.finish(ex);
  }
}

async function runPipeline(host: HandlerHost, ex: Exchange, inbound: InboundHeaders, runtime: Runtime): Promise<Denial | undefined> {
  const { req, config } = ex;
  if (!host.auditHealthy()) return deny('audit_unavailable', 'audit trail is not accepting records');

  const target = parseTarget(req.url ?? '', config.target);
  if ('code' in target) return target;
  ex.target = target;

  if (req.rawHeaders.length > config.limits.maxHeaderCount * 2) {
    return deny('headers_too_large', `${req.rawHeaders.length / 2} header fields, limit ${config.limits.maxHeaderCount}`);
  }
  if (inbound.hostCount !== 1 || inbound.host === null || !HOST.test(inbound.host)) {
    return deny('invalid_header', inbound.hostCount > 1 ? 'several Host headers' : 'missing or malformed Host header');
  }
  if (req.headers.upgrade !== undefined) return deny('upgrade_refused', `Upgrade: ${req.headers.upgrade.slice(0, 40)}`);
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue') return deny('expectation_failed', `Expect: ${expect.slice(0, 40)}`);
  ex.host = hostName(inbound.host);

  const match = config.router.match(target.segments, req.method ?? '', ex.host);
  if (match.kind === 'not_found') return deny('route_not_found', 'no route matches the path'); // the record has the path once, in `path`
  if (match.kind === 'method_not_allowed') return deny('method_not_allowed', `${req.method ?? ''} not in ${match.allow.join(', ')}`, { allow: match.allow.join(', ') });
  const routed = match.route;
  ex.route = routed;
  ex.forwardHeaders = upstreamHeaders(ex, inbound);

  for (const stage of routed.stages) {
    const result = stage.run(ex);
    const denial = result instanceof Promise ? await result : result;
    if (denial !== undefined) return denial;
  }

  const upstream = runtime.upstreams.get(routed.upstream.name);
  if (upstream === undefined) return deny('internal_error', `upstream ${routed.upstream.name} not active`);
  return forward(ex, upstream);
}

/** Lower case, port removed, one trailing dot removed: `API.example.com.:443` → `api.example.com`. */
function hostName(host: string): string {
  let name = host;
  if (name.startsWith('[')) name = name.slice(0, name.indexOf(']') + 1);
  else { const colon = name.indexOf(':'); if (colon !== -1) name = name.slice(0, colon); }
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.toLowerCase();
}

/** The client's surviving headers plus what the gateway asserts: forwarding facts and the request id. */
function upstreamHeaders(ex: Exchange, inbound: InboundHeaders): string[] {
  const headers = inbound.forward;
  const xff = ex.peerTrusted && inbound.xForwardedFor !== null ? `${inbound.xForwardedFor}, ${ex.peer}` : ex.peer;
  const sentProto = inbound.xForwardedProto?.trim().toLowerCase();
  const proto = ex.peerTrusted && (sentProto === 'http' || sentProto === 'https') ? sentProto : 'http';
  const forwardedHost = ex.peerTrusted && inbound.xForwardedHost !== null ? inbound.xForwardedHost : inbound.host ?? '';
  headers.push('x-forwarded-for', xff, 'x-forwarded-proto', proto, 'x-forwarded-host', forwardedHost);
  if (ex.route?.upstream.preserveHost === true) headers.push('host', inbound.host ?? '');
  headers.push(ex.config.requestIdHeader, ex.requestId);
  return headers;
}

/** Renders a denial (the one place that does), marking the exchange for the audit record. */
export function reply(ex: Exchange, denial: Denial): void {
  ex.denial = denial;
  ex.decision = DENIALS[denial.code].status >= 500 ? 'error' : 'deny';
  ex.reason = denial.reason;
  if (ex.res.headersSent) { ex.res.destroy(); return; }
  const headers = ex.req.headers;
  // A body we did not read would have to be drained before the connection can be reused: close instead.
  const unreadBody = !ex.req.complete && (headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0');
  const limits = ex.limits === null ? undefined : limitHeaders(ex.limits, ex.config.rateLimiting.headers);
  sendProblem(ex.res, denial, ex.requestId, ex.config.requestIdHeader, unreadBody || CLOSES_CONNECTION.has(denial.code), limits);
}
