import { corsAllows, decidePreflight, isPreflight, type CorsPolicy } from '../cors/policy.js';
import { deny } from '../pipeline/denials.js';
import type { ResponseStage, Stage } from '../pipeline/exchange.js';
import type { OutgoingHttpHeaders } from 'node:http';

/**
 * The CORS protocol at the gateway (Fetch standard §3.2): preflights on a route with a policy are
 * answered here, before anything else of the route runs (browsers send no credentials on a
 * preflight), and every response of such a route carries the policy's answer, the gateway's own
 * denials included, so a browser app can read a 401 or a 429.
 */

/** The headers a preflight's answer depends on: caches key it on them. */
const PREFLIGHT_VARY = ['Origin', 'Access-Control-Request-Method', 'Access-Control-Request-Headers'];

/**
 * Answers a preflight: 204 with the policy's Access-Control-Allow-* headers, or 403
 * `cors_preflight_refused` without them for an origin, method or header the policy does not
 * allow. Either way nothing is forwarded. Other requests go on.
 */
export function corsPreflight(policy: CorsPolicy): Stage {
  return {
    name: 'cors-preflight',
    run(ex) {
      if (!isPreflight(ex.req)) return undefined;
      ex.preflight = true;
      const { origin = '', 'access-control-request-method': method = '', 'access-control-request-headers': requested } = ex.req.headers;
      const decision = decidePreflight(policy, origin, method, requested);
      if (!decision.allowed) return deny('cors_preflight_refused', decision.reason);
      return { kind: 'response', status: 204, headers: decision.headers, body: '', code: 'cors_preflight', detail: `cors ${policy.name}: preflight for ${method} answered` };
    },
  };
}

/**
 * On a route with a CORS policy, the policy is the one truth: CORS headers an upstream sent are
 * removed, and an allowed origin gets Access-Control-Allow-Origin (its own origin, or `*` when the
 * policy allows every origin without credentials, then on every response), -Allow-Credentials and
 * -Expose-Headers. `Vary: Origin` is added whenever the answer depends on the origin. Routes
 * without a policy keep what the upstream sent, and the gateway adds nothing.
 */
export const corsHeaders: ResponseStage = {
  name: 'cors',
  apply(ex, headers, generated) {
    const policy = ex.route?.cors ?? null;
    if (policy === null) return;
    if (!generated) {
      for (const name of Object.keys(headers)) if (name.toLowerCase().startsWith('access-control-')) Reflect.deleteProperty(headers, name);
    }
    if (ex.preflight) { addVary(headers, PREFLIGHT_VARY); return; }
    // A policy of every origin answers `*` on every response, with an Origin or without: the
    // response is then the same for all, and a shared cache may keep one copy. Any other answer
    // depends on the Origin, and says so in Vary (a copy kept for one origin, or for a request
    // without one, is never served to another).
    const open = policy.origins.any && !policy.credentials;
    if (open) headers['access-control-allow-origin'] = '*';
    else {
      addVary(headers, ['Origin']);
      const origin = ex.req.headers.origin;
      if (origin === undefined || !corsAllows(policy, origin)) return;
      headers['access-control-allow-origin'] = origin;
    }
    if (policy.credentials) headers['access-control-allow-credentials'] = 'true';
    if (policy.exposeHeaders !== '') headers['access-control-expose-headers'] = policy.exposeHeaders;
  },
};

/** Adds field names to `Vary`, keeping what is there (an upstream's `Accept-Encoding`); `*` already covers all. */
export function addVary(headers: OutgoingHttpHeaders, names: readonly string[]): void {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === 'vary') ?? 'vary';
  const current = headers[key];
  const text = current === undefined ? '' : Array.isArray(current) ? current.join(', ') : String(current);
  const present = new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
  if (present.has('*')) return;
  const added = names.filter((n) => !present.has(n.toLowerCase()));
  if (added.length === 0) return;
  if (key !== 'vary') Reflect.deleteProperty(headers, key);
  headers.vary = text === '' ? added.join(', ') : `${text}, ${added.join(', ')}`;
}
