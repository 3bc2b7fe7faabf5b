import type { CustomFetch } from 'openid-client';
import { duplicateMember } from './duplicate-members.js';

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
 * `{"active":false,"active":true}` must not be read one way here and another way elsewhere).
 */
export function boundedFetch(bounds: FetchBounds): CustomFetch {
  return async (url, options) => {
    const timeout = AbortSignal.timeout(bounds.timeoutMs);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
    let res: Response;
    try {
      res = await fetch(url, { method: options.method, headers: options.headers, body: options.body ?? null, signal, redirect: 'manual' });
    } catch (err) {
      throw failure(err, timeout, bounds);
    }
    try {
      if (res.status >= 300 && res.status < 400) throw new EndpointError(`answered a redirect (HTTP ${res.status}); redirects are not followed`, 'redirect');
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > bounds.maxResponseBytes) throw new EndpointError(`answered ${declared} bytes, more than maxResponseBytes ${bounds.maxResponseBytes}`, 'oversized');
      const body = await readCapped(res, bounds.maxResponseBytes);
      const type = res.headers.get('content-type') ?? '';
      if (/json/i.test(type)) {
        const duplicate = duplicateMember(body.toString('utf8'));
        if (duplicate !== null) throw new EndpointError(`answered JSON with the member "${duplicate.slice(0, 64)}" twice`, 'malformed');
      }
      return new Response(body.length === 0 && (res.status === 204 || res.status === 304) ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers });
    } catch (err) {
      await res.body?.cancel().catch(() => undefined);
      throw failure(err, timeout, bounds);
    }
  };
}

async function readCapped(res: Response, max: number): Promise<Buffer> {
  if (res.body === null) return Buffer.alloc(0);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new EndpointError(`answered more than maxResponseBytes ${max}`, 'oversized');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function failure(err: unknown, timeout: AbortSignal, bounds: FetchBounds): EndpointError {
  if (err instanceof EndpointError) return err;
  if (timeout.aborted) return new EndpointError(`did not answer within timeoutMs ${bounds.timeoutMs}`, 'timeout');
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : (err as Error).message;
  return new EndpointError(`unreachable: ${detail}`, 'network');
}
