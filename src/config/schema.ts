import { Type, type ObjectOptions, type Static, type TSchema } from '@sinclair/typebox';
import { ListenSchema, ReloadSchema, TlsSchema } from './schema-listen.js';
import { Bytes, Duration, formatted, HeaderName as HeaderNameOf, Millis, Name as NameOf, NAME_PATTERN, strict } from './schema-parts.js';
import { ApiKeysSchema } from '../authn/api-key/api-keys-section.js';
import { AUTHENTICATOR_KINDS, type RawAuthenticator } from '../authn/kinds.js';
import { UpstreamAuthSchema } from './schema-upstream-auth.js';
import { TracingSchema } from './schema-tracing.js';
import { CorsPolicySchema, ResponseHeadersSchema, RouteResponseHeadersSchema } from './schema-edge.js';
import { ValidateSchema } from './schema-validate.js';
import type { Algorithm } from '../ratelimit/algorithms.js';
import { LOG_LEVELS, type LogLevel } from '../observability/logger.js';
import { AssertIdentitySchema, IdentityAssertionSchema } from '../assertion/identity-assertion-section.js';
import { SERVED_ENDPOINTS } from '../stages/served/served-endpoints.js';
import { RULE_NAME_PATTERN } from './rule-name.js';

export { LOG_LEVELS, type LogLevel };
import { ALGORITHM_KINDS, EmbeddedQuotaSchema, LIMIT_STORE_KINDS, QUOTA_STORE_KINDS, RedisSettingsSchema } from '../ratelimit/kinds.js';

/**
 * The schema of gateway.yaml. It is the single source for validation, for the TypeScript types of
 * the raw config, and for the JSON Schema published at schema/gateway.schema.json (editors use it
 * for autocompletion). Defaults are applied in compile.ts, not here, so the raw config stays what
 * the user wrote and errors point at the user's own lines.
 */
const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free port (tests).' });
const Host = Type.String({ minLength: 1, description: 'Address to bind, e.g. 0.0.0.0, 127.0.0.1 or ::.' });
const Name = NameOf();
const HeaderName = HeaderNameOf();
/**
 * A map of named things (`upstreams.<name>`). A key that is not a valid name is refused, with the
 * name's format (schema-problems.ts), rather than passed over unvalidated.
 */
const Named = <T extends TSchema>(value: T, options: ObjectOptions) =>
  Type.Record(Type.String({ pattern: NAME_PATTERN }), value, { ...options, additionalProperties: false });

export const AdminSchema = strict({
  enabled: Type.Optional(Type.Boolean({ description: 'Serve the admin listener. Default true.' })),
  port: Type.Optional(Port),
  host: Type.Optional(Host),
  tokenHash: Type.Optional(formatted('^sha256:[0-9a-f]{64}$', '`sha256:` and 64 lower-case hex digits, the SHA-256 of the admin token (`portcullis admin token` prints a token and its tokenHash)', { description: 'SHA-256 (hex) of the admin bearer token: `sha256:<64 hex>`. Required when host is not a loopback address, and for every admin operation (reload, keys): without it they answer 403.' })),
  hosts: Type.Optional(Type.Array(formatted('^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$', 'a DNS name like ops.example.com (no scheme, port or path)'), {
    maxItems: 100, uniqueItems: true,
    description: 'DNS names the admin listener answers to, besides localhost, 127.0.0.1, [::1] and the address a request arrived on. Any other Host is refused (403, DNS rebinding). Default none.',
  })),
  origins: Type.Optional(Type.Array(formatted('^https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?$|^https?://\\[[0-9A-Fa-f:.]{2,45}\\](?::[0-9]{1,5})?$', 'an origin like https://ops.example.com or http://127.0.0.1:8080 (scheme, host and optional port; no path)'), {
    maxItems: 100, uniqueItems: true,
    description: 'Browser origins (`https://ops.example.com`) whose requests the admin listener accepts; a request with any other Origin header is refused (403). Default none: every request carrying Origin is refused.',
  })),
}, 'Admin listener: health, readiness, metrics and admin operations. Default 127.0.0.1:9901.');

export const LimitsSchema = strict({
  maxHeaderBytes: Type.Optional(Bytes('Largest total size of the request line and headers (431 above). Default 16384.')),
  maxHeaderCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Most header fields in a request (431 above). Default 100.' })),
  maxUrlBytes: Type.Optional(Bytes('Longest request target (414 above). Default 8192.')),
  maxBodyBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 30, description: 'Largest request body (413 above). Default 1048576 (1 MiB). Routes may set their own.' })),
  headersTimeoutMs: Type.Optional(Millis('Time allowed to receive the request headers (408 and close). Default 10000.')),
  requestTimeoutMs: Type.Optional(Millis('Time allowed to receive the whole request, body included. Default 30000.')),
  keepAliveTimeoutMs: Type.Optional(Millis('How long an idle client connection is kept open. Default 5000.')),
  maxConnections: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most concurrent client connections; more are refused. Default 10000.' })),
  bodyIdleTimeoutMs: Type.Optional(Millis('Longest time a client may send no request body bytes while the gateway waits for them (408, or the exchange is aborted once a response started). Default 10000. Routes may set their own.')),
  writeIdleTimeoutMs: Type.Optional(Millis('Longest time a client may leave its connection full (not reading the response); past it the connection is closed and the upstream request aborted. Default 10000. Routes may set their own.')),
  minBodyBytesPerSecond: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 30, description: 'Least request body rate, measured over each bodyIdleTimeoutMs period (408 below it); 0 checks only for idleness. Default 0. Routes may set their own.' })),
  bufferBodyBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20, description: 'Request bodies with a declared Content-Length up to this size are received in full before an upstream connection is taken; 0 streams every body. Default 16384.' })),
}, 'Request limits against oversized and slow clients.');

export const PathsSchema = strict({
  mergeSlashes: Type.Optional(Type.Boolean({ description: 'Collapse `//` into `/` before matching and forwarding. Default true.' })),
  allowSemicolon: Type.Optional(Type.Boolean({ description: 'Accept `;` in paths. Default false (400): some servers strip `;params`, so `/admin;x` would reach `/admin`.' })),
}, 'How request paths are normalised.');

export const HeadersSchema = strict({
  requestId: Type.Optional(HeaderName),
  identity: Type.Optional(strict({
    subject: Type.Optional(HeaderName),
    tenant: Type.Optional(HeaderName),
    roles: Type.Optional(HeaderName),
    scopes: Type.Optional(HeaderName),
    method: Type.Optional(HeaderName),
    keyId: Type.Optional(HeaderName),
    omitted: Type.Optional(HeaderName),
  }, 'Names of the headers the verified identity is sent upstream in. Defaults: X-User-Id, X-Tenant-Id, X-Roles, X-Scopes, X-Auth-Method, X-Api-Key-Id, and X-Identity-Omitted (which identity headers had values left out because they cannot be sent verbatim, and how many).')),
  protected: Type.Optional(Type.Array(HeaderName, { maxItems: 100, description: 'More header names the gateway removes from every inbound request (identity headers it or your services assert).' })),
  fromTrustedProxies: Type.Optional(Type.Array(HeaderName, { maxItems: 100, uniqueItems: true, description: 'Proxy-asserted headers (client address, client certificate, original URL families; see docs/security.md) forwarded when the peer is a trusted proxy. Default none: every one is removed from every request.' })),
  allowUnderscores: Type.Optional(Type.Boolean({ description: 'Forward header names containing `_`. Default false: they are removed, as nginx does, because CGI-style servers read `SCRIPT_NAME` or `X_User` as their dash-spelled twins.' })),
}, 'Header names. `requestId` defaults to X-Request-Id.');

const PemFile = (what: string) => Type.String({ minLength: 1, maxLength: 4096, description: `${what} (PEM), a path relative to the config file.` });

export const UpstreamTlsSchema = strict({
  ca: Type.Optional(Type.Unsafe<string | string[]>({
    anyOf: [PemFile('CA bundle'), { type: 'array', items: PemFile('CA bundle'), minItems: 1, maxItems: 16, uniqueItems: true }],
    description: 'CA certificate file(s) (PEM) the upstream\'s chain must verify against; they replace the default roots. Default: the default trust store of the Node.js runtime.',
  })),
  servername: Type.Optional(formatted('^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$', 'a DNS name like orders.internal (no scheme, port or IP address)', { description: 'Name sent in SNI and verified in the upstream certificate. Default: the target\'s host (for an IP address target, no SNI and the IP is verified).' })),
  minVersion: Type.Optional(Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { description: 'Lowest TLS version accepted. Default TLSv1.2.' })),
  cert: Type.Optional(PemFile('Client certificate presented to the upstream (mTLS), with its chain after it')),
  key: Type.Optional(PemFile('Private key of tls.cert, unencrypted')),
  pins: Type.Optional(Type.Array(formatted('^sha256/[A-Za-z0-9+/]{43}=$', 'sha256/ and the base64 SHA-256 of a SubjectPublicKeyInfo (44 characters ending in =), as curl --pinnedpubkey takes it'), {
    minItems: 1, maxItems: 16, uniqueItems: true,
    description: 'SPKI pins: the leaf certificate\'s public key must match one of them, besides a chain that verifies. Default none.',
  })),
  insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'Accept any upstream certificate (no chain, name or expiry check): a man in the middle can read and change the traffic. Logged at every start and reload, and shown in /readyz. Default false.' })),
}, 'TLS to https:// targets: trust, name, version, client certificate and pins.');

export const UpstreamSchema = strict({
  targets: Type.Array(formatted('^https?://[^/?#]+/?$', 'an origin URL like http://10.0.0.5:3001 or https://orders.internal (scheme, host and optional port; no path or query)', { description: 'Origin URL, http://host:port or https://host:port.' }), { minItems: 1, maxItems: 64, description: 'Origins, used round robin.' }),
  timeoutMs: Type.Optional(Millis('Time to wait for response headers (504 after). Default 30000.')),
  connectTimeoutMs: Type.Optional(Millis('Time to establish a connection (504 after). Default 5000.')),
  bodyTimeoutMs: Type.Optional(Millis('Longest idle gap while receiving the response body (the response is aborted after). Default 30000.')),
  keepAliveTimeoutMs: Type.Optional(Millis('How long idle upstream connections are kept. Default 4000.')),
  connections: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'Most connections (and requests in flight) per target. Default 128.' })),
  queueTimeoutMs: Type.Optional(Millis('Longest wait for a free connection when every one is busy (503 upstream_busy after). Default 1000.', 0)),
  maxQueued: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000, description: 'Most requests waiting for a free connection; more are refused at once (503 upstream_busy). Default 256.' })),
  preserveHost: Type.Optional(Type.Boolean({ description: 'Send the client Host header upstream instead of the target host. Default false.' })),
  tls: Type.Optional(UpstreamTlsSchema),
  auth: Type.Optional(UpstreamAuthSchema),
}, 'A named upstream service.');

// RFC 6750 §3 scope-token characters minus the comma, so a scope can be quoted in a challenge.
// Role names are what identity providers put in groups claims ("Order Clerks", "Équipe"): any
// characters but controls, no leading or trailing white space. They are compared, never sent in a header.
const RoleName = formatted('^[^\\s\\x00-\\x1f\\x7f](?:[^\\x00-\\x1f\\x7f]{0,254}[^\\s\\x00-\\x1f\\x7f])?$', 'a role of up to 256 characters, without control characters or leading and trailing white space', { description: 'A role: up to 256 characters, spaces and non-ASCII allowed, no control characters, no leading or trailing white space.' });
const Token = (what: string) => formatted('^[\\x21\\x23-\\x2b\\x2d-\\x5b\\x5d-\\x7e]{1,256}$', `a ${what} of up to 256 printable ASCII characters without spaces, commas, quotes or backslashes`, { description: `A ${what}: printable ASCII without spaces, commas, quotes or backslashes.` });

/** `type` selects the schema (if/then, so errors come from the selected type only); the kinds come from one table. */
export const AuthenticatorSchema = Type.Unsafe<RawAuthenticator>({
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', enum: AUTHENTICATOR_KINDS.map((k) => k.type), description: 'Authenticator type.' } },
  allOf: AUTHENTICATOR_KINDS.map((k) => ({
    if: { type: 'object', properties: { type: { const: k.type } }, required: ['type'] },
    then: k.schema,
  })),
  description: 'A named authenticator.',
});

const CountryCode = formatted('^[A-Z]{2}$', 'an ISO 3166-1 alpha-2 country code in upper case, like DE or US');

/** `ipRules.countries`: allow and deny lists of countries, looked up in `geoDatabase`. */
const CountryRulesSchema = strict({
  allow: Type.Optional(Type.Array(CountryCode, { minItems: 1, maxItems: 300, uniqueItems: true, description: 'Only clients whose address the country database places in one of these countries are accepted. Absent: any country not denied.' })),
  deny: Type.Optional(Type.Array(CountryCode, { minItems: 1, maxItems: 300, uniqueItems: true, description: 'Clients whose address the country database places in one of these countries are refused.' })),
  unknown: Type.Optional(Type.Unsafe<'allow' | 'deny'>({ type: 'string', enum: ['allow', 'deny'], description: 'With an allow list, what happens to an address the database places in no country (private, loopback, unrouted ranges): deny (default, fail closed) or allow. Without an allow list such an address passes.' })),
}, 'Country rules (ISO 3166-1 alpha-2), on the country database of geoDatabase; checked after the address lists.');

/** `ipRules`: allow and deny lists of client addresses (CIDR, IPv4 and IPv6), and of countries. */
const IpRulesSchema = (description: string) => strict({
  allow: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 10_000, description: 'Only client addresses in these CIDRs are accepted. Absent: any address not denied.' })),
  deny: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 10_000, description: 'Client addresses in these CIDRs are refused, whatever allow says.' })),
  countries: Type.Optional(CountryRulesSchema),
}, description);

const RuleExpression = Type.String({ minLength: 1, maxLength: 65536, description: 'A CEL expression over request, client, identity and claims that must be true (docs/policy.md).' });
/** `routes[].when`: one expression (a rule named `when`) or named rules, all of which must hold. */
const WhenSchema = Type.Unsafe<string | { name: string; expr: string }[]>({
  anyOf: [
    RuleExpression,
    Type.Array(strict({
      name: formatted(RULE_NAME_PATTERN, 'a rule name of lower-case letters, digits and `-` that starts with a letter, up to 63 characters', { description: 'The rule\'s name, unique on the route: denials and audit records name it.' }),
      expr: RuleExpression,
    }, 'A named attribute rule.'), { minItems: 1, maxItems: 64 }),
  ],
  description: 'Attribute rules: a CEL expression (a rule named `when`), or a list of {name, expr}; all must hold, else 403 policy_denied naming the rule. Checked at load (docs/policy.md).',
});

export const RouteSchema = strict({
  name: Name,
  match: strict({
    path: Type.String({ minLength: 1, maxLength: 1024, description: 'Path pattern: /exact, /a/* (one segment), /a/{param}, /a/** (any depth).' }),
    methods: Type.Optional(Type.Array(formatted('^[A-Z]{1,16}$', 'an HTTP method in upper case, like GET or POST'), { minItems: 1, uniqueItems: true, description: 'Accepted methods, upper case. Absent: any method.' })),
    host: Type.Optional(formatted('^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$', 'a host name like api.example.com, or *.example.com for its subdomains (no port)', { description: 'Host name (case-insensitive, port ignored), or *.suffix.' })),
  }, 'What requests this route takes.'),
  upstream: Type.Optional(NameOf({ description: 'The upstream requests are forwarded to. A route has exactly one of upstream and serve.' })),
  serve: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: SERVED_ENDPOINTS.map((e) => e.name), description: `An endpoint the gateway answers itself instead of forwarding: ${SERVED_ENDPOINTS.map((e) => `${e.name} (${e.description})`).join('; ')}. A route has exactly one of upstream and serve.` })),
  assertIdentity: Type.Optional(AssertIdentitySchema),
  public: Type.Optional(Type.Boolean({ description: 'Explicitly allow unauthenticated access. A route must declare a policy: this or authenticate.' })),
  authenticate: Type.Optional(Type.Array(Name, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'Authenticator names, tried in order; the first whose credential is present decides.' })),
  authorize: Type.Optional(strict({
    roles: Type.Optional(strict({
      anyOf: Type.Optional(Type.Array(RoleName, { minItems: 1, maxItems: 64, uniqueItems: true, description: 'At least one of these roles.' })),
      allOf: Type.Optional(Type.Array(RoleName, { minItems: 1, maxItems: 64, uniqueItems: true, description: 'Every one of these roles.' })),
    }, 'Role requirement: anyOf, allOf, or both.')),
    scopes: Type.Optional(Type.Array(Token('scope'), { minItems: 1, maxItems: 64, uniqueItems: true, description: 'Scopes the identity must all have (403 insufficient_scope otherwise).' })),
    tenant: Type.Optional(strict({
      param: Type.Optional(formatted('^[A-Za-z_][A-Za-z0-9_]{0,63}$', 'the name of a {param} of the path pattern: a letter or `_`, then letters, digits or `_`', { description: 'A {param} of the path pattern that must equal the identity\'s tenant.' })),
      header: Type.Optional(HeaderName),
      fixed: Type.Optional(Type.Array(formatted('^[\\x20-\\x7e]{1,256}$', 'a tenant id of 1 to 256 printable ASCII characters'), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'The only tenants allowed on this route.' })),
    }, 'Tenant isolation: exactly one of param, header, fixed.')),
  }, 'What the authenticated identity needs. Requires authenticate.')),
  apiKeyInQuery: Type.Optional(Type.Boolean({ description: 'Also accept API keys in the query string (the authenticator\'s queryParam). Discouraged: URLs end up in logs and browser history. Default false.' })),
  rateLimit: Type.Optional(Type.Unsafe<string | string[]>({
    anyOf: [Name, { type: 'array', items: Name, minItems: 1, maxItems: 16, uniqueItems: true }],
    description: 'Named rate limit(s) for this route, applied in order after the global ones.',
  })),
  quota: Type.Optional(Type.Unsafe<string | string[]>({
    anyOf: [Name, { type: 'array', items: Name, minItems: 1, maxItems: 16, uniqueItems: true }],
    description: 'Named quota(s) for this route, applied after its rate limits.',
  })),
  ipRules: Type.Optional(IpRulesSchema('Client addresses this route accepts, checked after the top-level ipRules and before anything else on the route, preflights included (403 ip_denied).')),
  allowMethodOverride: Type.Optional(Type.Boolean({ description: 'Forward X-HTTP-Method-Override (and X-HTTP-Method, X-Method-Override) when its value is a method this route accepts (405 otherwise). Default false: the headers are removed.' })),
  forwardAccessToken: Type.Optional(Type.Boolean({ description: 'On a route authenticated by an oidc authenticator: send the browser session\'s access token upstream as Authorization: Bearer (refreshed before it expires). Default false. Not allowed with forwardAuthorization, or when the route\'s upstream has auth.' })),
  forwardAuthorization: Type.Optional(Type.Boolean({ description: 'Send the client\'s Authorization header upstream. Default false: the upstream gets the identity headers instead. Not allowed when the route\'s upstream has auth (the gateway\'s own token goes there).' })),
  onAuthUnavailable: Type.Optional(Type.Unsafe<'failClosed' | 'serveStale'>({ type: 'string', enum: ['failClosed', 'serveStale'], description: 'When an introspection endpoint cannot answer: failClosed (503 authentication_unavailable with Retry-After) or serveStale (a cached active answer past its TTL, within the authenticator\'s cache.staleMs and the token\'s exp; never a refusal or a revoked token). Needs an introspection authenticator for serveStale. Default failClosed.' })),
  requireCertificateBoundToken: Type.Optional(Type.Boolean({ description: 'A JWT that authenticates a request here must be bound to the client certificate of its connection (RFC 8705 cnf.x5t#S256); 401 token_certificate_mismatch otherwise. Needs a jwt authenticator. Default false.' })),
  rewrite: Type.Optional(strict({
    stripPrefix: Type.Optional(formatted('^/', 'a path that starts with /, like /api', { description: 'Remove this literal prefix (whole segments) from the path sent upstream.' })),
    addPrefix: Type.Optional(formatted('^/', 'a path that starts with /, like /v1', { description: 'Prepend this prefix to the path sent upstream.' })),
  }, 'Path rewriting towards the upstream.')),
  limits: Type.Optional(strict({
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 30, description: 'Largest request body on this route (413 above).' })),
    contentTypes: Type.Optional(Type.Array(formatted('^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+*-]+$', 'a media type in lower case, like application/json or text/*'), { minItems: 1, description: 'Accepted media types for requests with a body (415 otherwise), e.g. application/json.' })),
    allowBodyOn: Type.Optional(Type.Array(Type.Unsafe<'GET' | 'HEAD' | 'DELETE' | 'OPTIONS'>({ type: 'string', enum: ['GET', 'HEAD', 'DELETE', 'OPTIONS'] }), { minItems: 1, uniqueItems: true, description: 'Methods without body semantics that may carry a body on this route. Default none: such a body is refused with 400 body_not_allowed.' })),
    bodyIdleTimeoutMs: Type.Optional(Millis('limits.bodyIdleTimeoutMs for this route.')),
    writeIdleTimeoutMs: Type.Optional(Millis('limits.writeIdleTimeoutMs for this route.')),
    minBodyBytesPerSecond: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 30, description: 'limits.minBodyBytesPerSecond for this route.' })),
  }, 'Per-route request limits.')),
  responseHeaders: Type.Optional(RouteResponseHeadersSchema),
  validate: Type.Optional(ValidateSchema),
  cors: Type.Optional(NameOf({ description: 'The CORS policy (from the top-level cors) of this route: preflights are answered by the gateway, responses carry its headers.' })),
  when: Type.Optional(WhenSchema),
}, 'A route: a match, an upstream (or an endpoint the gateway serves) and a policy.');

export { AuditSchema } from './schema-audit.js';
import { AuditSchema } from './schema-audit.js';
import { OAuthSchema } from '../authn/oauth/oauth-services.js';

const Count = (description: string) => Type.Integer({ minimum: 1, maximum: 1_000_000, description });
const Window = Duration('The window: 1s, 60s, 15m, 1h, 1d (at most 1d; use a quota for longer periods).');
const LimitDimension = formatted("^(ip|subject|keyId|tenant|route|header:[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}|claim:[^\\s]{1,256})$",
  'ip, subject, keyId, tenant, route, header:<header name> or claim:<claim path>', {
  description: 'ip (client address; IPv6 by prefix), subject, keyId (API key id), tenant, route, header:<name>, claim:<path>.',
});

/** A `store` option: the backends of one family's kind table. */
const StoreName = <T extends string>(kinds: readonly { readonly type: T }[], description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: kinds.map((k) => k.type), description });

const FailurePolicy = (description: string) => Type.Unsafe<'failClosed' | 'failOpen'>({ type: 'string', enum: ['failClosed', 'failOpen'], description });

export const RateLimitSchema = strict({
  algorithm: Type.Unsafe<Algorithm>({ type: 'string', enum: ALGORITHM_KINDS.map((k) => k.type), description: 'fixed-window, sliding-window, token-bucket or gcra (see docs/rate-limits.md for when to use which).' }),
  limit: Count('Requests per window (window algorithms); refill per window (token-bucket); rate per window (gcra).'),
  per: Window,
  burst: Type.Optional(Count('token-bucket: bucket capacity (default limit); gcra: requests allowed back to back (default 1).')),
  by: Type.Array(LimitDimension, { minItems: 1, maxItems: 8, uniqueItems: true, description: 'What a caller is: each distinct combination has its own count.' }),
  tiers: Type.Optional(Named(strict({
    limit: Count('The tier\'s limit.'),
    per: Type.Optional(Window),
    burst: Type.Optional(Count('The tier\'s burst.')),
  }, 'Limits for callers of this tier; unset fields come from the base limit.'), { description: 'Per caller tier (an API key\'s tier, a token\'s tier claim). Callers without a listed tier get the base limit.' })),
  store: Type.Optional(StoreName(LIMIT_STORE_KINDS, 'Where this limit\'s counts live. Default rateLimiting.store.')),
  onStoreError: Type.Optional(FailurePolicy('Redis unreachable: failClosed answers 503; failOpen decides with an in-process limiter of the same shape. Default failClosed.')),
  maxEntries: Type.Optional(Type.Integer({ minimum: 100, maximum: 100_000_000, description: 'Most callers this limit tracks in process (and in its fail-open fallback). Live counts are never dropped: when full, callers without an entry share one overflow count. Default rateLimiting.maxEntries.' })),
}, 'A named rate limit; routes list it under rateLimit, or rateLimiting.global applies it everywhere.');

export const QuotaSchema = strict({
  limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'Requests per period.' }),
  period: Type.Unsafe<'day' | 'month'>({ type: 'string', enum: ['day', 'month'], description: 'Calendar day or month in timeZone; the count starts afresh at its first midnight.' }),
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone the periods follow, e.g. Europe/Berlin. Default UTC.' })),
  by: Type.Array(LimitDimension, { minItems: 1, maxItems: 8, uniqueItems: true, description: 'What a caller is (usually tenant or keyId).' }),
  tiers: Type.Optional(Named(strict({
    limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'The tier\'s requests per period.' }),
  }, 'The quota for callers of this tier.'), { description: 'Per caller tier. Callers without a listed tier get the base limit.' })),
  store: Type.Optional(StoreName(QUOTA_STORE_KINDS, 'embedded (SQLite in dataDir; exact for one gateway, several on one host add up their counts at each flush) or redis (shared, exact across gateways). Default redis when rateLimiting.store is redis, else embedded.')),
  onStoreError: Type.Optional(FailurePolicy('Store unreachable: failClosed answers 503; failOpen admits without counting. Default failClosed.')),
}, 'A named quota per calendar period; routes list it under quota. Counts survive restarts.');

export const RateLimitingSchema = strict({
  store: Type.Optional(StoreName(LIMIT_STORE_KINDS, 'Where limits count: memory (this gateway and all its workers; exact for one gateway) or redis (shared by every gateway). Default memory.')),
  redis: Type.Optional(RedisSettingsSchema),
  maxEntries: Type.Optional(Type.Integer({ minimum: 100, maximum: 100_000_000, description: 'Most callers each in-process limit, each fail-open fallback, each brute-force table and the quota cache track. Live counts and blocks are never dropped: when full, callers without an entry share one overflow count (see docs/rate-limits.md). Default 100000.' })),
  headers: Type.Optional(strict({
    draft: Type.Optional(Type.Boolean({ description: 'RateLimit-Policy and RateLimit (IETF draft). Default true.' })),
    classic: Type.Optional(Type.Boolean({ description: 'X-RateLimit-Limit, -Remaining, -Reset. Default true.' })),
  }, 'Rate-limit headers on allowed and denied responses of limited routes.')),
  ipv6PrefixLength: Type.Optional(Type.Integer({ minimum: 32, maximum: 128, description: 'IPv6 clients are keyed by this many leading bits. Default 64.' })),
  global: Type.Optional(Type.Array(Name, { maxItems: 16, uniqueItems: true, description: 'Limits applied on every route, before the route\'s own.' })),
  bruteForce: Type.Optional(strict({
    maxFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Failed authentications within `within` that block the source. Default 10.' })),
    within: Type.Optional(Window),
    blockFor: Type.Optional(Duration('How long a source stays blocked (429): 30s, 15m, 1h. Default 15m.')),
    by: Type.Optional(Type.Array(Type.Unsafe<'ip' | 'credential'>({ type: 'string', enum: ['ip', 'credential'] }), { minItems: 1, uniqueItems: true, description: 'Sources: the client address, the presented credential id (API key id). Default [ip, credential].' })),
    store: Type.Optional(StoreName(LIMIT_STORE_KINDS, 'Where failures are counted. Default rateLimiting.store.')),
  }, 'Blocks sources of repeated failed authentications on every authenticated route (see docs/rate-limits.md).')),
  quotaFile: EmbeddedQuotaSchema.properties.quotaFile,
  quotaFlushMs: EmbeddedQuotaSchema.properties.quotaFlushMs,
}, 'Rate limiting: stores, headers, global limits (see docs/rate-limits.md).');

export const GatewayConfigSchema = Type.Object({
  $schema: Type.Optional(Type.String()),
  listen: Type.Optional(ListenSchema),
  tls: Type.Optional(TlsSchema),
  reload: Type.Optional(ReloadSchema),
  admin: Type.Optional(AdminSchema),
  dataDir: Type.Optional(Type.String({ minLength: 1, description: 'Directory for the audit trail and embedded stores, relative to the config file. Default ./data.' })),
  trustedProxies: Type.Optional(Type.Array(Type.String(), { maxItems: 1000, description: 'CIDRs of proxies whose X-Forwarded-* headers are believed.' })),
  ipRules: Type.Optional(IpRulesSchema('Client addresses every request is checked against, before routing (403 ip_denied).')),
  geoDatabase: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A MaxMind-format country database (.mmdb: GeoLite2/GeoIP2 Country or City, DB-IP country), relative to the config file: what ipRules.countries and the impossibleTravel detector look addresses up in. Read at load and on every reload; a changed file reloads the config.' })),
  limits: Type.Optional(LimitsSchema),
  paths: Type.Optional(PathsSchema),
  headers: Type.Optional(HeadersSchema),
  authenticators: Type.Optional(Named(AuthenticatorSchema, { description: 'Named authenticators that routes list under authenticate.' })),
  apiKeys: Type.Optional(ApiKeysSchema),
  oauth: Type.Optional(OAuthSchema),
  identityAssertion: Type.Optional(IdentityAssertionSchema),
  rateLimits: Type.Optional(Named(RateLimitSchema, { description: 'Named rate limits.' })),
  rateLimiting: Type.Optional(RateLimitingSchema),
  quotas: Type.Optional(Named(QuotaSchema, { description: 'Named quotas (per day or month).' })),
  responseHeaders: Type.Optional(ResponseHeadersSchema),
  cors: Type.Optional(Named(CorsPolicySchema, { description: 'Named CORS policies that routes name under cors.' })),
  upstreams: Named(UpstreamSchema, { description: 'Named upstream services.' }),
  routes: Type.Array(RouteSchema, { minItems: 1, maxItems: 10000, description: 'Routes. Unmatched requests are answered 404 and never forwarded.' }),
  audit: Type.Optional(AuditSchema),
  tracing: Type.Optional(TracingSchema),
  log: Type.Optional(strict({
    level: Type.Optional(Type.Unsafe<LogLevel>({ type: 'string', enum: [...LOG_LEVELS], description: 'Log level. Default info.' })),
  }, 'Operational logs (JSON lines on stdout).')),
  shutdown: Type.Optional(strict({
    drainTimeoutMs: Type.Optional(Millis('On SIGTERM/SIGINT, how long in-flight requests may finish before connections are closed. Default 10000.')),
  }, 'Graceful shutdown.')),
}, {
  additionalProperties: false,
  title: 'Portcullis gateway configuration',
  description: 'gateway.yaml: listeners, upstreams and routes for the Portcullis security gateway.',
});

export type RawConfig = Static<typeof GatewayConfigSchema>;
export type { RawAuthenticator } from '../authn/kinds.js';
export type { RawJwtAuthenticator } from '../authn/jwt/kind.js';
export type { RawApiKeyAuthenticator } from '../authn/api-key/kind.js';
export { ApiKeysSchema };
export type RawRoute = Static<typeof RouteSchema>;
export type RawUpstream = Static<typeof UpstreamSchema>;
export type RawUpstreamTls = Static<typeof UpstreamTlsSchema>;
export type RawClientCredentials = Static<typeof UpstreamAuthSchema>['clientCredentials'];
export type RawRateLimit = Static<typeof RateLimitSchema>;
export type RawQuota = Static<typeof QuotaSchema>;

/** The published JSON Schema document (draft-07 keywords only, which editors widely support). */
export function jsonSchema(): Record<string, unknown> {
  return { $schema: 'http://json-schema.org/draft-07/schema#', ...(JSON.parse(JSON.stringify(GatewayConfigSchema)) as Record<string, unknown>) };
}
