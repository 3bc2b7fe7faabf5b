import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { anonymousAuthenticator } from '../authn/anonymous.js';
import { ApiKeyAuthenticator } from '../authn/api-key/api-key-authenticator.js';
import { ApiKeyBackend, type ApiKeySettings } from '../authn/api-key/backend.js';
import { parseDuration } from '../lib/duration.js';
import type { Authenticator } from '../authn/authenticator.js';
import { authenticateStage } from '../authn/authenticate-stage.js';
import { isHmac, type VerifyKey } from '../authn/jwt/algorithms.js';
import { JwtAuthenticator } from '../authn/jwt/jwt-authenticator.js';
import type { IssuerKeys } from '../authn/jwt/jwt-verifier.js';
import { importJwks, importPem, importSecret, StaticKeys } from '../authn/jwt/key-source.js';
import { RemoteJwks } from '../authn/jwt/remote-jwks.js';
import type { Clock } from '../lib/clock.js';
import type { Resource, ResourceCatalog } from '../lifecycle/resources.js';
import { LimitStores } from '../ratelimit/limit-stores.js';
import { authorizeStage, type TenantRule } from '../authz/authorize-stage.js';
import type { PathPattern } from '../routing/pattern.js';
import type { Stage } from '../pipeline/stage.js';
import { identityHeaders, type IdentityHeaderNames } from '../stages/identity-headers.js';
import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawApiKeyAuthenticator, RawConfig, RawJwtAuthenticator, RawRoute } from './schema.js';

/** Documented defaults of authenticators; docs/authentication.md lists the same values. */
export const AUTH_DEFAULTS = Object.freeze({
  clockSkewMs: 30_000,
  maxTokenBytes: 8192,
  cacheMaxEntries: 10_000,
  realm: 'portcullis',
  anonymousSubject: 'anonymous',
  jwksTimeoutMs: 5000,
  jwksMaxBytes: 262_144,
  jwksRefreshMs: 300_000,
  jwksCooldownMs: 30_000,
  claims: { subject: 'sub', roles: 'roles', scopes: 'scope' },
  identityHeaders: { subject: 'x-user-id', tenant: 'x-tenant-id', roles: 'x-roles', scopes: 'x-scopes', method: 'x-auth-method', keyId: 'x-api-key-id', omitted: 'x-identity-omitted' },
  apiKeyHeader: 'x-api-key',
  apiKeyQueryParam: 'api_key',
});

/** Documented defaults of the apiKeys section; docs/api-keys.md lists the same values. */
export const API_KEY_DEFAULTS = Object.freeze({
  environment: 'live',
  sqliteFile: 'keys/api-keys.db',
  poolSize: 5,
  timeoutMs: 2000,
  listen: true,
  cacheTtlMs: 60_000,
  negativeCacheTtlMs: 5000,
  cacheMaxEntries: 100_000,
  negativeCacheMaxEntries: 10_000,
  maxConcurrentLookups: 16,
  maxStalenessMs: 5000,
  pollIntervalMs: 500,
  usageFlushMs: 5000,
  maxLifetime: '90d',
  expiryWarning: '14d',
});

/** Headers a claim may never be forwarded in: framing, routing, credentials and forwarding facts. */
const RESERVED_HEADERS = new Set([
  'host', 'authorization', 'proxy-authorization', 'cookie', 'content-length', 'content-type', 'transfer-encoding', 'connection',
  'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip',
]);

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export interface CompiledAuth {
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  /** Remote key sets and the API key backend this config uses: started when the config goes live. */
  readonly resources: readonly Resource[];
  readonly identityHeaders: IdentityHeaderNames;
  /** Defined but invalid (already reported): routes naming them are not reported again. */
  readonly invalid: ReadonlySet<string>;
  /** The API key backend, when the config has an apiKeys section or an apiKey authenticator. */
  readonly apiKeys: ApiKeyBackend | null;
}

/** What compilation shares with the running gateway besides its resources: limit stores live across reloads. */
export interface Registries {
  readonly limitStores: LimitStores;
}

export function newRegistries(): Registries {
  return { limitStores: new LimitStores() };
}

/** What compiling authenticators reads besides the config: running resources to reuse, and the clock. */
export interface AuthCompileContext {
  readonly resources: ResourceCatalog;
  readonly clock: Clock;
}

type At = (...path: (string | number)[]) => (string | number)[];

/** Builds the named authenticators, collecting located problems. */
export function compileAuth(raw: RawConfig, loaded: LoadedConfig, context: AuthCompileContext, dataDir: string, problems: ConfigProblem[]): CompiledAuth {
  const names = raw.headers?.identity ?? {};
  const d = AUTH_DEFAULTS.identityHeaders;
  const identity: IdentityHeaderNames = {
    subject: (names.subject ?? d.subject).toLowerCase(),
    tenant: (names.tenant ?? d.tenant).toLowerCase(),
    roles: (names.roles ?? d.roles).toLowerCase(),
    scopes: (names.scopes ?? d.scopes).toLowerCase(),
    method: (names.method ?? d.method).toLowerCase(),
    keyId: (names.keyId ?? d.keyId).toLowerCase(),
    omitted: (names.omitted ?? d.omitted).toLowerCase(),
  };
  const seen = new Map<string, string>();
  for (const [part, name] of identityHeaderEntries(identity)) {
    const earlier = seen.get(name);
    if (RESERVED_HEADERS.has(name) || earlier !== undefined) {
      problems.push(loaded.problem(['headers', 'identity', part], earlier === undefined
        ? `${name} is a header the gateway relies on; choose another name`
        : `${name} is already the ${earlier} header`));
    }
    seen.set(name, part);
  }
  const reserved = new Set([...RESERVED_HEADERS, ...identityHeaderList(identity), (raw.headers?.requestId ?? 'x-request-id').toLowerCase()]);
  const authenticators = new Map<string, Authenticator>();
  const keySets = new Map<string, RemoteJwks>();
  const invalid = new Set<string>();
  const entries = Object.entries(raw.authenticators ?? {});
  const apiKeys = raw.apiKeys !== undefined || entries.some(([, a]) => a.type === 'apiKey')
    ? compileApiKeys(raw, loaded, context, dataDir, problems)
    : null;
  for (const [name, a] of entries) {
    const at: At = (...path) => ['authenticators', name, ...path];
    if (a.type === 'anonymous') authenticators.set(name, anonymousAuthenticator(name, a.subject ?? AUTH_DEFAULTS.anonymousSubject));
    else if (a.type === 'apiKey') {
      const key = compileApiKeyAuthenticator(name, a, at, loaded, apiKeys, reserved, problems);
      if (key !== null) authenticators.set(name, key);
      else invalid.add(name);
    } else {
      const jwt = compileJwt(name, a, at, loaded, context, reserved, keySets, problems);
      if (jwt !== null) authenticators.set(name, jwt);
      else invalid.add(name);
    }
  }
  const resources: Resource[] = [...keySets.values()];
  if (apiKeys !== null) resources.push(apiKeys);
  return { authenticators, resources, identityHeaders: identity, invalid, apiKeys };
}

function compileApiKeys(raw: RawConfig, loaded: LoadedConfig, context: AuthCompileContext, dataDir: string, problems: ConfigProblem[]): ApiKeyBackend | null {
  const c = raw.apiKeys ?? {};
  const at = (...path: string[]) => ['apiKeys', ...path];
  const d = API_KEY_DEFAULTS;
  const before = problems.length;
  const s = c.store ?? {};
  const type = s.type ?? 'sqlite';
  const misplaced = type === 'sqlite' ? (['url', 'poolSize', 'timeoutMs', 'listen'] as const) : (['file'] as const);
  for (const option of misplaced) {
    if (s[option] !== undefined) problems.push(loaded.problem(at('store', option), `applies to store type ${type === 'sqlite' ? 'postgres' : 'sqlite'}, but the store is ${type}`, true));
  }
  if (type === 'postgres' && s.url === undefined) problems.push(loaded.problem(at('store', 'type'), 'a postgres store needs url (postgres://user:password@host:5432/database)'));
  const maxLifetimeMs = parseDuration(c.maxLifetime ?? d.maxLifetime) ?? 0;
  const expiryWarningMs = parseDuration(c.expiryWarning ?? d.expiryWarning) ?? 0;
  if (maxLifetimeMs > 3650 * 86_400_000) problems.push(loaded.problem(at('maxLifetime'), 'at most 3650d: a key that never needs replacing is a key nobody can rotate in a hurry'));
  if (expiryWarningMs >= maxLifetimeMs) problems.push(loaded.problem(at('expiryWarning'), `must be shorter than maxLifetime (${c.maxLifetime ?? d.maxLifetime})`));
  const pollIntervalMs = c.pollIntervalMs ?? d.pollIntervalMs;
  // The default follows a long poll interval, so a config that only slows polling stays valid.
  const maxStalenessMs = c.maxStalenessMs ?? Math.max(d.maxStalenessMs, 2 * pollIntervalMs);
  if (maxStalenessMs < 2 * pollIntervalMs) {
    problems.push(loaded.problem(at('maxStalenessMs'),
      `maxStalenessMs (${maxStalenessMs}) must be at least twice pollIntervalMs (${pollIntervalMs}): one missed poll would refuse every key`));
  }
  if (problems.length > before) return null;
  const settings: ApiKeySettings = {
    environment: c.environment ?? d.environment,
    store: type === 'sqlite'
      ? { type, file: resolve(dataDir, s.file ?? d.sqliteFile) }
      : { type, url: s.url ?? '', poolSize: s.poolSize ?? d.poolSize, timeoutMs: s.timeoutMs ?? d.timeoutMs, listen: s.listen ?? d.listen },
    cacheTtlMs: c.cacheTtlMs ?? d.cacheTtlMs,
    negativeCacheTtlMs: c.negativeCacheTtlMs ?? d.negativeCacheTtlMs,
    cacheMaxEntries: c.cacheMaxEntries ?? d.cacheMaxEntries,
    negativeCacheMaxEntries: c.negativeCacheMaxEntries ?? d.negativeCacheMaxEntries,
    maxConcurrentLookups: c.maxConcurrentLookups ?? d.maxConcurrentLookups,
    maxStalenessMs,
    pollIntervalMs,
    usageFlushMs: c.usageFlushMs ?? d.usageFlushMs,
    maxLifetimeMs,
    expiryWarningMs,
  };
  return context.resources.find(ApiKeyBackend.keyOf(settings), ApiKeyBackend) ?? new ApiKeyBackend(settings);
}

function compileApiKeyAuthenticator(
  name: string, a: RawApiKeyAuthenticator, at: At, loaded: LoadedConfig, backend: ApiKeyBackend | null, reserved: ReadonlySet<string>, problems: ConfigProblem[],
): ApiKeyAuthenticator | null {
  const header = (a.header ?? AUTH_DEFAULTS.apiKeyHeader).toLowerCase();
  if (reserved.has(header) || header === 'authorization') {
    problems.push(loaded.problem(at('header'), `${header} is a header the gateway sets or relies on; choose another name`));
    return null;
  }
  if (backend === null) return null;
  return new ApiKeyAuthenticator({
    name,
    realm: a.realm ?? AUTH_DEFAULTS.realm,
    header,
    authorizationScheme: a.authorizationScheme ?? true,
    queryParam: a.queryParam ?? AUTH_DEFAULTS.apiKeyQueryParam,
  }, backend);
}

function compileJwt(
  name: string, a: RawJwtAuthenticator, at: At, loaded: LoadedConfig, context: AuthCompileContext,
  reserved: ReadonlySet<string>, keySets: Map<string, RemoteJwks>, problems: ConfigProblem[],
): JwtAuthenticator | null {
  const before = problems.length;
  const single = a.issuer !== undefined || keyFieldsOf(a).length > 0;
  if (a.issuers !== undefined && single) problems.push(loaded.problem(at('issuers'), 'use either issuer with its keys, or issuers, not both'));
  if (a.issuers === undefined && a.issuer === undefined) problems.push(loaded.problem(at('issuer'), 'is required (or list issuers)'));
  const specs = a.issuers?.map((spec, i) => ({ spec, at: (...p: (string | number)[]) => at('issuers', i, ...p) }))
    ?? (a.issuer === undefined ? [] : [{ spec: { ...a, issuer: a.issuer }, at }]);

  const algorithms = a.algorithms;
  const jwks = a.jwks ?? {};
  const issuers = new Map<string, IssuerKeys>();
  for (const { spec, at: issuerAt } of specs) {
    if (issuers.has(spec.issuer)) { problems.push(loaded.problem(issuerAt('issuer'), `issuer ${spec.issuer} is listed twice`)); continue; }
    const fields = keyFieldsOf(spec);
    if (fields.length !== 1) {
      problems.push(loaded.problem(fields.length === 0 ? issuerAt('issuer') : issuerAt(fields[1] ?? fields[0] ?? 'issuer'),
        `issuer ${spec.issuer} needs exactly one key source: jwksUri, jwksFile, publicKeys or secret${fields.length > 1 ? ` (found ${fields.join(', ')})` : ''}`));
      continue;
    }
    const usable = spec.secret !== undefined ? algorithms.filter(isHmac) : algorithms.filter((alg) => !isHmac(alg));
    if (usable.length === 0) {
      problems.push(loaded.problem(at('algorithms'), spec.secret !== undefined
        ? `issuer ${spec.issuer} has a shared secret, but algorithms allows no HS256/HS384/HS512`
        : `issuer ${spec.issuer} has public keys, but algorithms allows only HMAC (which needs a secret)`));
      continue;
    }
    const fail = (path: (string | number)[], message: string) => { problems.push(loaded.problem(path, message)); };
    let source: IssuerKeys['source'] | null = null;
    if (spec.jwksUri !== undefined) {
      const problem = checkJwksUri(spec.jwksUri);
      if (problem !== null) fail(issuerAt('jwksUri'), problem);
      else {
        const options = {
          uri: spec.jwksUri, algorithms: usable,
          timeoutMs: jwks.timeoutMs ?? AUTH_DEFAULTS.jwksTimeoutMs,
          maxBytes: jwks.maxBytes ?? AUTH_DEFAULTS.jwksMaxBytes,
          refreshMs: jwks.refreshMs ?? AUTH_DEFAULTS.jwksRefreshMs,
          cooldownMs: jwks.cooldownMs ?? AUTH_DEFAULTS.jwksCooldownMs,
        };
        const key = RemoteJwks.keyOf(options);
        const set = keySets.get(key) ?? context.resources.find(key, RemoteJwks) ?? new RemoteJwks(options);
        keySets.set(key, set);
        source = set;
      }
    } else if (spec.jwksFile !== undefined) {
      const keys = readKeyFile(loaded, spec.jwksFile, (text) => {
        let doc: unknown;
        try { doc = JSON.parse(text); } catch (err) { return `is not JSON: ${(err as Error).message}`; }
        const imported = importJwks(doc, usable);
        return typeof imported === 'string' ? imported : imported.keys;
      });
      if (typeof keys === 'string') fail(issuerAt('jwksFile'), keys);
      else source = new StaticKeys(keys);
    } else if (spec.publicKeys !== undefined) {
      const keys: VerifyKey[] = [];
      spec.publicKeys.forEach((k, i) => {
        if ((k.pem === undefined) === (k.file === undefined)) { fail(issuerAt('publicKeys', i), 'set exactly one of pem and file'); return; }
        const key = k.pem !== undefined ? importPem(k.pem, usable, k.kid ?? null) : readKeyFile(loaded, k.file ?? '', (text) => importPem(text, usable, k.kid ?? null));
        if (typeof key === 'string') fail(issuerAt('publicKeys', i, k.pem !== undefined ? 'pem' : 'file'), key);
        else keys.push(key);
      });
      source = new StaticKeys(keys);
    } else if (spec.secret !== undefined) {
      const key = importSecret(spec.secret, usable);
      if (typeof key === 'string') fail(issuerAt('secret'), key);
      else source = new StaticKeys([key]);
    }
    if (source !== null) issuers.set(spec.issuer, { source, algorithms: new Set(usable) });
  }

  const headers: (readonly [string, string])[] = [];
  for (const [header, path] of Object.entries(a.forwardClaims ?? {})) {
    const lower = header.toLowerCase();
    if (reserved.has(lower) || lower.startsWith('x-client-cert-') || lower.startsWith('x-portcullis-')) {
      problems.push(loaded.problem(at('forwardClaims', header), `${header} is a header the gateway sets or relies on; forward the claim under another name`, true));
    } else headers.push([lower, path]);
  }
  if (problems.length > before) return null;

  const claims = a.claims ?? {};
  const typ = a.typ?.toLowerCase();
  return new JwtAuthenticator({
    name,
    realm: a.realm ?? AUTH_DEFAULTS.realm,
    policy: {
      algorithms: new Set(algorithms),
      issuers,
      audiences: new Set(typeof a.audience === 'string' ? [a.audience] : a.audience),
      clockSkewSec: Math.ceil((a.clockSkewMs ?? AUTH_DEFAULTS.clockSkewMs) / 1000),
      requireExp: a.requireExp ?? true,
      typ: typ === undefined ? null : typ.startsWith('application/') ? typ.slice('application/'.length) : typ,
      requiredClaims: a.requiredClaims ?? [],
      maxTokenBytes: a.maxTokenBytes ?? AUTH_DEFAULTS.maxTokenBytes,
    },
    claims: {
      subject: claims.subject ?? AUTH_DEFAULTS.claims.subject,
      roles: claims.roles ?? AUTH_DEFAULTS.claims.roles,
      scopes: claims.scopes ?? AUTH_DEFAULTS.claims.scopes,
      tenant: claims.tenant ?? null,
      tier: claims.tier ?? null,
      headers,
    },
    cacheMaxEntries: a.cacheMaxEntries ?? AUTH_DEFAULTS.cacheMaxEntries,
    clock: context.clock,
  });
}

/** The identity header names with the part of the identity each carries. */
function identityHeaderEntries(names: IdentityHeaderNames): [keyof IdentityHeaderNames, string][] {
  return [['subject', names.subject], ['tenant', names.tenant], ['roles', names.roles], ['scopes', names.scopes], ['method', names.method], ['keyId', names.keyId], ['omitted', names.omitted]];
}

/** The identity header names as a list. */
export function identityHeaderList(names: IdentityHeaderNames): string[] {
  return identityHeaderEntries(names).map(([, name]) => name);
}

type KeyFields = Pick<RawJwtAuthenticator, 'jwksUri' | 'jwksFile' | 'publicKeys' | 'secret'>;

function keyFieldsOf(spec: KeyFields): string[] {
  return (['jwksUri', 'jwksFile', 'publicKeys', 'secret'] as const).filter((f) => spec[f] !== undefined);
}

/** JWKS must come over TLS, except from this machine: keys fetched in clear text can be replaced in transit. */
function checkJwksUri(uri: string): string | null {
  let url: URL;
  try { url = new URL(uri); } catch { return 'is not a valid URL'; }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials';
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || (isIP(url.hostname) === 4 && url.hostname.startsWith('127.')))) return null;
  return 'must be https (plain http is accepted for loopback hosts only)';
}

/** A key file through the config's file reader, so its content is part of the config version. */
function readKeyFile<T>(loaded: LoadedConfig, file: string, parse: (text: string) => T | string): T | string {
  const read = loaded.files.readText(file);
  return read.ok ? parse(read.text) : read.message;
}

/** A route's authentication and authorization stages, or problems. */
export function compileRouteAuth(
  r: RawRoute, at: At, pattern: PathPattern | null, auth: CompiledAuth, loaded: LoadedConfig, problems: ConfigProblem[],
): Stage[] {
  const list = r.authenticate;
  if (r.public === true && list !== undefined) problems.push(loaded.problem(at('public'), 'a route is either public or authenticated: remove public, or authenticate (add an anonymous authenticator for optional login)'));
  if (r.public !== true && list === undefined) {
    problems.push(loaded.problem(r.public === false ? at('public') : at('name'), 'the route declares no policy: set `authenticate: [...]`, or `public: true` to allow unauthenticated access explicitly (deny by default)'));
  }
  if (r.authorize !== undefined && list === undefined) problems.push(loaded.problem(at('authorize'), 'authorization needs an identity: add authenticate'));
  if (list === undefined || r.public === true) return [];

  const before = problems.length;
  const chosen: Authenticator[] = [];
  list.forEach((name, i) => {
    const a = auth.authenticators.get(name);
    if (a === undefined && auth.invalid.has(name)) problems.push(loaded.problem(at('authenticate', i), `authenticator "${name}" is invalid (see its errors)`));
    else if (a === undefined) problems.push(loaded.problem(at('authenticate', i), `unknown authenticator "${name}" (defined: ${[...auth.authenticators.keys()].join(', ') || 'none'})`));
    else if (a.type === 'anonymous' && i !== list.length - 1) problems.push(loaded.problem(at('authenticate', i), `anonymous authenticator "${name}" must be last: authenticators after it would never run`));
    else chosen.push(r.apiKeyInQuery === true && a instanceof ApiKeyAuthenticator ? a.withQuery() : a);
  });
  if (r.apiKeyInQuery === true && !chosen.some((a) => a.type === 'apiKey')) {
    problems.push(loaded.problem(at('apiKeyInQuery'), 'needs an apiKey authenticator in authenticate'));
  }

  const stages: Stage[] = [authenticateStage(chosen)];
  const z = r.authorize;
  if (z !== undefined) {
    if (z.roles !== undefined && z.roles.anyOf === undefined && z.roles.allOf === undefined) problems.push(loaded.problem(at('authorize', 'roles'), 'set anyOf, allOf or both'));
    let tenant: TenantRule | null = null;
    if (z.tenant !== undefined) {
      const t = z.tenant;
      const set = [t.param, t.header, t.fixed].filter((v) => v !== undefined).length;
      if (set !== 1) problems.push(loaded.problem(at('authorize', 'tenant'), 'set exactly one of param, header and fixed'));
      else if (t.param !== undefined) {
        const segment = pattern?.segments.findIndex((s) => s.kind === 'param' && s.name === t.param) ?? -1;
        if (pattern !== null && segment === -1) problems.push(loaded.problem(at('authorize', 'tenant', 'param'), `the path pattern "${r.match.path}" has no {${t.param}}`));
        tenant = { kind: 'param', name: t.param, segment };
      } else if (t.header !== undefined) tenant = { kind: 'header', name: t.header.toLowerCase() };
      else tenant = { kind: 'fixed', tenants: new Set(t.fixed) };
    }
    stages.push(authorizeStage({ rolesAnyOf: z.roles?.anyOf ?? null, rolesAllOf: z.roles?.allOf ?? null, scopes: z.scopes ?? [], tenant }));
  }
  const strip = new Set(r.forwardAuthorization === true ? [] : chosen.flatMap((a) => a.credentialHeaders));
  stages.push(identityHeaders(auth.identityHeaders, strip, r.forwardAuthorization === true));
  return problems.length > before ? [] : stages;
}
