import type { ResponseStage } from '../pipeline/exchange.js';
import { limitHeaders, type HeaderMode } from '../ratelimit/headers.js';

/** Every response carries the request id, so a client can quote it and operators can find the record. */
export function requestIdHeader(name: string): ResponseStage {
  return { name: 'request-id', apply: (ex, headers) => { headers[name] = ex.requestId; } };
}

/** The figures of the limits applied to the request (RateLimit and RateLimit-Policy, or X-RateLimit-*). */
export function rateLimitHeaders(mode: HeaderMode): ResponseStage {
  return {
    name: 'rate-limit-headers',
    apply(ex, headers) {
      if (ex.limits === null) return;
      for (const [name, value] of limitHeaders(ex.limits, mode)) headers[name] = value;
    },
  };
}

/** The gateway's own answers are never cached and never sniffed as another media type. */
export const securityHeaders: ResponseStage = {
  name: 'security-headers',
  apply(_ex, headers, generated) {
    if (!generated) return;
    headers['cache-control'] = 'no-store';
    headers['x-content-type-options'] = 'nosniff';
  },
};

/**
 * Says so when the connection closes after this response (an upgrade offer, a drain). Never on
 * HTTP/2, where `Connection` is not allowed (RFC 9113 §8.2.2): a stream ends alone, and a
 * draining session says so with GOAWAY.
 */
export const connectionClose: ResponseStage = {
  name: 'connection',
  apply(ex, headers) {
    if (ex.closeAfter && ex.wire.socket !== null) headers.connection = 'close';
  },
};
