import type { IncomingMessage } from 'node:http';
import { originAllowed, type OriginSet } from './origin.js';

/**
 * A route's compiled CORS policy (the Fetch standard's CORS protocol): who may read its responses
 * from a browser, and what a preflight may ask for. Everything is computed when the config is
 * compiled; a request only looks values up.
 */
export interface CorsPolicy {
  /** The policy's name in `cors`, for audit details. */
  readonly name: string;
  readonly origins: OriginSet;
  /** Methods a preflight may ask for on this route: the policy's, within the route's own. */
  readonly methods: ReadonlySet<string>;
  /** Request headers a preflight may ask for, lower case. */
  readonly requestHeaders: ReadonlySet<string>;
  readonly credentials: boolean;
  /** `Access-Control-Allow-Methods` of an answered preflight. */
  readonly allowMethods: string;
  /** `Access-Control-Allow-Headers` of an answered preflight; '' sends none. */
  readonly allowHeaders: string;
  /** `Access-Control-Max-Age` of an answered preflight. */
  readonly maxAge: string;
  /** `Access-Control-Expose-Headers` of actual responses; '' sends none. */
  readonly exposeHeaders: string;
}

/** More request headers than this in one preflight is refused unread. */
export const MAX_PREFLIGHT_HEADERS = 64;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/**
 * A CORS preflight (Fetch §4.8): `OPTIONS` with an `Origin` and an `Access-Control-Request-Method`.
 * Routing and the preflight stage use this one test, so a preflight routed by the method it asks
 * about is always answered by the gateway, never forwarded.
 */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** Whether the policy lets `origin` read responses (a canonical serialised origin it allows, or any with "*"). */
export function corsAllows(policy: CorsPolicy, origin: string): boolean {
  return policy.origins.any || originAllowed(policy.origins, origin);
}

/** A preflight's verdict: the headers of the 204, or why it is refused (private, for the audit record). */
export type PreflightDecision =
  | { readonly allowed: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly allowed: false; readonly reason: string };

/**
 * Decides a preflight against the route's policy: the origin must be allowed, the method one the
 * policy and the route accept, every requested header one the policy lists. The answer lists what
 * the policy allows (the same for every origin it allows), so browsers can cache it.
 */
export function decidePreflight(policy: CorsPolicy, origin: string, method: string, requested: string | undefined): PreflightDecision {
  if (!corsAllows(policy, origin)) return { allowed: false, reason: `cors ${policy.name}: origin ${quote(origin)} is not allowed` };
  if (!TOKEN.test(method)) return { allowed: false, reason: `cors ${policy.name}: Access-Control-Request-Method ${quote(method)} is not a method` };
  if (!policy.methods.has(method)) return { allowed: false, reason: `cors ${policy.name}: method ${method} is not allowed` };
  if (requested !== undefined) {
    const names = requested.split(',').map((n) => n.trim()).filter((n) => n !== '');
    if (names.length > MAX_PREFLIGHT_HEADERS) return { allowed: false, reason: `cors ${policy.name}: ${names.length} request headers asked for, at most ${MAX_PREFLIGHT_HEADERS}` };
    for (const name of names) {
      if (!TOKEN.test(name)) return { allowed: false, reason: `cors ${policy.name}: Access-Control-Request-Headers has ${quote(name)}, not a header name` };
      if (!policy.requestHeaders.has(name.toLowerCase())) return { allowed: false, reason: `cors ${policy.name}: request header ${name.toLowerCase()} is not allowed` };
    }
  }
  const headers: Record<string, string> = {
    'access-control-allow-origin': policy.origins.any && !policy.credentials ? '*' : origin,
    'access-control-allow-methods': policy.allowMethods,
    'access-control-max-age': policy.maxAge,
  };
  if (policy.allowHeaders !== '') headers['access-control-allow-headers'] = policy.allowHeaders;
  if (policy.credentials) headers['access-control-allow-credentials'] = 'true';
  return { allowed: true, headers };
}

/** A client's value in an audit detail: bounded, control characters shown escaped. */
function quote(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}…` : value);
}
