import { declaresLength, hasUndeclaredBody } from '../http/body-framing.js';
import { deny } from '../pipeline/denials.js';
import type { Stage } from '../pipeline/stage.js';

/**
 * Methods whose requests have no defined body semantics (RFC 9110 §9.3). Servers that never read
 * such a body leave it on the connection, where it is parsed as the next request (CL.0 request
 * smuggling), so a body on them is refused unless the route allows it.
 */
const BODILESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

/**
 * Declared body size and media type, and bodies on methods that take none, checked before
 * anything is forwarded. A body without a declared length is counted while it streams (see
 * proxy/forward.ts); this stage rejects the declared excess up front so no upstream connection is
 * spent on it.
 */
export function requestLimits(maxBodyBytes: number, contentTypes: ReadonlySet<string> | null, allowBodyOn: ReadonlySet<string>): Stage {
  return {
    name: 'request-limits',
    run(ex) {
      const headers = ex.req.headers;
      const length = headers['content-length'];
      const chunked = hasUndeclaredBody(ex.req);
      if (length !== undefined) {
        // Node's parser has already rejected duplicate or non-numeric Content-Length.
        const declared = Number(length);
        if (declared > maxBodyBytes) return deny('body_too_large', `declared ${declared} bytes, limit ${maxBodyBytes}`);
      }
      const hasBody = chunked || declaresLength(length);
      if (!hasBody) return undefined;
      const method = ex.req.method ?? '';
      if (BODILESS.has(method) && !allowBodyOn.has(method)) {
        return deny('body_not_allowed', `${method} with a body (${chunked ? (ex.req.httpVersionMajor === 2 ? 'HTTP/2 DATA without Content-Length' : 'Transfer-Encoding') : `Content-Length ${length ?? ''}`})`);
      }
      if (contentTypes !== null) {
        const type = (headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
        if (!contentTypes.has(type)) return deny('unsupported_media_type', `content type "${type.slice(0, 100)}" not accepted`);
      }
      return undefined;
    },
  };
}
