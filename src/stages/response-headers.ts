import type { SecurityHeaderSet } from '../http/security-headers.js';
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

/**
 * The security headers of the route (or the top-level ones before a route is known). The gateway's
 * own answers are never cached and never sniffed as another media type, whatever the config says.
 * On relayed responses, the upstream headers `removeUpstream` names are dropped, and the gateway's
 * values replace the upstream's unless `keepUpstream` names the header and the upstream sent it.
 * Strict-Transport-Security goes only on responses to requests that arrived over TLS (`ex.secure`);
 * on others, an upstream's is removed as well (unless `keepUpstream` names it).
 */
export function securityHeaders(global: SecurityHeaderSet): ResponseStage {
  return {
    name: 'security-headers',
    apply(ex, headers, generated) {
      const set = ex.route?.securityHeaders ?? global;
      if (generated) {
        headers['cache-control'] = 'no-store';
        headers['x-content-type-options'] = 'nosniff';
      } else {
        for (const name of set.removeUpstream) Reflect.deleteProperty(headers, name);
      }
      const keep = !generated && set.keepUpstream.size > 0;
      for (const [name, value] of set.headers) {
        if (!keep || !set.keepUpstream.has(name) || headers[name] === undefined) headers[name] = value;
      }
      const sts = set.strictTransportSecurity;
      if (sts !== null && (!keep || !set.keepUpstream.has('strict-transport-security') || headers['strict-transport-security'] === undefined)) {
        // The gateway's value replaces the upstream's on a plain-HTTP request too, where that value
        // is none: an upstream's own (a max-age=0 that clears the browser's memory of HTTPS, an
        // includeSubDomains the config left out) never reaches a client through a TLS-terminating
        // proxy the gateway was not told about.
        if (ex.secure) headers['strict-transport-security'] = sts;
        else Reflect.deleteProperty(headers, 'strict-transport-security');
      }
    },
  };
}

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
