import type { RequestPathSettings, RequestPath } from '../pipeline/request-path.js';
import { deny } from '../pipeline/denials.js';
import type { Exchange, Stage } from '../pipeline/exchange.js';
import { auditReady, framing, headerCount, host, target } from '../stages/edge.js';
import { connectionClose, requestIdHeader, securityHeaders } from '../stages/response-headers.js';
import type { HandlerHost, Runtime } from './handle-request.js';

/**
 * `listen.http.mode: redirect`: every request on the plain listener is answered 308 to the same
 * target on the HTTPS listener, and nothing is forwarded. The Location is built only from what the
 * edge stages accepted: a Host that passed the gateway's own Host check (a name or IP literal,
 * never `user@host`, never a second Host) and the canonical origin-form target (never an
 * absolute-form or a control character), so it always points at this gateway (no open redirect).
 */
export function redirectToHttps(httpsPort: () => number): Stage {
  return {
    name: 'https-redirect',
    run(ex) {
      const t = ex.target as NonNullable<Exchange['target']>;
      const port = httpsPort();
      const location = `https://${ex.host}${port === 443 ? '' : `:${port}`}${t.path}${t.query}`;
      return deny('https_required', `plain HTTP redirected to ${location}`.slice(0, 300), { location });
    },
  };
}

/** The request path of a redirecting plain listener: the checks the Location is built from, then the redirect. */
export function redirectPath(settings: RequestPathSettings, auditHealthy: () => boolean, httpsPort: () => number): RequestPath {
  return Object.freeze({
    edge: Object.freeze([auditReady(auditHealthy), target(settings.target), headerCount(settings.limits.maxHeaderCount), host, framing, redirectToHttps(httpsPort)]),
    response: Object.freeze([requestIdHeader(settings.requestIdHeader), connectionClose, securityHeaders(settings.securityHeaders)]),
  });
}

/**
 * The handler host of a redirecting plain listener: the gateway's, with the redirect path of the
 * config in effect (built once per config) instead of the routes.
 */
export function redirectingHost(gateway: HandlerHost, auditHealthy: () => boolean, httpsPort: () => number): HandlerHost {
  let built: { readonly from: Runtime; readonly to: Runtime } | null = null;
  return {
    get runtime() {
      const from = gateway.runtime;
      if (built?.from !== from) built = { from, to: { ...from, path: redirectPath(from.config, auditHealthy, httpsPort) } };
      return built.to;
    },
    get logger() { return gateway.logger; },
    get draining() { return gateway.draining; },
    get metrics() { return gateway.metrics; },
    track: (ex) => gateway.track(ex),
    finish: (ex, runtime) => gateway.finish(ex, runtime),
  };
}
