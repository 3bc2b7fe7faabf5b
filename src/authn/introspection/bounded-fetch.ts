import type { CustomFetch, FetchBody } from 'openid-client';
import { request, type Dispatcher } from 'undici';
import { jsonShapeProblem } from './duplicate-members.js';

/** Why an introspection (or discovery) exchange failed: an outage or a malformed answer, never a verdict on the token. */
export class EndpointError extends Error {
  constructor(message: string, readonly reason: 'timeout' | 'network' | 'oversized' | 'redirect' | 'malformed' | 'status' | 'busy' | 'circuit_open' | 'not_ready') {
    super(message);
  }
}

/** What a bounded fetch may spend on one exchange. */
export interface FetchBounds {
  /** Whole exchange, connect to last body byte. */
  readonly timeoutMs: number;
  /** Largest response body read; past it the exchange fails without reading further. */
  readonly maxResponseBytes: number;
}

/**
 * A `fetch` for openid-client (its customFetch) that bounds every exchange with the authorization
 * server: the whole exchange under `timeoutMs`, the body read with a byte cap (a declared or
 * streamed body past `maxResponseBytes` is cut off, not buffered), redirects refused (a 3xx is an
 * error: the endpoint is the configured or discovered one, never one a response points to), and a
 * JSON body with a duplicated member name refused (RFC 8259 §4 leaves its meaning to the parser:
 * `{"active":false,"active":true}` must not be read one way here and another way elsewhere) under
 * any content type, and so is one nested deeper than MAX_JSON_DEPTH.
 * Spoken with undici's `request`, which follows no redirect and costs about half the CPU of
 * `fetch` per call (a cold-cache introspection is on a request's path).
 */
export function boundedFetch(bounds: FetchBounds): CustomFetch {
  return async (url, options) => {
    // openid-client's own signal is its timeout (30 s unless told otherwise): this bound is the tighter one.
    const timeout = AbortSignal.timeout(bounds.timeoutMs);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: options.method, headers: options.headers, body: bodyOf(options.body), signal: timeout,
        headersTimeout: bounds.timeoutMs, bodyTimeout: bounds.timeoutMs,
      });
    } catch (err) {
      throw failure(err, timeout, bounds);
    }
    try {
      const status = res.statusCode;
      if (status >= 300 && status < 400) throw new EndpointError(`answered a redirect (HTTP ${status}); redirects are not followed`, 'redirect');
      if (status < 200 || status > 599) throw new EndpointError(`answered HTTP ${status}`, 'status');
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > bounds.maxResponseBytes) throw new EndpointError(`answered ${declared} bytes, more than maxResponseBytes ${bounds.maxResponseBytes}`, 'oversized');
      const body = await readCapped(res.body, bounds.maxResponseBytes);
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (typeof value === 'string') headers.set(name, value);
        else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      }
      // Whatever the content type says: openid-client parses the body as JSON regardless of it.
      const problem = jsonShapeProblem(body.toString('utf8'));
      if (problem !== null) throw new EndpointError(`answered JSON with ${problem}`, 'malformed');
      const empty = body.length === 0 || status === 204 || status === 205 || status === 304;
      return new Response(empty ? null : body, { status, headers });
    } catch (err) {
      // Whatever was not read is discarded without surfacing as an unhandled error.
      if (!res.body.destroyed) res.body.dump({ limit: 0 }).catch(() => undefined);
      throw failure(err, timeout, bounds);
    }
  };
}

/** The request body openid-client hands over, as undici sends it (introspection sends a form). */
function bodyOf(body: FetchBody): string | Buffer | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new EndpointError('a streamed request body is not sent', 'malformed');
}

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new EndpointError(`answered more than maxResponseBytes ${max}`, 'oversized');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function failure(err: unknown, timeout: AbortSignal, bounds: FetchBounds): EndpointError {
  if (err instanceof EndpointError) return err;
  if (timeout.aborted) return new EndpointError(`did not answer within timeoutMs ${bounds.timeoutMs}`, 'timeout');
  const { code, cause } = err as { code?: unknown; cause?: { code?: unknown } };
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return new EndpointError(`did not answer within timeoutMs ${bounds.timeoutMs}`, 'timeout');
  const detail = typeof cause?.code === 'string' ? cause.code : typeof code === 'string' ? code : (err as Error).message;
  return new EndpointError(`unreachable: ${detail}`, 'network');
}
