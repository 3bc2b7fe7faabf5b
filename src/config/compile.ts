import { compileAudit, type CompiledAudit } from './compile-audit.js';
import { isIP } from 'node:net';
import { ConfigError, type ConfigProblem } from './errors.js';
import { configVersion, dataDirOf, type LoadedConfig } from './load.js';
import { unknownName } from './suggest.js';
import type { LogLevel, RawRoute, RawUpstream } from './schema.js';
import { cidrProblem, ipSet, type IpSet } from '../lib/ip.js';
import { compilePattern, type PathPattern } from '../routing/pattern.js';
import { Router } from '../routing/router.js';
import type { TargetOptions } from '../http/target.js';
import { IDENTITY_HEADERS, normaliseHeaderName, type HeaderPolicy } from '../http/headers.js';
import { isProxyAsserted, METHOD_OVERRIDE_HEADERS } from '../http/header-families.js';
import type { Route, Stage } from '../pipeline/exchange.js';
import { routeStages } from '../pipeline/request-path.js';
import { forwardStage } from '../proxy/forward.js';
import { authenticateStage } from '../authn/authenticate-stage.js';
import type { UpstreamRequestSettings } from '../proxy/upstream-request.js';
import { requestLimits } from '../stages/request-limits.js';
import { validateStage } from '../stages/validate.js';
import { compileValidate, contractContentTypes } from './compile-validate.js';
import type { RequestContract } from '../validation/contract.js';
import { sessionAccessToken } from '../stages/session-access-token.js';
import { compileIpRules, ipRulesStage, type CountrySource } from '../stages/ip-rules.js';
import { compileGeo } from './compile-geo.js';
import type { CountryDatabase } from '../lib/country-database.js';
import type { Authenticator } from '../authn/authenticator.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import type { IdentityHeaderNames } from '../stages/identity-headers.js';
import { compileAuth, compileRouteAuth, identityHeaderList, RESERVED_HEADERS, type CompiledAuth, type RouteAuth } from './compile-auth.js';
import { ASSERTION_DEFAULTS, compileIdentityAssertion } from '../assertion/identity-assertion-section.js';
import type { AssertionSigner } from '../assertion/assertion-signer.js';
import { identityAssertion } from '../stages/identity-assertion.js';
import { servedEndpointOf } from '../stages/served/served-endpoints.js';
import { assertedHeaderRules } from './asserted-header-rules.js';
import { Upstream } from '../proxy/upstream.js';
import type { UpstreamSpec } from '../proxy/upstream-spec.js';
import type { UpstreamTls } from '../proxy/upstream-tls.js';
import type { OAuthServices } from '../authn/oauth/oauth-services.js';
import { NO_RESOURCES, type Resource, type ResourceCatalog } from '../lifecycle/resources.js';
import { Tracer } from '../observability/tracing/tracer.js';
import { compileTracing } from './compile-tracing.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { compileRateLimiting, compileRouteLimits, publicEndpointLimits, type CompiledRateLimiting } from './compile-ratelimit.js';
import { compileUpstreamTls, DEFAULT_UPSTREAM_TLS_MIN_VERSION } from './compile-upstream-tls.js';
import type { HostStateClient } from '../workers/host-state-client.js';
import { compileServerTls, type ServerTls } from '../tls/server-tls.js';
import { compileHttp2, type Http2Settings } from './compile-http2.js';
import type { CertificateInUse } from '../tls/certificate-expiry.js';
import { upstreamCertificates } from '../proxy/upstream-tls-report.js';
import { compileResponseHeaders } from './compile-response-headers.js';
import { compileCorsPolicies, corsForRoute, type CorsPolicySpec } from './compile-cors.js';
import type { SecurityHeaderSet } from '../http/security-headers.js';
import { corsPreflight } from '../stages/cors.js';
import { certificateBoundToken } from '../authn/mtls/certificate-bound-token.js';
import { compileUpstreamCredentials } from './compile-upstream-auth.js';
import { upstreamCredential } from '../proxy/upstream-credential.js';
import type { UpstreamTokenSource } from '../proxy/upstream-token.js';
import type { HttpMode } from './schema-listen.js';
import { compileRouteRules, type RouteRules, type RuleContext } from './compile-rules.js';


/** Headers that frame or route a request: the gateway manages them, so no option may remove them. */
const MANAGED_HEADERS: ReadonlySet<string> = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect',
]);
export type { UpstreamSpec };

/** A compiled route: see Route in pipeline/exchange.ts. */
export type CompiledRoute = Route;

export interface Limits {
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly maxUrlBytes: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  readonly bodyIdleTimeoutMs: number;
  readonly writeIdleTimeoutMs: number;
  readonly minBodyBytesPerSecond: number;
  readonly bufferBodyBytes: number;
}

/** The whole gateway config, compiled once and frozen. The request path reads only this. */
export interface CompiledConfig {
  readonly file: string;
  readonly version: string;
  readonly dataDir: string;
  /** Where the proxy listeners bind and how they serve (restart-only). `https` is null without an HTTPS listener. */
  readonly listen: { readonly http: PlainListen; readonly https: HttpsListen | null };
  /** The HTTPS listener's certificates and TLS settings (live: swapped into the running listener on reload). */
  readonly tls: ServerTls | null;
  /**
   * Every certificate the config serves, trusts or presents (the HTTPS listener's, client CAs,
   * upstream CAs and client certificates): `portcullis_certificate_expiry_timestamp_seconds` and the
   * expiry warnings read it.
   */
  readonly certificates: readonly CertificateInUse[];
  /** Warn about certificates of `certificates` that expire within this many days (`tls.expiryWarningDays`). */
  readonly expiryWarningDays: number;
  /** Whether and how often the files the config read are watched for a change that reloads it. */
  readonly reload: ReloadSettings;
  /** Every file the config read (certificates, keys, CA bundles, CRLs, key sets), absolute paths, sorted: what the reload watch polls. */
  readonly files: readonly string[];
  readonly admin: AdminSettings;
  readonly limits: Limits;
  readonly target: TargetOptions;
  readonly trustedProxies: IpSet;
  /** The top-level `ipRules` stage (an edge stage), or null. */
  readonly ipRules: Stage | null;
  /**
   * The country database (`geoDatabase`, or `audit.anomalies.geoDatabase`) that country rules and
   * the impossibleTravel detector look addresses up in; null without one. A resource, reused
   * across reloads while the file is unchanged.
   */
  readonly geo: CountryDatabase | null;
  readonly requestIdHeader: string;
  /** How inbound headers are cleaned: identity, proxy-asserted, credential and decision headers. */
  readonly headerPolicy: HeaderPolicy;
  /**
   * Query parameters that carry credentials (`access_token`, RFC 6750 §2.3, and every API key
   * `queryParam`), lower case: removed from the query sent upstream on every route.
   */
  readonly credentialQueryParams: ReadonlySet<string>;
  /** `credentialQueryParams` and `_method` (a method override): removed on routes without `allowMethodOverride`. */
  readonly removedQueryParams: ReadonlySet<string>;
  readonly upstreams: ReadonlyMap<string, UpstreamSpec>;
  /** The upstream pools by upstream name (resources: opened when the config goes live). */
  readonly upstreamPools: ReadonlyMap<string, Upstream>;
  /** Every long-lived resource this config uses; the gateway starts them before the config goes live. */
  readonly resources: readonly Resource[];
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  readonly identityHeaders: IdentityHeaderNames;
  /** The API key store, cache and usage tracker, when configured; started when the config goes live. */
  readonly apiKeys: ApiKeyBackend | null;
  /** Token digests, revocations and the revocation webhook's settings (the `oauth` section). */
  readonly oauth: OAuthServices;
  /** Signs the identity assertions of routes with assertIdentity and serves its key set; null without `identityAssertion`. */
  readonly identityAssertion: AssertionSigner | null;
  readonly rateLimiting: CompiledRateLimiting;
  readonly routes: readonly CompiledRoute[];
  readonly router: Router<CompiledRoute>;
  /** The top-level security response headers, for responses sent before a route is known. */
  readonly securityHeaders: SecurityHeaderSet;
  readonly audit: CompiledAudit;
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
  /** OpenTelemetry tracing (`tracing`), a resource among `resources`; null when the section is absent (off). */
  readonly tracer: Tracer | null;
}

/** A listener's bound address. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The plain listener: its address, and whether it serves the routes, redirects to HTTPS, or is absent. */
export interface PlainListen extends ListenAddress {
  readonly mode: HttpMode;
}

/** The HTTPS listener's address, protocols and connection settings. */
export interface HttpsListen extends ListenAddress {
  /** HTTP/2 offered by ALPN beside HTTP/1.1, with its session limits; null: HTTP/1.1 only. */
  readonly http2: Http2Settings | null;
  readonly handshakeTimeoutMs: number;
}

/** `reload`: file watching. */
export interface ReloadSettings {
  readonly watchFiles: boolean;
  readonly watchIntervalMs: number;
}

/** The admin listener's settings; fixed at start (a reload does not change them). */
export interface AdminSettings {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
  /** Hex SHA-256 of the admin token; null turns every admin operation off. */
  readonly tokenHash: string | null;
  /** Configured DNS names (lower case, no trailing dot) accepted in Host, besides the loopback names. */
  readonly hosts: readonly string[];
  /** Browser origins (lower case) whose requests are accepted; every other Origin is refused. */
  readonly origins: readonly string[];
}

/** Documented defaults; docs/configuration.md lists the same values. */
export const DEFAULTS = Object.freeze({
  httpPort: 8080,
  httpHost: '0.0.0.0',
  httpsPort: 8443,
  httpsHost: '0.0.0.0',
  httpMode: 'serve',
  handshakeTimeoutMs: 10000,
  expiryWarningDays: 14,
  watchFiles: true,
  watchIntervalMs: 2000,
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
  upstreamQueueTimeoutMs: 1000,
  upstreamMaxQueued: 256,
  upstreamTlsMinVersion: DEFAULT_UPSTREAM_TLS_MIN_VERSION,
  bodyIdleTimeoutMs: 10000,
  writeIdleTimeoutMs: 10000,
  minBodyBytesPerSecond: 0,
  bufferBodyBytes: 16384,
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
/**
 * What a compile may use besides the config: the running resources an equal definition reuses
 * (none for `check` and `explain`), and the clock components read.
 */
export interface CompileContext {
  readonly resources?: ResourceCatalog;
  readonly clock?: Clock;
  /**
   * In a worker of `start --workers`, the primary that holds the host's in-process limit, quota and
   * brute-force state for every worker; absent or null, this process holds its own.
   */
  readonly hostState?: HostStateClient | null;
  /** Compiled for `start --workers` (in the primary as in each worker): state in one process's memory is not the host's. */
  readonly workers?: boolean;
}

export function compileConfig(
  loaded: LoadedConfig,
  context: CompileContext = {},
): CompiledConfig {
  const catalog = context.resources ?? NO_RESOURCES;
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
    const problem = cidrProblem(cidr);
    if (problem !== null) problems.push(loaded.problem(['trustedProxies', i], `${problem}: write an address or CIDR like 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`));
    // Every peer a proxy: any client would choose its own address, request id, scheme and trace.
    else if (/\/0*0$/.test(cidr)) problems.push(loaded.problem(['trustedProxies', i], `"${cidr}" trusts every address, so any client could set X-Forwarded-For, X-Forwarded-Proto, X-Request-Id and trace context as it likes: list the load balancers' own addresses or ranges, like 10.0.0.0/8`));
  });
  if (problems.length === 0) trustedProxies = ipSet(raw.trustedProxies ?? []);
  const geo = compileGeo(raw, loaded, catalog, problems);
  const countries: CountrySource = geo;
  const gatewayIpRules = compileIpRules(raw.ipRules, (...path) => ['ipRules', ...path], loaded, problems, countries);

  const admin = raw.admin ?? {};
  const adminHost = admin.host ?? DEFAULTS.adminHost;
  if ((admin.enabled ?? true) && !isLoopbackHost(adminHost) && admin.tokenHash === undefined) {
    problems.push(loaded.problem(['admin', 'host'], `the admin listener on a non-loopback address (${adminHost}) requires admin.tokenHash`));
  }

  const upstreams = new Map<string, UpstreamSpec>();
  const nowMs = (context.clock ?? systemClock).now();
  for (const [name, u] of Object.entries(raw.upstreams)) {
    upstreams.set(name, compileUpstream(name, u, compileUpstreamTls(name, u, loaded, nowMs, problems)));
  }
  const credentials = compileUpstreamCredentials(raw.upstreams, loaded, catalog, problems);

  const requestIdHeader = (raw.headers?.requestId ?? 'x-request-id').toLowerCase();
  const protectedHeaders = new Set<string>([...IDENTITY_HEADERS, normaliseHeaderName(requestIdHeader)]);
  (raw.headers?.protected ?? []).forEach((h, i) => {
    const name = normaliseHeaderName(h);
    if (MANAGED_HEADERS.has(name)) problems.push(loaded.problem(['headers', 'protected', i], `${name} frames or routes the request, and the gateway sets it itself: it cannot be removed; leave it out of headers.protected`));
    else protectedHeaders.add(name);
  });
  const dataDir = dataDirOf(loaded.file, raw.dataDir);
  const auth = compileAuth(raw, loaded, { resources: catalog, clock: context.clock ?? systemClock, hostState: context.hostState ?? null, workers: context.workers === true || (context.hostState ?? null) !== null }, dataDir, problems);
  for (const name of identityHeaderList(auth.identityHeaders)) protectedHeaders.add(normaliseHeaderName(name));
  const authenticators = [...auth.authenticators.values()];
  for (const a of authenticators) for (const h of a.assertedHeaders.keys()) protectedHeaders.add(normaliseHeaderName(h));

  const credentialHeaders = new Set(authenticators.flatMap((a) => a.credentialHeaders));
  const assertionResources: Resource[] = [];
  const signer = compileIdentityAssertion(raw.identityAssertion, loaded, dataDir, context.clock ?? systemClock, (key, kind, create) => {
    const resource = catalog.find(key, kind) ?? create();
    assertionResources.push(resource);
    return resource;
  }, problems);
  // A header an assertion travels in is the gateway's to write: a client's copy is removed on every route.
  // Names the gateway writes otherwise or reads credentials from; `headers.protected` may list the assertion header too.
  const written = [...IDENTITY_HEADERS, requestIdHeader, ...identityHeaderList(auth.identityHeaders), ...authenticators.flatMap((a) => [...a.assertedHeaders.keys()]), ...credentialHeaders];
  for (const name of assertionHeaders(raw.routes, loaded, new Set(written.map(normaliseHeaderName)), problems)) protectedHeaders.add(name);
  const limitRules = assertedHeaderRules(authenticators, auth.identityHeaders, requestIdHeader, protectedHeaders, credentialHeaders);
  const rateLimiting = compileRateLimiting(raw, loaded, { resources: catalog, clock: context.clock ?? systemClock, hostState: context.hostState ?? null }, dataDir, limitRules, problems);
  const ruleContext: RuleContext = { headerProblem: ruleHeaderProblem(protectedHeaders, credentialHeaders), clock: context.clock ?? systemClock };
  // Attribute rules and request contracts first: the headers they read are decision headers of the header policy below.
  const routePatterns = raw.routes.map((r): PathPattern | null => {
    try { return compilePattern(r.match.path, target.allowSemicolon); } catch { return null; /* reported with the route */ }
  });
  const routeRules = raw.routes.map((r, index) => compileRouteRules(r, index, routePatterns[index] ?? null, ruleContext, loaded, problems));
  const routeContracts = raw.routes.map((r, index) => {
    const pattern = routePatterns[index] ?? null;
    if (pattern === null) return null;
    const methods = r.match.methods === undefined ? null : new Set(r.match.methods);
    return compileValidate(r, (...path) => ['routes', index, ...path], loaded, problems, { pattern, methods, allowSemicolon: target.allowSemicolon });
  });
  const fromTrustedProxies = new Set<string>();
  (raw.headers?.fromTrustedProxies ?? []).forEach((h, i) => {
    const name = normaliseHeaderName(h);
    if (protectedHeaders.has(name) || credentialHeaders.has(name)) {
      problems.push(loaded.problem(['headers', 'fromTrustedProxies', i], `${h} is asserted by the gateway or carries credentials; it is never taken from a client`));
    } else if (!isProxyAsserted(name)) {
      problems.push(loaded.problem(['headers', 'fromTrustedProxies', i], `${h} is not a proxy-asserted header, so it is forwarded from every client already (see docs/security.md for the list)`));
    }
    fromTrustedProxies.add(name);
  });
  const decided = decisionHeaders(raw, new Set([
    ...rateLimiting.decisionHeaders,
    ...routeRules.flatMap((rules) => rules?.headers ?? []),
    ...routeContracts.flatMap((contract) => contract?.headers.map(normaliseHeaderName) ?? []),
  ]));
  const headerPolicy: HeaderPolicy = {
    protectedNames: protectedHeaders,
    requestIdHeader,
    decisionHeaders: decided,
    // Authorization is removed per route (forwardAuthorization); API key headers on every route.
    credentialHeaders: new Set([...credentialHeaders].filter((h) => h !== 'authorization').map(normaliseHeaderName)),
    strippedAuthorizationSchemes: new Set(authenticators.flatMap((a) => a.authorizationScheme ?? [])),
    fromTrustedProxies,
    allowUnderscores: raw.headers?.allowUnderscores ?? false,
  };
  const credentialQueryParams = new Set(['access_token', ...authenticators.flatMap((a) => a.queryParam?.toLowerCase() ?? [])]);
  const gatewayLimits: Limits = {
    maxHeaderBytes: limits.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
    maxHeaderCount: limits.maxHeaderCount ?? DEFAULTS.maxHeaderCount,
    maxUrlBytes: target.maxUrlBytes,
    maxBodyBytes: limits.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    headersTimeoutMs: limits.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
    requestTimeoutMs: limits.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    keepAliveTimeoutMs: limits.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
    maxConnections: limits.maxConnections ?? DEFAULTS.maxConnections,
    bodyIdleTimeoutMs: limits.bodyIdleTimeoutMs ?? DEFAULTS.bodyIdleTimeoutMs,
    writeIdleTimeoutMs: limits.writeIdleTimeoutMs ?? DEFAULTS.writeIdleTimeoutMs,
    minBodyBytesPerSecond: limits.minBodyBytesPerSecond ?? DEFAULTS.minBodyBytesPerSecond,
    bufferBodyBytes: limits.bufferBodyBytes ?? DEFAULTS.bufferBodyBytes,
  };
  const upstreamPools = new Map<string, Upstream>();
  const byKey = new Map<string, Upstream>();
  for (const [name, spec] of upstreams) {
    const key = Upstream.keyOf(spec);
    const pool = byKey.get(key) ?? catalog.find(key, Upstream) ?? new Upstream(spec);
    byKey.set(key, pool);
    upstreamPools.set(name, pool);
  }
  const removedQueryParams = new Set([...credentialQueryParams, '_method']);
  const forwarding: UpstreamRequestSettings = { requestIdHeader, credentialQueryParams, removedQueryParams };
  const securityHeaders = compileResponseHeaders(raw.responseHeaders, undefined, ['responseHeaders'], loaded, problems);
  const edge: RouteEdge = { securityHeaders, corsPolicies: compileCorsPolicies(raw.cors, raw.headers?.requestId ?? 'X-Request-Id', loaded, problems), responseHeaders: raw.responseHeaders };
  const routes: CompiledRoute[] = [];
  const names = new Map<string, number>();
  raw.routes.forEach((r, index) => {
    const route = compileRoute(r, index, loaded, upstreamPools, credentials, forwarding, auth, rateLimiting, edge, { oauth: auth.oauth, identityAssertion: signer, configured: raw.identityAssertion !== undefined, countries, rules: routeRules[index] ?? null, contract: routeContracts[index] ?? null }, target.allowSemicolon, gatewayLimits, problems);
    const earlier = names.get(r.name);
    if (earlier !== undefined) {
      const first = loaded.problem(['routes', earlier, 'name'], '');
      problems.push(loaded.problem(['routes', index, 'name'], `duplicate route name "${r.name}" (first defined at line ${first.line})`));
    } else names.set(r.name, index);
    if (route !== null) routes.push(route);
  });
  const endpointLimits = publicEndpointLimits(rateLimiting);
  for (const a of auth.authenticators.values()) {
    routes.push(...endpointRoutes(a, edge.securityHeaders, gatewayLimits, endpointLimits));
  }
  problems.push(...findConflicts(routes, loaded));
  const audit = compileAudit(raw, loaded, problems);
  const drainTimeoutMs = raw.shutdown?.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
  const compiledTracer = compileTracing(raw.tracing, drainTimeoutMs, loaded, problems);
  // A reload with the same tracing settings keeps the running tracer (its queue, its exporter).
  const tracer = compiledTracer === null ? null : catalog.find(compiledTracer.key, Tracer) ?? compiledTracer;
  const tls = compileServerTls(raw.listen?.https, loaded, problems, new Date((context.clock ?? systemClock).now()));
  const listenHttp = raw.listen?.http ?? {};
  const listenHttps = raw.listen?.https;
  const httpMode = listenHttp.mode ?? DEFAULTS.httpMode;
  if (httpMode !== 'serve' && listenHttps === undefined) {
    problems.push(loaded.problem(['listen', 'http', 'mode'], `${httpMode} needs an HTTPS listener to ${httpMode === 'off' ? 'serve instead' : 'redirect to'}: configure listen.https (cert and key), or use mode: serve`));
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return deepFreeze({
    file: loaded.file,
    version: configVersion(loaded),
    dataDir,
    listen: {
      http: { host: listenHttp.host ?? DEFAULTS.httpHost, port: listenHttp.port ?? DEFAULTS.httpPort, mode: httpMode },
      https: listenHttps === undefined ? null : {
        host: listenHttps.host ?? DEFAULTS.httpsHost, port: listenHttps.port ?? DEFAULTS.httpsPort,
        http2: compileHttp2(listenHttps.http2), handshakeTimeoutMs: listenHttps.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      },
    },
    tls,
    certificates: [...(tls?.certificates ?? []), ...(tls?.clientAuth?.certificates ?? []), ...upstreamCertificates(upstreams)],
    expiryWarningDays: raw.tls?.expiryWarningDays ?? DEFAULTS.expiryWarningDays,
    reload: { watchFiles: raw.reload?.watchFiles ?? DEFAULTS.watchFiles, watchIntervalMs: raw.reload?.watchIntervalMs ?? DEFAULTS.watchIntervalMs },
    files: loaded.files.list().map((f) => f.path),
    admin: {
      enabled: admin.enabled ?? true,
      host: adminHost,
      port: admin.port ?? DEFAULTS.adminPort,
      tokenHash: admin.tokenHash?.slice('sha256:'.length) ?? null,
      hosts: (admin.hosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')),
      origins: (admin.origins ?? []).map((o) => o.toLowerCase()),
    },
    limits: gatewayLimits,
    target,
    trustedProxies,
    ipRules: gatewayIpRules === null ? null : ipRulesStage(gatewayIpRules, 'ipRules'),
    geo: geo.database,
    requestIdHeader,
    headerPolicy,
    credentialQueryParams,
    removedQueryParams,
    upstreams,
    upstreamPools,
    resources: [...byKey.values(), ...new Set(credentials.values()), ...auth.resources, ...rateLimiting.resources, ...assertionResources, ...(geo.database === null ? [] : [geo.database]), ...(tracer === null ? [] : [tracer])],
    authenticators: auth.authenticators,
    identityHeaders: auth.identityHeaders,
    apiKeys: auth.apiKeys,
    oauth: auth.oauth,
    identityAssertion: signer,
    rateLimiting,
    routes,
    router: new Router(routes),
    securityHeaders,
    audit,
    logLevel: raw.log?.level ?? 'info',
    drainTimeoutMs,
    tracer,
  });
}

/** An upstream with its defaults applied; its key covers every setting and the TLS files' contents (by digest). */
function compileUpstream(name: string, u: RawUpstream, tls: UpstreamTls | null): UpstreamSpec {
  const spec = {
    name,
    targets: u.targets.map((t) => t.replace(/\/$/, '')),
    timeoutMs: u.timeoutMs ?? DEFAULTS.upstreamTimeoutMs,
    connectTimeoutMs: u.connectTimeoutMs ?? DEFAULTS.upstreamConnectTimeoutMs,
    bodyTimeoutMs: u.bodyTimeoutMs ?? DEFAULTS.upstreamBodyTimeoutMs,
    keepAliveTimeoutMs: u.keepAliveTimeoutMs ?? DEFAULTS.upstreamKeepAliveTimeoutMs,
    connections: u.connections ?? DEFAULTS.upstreamConnections,
    queueTimeoutMs: u.queueTimeoutMs ?? DEFAULTS.upstreamQueueTimeoutMs,
    maxQueued: u.maxQueued ?? DEFAULTS.upstreamMaxQueued,
    preserveHost: u.preserveHost ?? false,
    tls,
  };
  return { ...spec, key: JSON.stringify(spec) };
}

/** What routes take from the top-level `responseHeaders` and `cors`. */
interface RouteEdge {
  readonly securityHeaders: SecurityHeaderSet;
  readonly corsPolicies: ReadonlyMap<string, CorsPolicySpec>;
  readonly responseHeaders: LoadedConfig['raw']['responseHeaders'];
}

/** What routes with `serve` or `assertIdentity` use: the config's shared OAuth services and the assertion signer. */
interface RouteServices {
  readonly oauth: OAuthServices;
  readonly identityAssertion: AssertionSigner | null;
  /** Whether the config has an identityAssertion section (it may have had problems, then the signer is null). */
  readonly configured: boolean;
  /** The country database route country rules look addresses up in. */
  readonly countries: CountrySource;
  /** The route's attribute rules (`when`), compiled; null without them. */
  readonly rules: RouteRules | null;
  /** The route's request contract (`validate`), compiled; null without one. */
  readonly contract: RequestContract | null;
}

function compileRoute(
  r: RawRoute, index: number, loaded: LoadedConfig, pools: ReadonlyMap<string, Upstream>, credentials: ReadonlyMap<string, UpstreamTokenSource>,
  forwarding: UpstreamRequestSettings, auth: CompiledAuth,
  rateLimiting: CompiledRateLimiting, edge: RouteEdge, services: RouteServices, allowSemicolon: boolean, defaults: Limits, problems: ConfigProblem[],
): CompiledRoute | null {
  const at = (...path: (string | number)[]) => ['routes', index, ...path];
  let pattern: PathPattern | null = null;
  try { pattern = compilePattern(r.match.path, allowSemicolon); } catch (err) { problems.push(loaded.problem(at('match', 'path'), (err as Error).message)); }
  let pool: Upstream | undefined;
  if (r.upstream !== undefined && r.serve !== undefined) {
    problems.push(loaded.problem(at('serve'), `a route either forwards to an upstream or is served by the gateway: remove upstream (${r.upstream}) or serve (${r.serve})`));
  } else if (r.upstream === undefined && r.serve === undefined) {
    problems.push(loaded.problem(at('name'), `the route "${r.name}" says nowhere to send requests: add upstream: <name> (one of ${[...pools.keys()].join(', ') || 'the upstreams you define'}), or serve: <endpoint> for an answer the gateway gives itself`));
  } else if (r.upstream !== undefined) {
    pool = pools.get(r.upstream);
    if (pool === undefined) problems.push(loaded.problem(at('upstream'), unknownName('upstream', r.upstream, [...pools.keys()])));
  }
  const served = compileServed(r, at, loaded, services, problems);
  const routeAuth = compileRouteAuth(r, at, pattern, auth, loaded, problems);
  const credential = (r.upstream === undefined ? undefined : credentials.get(r.upstream)) ?? null;
  if (credential !== null && r.forwardAuthorization === true) {
    problems.push(loaded.problem(at('forwardAuthorization'), `upstream ${r.upstream} gets the gateway's own token (auth.clientCredentials) in Authorization, so the client's cannot be forwarded: remove forwardAuthorization, or route to an upstream without auth`));
  }
  const assertion = compileRouteAssertion(r, at, loaded, services, credential !== null, problems);
  const sessionToken = compileSessionToken(r, at, routeAuth, credential !== null, loaded, problems);
  // Bearer-token authenticators (jwt) announce themselves by their challenge scheme (RFC 6750).
  if (r.requireCertificateBoundToken === true && routeAuth !== null && !routeAuth.authenticators.some((a) => a.challenge?.startsWith('Bearer ') === true)) {
    problems.push(loaded.problem(at('requireCertificateBoundToken'), 'binds bearer tokens to client certificates, but the route authenticates with no bearer-token (jwt) authenticator; add one to authenticate, or remove this option'));
  }
  if (r.onAuthUnavailable === 'serveStale' && (routeAuth === null || !routeAuth.authenticators.some((a) => a.servesStale === true))) {
    problems.push(loaded.problem(at('onAuthUnavailable'), 'serveStale serves cached introspection answers, but the route authenticates with no introspection authenticator; add one to authenticate, or remove this option'));
  }
  if (r.requireCertificateBoundToken === true && r.public === true) {
    problems.push(loaded.problem(at('requireCertificateBoundToken'), 'a public route takes no token; remove this option or authenticate with a jwt authenticator'));
  }
  const limitStages = compileRouteLimits(r, at, rateLimiting, loaded, problems);
  const routeIpRules = compileIpRules(r.ipRules, (...path) => at('ipRules', ...path), loaded, problems, services.countries);
  // A served route without methods takes the endpoint's; listed ones were checked against them.
  const methods = r.match.methods === undefined ? (served === null ? null : new Set(served.methods)) : new Set(r.match.methods);
  const securityHeaders = r.responseHeaders === undefined ? null : compileResponseHeaders(edge.responseHeaders, r.responseHeaders, at('responseHeaders'), loaded, problems);
  const cors = corsForRoute(r.cors, methods, edge.corsPolicies, at('cors'), loaded, problems);
  const rewrite = r.rewrite ?? {};
  if (rewrite.stripPrefix !== undefined && pattern !== null && !patternHasPrefix(pattern, rewrite.stripPrefix)) {
    const literal = leadingLiterals(pattern);
    problems.push(loaded.problem(at('rewrite', 'stripPrefix'), `"${rewrite.stripPrefix}" is not a literal prefix of the path pattern "${r.match.path}": ` +
      (literal.length === 0 ? 'the pattern starts with no literal segment to strip' : `strip whole literal segments it starts with, such as /${literal.join('/')}`)));
  }
  if (pattern === null || (pool === undefined && (served === null || served.stage === null))) return null;
  const stripPrefix = rewrite.stripPrefix === undefined || rewrite.stripPrefix === '/' ? null : rewrite.stripPrefix.replace(/\/$/, '');
  const addPrefix = rewrite.addPrefix === undefined || rewrite.addPrefix === '/' ? null : rewrite.addPrefix.replace(/\/$/, '');
  const maxBodyBytes = r.limits?.maxBodyBytes ?? defaults.maxBodyBytes;
  const contract = services.contract;
  // With validate, its media types are the route's (compileValidate refuses limits.contentTypes beside it).
  const contentTypes = r.validate !== undefined ? contractContentTypes(contract) : r.limits?.contentTypes === undefined ? null : new Set(r.limits.contentTypes);
  const allowBodyOn = new Set<string>(r.limits?.allowBodyOn ?? []);
  if (r.allowMethodOverride === true && r.match.methods === undefined) {
    problems.push(loaded.problem(at('allowMethodOverride'), 'needs match.methods: an override may only name a method the route lists'));
  }
  return {
    name: r.name,
    index,
    pattern,
    methods,
    host: r.match.host?.toLowerCase() ?? null,
    upstream: pool?.spec ?? null,
    served: served?.name ?? null,
    public: r.public === true,
    authenticate: r.public === true ? [] : r.authenticate ?? [],
    onAuthUnavailable: r.onAuthUnavailable ?? 'failClosed',
    stripPrefix,
    addPrefix,
    maxBodyBytes,
    bodyIdleTimeoutMs: r.limits?.bodyIdleTimeoutMs ?? defaults.bodyIdleTimeoutMs,
    writeIdleTimeoutMs: r.limits?.writeIdleTimeoutMs ?? defaults.writeIdleTimeoutMs,
    minBodyBytesPerSecond: r.limits?.minBodyBytesPerSecond ?? defaults.minBodyBytesPerSecond,
    bufferBodyBytes: Math.min(defaults.bufferBodyBytes, maxBodyBytes),
    contentTypes,
    allowBodyOn,
    allowMethodOverride: r.allowMethodOverride === true,
    securityHeaders: securityHeaders ?? edge.securityHeaders,
    cors,
    ...(services.rules === null ? {} : { ruleNames: services.rules.names }),
    stages: routeStages({
      ipRules: routeIpRules === null ? null : ipRulesStage(routeIpRules, `route ${r.name}`),
      corsPreflight: cors === null ? null : corsPreflight(cors),
      requestLimits: requestLimits(maxBodyBytes, contentTypes, allowBodyOn),
      limitsByAddress: limitStages.before,
      bruteForceGate: routeAuth === null ? null : rateLimiting.guard?.gate() ?? null,
      authenticate: routeAuth === null ? null : authenticateStage(routeAuth.authenticators, rateLimiting.guard),
      certificateBinding: routeAuth !== null && r.requireCertificateBoundToken === true ? certificateBoundToken() : null,
      limitsByIdentity: limitStages.after,
      authorize: routeAuth?.authorize ?? null,
      validate: contract === null ? null : validateStage(contract),
      rules: services.rules?.stage ?? null,
      identityHeaders: routeAuth?.identityHeaders ?? null,
      identityAssertion: routeAuth !== null && assertion !== null ? assertion : null,
      upstreamCredential: credential === null ? sessionToken : upstreamCredential(credential),
      forward: served?.stage ?? forwardStage(pool as Upstream, forwarding, credential),
    }),
  };
}

/** The stage sending the session's access token upstream (`forwardAccessToken`), or null. */
function compileSessionToken(r: RawRoute, at: (...path: (string | number)[]) => (string | number)[], routeAuth: RouteAuth | null, upstreamAuth: boolean, loaded: LoadedConfig, problems: ConfigProblem[]): Stage | null {
  if (r.forwardAccessToken !== true) return null;
  const before = problems.length;
  if (r.forwardAuthorization === true) problems.push(loaded.problem(at('forwardAccessToken'), 'the session\'s token replaces the client\'s Authorization: remove forwardAuthorization, or this option'));
  if (upstreamAuth) problems.push(loaded.problem(at('forwardAccessToken'), `upstream ${r.upstream ?? ''} gets the gateway's own token (auth.clientCredentials) in Authorization: remove this option, or the upstream's auth`));
  if (r.serve !== undefined) problems.push(loaded.problem(at('forwardAccessToken'), `a route the gateway serves (${r.serve}) forwards nothing: remove this option`));
  if (routeAuth !== null && !routeAuth.authenticators.some((a) => a.sessionTokens === true)) {
    problems.push(loaded.problem(at('forwardAccessToken'), 'sends the access token of a browser session, but the route authenticates with no oidc authenticator: add one to authenticate, or remove this option'));
  }
  if (r.public === true) problems.push(loaded.problem(at('forwardAccessToken'), 'a public route has no session: authenticate with an oidc authenticator, or remove this option'));
  return problems.length > before ? null : sessionAccessToken();
}

/**
 * The routes of the paths an authenticator answers itself (an oidc login's callback, login,
 * logout, back-channel logout): public (the callback is where a user without a session arrives),
 * answered by the gateway, with the top-level security headers, the endpoint's request limits and
 * the global rate limits that need no identity (a flood of callbacks costs the provider a code
 * exchange each).
 * Problems with them are located at the option that defines them (an oidc redirectUri).
 */
function endpointRoutes(a: Authenticator, securityHeaders: SecurityHeaderSet, defaults: Limits, limitsByAddress: Stage | null): CompiledRoute[] {
  return (a.endpoints ?? []).map((e): CompiledRoute => {
    const maxBodyBytes = e.maxBodyBytes;
    const contentTypes = e.contentTypes === null ? null : new Set(e.contentTypes);
    const allowBodyOn = new Set<string>();
    return {
      name: `${a.name}:${e.name}`,
      index: -1,
      definedAt: ['authenticators', a.name, e.option],
      pattern: compilePattern(e.path, false),
      methods: new Set(e.methods),
      host: null,
      upstream: null,
      served: e.name,
      public: true,
      authenticate: [],
      onAuthUnavailable: 'failClosed',
      stripPrefix: null,
      addPrefix: null,
      maxBodyBytes,
      bodyIdleTimeoutMs: defaults.bodyIdleTimeoutMs,
      writeIdleTimeoutMs: defaults.writeIdleTimeoutMs,
      minBodyBytesPerSecond: defaults.minBodyBytesPerSecond,
      bufferBodyBytes: Math.min(defaults.bufferBodyBytes, maxBodyBytes),
      contentTypes,
      allowBodyOn,
      allowMethodOverride: false,
      securityHeaders,
      cors: null,
      stages: routeStages({
        corsPreflight: null,
        requestLimits: requestLimits(maxBodyBytes, contentTypes, allowBodyOn),
        limitsByAddress,
        bruteForceGate: null,
        authenticate: null,
        limitsByIdentity: null,
        authorize: null,
        identityHeaders: null,
        forward: e.stage,
      }),
    };
  });
}

/** The endpoint a route serves (`serve`), with its stage; null on a forwarding route. Problems are located under the route. */
function compileServed(r: RawRoute, at: (...path: (string | number)[]) => (string | number)[], loaded: LoadedConfig, services: RouteServices, problems: ConfigProblem[]):
  { readonly name: string; readonly methods: readonly string[]; readonly stage: Stage | null } | null {
  if (r.serve === undefined) return null;
  // The schema's enum admits only the table's names.
  const endpoint = servedEndpointOf(r.serve);
  if (endpoint === undefined) return null;
  (r.match.methods ?? []).forEach((m, i) => {
    if (!endpoint.methods.includes(m)) problems.push(loaded.problem(at('match', 'methods', i), `${r.serve} answers ${endpoint.methods.join(' and ')} only: remove ${m}, or leave match.methods out to take the endpoint's methods`));
  });
  for (const option of ['assertIdentity', 'rewrite', 'forwardAuthorization', 'allowMethodOverride'] as const) {
    if (r[option] !== undefined) problems.push(loaded.problem(at(option), `shapes what is forwarded, and a route the gateway serves (${r.serve}) forwards nothing: remove ${option}`));
  }
  const stage = endpoint.build({ oauth: services.oauth, identityAssertion: services.identityAssertion, loaded, at, problems });
  return { name: endpoint.name, methods: endpoint.methods, stage };
}

/** A route's identity assertion stage (`assertIdentity`), or null when it has none or has problems. */
function compileRouteAssertion(
  r: RawRoute, at: (...path: (string | number)[]) => (string | number)[], loaded: LoadedConfig, services: RouteServices, upstreamAuth: boolean, problems: ConfigProblem[],
): Stage | null {
  const option = r.assertIdentity;
  if (option === undefined || r.serve !== undefined) return null;
  const before = problems.length;
  const spec = option === true ? {} : option;
  const header = normaliseHeaderName(spec.header ?? ASSERTION_DEFAULTS.header);
  if (r.public === true) {
    problems.push(loaded.problem(at('assertIdentity'), 'a public route establishes no identity to assert: authenticate the route (an anonymous authenticator makes optional login explicit), or remove assertIdentity'));
  }
  if (!services.configured) {
    problems.push(loaded.problem(at('assertIdentity'), 'assertions are signed with the top-level identityAssertion section: add it (an issuer at least; docs/identity-assertion.md)'));
  }
  if (header === 'authorization' && r.forwardAuthorization === true) {
    problems.push(loaded.problem(at('forwardAuthorization'), 'the assertion replaces the client\'s Authorization on this route: send it in another header (assertIdentity.header: X-Identity-Assertion), or remove forwardAuthorization'));
  }
  if (header === 'authorization' && upstreamAuth) {
    problems.push(loaded.problem(at('assertIdentity'), `upstream ${r.upstream ?? ''} gets the gateway's own token (auth.clientCredentials) in Authorization: send the assertion in another header (assertIdentity.header: X-Identity-Assertion)`));
  }
  const signer = services.identityAssertion;
  if (problems.length > before || signer === null || r.upstream === undefined) return null;
  return identityAssertion(signer, { audience: spec.audience ?? r.upstream, header });
}

/**
 * The header names (normalised) routes send assertions in besides Authorization. None may be a
 * header the gateway writes otherwise, a framing or forwarding header, or one carrying credentials.
 */
function assertionHeaders(routes: readonly RawRoute[], loaded: LoadedConfig, taken: ReadonlySet<string>, problems: ConfigProblem[]): Set<string> {
  const names = new Set<string>();
  routes.forEach((r, index) => {
    const option = r.assertIdentity;
    if (option === undefined || option === true || option.header === undefined) return;
    const name = normaliseHeaderName(option.header);
    if (name === 'authorization') return;
    if (RESERVED_HEADERS.has(name) || MANAGED_HEADERS.has(name) || METHOD_OVERRIDE_HEADERS.has(name) || taken.has(name)) {
      problems.push(loaded.problem(['routes', index, 'assertIdentity', 'header'], `${option.header} is a header HTTP or the gateway already uses (framing, forwarding, method override, credentials, identity or request id): choose a name of its own, such as X-Identity-Assertion, or authorization`));
    } else names.add(name);
  });
  return names;
}

/**
 * Headers some stage decides on: `Content-Type` (the content-type allow-list), tenant headers,
 * `header:` rate-limit and quota keys, and `Origin` and `Access-Control-Request-Method` when a
 * route has a CORS policy (a second Origin would make the echoed one a guess), and (added as routes
 * compile) the headers request validation reads parameters from. Normalised names.
 */
function decisionHeaders(raw: LoadedConfig['raw'], limitHeaders: ReadonlySet<string>): ReadonlySet<string> {
  const names = new Set(['content-type']);
  for (const r of raw.routes) {
    const header = r.authorize?.tenant?.header;
    if (header !== undefined) names.add(normaliseHeaderName(header));
    if (r.cors !== undefined) names.add('origin').add('access-control-request-method');
  }
  for (const header of limitHeaders) names.add(normaliseHeaderName(header));
  return names;
}

/**
 * Why an attribute rule may not read a header: credentials (a rule decides on the identity they
 * establish, never on the secret), headers the gateway asserts itself (a client's copy is removed
 * before forwarding, so a rule reading it would judge a spoofed value), headers only a trusted
 * proxy may assert (client.ip is the resolved address), headers that frame or route the request,
 * method overrides (request.method is the method they make) and names with `_`.
 */
function ruleHeaderProblem(protectedHeaders: ReadonlySet<string>, credentialHeaders: ReadonlySet<string>): (name: string) => string | null {
  const credentials = new Set(['authorization', 'proxy-authorization', 'cookie', ...[...credentialHeaders].map(normaliseHeaderName)]);
  return (name) => {
    if (credentials.has(name)) return 'it carries credentials, and rules never read them: rule on the identity they establish (identity, claims)';
    if (protectedHeaders.has(name)) return 'the gateway asserts it itself and removes a client\'s copy: rule on identity instead';
    if (METHOD_OVERRIDE_HEADERS.has(name)) return 'a method override is judged by the method it makes: rule on request.method';
    if (isProxyAsserted(name)) return 'it is one of the headers only a proxy in front asserts (addresses, identities, protocol), which the gateway never takes from a client: rule on client.ip (resolved through trustedProxies), identity or request';
    if (MANAGED_HEADERS.has(name)) return 'it frames or routes the request: match on match.host or match.methods instead';
    // CGI-style servers read `X_Env` as `X-Env`; such names are refused at the edge or dropped, never forwarded.
    if (name.includes('_')) return 'the gateway does not forward header names with `_` (headers.allowUnderscores): name the header with `-`';
    return null;
  };
}

/** The literal segments a pattern starts with (`/api/v1/{id}` → api, v1). */
function leadingLiterals(pattern: PathPattern): string[] {
  const out: string[] = [];
  for (const s of pattern.segments) {
    if (s.kind !== 'literal') break;
    out.push(s.value);
  }
  return out;
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
      const first = loaded.problem(other.definedAt ?? ['routes', other.index, 'match'], '');
      problems.push(loaded.problem(route.definedAt ?? ['routes', route.index, 'match'],
        `route "${route.name}" overlaps route "${other.name}" (${first.file}:${first.line}) with equal specificity: both match ${route.pattern.shape}` +
        `${route.host === null ? '' : ` on ${route.host}`}; make one more specific or split their methods`));
    }
    group.push(route);
    byShape.set(key, group);
  }
  return problems;
}

/**
 * Freezes the plain data of a compiled config: objects, arrays, maps and sets. A frozen Map or Set
 * also refuses `set`, `add`, `delete` and `clear` (Object.freeze alone does not stop them). Class
 * instances (authenticators with their caches, resources) own their state and are left as they
 * are; the router is frozen shallowly.
 */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof Map || value instanceof Set) {
    for (const v of value.values()) deepFreeze(v);
    for (const method of value instanceof Map ? ['set', 'delete', 'clear'] : ['add', 'delete', 'clear']) {
      Object.defineProperty(value, method, { value: refuseMutation, enumerable: false });
    }
    return Object.freeze(value);
  }
  if (value instanceof Router) return Object.freeze(value);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}

function refuseMutation(): never {
  throw new TypeError('the compiled config is immutable');
}
