import { deny } from '../pipeline/denials.js';
import type { Stage } from '../pipeline/exchange.js';

/** RFC 9113 §6.5.2: each field counts its name, its value and 32 octets of overhead. */
const FIELD_OVERHEAD = 32;

/**
 * What an HTTP/2 request must be beyond what node:http2 (nghttp2) already enforces — it resets a
 * stream with connection-specific fields, `te` other than `trailers`, upper-case names, unknown,
 * repeated or misplaced pseudo-headers, or a `:path` that is not origin form or `*` (RFC 9113
 * §8.2–8.3), so none of those reaches the request path. Here, answered as problem+json and
 * recorded like on HTTP/1.1:
 *
 * - CONNECT (an authority-form target: a tunnel) is refused, as the HTTP/1.1 listener refuses it;
 *   extended CONNECT (RFC 8441) is not offered, so `:protocol` never arrives;
 * - `:scheme` must be `https`: the gateway serves HTTP/2 on TLS only, and a request claiming
 *   another scheme was built for another server;
 * - the header list (pseudo-headers included, counted as RFC 9113 §6.5.2 counts it) may not
 *   exceed `limits.maxHeaderBytes`: 431, as HTTP/1.1's request line and headers.
 *
 * HTTP/1.x requests pass untouched.
 */
export function http2Request(maxHeaderBytes: number): Stage {
  return {
    name: 'http2',
    run(ex) {
      const req = ex.req;
      if (req.httpVersionMajor !== 2) return undefined;
      if (req.method === 'CONNECT') return deny('invalid_target', 'CONNECT (authority-form target)');
      const scheme = req.headers[':scheme'];
      if (scheme !== 'https') return deny('bad_request', `:scheme ${String(scheme).slice(0, 20)} on a TLS connection`);
      const raw = req.rawHeaders;
      let size = 0;
      for (let i = 0; i < raw.length; i++) size += (raw[i] as string).length;
      size += FIELD_OVERHEAD * (raw.length / 2);
      if (size > maxHeaderBytes) return deny('headers_too_large', `header list of ${size} bytes, limit maxHeaderBytes ${maxHeaderBytes}`);
      return undefined;
    },
  };
}
