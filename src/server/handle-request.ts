import { randomUUID } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { CompiledConfig } from '../config/compile.js';
import { declaresLength } from '../http/body-framing.js';
import { isAcceptableRequestId, readInboundHeaders, resolveClientIp } from '../http/headers.js';
import { normaliseIp } from '../lib/ip.js';
import type { Generation } from '../lifecycle/resources.js';
import { DENIALS, deny, type Denial, type DenialCode } from '../pipeline/denials.js';
import { Exchange, isDenial, type ClientChannel, type DecisionTally, type LocalResponse, type Verdict } from '../pipeline/exchange.js';
import { problemBody } from '../pipeline/problem.js';
import { runStages, type RequestPath } from '../pipeline/request-path.js';
import type { Logger } from '../observability/logger.js';
import { enterConnection, isClosing, markClosing } from './connection-order.js';

/** The config a request runs against, its request path and the generation of resources it holds; swapped as one on reload. */
export interface Runtime {
  readonly config: CompiledConfig;
  readonly path: RequestPath;
  readonly generation: Generation;
}

/** What the handler needs from the gateway that owns it. */
export interface HandlerHost {
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly draining: boolean;
  /** Where the stages count their decisions (the gateway's metrics). */
  readonly metrics: DecisionTally;
  /** Registers the exchange as the one in progress on its connection. */
  track(exchange: Exchange): void;
  /** Called once per exchange when its response is over (finished, failed or aborted). */
  finish(exchange: Exchange, runtime: Runtime): void;
}

/** Denials after which the connection is not reused: the client's framing or intent is suspect. */
const CLOSES_CONNECTION: ReadonlySet<DenialCode> = new Set(['body_too_large', 'headers_too_large', 'bad_request', 'request_timeout', 'expectation_failed']);

/**
 * Entry of every request: the exchange is opened (openExchange), then the request path runs —
 * edge stages, the route's stages — as listed in pipeline/request-path.ts. A verdict is rendered in one
 * place (`reply`); nothing is forwarded after one.
 */
export async function handleRequest(host: HandlerHost, req: IncomingMessage, res: ServerResponse, stream: ClientChannel | null = null): Promise<void> {
  const runtime = host.runtime; // this request keeps the config it started with, whatever reloads happen
  const ex = openExchange(runtime.config, runtime.path, req, res, stream);
  ex.tally = host.metrics;
  const tracer = runtime.config.tracer;
  if (tracer !== null) ex.trace = tracer.begin(ex.inbound?.traceparent ?? null, ex.inbound?.tracestate ?? null);
  const requestId = ex.requestId;
  // The request holds its generation's resources (stores, pools) until its record is written.
  runtime.generation.enter();
  const finish = (): void => { host.finish(ex, runtime); runtime.generation.leave(); };
  const wire = ex.wire;
  const turn = enterConnection(ex, () => { if (wire.settle()) finish(); });
  if (host.draining) ex.closeAfter = true;
  try {
    if (turn !== undefined && !await turn) {
      // Pipelined behind a denial that closed the connection, or the client has gone meanwhile.
      ex.discarded = wire.socket !== null && isClosing(wire.socket);
      // Decided by the connection, before any stage: recorded as the listener's, like other discarded bytes.
      ex.stage = 'listener';
      ex.decision = 'abort';
      ex.detail = ex.discarded
        ? 'not processed: pipelined behind a denial that closed the connection, or past the pipelining limit'
        : 'not processed: the client closed the connection before this pipelined request was reached';
      res.destroy();
      return;
    }
    host.track(ex);
    let verdict = runStages(runtime.path.edge, ex);
    if (verdict instanceof Promise) verdict = await verdict;
    if (verdict === undefined) {
      verdict = runStages((ex.route as NonNullable<Exchange['route']>).stages, ex);
      if (verdict instanceof Promise) verdict = await verdict;
    }
    // A connection-level rejection may have decided meanwhile; a client that went away while a
    // stage waited on it (`abandoned`) is not answered.
    if (verdict !== undefined && ex.denial === null && !ex.abandoned) reply(ex, verdict);
  } catch (err) {
    host.logger.error({ err, requestId, ...(ex.trace === null ? {} : { traceId: ex.trace.traceId }), stage: ex.stage }, 'request handling failed');
    if (!res.headersSent) reply(ex, deny('internal_error', `unexpected error: ${(err as Error).message}`));
    else { ex.decision = 'error'; ex.detail = 'unexpected error mid-response'; res.destroy(); }
  } finally {
    boundUnflushed(ex, ex.route?.writeIdleTimeoutMs ?? runtime.config.limits.writeIdleTimeoutMs);
    if (wire.settle()) finish();
  }
}

/**
 * An HTTP/2 response ended by the gateway (relayed or its own answer) waits in the stream until
 * the client's flow-control window lets it out: a client that never opens its window would hold
 * the stream, its session and the exchange's audit record for ever. What it has not taken within
 * the write idle timeout is cancelled (RST_STREAM CANCEL) and recorded as an abort, as a client
 * that stops reading an HTTP/1.1 response loses its connection.
 */
function boundUnflushed(ex: Exchange, writeIdleMs: number): void {
  const { wire } = ex;
  const res = wire.res;
  // HTTP/1.x: the socket's own write idle handling applies; a response still being written is the relay's.
  if (wire.socket !== null || wire.responseClosed || !res.writableEnded || res.writableFinished) return;
  const timer = setTimeout(() => {
    if (wire.responseClosed || res.writableFinished) return;
    ex.decision = 'abort';
    ex.detail = `client did not take the response for ${writeIdleMs} ms (HTTP/2 flow-control window closed); stream cancelled${ex.detail === '' ? '' : ` — ${ex.detail}`}`.slice(0, 300);
    res.destroy();
  }, writeIdleMs);
  res.once('close', () => clearTimeout(timer));
}

/**
 * The start of every exchange, before any stage: the header pass (identity and proxy-asserted
 * headers a client sent are gone before any stage runs), the request id (a trusted proxy's, or a
 * new one) and the client address.
 */
export function openExchange(config: CompiledConfig, path: RequestPath, req: IncomingMessage, res: ServerResponse, stream: ClientChannel | null = null): Exchange {
  const peer = normaliseIp(req.socket.remoteAddress ?? '');
  const peerTrusted = config.trustedProxies.has(peer);
  const inbound = readInboundHeaders(req.rawHeaders, req.headers.connection, peerTrusted, config.headerPolicy);
  const requestId = peerTrusted && inbound.requestId !== null && isAcceptableRequestId(inbound.requestId) ? inbound.requestId : randomUUID();
  const clientIp = resolveClientIp(peer, inbound.xForwardedFor, peerTrusted, config.trustedProxies);
  const ex = new Exchange(req, res, path.response, requestId, peer, clientIp ?? peer, peerTrusted, stream);
  ex.inbound = inbound;
  ex.clientIpResolved = clientIp !== null;
  ex.wire.tls = tlsConnection(req, stream);
  ex.secure = ex.wire.tls !== null || (peerTrusted && inbound.xForwardedProto?.trim().toLowerCase() === 'https');
  return ex;
}

/** The TLS connection a request arrived on: its own socket, or its HTTP/2 stream's session's; null when plain. */
function tlsConnection(req: IncomingMessage, stream: ClientChannel | null): TLSSocket | null {
  const connection: unknown = stream === null ? req.socket : stream.connection;
  return connection instanceof TLSSocket ? connection : null;
}

/** Renders a verdict (the one place that does), marking the exchange for the audit record. */
export function reply(ex: Exchange, verdict: Verdict): void {
  if (!isDenial(verdict)) { respond(ex, verdict); return; }
  const denial: Denial = verdict;
  ex.denial = denial;
  ex.decision = DENIALS[denial.code].status >= 500 ? 'error' : 'deny';
  ex.detail = denial.reason;
  const res = ex.wire.res;
  if (res.headersSent) { res.destroy(); return; }
  if (CLOSES_CONNECTION.has(denial.code)) ex.closeAfter = true;
  closeIfUnread(ex);
  const body = problemBody(denial, ex.requestId);
  const out: OutgoingHttpHeaders = { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) };
  ex.finishHeaders(out, true);
  if (denial.headers !== undefined) Object.assign(out, denial.headers);
  res.writeHead(DENIALS[denial.code].status, out);
  res.end(body);
}

/**
 * A body the gateway did not read would have to be drained before the connection could carry
 * another request: the connection closes after this answer instead (and nothing pipelined behind
 * it is processed).
 */
function closeIfUnread(ex: Exchange): void {
  const socket = ex.wire.socket;
  // An HTTP/2 stream's unread body ends with the stream; the connection carries other streams on.
  if (socket === null) return;
  const headers = ex.req.headers;
  if (!ex.req.complete && (headers['transfer-encoding'] !== undefined || declaresLength(headers['content-length']))) ex.closeAfter = true;
  if (ex.closeAfter) markClosing(socket);
}

/** A stage's own response (a redirect, a page): sent as the stage built it, with the response stages' headers. */
function respond(ex: Exchange, response: LocalResponse): void {
  ex.response = response;
  ex.detail = response.detail;
  if (response.decision !== undefined) ex.decision = response.decision;
  const res = ex.wire.res;
  if (res.headersSent) { res.destroy(); return; }
  closeIfUnread(ex);
  // RFC 9110 §8.6: no Content-Length on a 204 (a preflight's answer) or 304.
  const out: OutgoingHttpHeaders = response.status === 204 || response.status === 304 ? {} : { 'content-length': Buffer.byteLength(response.body) };
  ex.finishHeaders(out, true);
  Object.assign(out, response.headers);
  res.writeHead(response.status, out);
  res.end(response.body);
}
