import { normaliseHeaderName } from '../http/headers.js';
import { compileApiKeysSection } from '../authn/api-key/api-keys-section.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import { API_KEYS_SHARED } from '../authn/api-key/kind.js';
import type { Authenticator } from '../authn/authenticator.js';
import type { At } from '../authn/authenticator-kind.js';
import { authenticatorKindOf } from '../authn/kinds.js';
import { compileOAuthServices, type OAuthServices } from '../authn/oauth/oauth-services.js';
import type { HostRevocationChannel } from '../authn/oauth/host-revocations.js';
import type { Clock } from '../lib/clock.js';
import type { Resource, ResourceCatalog } from '../lifecycle/resources.js';
import { authorizeStage, type TenantRule } from '../authz/authorize-stage.js';
import type { PathPattern } from '../routing/pattern.js';
import type { Stage } from '../pipeline/stage.js';
import { identityHeaders, type IdentityHeaderNames } from '../stages/identity-headers.js';
import type { ConfigProblem } from './errors.js';
import { unknownName } from './suggest.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig, RawRoute } from './schema.js';

/**
 * Documented defaults shared by every authenticator kind (each kind's own are in its folder);
 * docs/authentication.md lists the same values.
 */
export const AUTH_DEFAULTS = Object.freeze({
  identityHeaders: { subject: 'x-user-id', tenant: 'x-tenant-id', roles: 'x-roles', scopes: 'x-scopes', method: 'x-auth-method', keyId: 'x-api-key-id', omitted: 'x-identity-omitted' },
});

/** Headers a claim may never be forwarded in: framing, routing, credentials and forwarding facts. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host', 'authorization', 'proxy-authorization', 'cookie', 'content-length', 'content-type', 'transfer-encoding', 'connection',
  'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip',
]);

export interface CompiledAuth {
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  /** Remote key sets and the API key backend this config uses: started when the config goes live. */
  readonly resources: readonly Resource[];
  readonly identityHeaders: IdentityHeaderNames;
  /** Defined but invalid (already reported): routes naming them are not reported again. */
  readonly invalid: ReadonlySet<string>;
  /** The API key backend, when the config has an apiKeys section or an apiKey authenticator. */
  readonly apiKeys: ApiKeyBackend | null;
  /** Token digests, the revocation list and the webhook's settings, shared by the bearer authenticators, the admin API and served endpoints. */
  readonly oauth: OAuthServices;
}

/** What compiling authenticators reads besides the config: running resources to reuse, and the clock. */
export interface AuthCompileContext {
  readonly resources: ResourceCatalog;
  readonly clock: Clock;
  /** In a worker of `start --workers`: the primary, which keeps the host's revocations. */
  readonly hostState?: HostRevocationChannel | null;
  /** Compiled for `start --workers`, in the primary or a worker. */
  readonly workers?: boolean;
}


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
  // Every header the gateway writes (the request id on every answer and upstream request, the
  // identity upstream): none may be a framing, routing or credential header, nor another's name.
  const written: [path: string[], name: string][] = [
    [['headers', 'requestId'], (raw.headers?.requestId ?? 'x-request-id').toLowerCase()],
    ...identityHeaderEntries(identity).map(([part, name]): [string[], string] => [['headers', 'identity', part], name]),
  ];
  const seen = new Map<string, string>();
  for (const [path, name] of written) {
    const normalised = normaliseHeaderName(name);
    const earlier = seen.get(normalised);
    if (RESERVED_HEADERS.has(normalised) || earlier !== undefined) {
      problems.push(loaded.problem(path, earlier === undefined
        ? `${name} is a header HTTP or the gateway relies on (framing, routing, credentials or forwarding facts); choose another name, such as X-${path.at(-1) === 'requestId' ? 'Request' : 'User'}-Id`
        : `${name} is already the header of ${earlier}; each header the gateway writes needs a name of its own`));
    }
    seen.set(normalised, path.join('.'));
  }
  const reserved = new Set([...RESERVED_HEADERS, ...identityHeaderList(identity), (raw.headers?.requestId ?? 'x-request-id').toLowerCase()]);
  const authenticators = new Map<string, Authenticator>();
  const invalid = new Set<string>();
  const used = new Map<string, Resource>();
  const sharedValues = new Map<string, unknown>();
  const shared = <T>(key: string, build: () => T): T => {
    if (!sharedValues.has(key)) sharedValues.set(key, build());
    return sharedValues.get(key) as T;
  };
  const use = <R extends Resource>(key: string, kind: abstract new (...args: never[]) => R, create: () => R): R => {
    const existing = used.get(key);
    const resource = existing instanceof kind ? existing : context.resources.find(key, kind) ?? create();
    used.set(key, resource);
    return resource;
  };
  // The apiKeys section serves the admin API and the keys CLI even without an apiKey authenticator;
  // compiled first, so its problems are reported before the authenticators'.
  if (raw.apiKeys !== undefined) shared(API_KEYS_SHARED, () => compileApiKeysSection(raw.apiKeys, loaded, dataDir, problems, use));
  const oauth = compileOAuthServices(raw.oauth, { loaded, problems, clock: context.clock, dataDir, use, running: context.resources, hostState: context.hostState ?? null });
  for (const [name, a] of Object.entries(raw.authenticators ?? {})) {
    const kind = authenticatorKindOf(a.type);
    // Schema validation has refused any other type already.
    if (kind === undefined) continue;
    const at: At = (...path) => ['authenticators', name, ...path];
    // `a` was validated against the schema of the kind its type selects.
    const built = kind.compile(a as never, {
      name, at, apiKeys: raw.apiKeys, loaded, dataDir, problems, reserved, clock: context.clock, use, shared, oauth, inWorker: context.workers === true,
      clientCertificates: raw.listen?.https?.clientAuth !== undefined,
    });
    if (built !== null) authenticators.set(name, built);
    else invalid.add(name);
  }
  const apiKeys = (sharedValues.get(API_KEYS_SHARED) ?? null) as ApiKeyBackend | null;
  return { authenticators, resources: [...used.values()], identityHeaders: identity, invalid, apiKeys, oauth };
}

/** The identity header names with the part of the identity each carries. */
function identityHeaderEntries(names: IdentityHeaderNames): [keyof IdentityHeaderNames, string][] {
  return [['subject', names.subject], ['tenant', names.tenant], ['roles', names.roles], ['scopes', names.scopes], ['method', names.method], ['keyId', names.keyId], ['omitted', names.omitted]];
}

/** The identity header names as a list. */
export function identityHeaderList(names: IdentityHeaderNames): string[] {
  return identityHeaderEntries(names).map(([, name]) => name);
}

/** What a route authenticates with and the stages that follow from it; null on a public route or after problems. */
export interface RouteAuth {
  readonly authenticators: readonly Authenticator[];
  readonly authorize: Stage | null;
  readonly identityHeaders: Stage;
}

/** A route's authenticators, authorization and identity-header stages, or problems. */
export function compileRouteAuth(
  r: RawRoute, at: At, pattern: PathPattern | null, auth: CompiledAuth, loaded: LoadedConfig, problems: ConfigProblem[],
): RouteAuth | null {
  const list = r.authenticate;
  if (r.public === true && list !== undefined) problems.push(loaded.problem(at('public'), 'a route is either public or authenticated: remove public, or authenticate (add an anonymous authenticator for optional login)'));
  if (r.public !== true && list === undefined) {
    problems.push(loaded.problem(r.public === false ? at('public') : at('name'), 'the route declares no policy: set `authenticate: [...]`, or `public: true` to allow unauthenticated access explicitly (deny by default)'));
  }
  if (r.authorize !== undefined && list === undefined) problems.push(loaded.problem(at('authorize'), 'authorization needs an identity: add authenticate'));
  if (list === undefined || r.public === true) return null;

  const before = problems.length;
  let failed = false;
  const chosen: Authenticator[] = [];
  list.forEach((name, i) => {
    const a = auth.authenticators.get(name);
    // An authenticator that is defined but invalid has its own problems reported where it is
    // defined; each route naming it would only repeat them. The route is still not compiled.
    if (a === undefined && auth.invalid.has(name)) failed = true;
    else if (a === undefined) problems.push(loaded.problem(at('authenticate', i), unknownName('authenticator', name, [...auth.authenticators.keys(), ...auth.invalid])));
    else if (a.alwaysAdmits && i !== list.length - 1) problems.push(loaded.problem(at('authenticate', i), `${a.type} authenticator "${name}" must be last: authenticators after it would never run`));
    else chosen.push(r.apiKeyInQuery === true && a.withQuery !== undefined ? a.withQuery() : a);
  });
  if (r.apiKeyInQuery === true && !chosen.some((a) => a.withQuery !== undefined)) {
    problems.push(loaded.problem(at('apiKeyInQuery'), 'needs an apiKey authenticator in authenticate'));
  }

  let authorize: Stage | null = null;
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
    authorize = authorizeStage({ rolesAnyOf: z.roles?.anyOf ?? null, rolesAllOf: z.roles?.allOf ?? null, scopes: z.scopes ?? [], tenant });
  }
  const strip = new Set(r.forwardAuthorization === true ? [] : chosen.flatMap((a) => a.credentialHeaders));
  const headers = identityHeaders(auth.identityHeaders, strip, r.forwardAuthorization === true);
  return failed || problems.length > before ? null : { authenticators: chosen, authorize, identityHeaders: headers };
}
