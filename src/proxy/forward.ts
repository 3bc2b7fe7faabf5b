import type { IncomingMessage } from 'node:http';
import { Readable, type Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { CompiledRoute } from '../config/compile.js';
import { responseHeaders } from '../http/headers.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Upstream } from './upstream.js';

class BodyLimitError extends Error {
  constructor(readonly limit: number) { super(`request body exceeds ${limit} bytes`); }
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

/** Called by undici when response headers arrive: relays them and hands over the client response. */
function relay({ statusCode, headers, opaque: ex }: Dispatcher.StreamFactoryData<Exchange>): Writable {
  ex.upstreamStatus = statusCode;
  ex.upstreamLatencyMs = performance.now() - ex.forwardedAt;
  const out = responseHeaders(headers);
  out[ex.config.requestIdHeader] = ex.requestId;
  ex.res.writeHead(statusCode, out);
  return ex.res;
}

/**
 * Sends the exchange to its upstream and streams the response back. Returns a Denial when the
 * gateway must answer itself (nothing relayed yet), or undefined when the upstream's response was
 * relayed or the exchange can only be abandoned. Upstream failures map to precise codes:
 * unreachable 502, timed out 504; failures after the response started abort the response.
 */
export async function forward(ex: Exchange, upstream: Upstream): Promise<Denial | undefined> {
  const { req, res } = ex;
  const route = ex.route as CompiledRoute;
  const target = ex.target;
  if (target === null) return deny('internal_error', 'forward without a parsed target');
  const length = req.headers['content-length'];
  let body: Dispatcher.DispatchOptions['body'] = null;
  if (req.headers['transfer-encoding'] !== undefined) body = Readable.from(counted(req, ex, route.maxBodyBytes), { objectMode: false });
  else if (length !== undefined && length !== '0') { body = req; ex.bytesIn = Number(length); }
  if (body !== null && req.headers.expect !== undefined) res.writeContinue();

  ex.forwardedAt = performance.now();
  const abort = new AbortController();
  const onClose = (): void => { if (!res.writableFinished) abort.abort(); };
  res.once('close', onClose);
  try {
    await upstream.pick().stream<Exchange>({
      path: upstreamPath(target.path, route) + target.query,
      method: req.method as Dispatcher.HttpMethod,
      headers: ex.forwardHeaders,
      body,
      signal: abort.signal,
      opaque: ex,
    }, relay);
    return undefined;
  } catch (err) {
    return failure(ex, err, abort.signal.aborted);
  } finally {
    res.off('close', onClose);
  }
}

function failure(ex: Exchange, err: unknown, clientGone: boolean): Denial | undefined {
  const error = err as { code?: string; message?: string; cause?: unknown };
  if (err instanceof BodyLimitError || error.cause instanceof BodyLimitError) {
    return deny('body_too_large', `streamed body exceeded ${ex.route?.maxBodyBytes ?? 0} bytes`);
  }
  const clientAborted = clientGone || (ex.req.destroyed && !ex.req.complete);
  if (clientAborted) {
    ex.decision = 'abort';
    ex.reason = 'client closed the connection';
    return undefined;
  }
  const code = error.code ?? '';
  const detail = `${code} ${error.message ?? ''}`.trim();
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
