import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigProblem } from './errors.js';
import { configVersion, type LoadedConfig } from './load.js';
import type { LogLevel, RawRoute, RawUpstream } from './schema.js';
import { ipSet, type IpSet } from '../lib/ip.js';
import { compilePattern, type PathPattern } from '../routing/pattern.js';
import { Router, type Routable } from '../routing/router.js';
import type { TargetOptions } from '../http/target.js';
import { IDENTITY_HEADERS, normaliseHeaderName } from '../http/headers.js';
import type { Stage } from '../pipeline/stage.js';
import { requestLimits } from '../stages/request-limits.js';
import type { Authenticator } from '../authn/authenticator.js';
import type { RemoteJwks } from '../authn/jwt/remote-jwks.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import type { IdentityHeaderNames } from '../stages/identity-headers.js';
import { compileAuth, compileRouteAuth, identityHeaderList, newRegistries, type CompiledAuth, type Registries } from './compile-auth.js';
import { compileRateLimiting, compileRouteLimits, type CompiledRateLimiting } from './compile-ratelimit.js';

/** An upstream's settings with every default applied. `key` identifies identical definitions across reloads. */
export interface UpstreamSpec {
  readonly name: string;
  readonly key: string;
  readonly targets: readonly string[];
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly connections: number;
  readonly preserveHost: boolean;
}

export interface CompiledRoute extends Routable {
  readonly name: string;
  /** Position in `routes`, for messages. */
  readonly index: number;
  readonly upstream: UpstreamSpec;
  readonly public: boolean;
  /** Authenticator names in order, empty on a public route. */
  readonly authenticate: readonly string[];
  readonly stripPrefix: string | null;
  readonly addPrefix: string | null;
  readonly maxBodyBytes: number;
  /** Accepted request media types (lower case, no parameters), or null for any. */
  readonly contentTypes: ReadonlySet<string> | null;
  /** The route's pipeline, in request order; features not configured are absent, not no-ops. */
  readonly stages: readonly Stage[];
}

export interface Limits {
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly maxUrlBytes: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
}

/** The whole gateway config, compiled once and frozen. The request path reads only this. */
export interface CompiledConfig {
  readonly file: string;
  readonly version: string;
  readonly dataDir: string;
  readonly listen: { readonly http: { readonly host: string; readonly port: number } };
  readonly admin: { readonly enabled: boolean; readonly host: string; readonly port: number; readonly tokenHash: string | null };
  readonly limits: Limits;
  readonly target: TargetOptions;
  readonly trustedProxies: IpSet;
  readonly requestIdHeader: string;
  /** Normalised (lower case, `_` → `-`) names removed from every inbound request. */
  readonly protectedHeaders: ReadonlySet<string>;
  readonly upstreams: ReadonlyMap<string, UpstreamSpec>;
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  /** Remote JWK Sets the config's authenticators use; started when the config goes live. */
  readonly remoteKeySets: readonly RemoteJwks[];
  readonly identityHeaders: IdentityHeaderNames;
  /** The API key store, cache and usage tracker, when configured; started when the config goes live. */
  readonly apiKeys: ApiKeyBackend | null;
  readonly rateLimiting: CompiledRateLimiting;
  readonly routes: readonly CompiledRoute[];
  readonly router: Router<CompiledRoute>;
  readonly audit: { readonly file: string; readonly maxQueueBytes: number };
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
}

/** Documented defaults; docs/configuration.md lists the same values. */
export const DEFAULTS = Object.freeze({
  httpPort: 8080,
  httpHost: '0.0.0.0',
  adminPort: 9901,
  adminHost: '127.0.0.1',
  maxHeaderBytes: 16384,
  maxHeaderCount: 100,
  maxUrlBytes: 8192,
  maxBodyBytes: 1048576,
  headersTimeoutMs: 10000,
  requestTimeoutMs: 30000,
  keepAliveTimeoutMs: 5000,
  maxConnections: 10000,
  upstreamTimeoutMs: 30000,
  upstreamConnectTimeoutMs: 5000,
  upstreamBodyTimeoutMs: 30000,
  upstreamKeepAliveTimeoutMs: 4000,
  upstreamConnections: 128,
  auditFile: 'audit/audit.log',
  auditMaxQueueBytes: 8 * 1024 * 1024,
  drainTimeoutMs: 10000,
});

const LOOPBACK = ipSet(['127.0.0.0/8', '::1/128']);

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || (isIP(host) !== 0 && LOOPBACK.has(host));
}

/**
 * Turns a validated config into frozen runtime objects, applying defaults once. Semantic problems
 * (unknown upstreams, overlapping routes, routes without a policy, bad CIDRs) are collected and
 * thrown together as a ConfigError, each with its location.
 */
export function compileConfig(
  loaded: LoadedConfig,
  registries: Registries = newRegistries(),
): CompiledConfig {
  const { raw } = loaded;
  const problems: ConfigProblem[] = [];
  const limits = raw.limits ?? {};
  const paths = raw.paths ?? {};
  const target: TargetOptions = Object.freeze({
    mergeSlashes: paths.mergeSlashes ?? true,
    allowSemicolon: paths.allowSemicolon ?? false,
    maxUrlBytes: limits.maxUrlBytes ?? DEFAULTS.maxUrlBytes,
  });

  let trustedProxies = ipSet([]);
  (raw.trustedProxies ?? []).forEach((cidr, i) => {
    try { ipSet([cidr]); } catch (err) { problems.push(loaded.problem(['trustedProxies', i], (err as Error).message)); }
  });
  if (problems.length === 0) trustedProxies = ipSet(raw.trustedProxies ?? []);

  const admin = raw.admin ?? {};
  const adminHost = admin.host ?? DEFAULTS.adminHost;
  if ((admin.enabled ?? true) && !isLoopbackHost(adminHost) && admin.tokenHash === undefined) {
    problems.push(loaded.problem(['admin', 'host'], `the admin listener on a non-loopback address (${adminHost}) requires admin.tokenHash`));
  }

  const upstreams = new Map<string, UpstreamSpec>();
  for (const [name, u] of Object.entries(raw.upstreams)) {
    upstreams.set(name, compileUpstream(name, u));
  }

  const requestIdHeader = (raw.headers?.requestId ?? 'x-request-id').toLowerCase();
  const protectedHeaders = new Set<string>([...IDENTITY_HEADERS, normaliseHeaderName(requestIdHeader)]);
  for (const h of raw.headers?.protected ?? []) protectedHeaders.add(normaliseHeaderName(h));
  const dataDir = resolve(dirname(loaded.file), raw.dataDir ?? 'data');
  const auth = compileAuth(raw, loaded, registries, dataDir, problems);
  for (const name of identityHeaderList(auth.identityHeaders)) protectedHeaders.add(normaliseHeaderName(name));
  for (const a of auth.authenticators.values()) for (const h of a.assertedHeaders) protectedHeaders.add(normaliseHeaderName(h));

  const credentialHeaders = new Set([...auth.authenticators.values()].flatMap((a) => a.credentialHeaders));
  const rateLimiting = compileRateLimiting(raw, loaded, registries.limitStores, dataDir, credentialHeaders, problems);
  const defaultMaxBody = limits.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const routes: CompiledRoute[] = [];
  const names = new Map<string, number>();
  raw.routes.forEach((r, index) => {
    const route = compileRoute(r, index, loaded, upstreams, auth, rateLimiting, target.allowSemicolon, defaultMaxBody, problems);
    const earlier = names.get(r.name);
    if (earlier !== undefined) {
      const first = loaded.problem(['routes', earlier, 'name'], '');
      problems.push(loaded.problem(['routes', index, 'name'], `duplicate route name "${r.name}" (first defined at line ${first.line})`));
    } else names.set(r.name, index);
    if (route !== null) routes.push(route);
  });
  problems.push(...findConflicts(routes, loaded));
  if (problems.length > 0) throw new ConfigError(problems);

  const listenHttp = raw.listen?.http ?? {};
  return deepFreeze({
    file: loaded.file,
    version: configVersion(loaded),
    dataDir,
    listen: { http: { host: listenHttp.host ?? DEFAULTS.httpHost, port: listenHttp.port ?? DEFAULTS.httpPort } },
    admin: { enabled: admin.enabled ?? true, host: adminHost, port: admin.port ?? DEFAULTS.adminPort, tokenHash: admin.tokenHash?.slice('sha256:'.length) ?? null },
    limits: {
      maxHeaderBytes: limits.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
      maxHeaderCount: limits.maxHeaderCount ?? DEFAULTS.maxHeaderCount,
      maxUrlBytes: target.maxUrlBytes,
      maxBodyBytes: defaultMaxBody,
      headersTimeoutMs: limits.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
      requestTimeoutMs: limits.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      keepAliveTimeoutMs: limits.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
      maxConnections: limits.maxConnections ?? DEFAULTS.maxConnections,
    },
    target,
    trustedProxies,
    requestIdHeader,
    protectedHeaders,
    upstreams,
    authenticators: auth.authenticators,
    remoteKeySets: auth.remoteKeySets,
    identityHeaders: auth.identityHeaders,
    apiKeys: auth.apiKeys,
    rateLimiting,
    routes,
    router: new Router(routes),
    audit: { file: raw.audit?.file ?? DEFAULTS.auditFile, maxQueueBytes: raw.audit?.maxQueueBytes ?? DEFAULTS.auditMaxQueueBytes },
    logLevel: raw.log?.level ?? 'info',
    drainTimeoutMs: raw.shutdown?.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
  });
}

function compileUpstream(name: string, u: RawUpstream): UpstreamSpec {
  const spec = {
    name,
    targets: u.targets.map((t) => t.replace(/\/$/, '')),
    timeoutMs: u.timeoutMs ?? DEFAULTS.upstreamTimeoutMs,
    connectTimeoutMs: u.connectTimeoutMs ?? DEFAULTS.upstreamConnectTimeoutMs,
    bodyTimeoutMs: u.bodyTimeoutMs ?? DEFAULTS.upstreamBodyTimeoutMs,
    keepAliveTimeoutMs: u.keepAliveTimeoutMs ?? DEFAULTS.upstreamKeepAliveTimeoutMs,
    connections: u.connections ?? DEFAULTS.upstreamConnections,
    preserveHost: u.preserveHost ?? false,
  };
  return { ...spec, key: JSON.stringify(spec) };
}

function compileRoute(
  r: RawRoute, index: number, loaded: LoadedConfig, upstreams: ReadonlyMap<string, UpstreamSpec>, auth: CompiledAuth, rateLimiting: CompiledRateLimiting,
  allowSemicolon: boolean, defaultMaxBody: number, problems: ConfigProblem[],
): CompiledRoute | null {
  const at = (...path: (string | number)[]) => ['routes', index, ...path];
  let pattern: PathPattern | null = null;
  try { pattern = compilePattern(r.match.path, allowSemicolon); } catch (err) { problems.push(loaded.problem(at('match', 'path'), (err as Error).message)); }
  const upstream = upstreams.get(r.upstream);
  if (upstream === undefined) {
    problems.push(loaded.problem(at('upstream'), `unknown upstream "${r.upstream}" (defined: ${[...upstreams.keys()].join(', ') || 'none'})`));
  }
  const authStages = compileRouteAuth(r, at, pattern, auth, loaded, problems);
  const limitStages = compileRouteLimits(r, at, rateLimiting, loaded, problems);
  const rewrite = r.rewrite ?? {};
  if (rewrite.stripPrefix !== undefined && pattern !== null && !patternHasPrefix(pattern, rewrite.stripPrefix)) {
    problems.push(loaded.problem(at('rewrite', 'stripPrefix'), `"${rewrite.stripPrefix}" is not a literal prefix of the path pattern "${r.match.path}"`));
  }
  if (pattern === null || upstream === undefined) return null;
  const stripPrefix = rewrite.stripPrefix === undefined || rewrite.stripPrefix === '/' ? null : rewrite.stripPrefix.replace(/\/$/, '');
  const addPrefix = rewrite.addPrefix === undefined || rewrite.addPrefix === '/' ? null : rewrite.addPrefix.replace(/\/$/, '');
  const maxBodyBytes = r.limits?.maxBodyBytes ?? defaultMaxBody;
  const contentTypes = r.limits?.contentTypes === undefined ? null : new Set(r.limits.contentTypes);
  return {
    name: r.name,
    index,
    pattern,
    methods: r.match.methods === undefined ? null : new Set(r.match.methods),
    host: r.match.host?.toLowerCase() ?? null,
    upstream,
    public: r.public === true,
    authenticate: r.public === true ? [] : r.authenticate ?? [],
    stripPrefix,
    addPrefix,
    maxBodyBytes,
    contentTypes,
    // Request limits, limits by address, authentication, limits by identity, authorization, identity headers.
    stages: [
      requestLimits(maxBodyBytes, contentTypes),
      ...(limitStages.before === null ? [] : [limitStages.before]),
      ...authStages.slice(0, 1).map((authenticate) => rateLimiting.guard?.wrap(authenticate) ?? authenticate),
      ...(limitStages.after === null ? [] : [limitStages.after]),
      ...authStages.slice(1),
    ],
  };
}

/** A strip prefix must cover whole literal segments of the pattern, so every matched path has it. */
function patternHasPrefix(pattern: PathPattern, prefix: string): boolean {
  const parts = prefix.replace(/\/$/, '').split('/').slice(1);
  return parts.every((p, i) => {
    const s = pattern.segments[i];
    return s !== undefined && s.kind === 'literal' && s.value === p;
  });
}

/** Routes that could take the same request with equal specificity: same shape, same host, overlapping methods. */
function findConflicts(routes: readonly CompiledRoute[], loaded: LoadedConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const byShape = new Map<string, CompiledRoute[]>();
  for (const route of routes) {
    const key = `${route.host ?? ''} ${route.pattern.shape}`;
    const group = byShape.get(key) ?? [];
    for (const other of group) {
      const overlap = route.methods === null || other.methods === null || [...route.methods].some((m) => other.methods?.has(m) === true);
      if (!overlap) continue;
      const first = loaded.problem(['routes', other.index, 'match'], '');
      problems.push(loaded.problem(['routes', route.index, 'match'],
        `route "${route.name}" overlaps route "${other.name}" (${first.file}:${first.line}) with equal specificity: both match ${route.pattern.shape}` +
        `${route.host === null ? '' : ` on ${route.host}`}; make one more specific or split their methods`));
    }
    group.push(route);
    byShape.set(key, group);
  }
  return problems;
}

/**
 * Freezes the plain data of a compiled config: objects, arrays, maps and sets. Class instances
 * (authenticators with their caches, remote key sets) own their state and are left as they are;
 * the router is frozen shallowly.
 */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof Map || value instanceof Set) {
    for (const v of value.values()) deepFreeze(v);
    return Object.freeze(value);
  }
  if (value instanceof Router) return Object.freeze(value);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}
