import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { declaresLength, hasUndeclaredBody } from '../http/body-framing.js';
import { responseHeaders } from '../http/headers.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Route, Stage } from '../pipeline/exchange.js';
import { BodyIdleWatch } from './body-idle-watch.js';
import type { Upstream } from './upstream.js';
import { classifyUpstreamFailure, errorCode } from './upstream-failures.js';
import { upstreamRequest, withUpstreamToken, type UpstreamRequestSettings } from './upstream-request.js';
import type { UpstreamTokenSource } from './upstream-token.js';

class BodyLimitError extends Error {
  constructor(readonly limit: number) { super(`request body exceeds ${limit} bytes`); }
}

/** The reason given to undici when the client goes away: the exchange is abandoned, not failed. */
class ClientGoneError extends Error {
  constructor() { super('client closed the connection'); }
}

/** The client stopped sending its request body, or sent it below the minimum rate (see BodyIdleWatch). */
class BodyIdleError extends Error {
  constructor(watch: BodyIdleWatch, bytes: number) {
    super(watch.minBytes > 1
      ? `client sent less than ${watch.minBytes} request body bytes in ${watch.idleMs} ms (after ${bytes} bytes)`
      : `client sent no request body bytes for ${watch.idleMs} ms (after ${bytes} bytes)`);
  }
}

/** The upstream's response headers cannot be sent to this client (HTTP/2 allows some fields once only). */
class ResponseHeadersError extends Error {
  constructor(cause: Error) { super(`upstream response headers cannot be relayed: ${cause.message}`); }
}

/** The client stopped reading its response: its connection stayed full for the write idle timeout. */
class ReadStallError extends Error {
  constructor(idleMs: number) { super(`client did not read the response for ${idleMs} ms`); }
}

/**
 * The upstream answered 401 to the gateway's own token on a request that can be sent again: its
 * response is dropped (never relayed) and the request is dispatched once more with a renewed token.
 */
class RetryWithFreshToken extends Error {
  constructor() { super('upstream refused the gateway token (401)'); }
}

/** Most bytes of a refused (401) response body read and dropped before its connection is closed instead. */
const MAX_DISCARDED_BYTES = 64 * 1024;

const ignore = (): void => undefined;

/** Exchanges answered 100 Continue: once per request (RFC 9110 §15.2.1), whichever reader asks for the body first. */
const continued = new WeakSet<Exchange>();

/** Answers `Expect: 100-continue` (the expect stage refused every other expectation) before a body is read. */
function continueOnce(ex: Exchange): void {
  if (ex.req.headers.expect === undefined || continued.has(ex)) return;
  continued.add(ex);
  ex.wire.res.writeContinue();
}

/**
 * Streams the request body, counting bytes and failing past `limit` (413) when the length was not
 * declared. The request stream is not destroyed when the upstream side stops early, so the gateway
 * can still answer on the connection (413, 408, 502) instead of resetting it.
 */
async function* counted(req: IncomingMessage, ex: Exchange, limit: number): AsyncGenerator<Buffer> {
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    ex.bytesIn += chunk.length;
    if (ex.bytesIn > limit) throw new BodyLimitError(limit);
    yield chunk;
  }
}

/**
 * Relays one upstream response to the client as undici delivers it: status and filtered headers,
 * then the body with backpressure (undici pauses while the client socket is full). Settles once,
 * with null on a complete response or the precise error that ended it.
 *
 * A client that leaves its connection full for `writeIdleMs` (it stopped reading) loses it, and the
 * upstream request is aborted, so a reader that never reads cannot hold an upstream connection.
 */
class RelayHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  /** An abort requested before undici started the request; applied in onRequestStart. */
  private pendingAbort: Error | null = null;
  /**
   * Body bytes still due by the upstream's Content-Length, or -1. The chunk that completes it is
   * sent with `res.end(chunk)`, so a one-chunk response leaves with its headers in one socket
   * write; nothing is ever held back, so streamed responses flow as they arrive.
   */
  private remaining = -1;
  /** Waiting for the client socket to drain (or, after the last chunk, to flush). */
  private stalled = false;
  /** Created on the first stall only: responses that never fill the socket cost no timer. */
  private writeTimer: NodeJS.Timeout | null = null;
  /** Bytes of a refused response being dropped before a retry; -1: relaying (the common case). */
  private discarded = -1;
  private readonly resume = (): void => {
    this.stalled = false;
    this.controller?.resume();
  };
  private onWriteIdle(): void {
    if (!this.stalled) return;
    const error = new ReadStallError(this.writeIdleMs);
    if (!this.settled) { this.abort(error); return; }
    // The upstream exchange is over; only the tail of the response is stuck in the client's socket.
    this.ex.decision = 'abort';
    this.ex.detail = `${error.message} (after the upstream response ended)`;
    this.ex.wire.res.destroy();
  }

  // The response closed before the upstream exchange settled: the client left, or the gateway
  // answered at the connection level. Either way the upstream request has no one to serve.
  private readonly onClientClose = (): void => {
    if (!this.settled) this.abort(new ClientGoneError());
  };

  /** `retryOn401`: a 401 is dropped and the handler settles with RetryWithFreshToken instead of relaying it. */
  constructor(
    private readonly ex: Exchange, private readonly writeIdleMs: number, private readonly retryOn401: boolean, private readonly done: (error: Error | null) => void,
  ) {
    ex.wire.res.once('close', this.onClientClose);
  }

  /** Ends the upstream request with `error` (reported through onResponseError), now or once it starts. */
  abort(error: Error): void {
    if (this.settled) return;
    if (this.controller === null) this.pendingAbort ??= error;
    else this.controller.abort(error);
  }

  /** Settles with an error undici could not report itself (a throwing dispatch). */
  fail(error: Error): void {
    this.settle(error);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort !== null) controller.abort(this.pendingAbort);
    else if (this.ex.wire.res.destroyed || this.ex.wire.channel.destroyed) controller.abort(new ClientGoneError());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational responses are the upstream's business
    if (statusCode === 401 && this.retryOn401) {
      this.discarded = 0;
      return;
    }
    const ex = this.ex;
    ex.upstreamStatus = statusCode;
    ex.upstreamLatencyMs = performance.now() - ex.forwardedAt;
    const length = headers['content-length'];
    this.remaining = typeof length === 'string' ? Number(length) : -1;
    const out = responseHeaders(headers);
    ex.finishHeaders(out, false);
    const res = ex.wire.res;
    try {
      res.writeHead(statusCode, out);
    } catch (err) {
      // Nothing was sent: node:http2 refuses a field HTTP/2 allows once (a repeated Content-Type,
      // Location, …) before writing. The headers set are cleared so the gateway's own 502 goes out.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      this.abort(new ResponseHeadersError(err as Error));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.discarded >= 0) {
      this.discarded += chunk.length;
      if (this.discarded > MAX_DISCARDED_BYTES) this.abort(new RetryWithFreshToken());
      return;
    }
    if (chunk.length === this.remaining) {
      this.remaining = 0;
      this.ex.wire.res.end(chunk);
      return;
    }
    if (this.remaining > 0) this.remaining -= chunk.length;
    if (!this.ex.wire.res.write(chunk)) {
      controller.pause();
      this.ex.wire.res.once('drain', this.resume);
      this.stall();
    }
  }

  onResponseEnd(): void {
    if (this.discarded >= 0) {
      this.settle(new RetryWithFreshToken());
      return;
    }
    if (!this.ex.wire.res.writableEnded) this.ex.wire.res.end();
    this.settle(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.settle(error);
  }

  private stall(): void {
    this.stalled = true;
    if (this.writeTimer === null) this.writeTimer = setTimeout(() => this.onWriteIdle(), this.writeIdleMs);
    else this.writeTimer.refresh();
  }

  private settle(error: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    const res = this.ex.wire.res;
    res.off('close', this.onClientClose);
    res.off('drain', this.resume);
    this.stalled = false;
    if (error === null && !res.writableFinished && this.ex.wire.channel.writableNeedDrain) {
      // The upstream is done and its connection free; the last bytes still wait in a full client
      // socket. Keep the same bound on them, so a client that never reads does not keep the
      // connection (and its audit record) open forever.
      res.once('finish', () => { this.stalled = false; });
      this.stall();
    } else if (this.writeTimer !== null) clearTimeout(this.writeTimer);
    this.done(error);
  }
}

/**
 * Sends the exchange to its upstream and streams the response back. Returns a Denial when the
 * gateway must answer itself (nothing relayed yet), or undefined when the upstream's response was
 * relayed or the exchange can only be abandoned. Upstream failures map to precise codes
 * (UPSTREAM_FAILURES): unreachable 502, TLS not trusted, pin mismatch or handshake failed 502,
 * timed out 504, no free connection in time 503; failures after the response started cut the
 * response short.
 *
 * Order: a small declared body is received whole first (a slow client then never holds an upstream
 * connection), then an admission slot is taken or waited for, then the request is dispatched. A
 * client idle mid-body for the route's `bodyIdleTimeoutMs` gets 408 at any point before the
 * response started.
 */
export function forward(ex: Exchange, upstream: Upstream, settings: UpstreamRequestSettings, credentials: UpstreamTokenSource | null = null): Promise<Denial | undefined> {
  const req = ex.req;
  if (ex.target === null) return Promise.resolve(deny('internal_error', 'forward without a parsed target'));
  const length = req.headers['content-length'];
  const chunked = hasUndeclaredBody(req);
  if (ex.body === null && !chunked && !declaresLength(length)) {
    // The common case, kept free of extra promises: no body, and a connection free.
    const slot = upstream.admission.tryAcquire();
    if (slot >= 0) return dispatch(ex, upstream, settings, slot, null, null, credentials);
  }
  return admitAndDispatch(ex, upstream, settings, chunked, length, credentials);
}

/**
 * The last stage of every route: forwarding to the route's upstream. With `credentials` (the
 * upstream takes the gateway's own token), a 401 to a request that can be sent again is answered
 * by one retry with a renewed token (see dispatch).
 */
export function forwardStage(upstream: Upstream, settings: UpstreamRequestSettings, credentials: UpstreamTokenSource | null = null): Stage {
  return {
    name: 'forward',
    run: (ex) => forward(ex, upstream, settings, credentials),
    explain(ex) {
      const request = upstreamRequest(ex, settings);
      const spec = upstream.spec;
      return { result: undefined, note: `would send ${ex.req.method ?? ''} ${request.path} to upstream ${spec.name} (${spec.targets.join(', ')})` };
    },
  };
}

/** forward() for requests with a body, or when every connection is busy. */
async function admitAndDispatch(
  ex: Exchange, upstream: Upstream, settings: UpstreamRequestSettings, chunked: boolean, length: string | undefined, credentials: UpstreamTokenSource | null,
): Promise<Denial | undefined> {
  const { req } = ex;
  const route = ex.route as Route;
  // A body a stage received whole (request validation) is sent as received: nothing left to read.
  const hasBody = ex.body === null && (chunked || declaresLength(length));
  if (hasBody) continueOnce(ex);
  const watch = hasBody && !req.complete ? new BodyIdleWatch(req, ex.wire.channel, route.bodyIdleTimeoutMs, route.minBodyBytesPerSecond) : null;
  try {
    let body: Buffer | Readable | null = ex.body;
    if (hasBody) {
      if (!chunked && Number(length) <= route.bufferBodyBytes) {
        const received = await receive(ex, watch, route.maxBodyBytes);
        if (!Buffer.isBuffer(received)) return received;
        body = received;
      } else body = Readable.from(counted(req, ex, route.maxBodyBytes), { objectMode: false });
    }
    let slot = upstream.admission.tryAcquire();
    if (slot < 0) {
      const waited = await queue(ex, upstream, watch);
      if (typeof waited !== 'number') { if (body instanceof Readable) body.destroy(); return waited; }
      slot = waited;
    }
    return await dispatch(ex, upstream, settings, slot, body, watch, credentials);
  } finally {
    watch?.stop();
  }
}

/**
 * Receives the request body whole, for a stage that must read it before anything is forwarded
 * (request validation): at most the route's maxBodyBytes are held (a declared larger body was
 * refused by the request limits; a chunked one is counted as it streams and refused with 413 the
 * moment it passes the limit). A client idle mid-body gets 408 (BodyIdleWatch); a client that
 * goes away resolves undefined, the exchange marked as aborted. The forwarding stage then sends
 * the bytes (`ex.body`) with their length.
 */
export async function receiveBody(ex: Exchange): Promise<Buffer | Denial | undefined> {
  const { req } = ex;
  const route = ex.route as Route;
  if (req.complete) return receive(ex, null, route.maxBodyBytes);
  continueOnce(ex);
  const watch = req.complete ? null : new BodyIdleWatch(req, ex.wire.channel, route.bodyIdleTimeoutMs, route.minBodyBytesPerSecond);
  try {
    return await receive(ex, watch, route.maxBodyBytes);
  } finally {
    watch?.stop();
  }
}

/**
 * Waits until a streamed body of undeclared length (chunked, or HTTP/2 without Content-Length)
 * shows whether it holds a byte: true (the first chunk is put back, to be read and counted by
 * forwarding), false when it ended empty, a 408 Denial when it stops arriving, undefined when the
 * client went away (the exchange marked as aborted). Nothing more than the first chunk is held.
 */
export async function bodyHasBytes(ex: Exchange): Promise<boolean | Denial | undefined> {
  const { req } = ex;
  const route = ex.route as Route;
  if (req.readableLength > 0) return true;
  if (req.readableEnded) return false;
  // A request received whole (explain's) has nothing to wait for.
  const watch = req.complete ? null : new BodyIdleWatch(req, ex.wire.channel, route.bodyIdleTimeoutMs, route.minBodyBytesPerSecond);
  if (watch !== null) continueOnce(ex);
  try {
    return await listenToBody<boolean>(ex, watch, (chunk, finish) => {
      if (chunk.length === 0) return;
      req.pause();
      req.unshift(chunk);
      finish(true);
    }, () => false);
  } finally {
    watch?.stop();
  }
}

/** Receives a body whole, refusing it (413) once more than `limit` bytes arrived. */
function receive(ex: Exchange, watch: BodyIdleWatch | null, limit: number): Promise<Buffer | Denial | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  return listenToBody<Buffer>(ex, watch, (chunk, finish) => {
    ex.bytesIn += chunk.length;
    size += chunk.length;
    if (size > limit) { ex.req.pause(); finish(deny('body_too_large', `streamed body exceeded ${limit} bytes`)); return; }
    chunks.push(chunk);
  }, () => (chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)));
}

/**
 * Listens to a request body until `onData` settles or it ends (`onEnd`'s result): a client that
 * goes away settles undefined (the exchange marked abandoned), one idle past the watch 408.
 */
function listenToBody<T>(
  ex: Exchange, watch: BodyIdleWatch | null, onData: (chunk: Buffer, finish: (result: T | Denial | undefined) => void) => void, onEnd: () => T,
): Promise<T | Denial | undefined> {
  const { req } = ex;
  const res = ex.wire.res;
  return new Promise((resolve) => {
    const finish = (result: T | Denial | undefined): void => {
      req.off('data', data);
      req.off('end', end);
      res.off('close', close);
      if (watch !== null) watch.onIdle = ignore;
      resolve(result);
    };
    const data = (chunk: Buffer): void => onData(chunk, finish);
    const end = (): void => finish(onEnd());
    const close = (): void => {
      clientGone(ex, 'client closed the connection while sending the request body');
      ex.abandoned = true;
      finish(undefined);
    };
    req.on('data', data);
    req.once('end', end);
    res.once('close', close);
    if (watch !== null) watch.onIdle = () => { req.pause(); finish(deny('request_timeout', new BodyIdleError(watch, ex.bytesIn).message)); };
  });
}

/** Waits for an admission slot: the slot, a 503 upstream_busy, a 408 for an idle body, or undefined when the client left. */
function queue(ex: Exchange, upstream: Upstream, watch: BodyIdleWatch | null): Promise<number | Denial | undefined> {
  const { admission, spec } = upstream;
  const busy = (reason: string): Denial => deny('upstream_busy', `upstream ${spec.name}: ${reason}`, { 'retry-after': '1' });
  if (ex.wire.res.destroyed || ex.wire.channel.destroyed) {
    clientGone(ex, 'client closed the connection before an upstream connection was free');
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    const finish = (result: number | Denial | undefined): void => {
      ex.wire.res.off('close', onClose);
      if (watch !== null) watch.onIdle = ignore;
      resolve(result);
    };
    const waiter = admission.enqueue((slot) => finish(slot >= 0 ? slot : busy(`no free connection within queueTimeoutMs (${spec.queueTimeoutMs} ms)`)));
    const onClose = (): void => {
      if (waiter !== null) admission.cancel(waiter);
      clientGone(ex, 'client closed the connection while waiting for an upstream connection');
      finish(undefined);
    };
    if (waiter === null) { resolve(busy(`maxQueued (${spec.maxQueued}) requests already waiting`)); return; }
    ex.wire.res.once('close', onClose);
    if (watch !== null) {
      watch.onIdle = () => {
        admission.cancel(waiter);
        finish(deny('request_timeout', new BodyIdleError(watch, ex.bytesIn).message));
      };
    }
  });
}

/**
 * Dispatches on the pool of `slot`, relays the response, and gives the slot back when the exchange
 * ends. With `credentials`, a request that can be sent again (no body, or one received whole; a
 * streamed body is gone once sent) whose upstream answers 401 is retried once (retryWithFreshToken),
 * unless its token is too fresh to be renewed for it (UpstreamTokenSource.renewable).
 */
function dispatch(
  ex: Exchange, upstream: Upstream, settings: UpstreamRequestSettings, slot: number, body: Buffer | Readable | null, watch: BodyIdleWatch | null,
  credentials: UpstreamTokenSource | null,
): Promise<Denial | undefined> {
  const route = ex.route as Route;
  const request = upstreamRequest(ex, settings);
  ex.forwardedAt = performance.now();
  const retryable = credentials !== null && ex.upstreamToken !== null && !(body instanceof Readable) && credentials.renewable(ex.upstreamToken);
  return new Promise((resolve) => {
    const handler = new RelayHandler(ex, route.writeIdleTimeoutMs, retryable, (error) => {
      if (error instanceof RetryWithFreshToken && credentials !== null) {
        resolve(retryWithFreshToken(ex, upstream, settings, slot, body as Buffer | null, watch, credentials));
        return;
      }
      upstream.admission.release(slot);
      resolve(error === null ? undefined : failure(ex, error));
    });
    if (watch !== null) watch.onIdle = () => handler.abort(new BodyIdleError(watch, ex.bytesIn));
    try {
      upstream.pool(slot).dispatch({
        path: request.path,
        method: ex.req.method as Dispatcher.HttpMethod,
        headers: request.headers as string[], // undici reads it only
        body,
      }, handler);
    } catch (err) {
      handler.fail(err as Error);
    }
  });
}

/**
 * The upstream refused the gateway's token (401): the token is renewed (one call for all requests
 * refused with the same token) and the request dispatched once more on the same connection slot;
 * the second answer is relayed whatever it is. No new token: 503 upstream_credentials_unavailable.
 */
async function retryWithFreshToken(
  ex: Exchange, upstream: Upstream, settings: UpstreamRequestSettings, slot: number, body: Buffer | null, watch: BodyIdleWatch | null, credentials: UpstreamTokenSource,
): Promise<Denial | undefined> {
  const got = await credentials.renew(ex.upstreamToken ?? '');
  if (ex.wire.res.destroyed || ex.wire.channel.destroyed) {
    upstream.admission.release(slot);
    clientGone(ex, 'client closed the connection while the gateway renewed its upstream token');
    return undefined;
  }
  if (typeof got !== 'string') {
    upstream.admission.release(slot);
    return deny('upstream_credentials_unavailable', `the upstream refused the gateway token (401) and no new one could be had: ${got.reason}`, { 'retry-after': String(got.retryAfterSeconds) });
  }
  withUpstreamToken(ex, upstreamRequest(ex, settings), got);
  ex.detail = 'the upstream refused the gateway token (401); retried once with a renewed token';
  return dispatch(ex, upstream, settings, slot, body, watch, null);
}

/** Marks the exchange as abandoned by the client (audited as abort, status 499 when nothing was sent). */
function clientGone(ex: Exchange, reason: string): void {
  if (ex.denial !== null) return;
  ex.decision = 'abort';
  ex.detail = reason;
}

function failure(ex: Exchange, error: Error & { code?: unknown; cause?: unknown }): Denial | undefined {
  if (ex.denial !== null) return undefined; // already decided at the connection level
  if (error instanceof BodyLimitError || error.cause instanceof BodyLimitError) {
    return deny('body_too_large', `streamed body exceeded ${ex.route?.maxBodyBytes ?? 0} bytes`);
  }
  if (error instanceof ResponseHeadersError || error.cause instanceof ResponseHeadersError) {
    return deny('upstream_error', error instanceof ResponseHeadersError ? error.message : (error.cause as Error).message);
  }
  if (error instanceof ReadStallError || error.cause instanceof ReadStallError) {
    ex.decision = 'abort';
    ex.detail = error.message;
    ex.wire.res.destroy();
    return undefined;
  }
  if (error instanceof BodyIdleError || error.cause instanceof BodyIdleError) {
    // Nothing sent yet: 408 (RFC 9110 §15.5.9), and the connection closes since the body is unread.
    if (!ex.wire.res.headersSent) return deny('request_timeout', `${error.message}; upstream request aborted`);
    ex.decision = 'abort';
    ex.detail = `${error.message} after the response started`;
    ex.wire.res.destroy();
    return undefined;
  }
  const code = errorCode(error);
  const detail = `${code} ${error.message}`.trim();
  // A request body that broke off means the client went away mid-upload.
  if (error instanceof ClientGoneError || (ex.req.destroyed && !ex.req.complete && !ex.wire.res.headersSent)) {
    ex.decision = 'abort';
    ex.detail = error instanceof ClientGoneError ? error.message : `client request body ended early: ${detail}`;
    return undefined;
  }
  if (ex.wire.res.headersSent) {
    // The status line is gone; all that is left is to cut the response short.
    ex.decision = 'error';
    ex.detail = code === 'UND_ERR_BODY_TIMEOUT' ? `upstream body timeout: ${detail}` : `upstream failed mid-response: ${detail}`;
    ex.wire.res.destroy();
    return undefined;
  }
  const failed = classifyUpstreamFailure(code);
  return deny(failed.code, `${failed.what}: ${detail}`);
}
