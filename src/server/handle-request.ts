import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledConfig, CompiledRoute } from '../config/compile.js';
import { isAcceptableRequestId, readInboundHeaders, resolveClientIp, type InboundHeaders } from '../http/headers.js';
import { parseTarget } from '../http/target.js';
import { normaliseIp } from '../lib/ip.js';
import { DENIALS, deny, type Denial, type DenialCode } from '../pipeline/denials.js';
import { Exchange } from '../pipeline/exchange.js';
import { sendProblem } from '../pipeline/problem.js';
import { enterConnection, isClosing, markClosing } from './connection-order.js';
import { forward } from '../proxy/forward.js';
import { limitHeaders } from '../ratelimit/headers.js';
import type { Generation } from '../lifecycle/resources.js';
import type { Logger } from '../observability/logger.js';

/** The config a request runs against and the generation of resources it holds; swapped as one on reload. */
export interface Runtime {
  readonly config: CompiledConfig;
  readonly generation: Generation;
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

// A reg-name (RFC 3986 §3.2.2) of letters, digits, `-`, `.` and `_` (Compose and Kubernetes
// service names), or an IP literal, with an optional port.
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

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
  const inbound = readInboundHeaders(req.rawHeaders, req.headers.connection, peerTrusted, config.headerPolicy);
  const requestId = peerTrusted && inbound.requestId !== null && isAcceptableRequestId(inbound.requestId) ? inbound.requestId : randomUUID();
  const clientIp = resolveClientIp(peer, inbound.xForwardedFor, peerTrusted, config.trustedProxies);
  const ex = new Exchange(req, res, config, requestId, peer, clientIp ?? peer, peerTrusted);
  // The request holds its generation's resources (stores, pools) until its record is written.
  runtime.generation.enter();
  const finish = (): void => { host.finish(ex); runtime.generation.leave(); };
  const turn = enterConnection(ex, () => { if (ex.settle()) finish(); });
  if (host.draining) res.setHeader('connection', 'close');
  try {
    if (turn !== undefined && !await turn) {
      // Pipelined behind a denial that closed the connection, or the client has gone meanwhile.
      ex.discarded = isClosing(ex.socket);
      ex.decision = 'abort';
      ex.reason = ex.discarded
        ? 'not processed: pipelined behind a denial that closed the connection, or past the pipelining limit'
        : 'not processed: the client closed the connection before this pipelined request was reached';
      res.destroy();
      return;
    }
    host.track(ex);
    const denial = clientIp === null
      ? deny('invalid_header', 'X-Forwarded-For from a trusted proxy has a hop that is not an address')
      : await runPipeline(host, ex, inbound);
    // A connection-level rejection (see Gateway.onClientError) may have decided meanwhile.
    if (denial !== undefined && ex.denial === null) reply(ex, denial);
  } catch (err) {
    host.logger.error({ err, requestId }, 'request handling failed');
    if (!res.headersSent) reply(ex, deny('internal_error', `unexpected error: ${(err as Error).message}`));
    else { ex.decision = 'error'; ex.reason = 'unexpected error mid-response'; res.destroy(); }
  } finally {
    if (ex.settle()) finish();
  }
}

async function runPipeline(host: HandlerHost, ex: Exchange, inbound: InboundHeaders): Promise<Denial | undefined> {
  const { req, config } = ex;
  if (!host.auditHealthy()) return deny('audit_unavailable', 'audit trail is not accepting records');

  const target = parseTarget(req.url ?? '', config.target);
  if ('code' in target) return target;
  ex.target = target;

  if (req.rawHeaders.length > config.limits.maxHeaderCount * 2) {
    return deny('headers_too_large', `${req.rawHeaders.length / 2} header fields, limit ${config.limits.maxHeaderCount}`);
  }
  if (inbound.hostCount !== 1 || inbound.host === null || !HOST.test(inbound.host) || inbound.host.includes('..')) {
    return deny('invalid_header', inbound.hostCount > 1 ? 'several Host headers' : 'missing or malformed Host header');
  }
  // RFC 9112 §6.1: a Transfer-Encoding in an HTTP/1.0 message is a framing fault (the sender and
  // an HTTP/1.0 hop disagree on where the body ends).
  if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) return deny('bad_request', 'Transfer-Encoding in an HTTP/1.0 request');
  const upgrade = req.headers.upgrade;
  if (upgrade !== undefined) {
    // Node's parser stops reading a connection after an upgrade offer: close it after this answer.
    ex.res.setHeader('connection', 'close');
    // An h2c offer may be ignored (RFC 9110 §7.8): answer over HTTP/1.1. Nothing is tunnelled.
    if (upgrade.trim().toLowerCase() !== 'h2c') return deny('upgrade_refused', `Upgrade: ${upgrade.slice(0, 40)}`);
  }
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue') return deny('expectation_failed', `Expect: ${expect.slice(0, 40)}`);
  if (inbound.ambiguous !== null) return deny('ambiguous_header', inbound.ambiguous);
  ex.host = hostName(inbound.host);

  const match = config.router.match(target.segments, req.method ?? '', ex.host);
  if (match.kind === 'not_found') return deny('route_not_found', 'no route matches the path'); // the record has the path once, in `path`
  if (match.kind === 'method_not_allowed') return deny('method_not_allowed', `${req.method ?? ''} not in ${match.allow.join(', ')}`, { allow: match.allow.join(', ') });
  const routed = match.route;
  ex.route = routed;
  ex.forwardHeaders = upstreamHeaders(ex, inbound);
  if (routed.allowMethodOverride) {
    const fromQuery = target.query === '' ? [] : paramValues(target.query, METHOD_OVERRIDE_PARAM);
    const first = inbound.methodOverride ?? (fromQuery[0] === undefined ? null : { name: `query ${METHOD_OVERRIDE_PARAM}`, value: fromQuery[0] });
    if (first !== null) {
      const override = methodOverride(routed, first, inbound.methodOverrides + fromQuery.length);
      if (override !== undefined) return override;
    }
  }

  for (const stage of routed.stages) {
    const result = stage.run(ex);
    const denial = result instanceof Promise ? await result : result;
    if (denial !== undefined) return denial;
  }

  // Credentials never travel on in the query; neither does a method override the route does not allow.
  const removed = routed.allowMethodOverride ? config.credentialQueryParams : config.removedQueryParams;
  if (target.query !== '' && hasParam(target.query, removed)) {
    ex.forwardQuery = withoutParams(ex.forwardQuery ?? target.query, removed);
  }
  const upstream = config.upstreamPools.get(routed.upstream.name);
  if (upstream === undefined) return deny('internal_error', `upstream ${routed.upstream.name} not active`);
  return forward(ex, upstream);
}

/**
 * A method override is forwarded only on a route that allows overrides, and only to a method the
 * route accepts; elsewhere it was already dropped with the other proxy-asserted headers.
 */
function methodOverride(route: CompiledRoute, override: { readonly name: string; readonly value: string }, count: number): Denial | undefined {
  if (count > 1) return deny('ambiguous_header', `${count} method-override headers`);
  const method = override.value.trim();
  const allowed = route.methods;
  if (allowed === null || !allowed.has(method)) {
    const allow = allowed === null ? '' : [...allowed].sort().join(', ');
    return deny('method_not_allowed', `${override.name}: ${method.slice(0, 20)} not in ${allow}`, { allow });
  }
  return undefined;
}

/** The query parameter frameworks read as a method override (Laravel, Symfony, Express method-override). */
const METHOD_OVERRIDE_PARAM = '_method';

/**
 * Whether a query holds one of the named parameters, by its name as the most lenient server
 * reads it (see paramName); `&` and `;` both separate (some servers split on either).
 */
function hasParam(query: string, names: ReadonlySet<string>): boolean {
  for (const part of query.slice(1).split(/[&;]/)) if (names.has(paramName(part))) return true;
  return false;
}

/** The decoded values of every parameter of a query read as `name`. */
function paramValues(query: string, name: string): string[] {
  const values: string[] = [];
  for (const part of query.slice(1).split(/[&;]/)) {
    if (paramName(part) !== name) continue;
    const eq = part.indexOf('=');
    const raw = eq === -1 ? '' : part.slice(eq + 1).replace(/\+/g, ' ');
    try { values.push(decodeURIComponent(raw)); } catch { values.push(raw); }
  }
  return values;
}

/** The query without any `&`-separated part that holds one of the named parameters. */
export function withoutParams(query: string, names: ReadonlySet<string>): string {
  if (query.length < 2) return '';
  const kept = query.slice(1).split('&').filter((part) => !part.split(';').some((p) => names.has(paramName(p))));
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
}

/**
 * A parameter's name as the most lenient server reads it: decoded, lower case, cut at a NUL, an
 * array suffix dropped (`a[]`, `a[x]` are `a` to PHP and Rack), and — as PHP does — `.`, space and
 * an unmatched `[` read as `_`.
 */
function paramName(part: string): string {
  const eq = part.indexOf('=');
  const raw = (eq === -1 ? part : part.slice(0, eq)).replace(/\+/g, ' ');
  let name: string;
  try { name = decodeURIComponent(raw); } catch { name = raw; }
  const nul = name.indexOf('\0');
  if (nul !== -1) name = name.slice(0, nul);
  const bracket = name.indexOf('[');
  if (bracket > 0 && name.indexOf(']', bracket) !== -1) name = name.slice(0, bracket);
  return name.trim().toLowerCase().replace(/[. []/g, '_');
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
  // The host the request was routed on: a proxy's X-Forwarded-Host (often the client's own, passed
  // through) would let the upstream build URLs for another host than the one policy was chosen for.
  const forwardedHost = inbound.host ?? '';
  headers.push('x-forwarded-for', xff, 'x-forwarded-proto', proto, 'x-forwarded-host', forwardedHost);
  if (ex.route?.upstream.preserveHost === true) headers.push('host', inbound.host ?? '');
  const override = inbound.methodOverride;
  if (override !== null && ex.route?.allowMethodOverride === true) headers.push(override.name, override.value.trim());
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
  const close = unreadBody || CLOSES_CONNECTION.has(denial.code) || ex.res.getHeader('connection') === 'close';
  if (close) markClosing(ex.socket);
  sendProblem(ex.res, denial, ex.requestId, ex.config.requestIdHeader, close, limits);
}
