import type { Static } from '@sinclair/typebox';
import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { CorsPolicySchema } from './schema-edge.js';
import { didYouMean, unknownName } from './suggest.js';
import { compileOrigins, type OriginSet } from '../cors/origin.js';
import type { CorsPolicy } from '../cors/policy.js';

export type RawCorsPolicy = Static<typeof CorsPolicySchema>;

/** Documented defaults of a `cors.<name>` policy; docs/configuration.md lists the same values. */
export const CORS_DEFAULTS = Object.freeze({
  methods: Object.freeze(['GET', 'HEAD', 'POST']),
  requestHeaders: Object.freeze([] as string[]),
  exposeHeaders: Object.freeze([] as string[]),
  exposeGatewayHeaders: true,
  credentials: false,
  maxAgeSeconds: 600,
});

/** Methods a page can send (Fetch: a method that is not a forbidden method); CONNECT, TRACE and TRACK never reach a preflight. */
const KNOWN_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'TRACE', 'TRACK']);

/** The response headers the gateway itself adds, exposed to browser code unless a policy says otherwise. */
const GATEWAY_EXPOSED = ['RateLimit', 'RateLimit-Policy', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'Retry-After', 'WWW-Authenticate'];

/** A named policy as compiled before the routes that use it: what does not depend on the route. */
export interface CorsPolicySpec {
  readonly name: string;
  readonly origins: OriginSet;
  readonly methods: readonly string[];
  readonly requestHeaders: ReadonlySet<string>;
  readonly allowHeaders: string;
  readonly exposeHeaders: string;
  readonly credentials: boolean;
  readonly maxAge: string;
}

/** Compiles the top-level `cors` policies; `requestIdHeader` is exposed with the gateway's headers. */
export function compileCorsPolicies(raw: Readonly<Record<string, RawCorsPolicy>> | undefined, requestIdHeader: string, loaded: LoadedConfig, problems: ConfigProblem[]): Map<string, CorsPolicySpec> {
  const out = new Map<string, CorsPolicySpec>();
  for (const [name, p] of Object.entries(raw ?? {})) {
    const at = (...path: (string | number)[]) => ['cors', name, ...path];
    const problem = (path: (string | number)[], message: string): void => { problems.push(loaded.problem(path, message)); };
    const origins = compileOrigins(p.origins, (i, message) => problem(at('origins', i), message));
    const credentials = p.credentials ?? CORS_DEFAULTS.credentials;
    if (credentials && origins.any) {
      problem(at('credentials'), 'credentials cannot go with the origin "*": browsers refuse "Access-Control-Allow-Origin: *" on credentialed requests, and echoing any origin would let every site read responses with the user\'s cookies; list the origins instead');
    }
    const methods = p.methods ?? CORS_DEFAULTS.methods;
    methods.forEach((m, i) => {
      if (FORBIDDEN_METHODS.has(m)) problem(at('methods', i), `${m} is a method browsers never send from a page (Fetch forbidden method): leave it out`);
      else if (!KNOWN_METHODS.includes(m)) problem(at('methods', i), `unknown method ${m}${didYouMean(m, KNOWN_METHODS)}: a policy takes ${KNOWN_METHODS.join(', ')}`);
    });
    const requestHeaders = headerList(p.requestHeaders ?? CORS_DEFAULTS.requestHeaders, (i, m) => problem(at('requestHeaders', i), m));
    const expose = headerList(p.exposeHeaders ?? CORS_DEFAULTS.exposeHeaders, (i, m) => problem(at('exposeHeaders', i), m));
    const exposed = new Map(expose.map((h) => [h.toLowerCase(), h]));
    if (p.exposeGatewayHeaders ?? CORS_DEFAULTS.exposeGatewayHeaders) {
      for (const h of [requestIdHeader, ...GATEWAY_EXPOSED]) if (!exposed.has(h.toLowerCase())) exposed.set(h.toLowerCase(), h);
    }
    out.set(name, {
      name,
      origins,
      methods,
      requestHeaders: new Set(requestHeaders.map((h) => h.toLowerCase())),
      allowHeaders: requestHeaders.map((h) => h.toLowerCase()).join(', '),
      exposeHeaders: [...exposed.values()].join(', '),
      credentials,
      maxAge: String(p.maxAgeSeconds ?? CORS_DEFAULTS.maxAgeSeconds),
    });
  }
  return out;
}

/** Header names as listed; a `*` (a wildcard in the Fetch standard only without credentials) is refused. */
function headerList(names: readonly string[], report: (index: number, message: string) => void): string[] {
  names.forEach((n, i) => {
    if (n === '*') report(i, '"*" is not supported: list the header names (a wildcard never covers Authorization, and means the literal name "*" with credentials)');
  });
  return names.filter((n) => n !== '*');
}

/**
 * A route's policy: the named one, its methods narrowed to those the route accepts. Reports an
 * unknown name, and a policy that allows none of the route's methods (every preflight would be refused).
 */
export function corsForRoute(
  name: string | undefined, routeMethods: ReadonlySet<string> | null, policies: ReadonlyMap<string, CorsPolicySpec>,
  at: (string | number)[], loaded: LoadedConfig, problems: ConfigProblem[],
): CorsPolicy | null {
  if (name === undefined) return null;
  const spec = policies.get(name);
  if (spec === undefined) {
    problems.push(loaded.problem(at, unknownName('cors policy', name, [...policies.keys()])));
    return null;
  }
  const methods = routeMethods === null ? spec.methods : spec.methods.filter((m) => routeMethods.has(m));
  if (methods.length === 0) {
    problems.push(loaded.problem(at, `cors policy "${name}" allows ${spec.methods.join(', ')}, none of which this route accepts (${[...(routeMethods ?? [])].join(', ')}): every preflight would be refused; add the route's methods to the policy's methods`));
  }
  return {
    name,
    origins: spec.origins,
    methods: new Set(methods),
    requestHeaders: spec.requestHeaders,
    credentials: spec.credentials,
    allowMethods: methods.join(', '),
    allowHeaders: spec.allowHeaders,
    maxAge: spec.maxAge,
    exposeHeaders: spec.exposeHeaders,
  };
}
