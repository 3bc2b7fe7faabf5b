import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { CompiledRoute } from '../config/compile.js';
import { responseHeaders } from '../http/headers.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import { limitHeaders } from '../ratelimit/headers.js';
import type { Upstream } from './upstream.js';

class BodyLimitError extends Error {
  constructor(readonly limit: number) { super(`request body exceeds ${limit} bytes`); }
}

/** The reason given to undici when the client goes away: the exchange is abandoned, not failed. */
class ClientGoneError extends Error {
  constructor() { super('client closed the connection'); }
}

/** The path sent upstream: the canonical path, with the route's prefix rewrite applied. */
export function upstreamPath(path: string, route: CompiledRoute): string {
  let out = path;
  if (route.stripPrefix !== null && (out === route.stripPrefix || out.startsWith(route.stripPrefix + '/'))) {
    out = out.slice(route.stripPrefix.length);
    if (out === '') out = '/';
  }
  if (route.addPrefix !== null) out = out === '/' ? route.addPrefix + '/' : route.addPrefix + out;
  return out;
}

/** Streams a body of undeclared length, counting bytes and failing past the limit (413). */
async function* counted(req: IncomingMessage, ex: Exchange, limit: number): AsyncGenerator<Buffer> {
  for await (const chunk of req as AsyncIterable<Buffer>) {
    ex.bytesIn += chunk.length;
    if (ex.bytesIn > limit) throw new BodyLimitError(limit);
    yield chunk;
  }
}

/**
 * Relays one upstream response to the client as undici delivers it: status and filtered headers,
 * then the body with backpressure (undici pauses while the client socket is full). Settles once,
 * with null on a complete response or the precise error that ended it.
 */
class RelayHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  /**
   * Body bytes still due by the upstream's Content-Length, or -1. The chunk that completes it is
   * sent with `res.end(chunk)`, so a one-chunk response leaves with its headers in one socket
   * write; nothing is ever held back, so streamed responses flow as they arrive.
   */
  private remaining = -1;
  private readonly resume = (): void => this.controller?.resume();
  // The response closed before the upstream exchange settled: the client left, or the gateway
  // answered at the connection level. Either way the upstream request has no one to serve.
  private readonly onClientClose = (): void => {
    if (!this.settled) this.controller?.abort(new ClientGoneError());
  };

  constructor(private readonly ex: Exchange, private readonly done: (error: Error | null) => void) {
    ex.res.once('close', this.onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ex.res.destroyed) controller.abort(new ClientGoneError());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational responses are the upstream's business
    const ex = this.ex;
    ex.upstreamStatus = statusCode;
    ex.upstreamLatencyMs = performance.now() - ex.forwardedAt;
    const length = headers['content-length'];
    this.remaining = typeof length === 'string' ? Number(length) : -1;
    const out = responseHeaders(headers);
    out[ex.config.requestIdHeader] = ex.requestId;
    if (ex.limits !== null) for (const [name, value] of limitHeaders(ex.limits, ex.config.rateLimiting.headers)) out[name] = value;
    ex.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (chunk.length === this.remaining) {
      this.remaining = 0;
      this.ex.res.end(chunk);
      return;
    }
    if (this.remaining > 0) this.remaining -= chunk.length;
    if (!this.ex.res.write(chunk)) {
      controller.pause();
      this.ex.res.once('drain', this.resume);
    }
  }

  onResponseEnd(): void {
    if (!this.ex.res.writableEnded) this.ex.res.end();
    this.settle(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.settle(error);
  }

  private settle(error: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    this.ex.res.off('close', this.onClientClose);
    this.ex.res.off('drain', this.resume);
    this.done(error);
  }
}

/**
 * Sends the exchange to its upstream and streams the response back. Returns a Denial when the
 * gateway must answer itself (nothing relayed yet), or undefined when the upstream's response was
 * relayed or the exchange can only be abandoned. Upstream failures map to precise codes:
 * unreachable 502, timed out 504; failures after the response started cut the response short.
 */
export function forward(ex: Exchange, upstream: Upstream): Promise<Denial | undefined> {
  const { req, res } = ex;
  const route = ex.route as CompiledRoute;
  const target = ex.target;
  if (target === null) return Promise.resolve(deny('internal_error', 'forward without a parsed target'));
  const length = req.headers['content-length'];
  let body: Dispatcher.DispatchOptions['body'] = null;
  if (req.headers['transfer-encoding'] !== undefined) body = Readable.from(counted(req, ex, route.maxBodyBytes), { objectMode: false });
  else if (length !== undefined && length !== '0') { body = req; ex.bytesIn = Number(length); }
  if (body !== null && req.headers.expect !== undefined) res.writeContinue();
  ex.forwardedAt = performance.now();
  return new Promise((resolve) => {
    const handler = new RelayHandler(ex, (error) => resolve(error === null ? undefined : failure(ex, error)));
    upstream.pick().dispatch({
      path: upstreamPath(target.path, route) + (ex.forwardQuery ?? target.query),
      method: req.method as Dispatcher.HttpMethod,
      headers: ex.forwardHeaders,
      body,
    }, handler);
  });
}

function failure(ex: Exchange, error: Error & { code?: string; cause?: unknown }): Denial | undefined {
  if (ex.denial !== null) return undefined; // already decided at the connection level
  if (error instanceof BodyLimitError || error.cause instanceof BodyLimitError) {
    return deny('body_too_large', `streamed body exceeded ${ex.route?.maxBodyBytes ?? 0} bytes`);
  }
  const code = error.code ?? '';
  const detail = `${code} ${error.message}`.trim();
  // A request body that broke off means the client went away mid-upload.
  if (error instanceof ClientGoneError || (ex.req.destroyed && !ex.req.complete && !ex.res.headersSent)) {
    ex.decision = 'abort';
    ex.reason = error instanceof ClientGoneError ? error.message : `client request body ended early: ${detail}`;
    return undefined;
  }
  if (ex.res.headersSent) {
    // The status line is gone; all that is left is to cut the response short.
    ex.decision = 'error';
    ex.reason = code === 'UND_ERR_BODY_TIMEOUT' ? `upstream body timeout: ${detail}` : `upstream failed mid-response: ${detail}`;
    ex.res.destroy();
    return undefined;
  }
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
      return deny('upstream_timeout', detail);
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return deny('bad_request', detail);
    case 'ECONNREFUSED': case 'ENOTFOUND': case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EAI_AGAIN':
      return deny('upstream_unreachable', detail);
    default:
      return deny('upstream_error', detail);
  }
}
