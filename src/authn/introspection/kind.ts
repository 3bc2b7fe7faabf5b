import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Bytes, Millis, Realm, strict } from '../../config/schema-parts.js';
import { authenticatorKind, type AuthenticatorCompileContext } from '../authenticator-kind.js';
import { CLAIM_RULE_DEFAULTS, CLAIM_RULE_FIELDS, compileClaimRules } from '../claims/claim-rules.js';
import { CLIENT_AUTH_FIELDS, compileClientAuthentication } from '../oauth/client-authentication.js';
import { secureUrlProblem } from '../../lib/secure-url.js';
import { IntrospectionAuthenticator } from './introspection-authenticator.js';
import { IntrospectionCache } from './introspection-cache.js';
import { IntrospectionEndpoint, type IntrospectionEndpointOptions } from './introspection-endpoint.js';
import { SharedIntrospectionStore } from './shared-introspection-store.js';

const Url = (description: string) => Type.String({ minLength: 1, maxLength: 2048, description });

/** The options of `type: introspection`. */
export const IntrospectionAuthenticatorSchema = strict({
  type: Type.Literal('introspection'),
  issuer: Url('The authorization server\'s issuer identifier: the `iss` an answer must have when it has one, and where the metadata is discovered (RFC 8414, then OpenID Connect Discovery) unless introspectionEndpoint is set. https, or http on a loopback host only.'),
  introspectionEndpoint: Type.Optional(Url('The token introspection endpoint (RFC 7662). Absent: discovered from the issuer\'s metadata. https, or http on a loopback host only.')),
  clientId: Type.String({ minLength: 1, maxLength: 256, description: 'The gateway\'s client id at the authorization server.' }),
  ...CLIENT_AUTH_FIELDS,
  audience: Type.Optional(Type.Unsafe<string | string[]>({ type: ['string', 'array'], minLength: 1, minItems: 1, maxItems: 32, items: { type: 'string', minLength: 1 }, description: 'Accepted `aud` value(s): an answer\'s aud must contain one. Absent: aud is not checked.' })),
  tokenTypes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 16, description: 'Accepted `token_type` values of an answer that has one, compared case-insensitively. Default ["Bearer"].' })),
  jwtIssuers: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), { maxItems: 32, description: 'JWT-shaped tokens whose (unverified) iss is one of these are introspected; other JWT-shaped tokens are left to the route\'s other authenticators (absent). Default none.' })),
  clockSkewMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 300000, description: 'Leeway for exp and nbf of an answer. Default 30000.' })),
  maxTokenBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 65536, description: 'Longest token accepted; longer is 401 before any lookup. Default 4096.' })),
  timeoutMs: Type.Optional(Millis('Whole introspection (and discovery) exchange, connect to last byte. Default 2000.')),
  maxResponseBytes: Type.Optional(Bytes('Largest introspection or discovery response read. Default 65536.')),
  ...CLAIM_RULE_FIELDS,
  cache: Type.Optional(strict({
    maxEntries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Active answers kept; 0 turns the cache off. Default 10000.' })),
    ttlMs: Type.Optional(Millis('How long an active answer is served without asking again (never past the token\'s exp). Default 300000.')),
    negativeTtlMs: Type.Optional(Millis('How long an inactive answer is remembered. Default 5000.', 0)),
    negativeMaxEntries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Inactive answers kept, apart from active ones. Default 10000.' })),
    shared: Type.Optional(Type.Boolean({ description: 'Also share active answers between gateways in oauth.redis. Default false.' })),
    staleMs: Type.Optional(Millis('On routes with onAuthUnavailable: serveStale, how long past ttlMs an active answer may still be served while the endpoint is unavailable (never past exp). Default 300000.', 0)),
  }, 'Introspection answers kept by token digest.')),
  breaker: Type.Optional(strict({
    failures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Consecutive failed calls that open the circuit. Default 5.' })),
    openMs: Type.Optional(Millis('How long an open circuit refuses calls before one probe. Default 5000.')),
  }, 'The circuit breaker of the endpoint.')),
  realm: Type.Optional(Realm),
}, 'Bearer tokens checked at the authorization server\'s introspection endpoint (RFC 7662).');

export type RawIntrospectionAuthenticator = Static<typeof IntrospectionAuthenticatorSchema>;

/** Documented defaults of `type: introspection`, by option path; docs/authentication.md lists the same values. */
export const INTROSPECTION_DEFAULTS = Object.freeze({
  clientAuth: 'client_secret_basic',
  tokenTypes: ['Bearer'],
  clockSkewMs: 30_000,
  maxTokenBytes: 4096,
  timeoutMs: 2000,
  maxResponseBytes: 65_536,
  realm: 'portcullis',
  ...CLAIM_RULE_DEFAULTS,
  'cache.maxEntries': 10_000,
  'cache.ttlMs': 300_000,
  'cache.negativeTtlMs': 5000,
  'cache.negativeMaxEntries': 10_000,
  'cache.shared': false,
  'cache.staleMs': 300_000,
  'breaker.failures': 5,
  'breaker.openMs': 5000,
});

/** Bearer tokens introspected at the authorization server (RFC 7662). */
export const introspectionKind = authenticatorKind<RawIntrospectionAuthenticator>({
  type: 'introspection',
  schema: IntrospectionAuthenticatorSchema,
  defaults: INTROSPECTION_DEFAULTS,
  docs: 'docs/authentication.md',
  compile: compileIntrospection,
});

function compileIntrospection(a: RawIntrospectionAuthenticator, context: AuthenticatorCompileContext): IntrospectionAuthenticator | null {
  const { name, at, loaded, problems, oauth } = context;
  const before = problems.length;
  const issuerProblem = introspectionUrlProblem(a.issuer);
  if (issuerProblem !== null) problems.push(loaded.problem(at('issuer'), issuerProblem));
  if (a.introspectionEndpoint !== undefined) {
    const problem = introspectionUrlProblem(a.introspectionEndpoint);
    if (problem !== null) problems.push(loaded.problem(at('introspectionEndpoint'), problem));
  }
  const client = compileClientAuthentication(a, context);
  const cacheRaw = a.cache ?? {};
  const shared = cacheRaw.shared ?? INTROSPECTION_DEFAULTS['cache.shared'];
  if (shared && oauth.redis === null) problems.push(loaded.problem(at('cache', 'shared'), 'needs oauth.redis (the Redis the gateways share): add oauth: { tokenHashKey: ${TOKEN_HASH_KEY}, redis: { url: redis://… } }, or set shared: false'));
  // Without claims.subject, a machine token (client credentials: no sub) is its client.
  const rules = compileClaimRules(a.claims?.subject === undefined ? { ...a, claims: { ...a.claims, subject: ['sub', 'client_id'] } } : a, context);
  if (rules === null || client === null) return null;
  if (problems.length > before) return null;

  const endpointOptions: IntrospectionEndpointOptions = {
    authenticator: name,
    issuer: a.issuer,
    endpoint: a.introspectionEndpoint ?? null,
    clientId: a.clientId,
    ...client,
    timeoutMs: a.timeoutMs ?? INTROSPECTION_DEFAULTS.timeoutMs,
    maxResponseBytes: a.maxResponseBytes ?? INTROSPECTION_DEFAULTS.maxResponseBytes,
    breakerFailures: a.breaker?.failures ?? INTROSPECTION_DEFAULTS['breaker.failures'],
    breakerOpenMs: a.breaker?.openMs ?? INTROSPECTION_DEFAULTS['breaker.openMs'],
    insecure: a.issuer.startsWith('http:') || a.introspectionEndpoint?.startsWith('http:') === true,
  };
  const endpointKey = IntrospectionEndpoint.keyOf(endpointOptions);
  const endpoint = context.use(endpointKey, IntrospectionEndpoint, () => new IntrospectionEndpoint(endpointOptions));
  const cacheOptions = {
    maxEntries: cacheRaw.maxEntries ?? INTROSPECTION_DEFAULTS['cache.maxEntries'],
    ttlMs: cacheRaw.ttlMs ?? INTROSPECTION_DEFAULTS['cache.ttlMs'],
    negativeTtlMs: cacheRaw.negativeTtlMs ?? INTROSPECTION_DEFAULTS['cache.negativeTtlMs'],
    negativeMaxEntries: cacheRaw.negativeMaxEntries ?? INTROSPECTION_DEFAULTS['cache.negativeMaxEntries'],
    staleMs: cacheRaw.staleMs ?? INTROSPECTION_DEFAULTS['cache.staleMs'],
  };
  const cacheScope = createHash('sha256').update(endpointKey).digest('base64url').slice(0, 22);
  const cacheKey = new IntrospectionCache(cacheScope, cacheOptions).key;
  const cache = context.use(cacheKey, IntrospectionCache, () => new IntrospectionCache(cacheScope, cacheOptions));
  let sharedCache: { store: SharedIntrospectionStore; scope: string } | null = null;
  if (shared && oauth.redis !== null) {
    const settings = oauth.redis;
    const store = context.use(new SharedIntrospectionStore(settings).key, SharedIntrospectionStore, () => new SharedIntrospectionStore(settings));
    // Answers are shared between gateways asking the same endpoint as the same client.
    const scope = createHash('sha256').update(`${a.issuer}\n${a.introspectionEndpoint ?? ''}\n${a.clientId}`).digest('base64url').slice(0, 22);
    sharedCache = { store, scope };
  }
  return new IntrospectionAuthenticator({
    name,
    realm: a.realm ?? INTROSPECTION_DEFAULTS.realm,
    policy: {
      issuer: a.issuer,
      audiences: a.audience === undefined ? null : new Set(typeof a.audience === 'string' ? [a.audience] : a.audience),
      tokenTypes: new Set((a.tokenTypes ?? INTROSPECTION_DEFAULTS.tokenTypes).map((t) => t.toLowerCase())),
      clockSkewMs: a.clockSkewMs ?? INTROSPECTION_DEFAULTS.clockSkewMs,
    },
    rules,
    maxTokenBytes: a.maxTokenBytes ?? INTROSPECTION_DEFAULTS.maxTokenBytes,
    jwtIssuers: new Set(a.jwtIssuers ?? []),
    endpoint,
    cache,
    shared: sharedCache,
    oauth,
    clock: context.clock,
  });
}

/** Why `value` cannot be the authorization server's issuer or introspection endpoint, or null (see secureUrlProblem). */
function introspectionUrlProblem(value: string): string | null {
  return secureUrlProblem(value, 'https://as.example.com/oauth2/introspect');
}
