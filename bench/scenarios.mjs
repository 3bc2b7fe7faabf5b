// What `npm run bench` measures. This is the file to extend: add gateway routes in
// `gatewayConfig` and a scenario per route in `scenarios`, with the baseline its ratios are
// computed against (usually `gateway-public` for a gateway feature, so JWT, API keys or rate
// limits are priced against the plain public route measured in the same run).
//
// A scenario:
//   name        unique id, shown in the tables and the JSON
//   target      which server the load goes to: 'upstream' | 'nginx' | 'bare-proxy' (pool.request +
//               pipeline) | 'bare-proxy-stream' (pool.stream) | 'peer-fast-gateway' | 'gateway'
//               | 'gateway-workers-2' (the gateway under `start --workers 2`)
//               | 'gateway-audit-off' (the gateway with a trail that keeps nothing: the baseline of
//               the audit scenarios) | 'gateway-nats' (the gateway whose trail also publishes every
//               record to a private nats-server with JetStream)
//   path        request path (with query, if any)
//   connections concurrent keep-alive connections
//   headers     extra request headers: an object, or (ctx) => object when it needs set-up results
//   method      request method (default GET); body: a string sent with every request (its
//               Content-Length set by the load generator; HTTP/1.1 load generators only)
//   baseline    name of the scenario its ratios are computed against (itself for a baseline)
//   references  { stream, nginx }: the field's floor and nginx at the same concurrency; every
//               figure is also shown as a ratio to these two (set by `scenarios` per group)
//   aims        optional targets, each checked and reported as met or missed, and by how much:
//                 { metric: 'throughput', min, goal? }  requests/s ÷ the other scenario's
//                 { metric: 'cpuPerRequest', max }      CPU µs per request ÷ the other's
//                 { metric: 'addedP50Ms', max }         p50 − the other's p50, in milliseconds
//               each with `against` (a scenario name; default the baseline)
//   streams     HTTP/2 streams kept in flight on each connection (the node:http2 load driver);
//               only with https
//   https       true: the load goes to the gateway's HTTPS listener (TLS 1.3, the bench's own
//               certificate) instead of its plain one
//   needsRedis  true: run.mjs starts a private redis-server (ctx.redisUrl) and reports Redis round
//               trips per request; the scenario is skipped when redis-server is not installed
//   needsAuthorizationServer  true: run.mjs starts the bench's authorization server (oidc-provider,
//               bench/authorization-server.mjs) before the gateway, whose config then has the
//               introspection routes; ctx.introspectionToken is an opaque token it issued
//   session     the oidc authenticator (a key of SESSION_AUTHENTICATORS) whose browser session the
//               scenario sends: run.mjs starts the authorization server with the login client, the
//               gateway on a port chosen first (its callback URL is registered at the provider),
//               logs in once through the gateway before the load and puts the session cookie's
//               value in ctx.sessionCookies[session]; the probe also checks that the upstream
//               received the session's identity (`identityPath`)
//   identityPath  a path on the scenario's route ending in /whoami: the bench upstream answers it
//               with the identity headers it received, and the probe checks x-user-id
//   (the gateway-nats target starts a private nats-server with JetStream; skipped without one)
//   note        one line for the report
//
// A target that cannot run on this machine (nginx or fast-gateway not installed, a build whose
// CLI refuses --workers) is skipped with one line saying why; its scenarios are left out and
// ratios against it show "—".

import { freshKeyPair } from '../dist/src/lib/key-pair.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { KeyService } from '../dist/src/authn/api-key/key-service.js';
import { SqliteKeyStore } from '../dist/src/authn/api-key/sqlite-store.js';
import { issueCertificate, issueCertificateAuthority } from '../dist/src/tls/issue-certificates.js';
import { writeFileSync } from 'node:fs';
import { sessionCookieName } from './session-login.mjs';

// JWT scenarios: one RSA and one EC key pair per run, and one token each, valid for two hours.
const ISSUER = 'https://bench.issuer/';
const AUDIENCE = 'bench-api';
const rsa = freshKeyPair({ type: 'rsa', modulusLength: 2048 });
const ec = freshKeyPair({ type: 'ec', namedCurve: 'P-256' });
const claims = { sub: 'bench-user', scope: 'bench:read', roles: ['reader'], tenant: 'acme' };
const sign = (alg, key) => new SignJWT(claims).setProtectedHeader({ alg, kid: alg, typ: 'at+jwt' })
  .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('2h').sign(key);
const tokens = { RS256: await sign('RS256', rsa.privateKey), ES256: await sign('ES256', ec.privateKey) };
const pem = (pair) => pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** A JWT authenticator for the bench issuer with one key; cacheMaxEntries 0 verifies every request. */
function jwtAuthenticator(alg, pair, cacheMaxEntries) {
  return {
    type: 'jwt', issuer: ISSUER, publicKeys: [{ pem: pem(pair), kid: alg }], audience: AUDIENCE, algorithms: [alg],
    claims: { tenant: 'tenant' }, ...(cacheMaxEntries === undefined ? {} : { cacheMaxEntries }),
  };
}

/**
 * What the peer gateway (bench/peer-fast-gateway.mjs) needs to check the same token as the
 * gateway's `jwt-rs256` route: same issuer, audience and public key, on the same path prefix.
 */
export const peerJwt = { prefix: '/jwt-rs256', issuer: ISSUER, audience: AUDIENCE, publicKeyPem: pem(rsa) };

// API key scenario: one key issued into a scratch SQLite store before the gateway starts.
const keyDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-keys-'));
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));
const keyFile = join(keyDir, 'api-keys.db');
const keyStore = new SqliteKeyStore(keyFile);
await keyStore.migrate();
const { key: apiKey } = await new KeyService(keyStore, { environment: 'bench', maxLifetimeMs: 86_400_000, expiryWarningMs: 3_600_000 })
  .create({ name: 'bench-service', tenant: 'acme', scopes: ['bench:read'], roles: ['reader'] });
await keyStore.close();

// The HTTPS listener's certificate: ECDSA P-256 (what a current deployment serves), issued by a
// CA of the run's own.
const benchCa = await issueCertificateAuthority('Portcullis Bench CA');
const benchServer = await issueCertificate({ commonName: '127.0.0.1', ips: ['127.0.0.1'], dns: ['localhost'], extendedKeyUsage: ['serverAuth'] }, benchCa);
const tlsFiles = { cert: join(keyDir, 'server.crt'), key: join(keyDir, 'server.key') };
/** What a client of the HTTPS listener trusts (the HTTP/2 load driver verifies the certificate). */
export const benchTls = { ca: benchCa.cert };
writeFileSync(tlsFiles.cert, benchServer.cert + benchCa.cert);
writeFileSync(tlsFiles.key, benchServer.key, { mode: 0o600 });

// Browser-session scenarios: one oidc authenticator per session store, each with a callback path of
// its own, logging in at the bench's authorization server as BENCH_USER.
/** The oidc authenticators of the session scenarios: name → session store. */
export const SESSION_AUTHENTICATORS = { 'oidc-memory': 'memory', 'oidc-redis': 'redis' };
/** The subject every bench login logs in as (bench/authorization-server.mjs). */
export const BENCH_USER = 'bench-user';
/** The callback path of the oidc authenticator `name`; its login path is beside it. */
export const callbackPath = (name) => `/oauth2/${name}/callback`;
export const loginPath = (name) => `/oauth2/${name}/login`;
/** The key of the keyed hash under which the Redis session store keys sessions (oauth.tokenHashKey, required with oauth.redis). */
const TOKEN_HASH_KEY = 'bench-token-hash-key-0123456789abcdef0123';

/** Default settings; each can be overridden by the BENCH_* environment variable in brackets. */
export const defaults = {
  warmupSec: 5, // BENCH_WARMUP: before each scenario in round 1 (JIT, connections)
  rewarmSec: 2, // before each scenario in later rounds (re-opens connections)
  durationSec: 10, // BENCH_DURATION: measured seconds per scenario and round
  connections: 50, // BENCH_CONNECTIONS
  // BENCH_ROUNDS: each round runs every scenario once, in order, so slow drift on the machine hits
  // all of them alike; the median over rounds is reported. 1 is a quick look, 3 the default.
  rounds: 3,
};

/**
 * The gateway's config (serialised to YAML by run.mjs). `ctx.upstreamOrigin` is the bench
 * upstream, `ctx.dataDir` a scratch directory for the audit trail, `ctx.workDir` a scratch
 * directory for any files a scenario needs (keys, key files), `ctx.redisUrl` the private Redis
 * (null when no scenario needs it or redis-server is missing), `ctx.httpPort` and
 * `ctx.adminPort` the ports (0: any free port, reported in the "gateway listening" line), `ctx.natsUrl`
 * the private NATS server the audit trail also publishes to (null: the file trail only),
 * `ctx.authorizationServer` the introspection scenarios' authorization server ({ issuer, clientId,
 * clientSecret }; null: no introspection routes), `ctx.login` the session scenarios' login client
 * ({ base, issuer, clientId, clientSecret }: `base` is the gateway's own origin; null: no session
 * routes; the Redis one also needs `ctx.redisUrl`).
 */
export function gatewayConfig(ctx) {
  return {
    listen: {
      http: { host: '127.0.0.1', port: ctx.httpPort ?? 0 },
      https: { host: '127.0.0.1', port: ctx.httpsPort ?? 0, ...tlsFiles },
    },
    admin: { host: '127.0.0.1', port: ctx.adminPort ?? 0 },
    dataDir: ctx.dataDir,
    // info: the "gateway listening" line (with the bound ports) is logged at info level.
    log: { level: 'info' },
    shutdown: { drainTimeoutMs: 2000 },
    upstreams: { bench: { targets: [ctx.upstreamOrigin] } },
    apiKeys: { environment: 'bench', store: { file: keyFile } },
    ...(ctx.redisUrl === null ? {} : { rateLimiting: { redis: { url: ctx.redisUrl } } }),
    // The Redis session store keeps sessions in oauth.redis, which needs a token hash key shared by
    // every gateway.
    ...(ctx.login == null || ctx.redisUrl === null ? {} : { oauth: { tokenHashKey: TOKEN_HASH_KEY, redis: { url: ctx.redisUrl } } }),
    // The chained, checkpointed file trail at its defaults; with a NATS URL (the gateway-nats
    // target), every record is also published to JetStream.
    ...(ctx.natsUrl === null || ctx.natsUrl === undefined ? {} : { audit: { nats: { url: ctx.natsUrl, stream: 'BENCH_AUDIT', subject: 'bench.audit' } } }),
    // Limits that never refuse at bench rates, so the figures are the price of deciding.
    rateLimits: {
      inMemory: { algorithm: 'token-bucket', limit: 1_000_000, per: '1s', by: ['ip'] },
      perCaller: { algorithm: 'token-bucket', limit: 1_000_000, per: '1s', by: ['subject'] },
      ...(ctx.redisUrl === null ? {} : {
        inRedis: { algorithm: 'token-bucket', limit: 1_000_000, per: '1s', by: ['ip'], store: 'redis' },
        perCallerInRedis: { algorithm: 'token-bucket', limit: 1_000_000, per: '1s', by: ['subject'], store: 'redis' },
      }),
    },
    authenticators: {
      'machines': { type: 'apiKey' },
      'rs256': jwtAuthenticator('RS256', rsa),
      'rs256-nocache': jwtAuthenticator('RS256', rsa, 0),
      'es256': jwtAuthenticator('ES256', ec),
      'es256-nocache': jwtAuthenticator('ES256', ec, 0),
      ...(ctx.authorizationServer == null ? {} : {
        'opaque': introspectionAuthenticator(ctx.authorizationServer),
        'opaque-nocache': introspectionAuthenticator(ctx.authorizationServer, 0),
      }),
      ...Object.fromEntries(sessionNames(ctx).map((name) => [name, oidcAuthenticator(ctx.login, name)])),
    },
    routes: [
      { name: 'public', match: { methods: ['GET'], path: '/bench/**' }, upstream: 'bench', public: true },
      // JWT routes: authenticate, authorize a scope, inject the identity headers, strip Authorization.
      ...['rs256', 'rs256-nocache', 'es256', 'es256-nocache'].map((name) => ({
        name: `jwt-${name}`, match: { methods: ['GET'], path: `/jwt-${name}/**` }, upstream: 'bench',
        authenticate: [name], authorize: { scopes: ['bench:read'] },
      })),
      // Introspection routes: an opaque token checked at the authorization server (cached, and on every request).
      ...(ctx.authorizationServer == null ? [] : ['opaque', 'opaque-nocache'].map((name) => ({
        name: `introspection-${name}`, match: { methods: ['GET'], path: `/introspection-${name}/**` }, upstream: 'bench',
        authenticate: [name], authorize: { scopes: ['bench:read'] },
      }))),
      // Browser-session routes: the session cookie looked up in the store (memory or Redis), identity headers.
      ...sessionNames(ctx).map((name) => ({ name, match: { methods: ['GET'], path: `/${name}/**` }, upstream: 'bench', authenticate: [name] })),
      // API key route: key checks, directory lookup, hash comparison, usage counting, identity headers.
      { name: 'apikey', match: { methods: ['GET'], path: '/apikey/**' }, upstream: 'bench', authenticate: ['machines'], authorize: { scopes: ['bench:read'] } },
      // The public route again, with one rate limit: in process, and in Redis (one EVALSHA per request).
      { name: 'limited-memory', match: { methods: ['GET'], path: '/limited-memory/**' }, upstream: 'bench', public: true, rateLimit: 'inMemory' },
      ...(ctx.redisUrl === null ? [] : [{ name: 'limited-redis', match: { methods: ['GET'], path: '/limited-redis/**' }, upstream: 'bench', public: true, rateLimit: 'inRedis' }]),
      // The realistic route: a cached RS256 token, a scope, a limit per caller, the identity
      // headers (injected on every authenticated route) and the audit record (always written).
      fullRoute('full', '/full/**', 'perCaller'),
      ...(ctx.redisUrl === null ? [] : [fullRoute('full-redis', '/full-redis/**', 'perCallerInRedis')]),
      ...policyRoutes(),
    ],
  };
}

/** An introspection authenticator at the bench's authorization server; cache.maxEntries 0 asks it on every request. */
function introspectionAuthenticator(server, maxEntries) {
  return {
    type: 'introspection', issuer: server.issuer, clientId: server.clientId, clientSecret: server.clientSecret,
    ...(maxEntries === undefined ? {} : { cache: { maxEntries } }),
  };
}

/** The session scenarios' oidc authenticators this config has: none without a login client, the Redis one only with Redis. */
function sessionNames(ctx) {
  if (ctx.login == null) return [];
  return Object.entries(SESSION_AUTHENTICATORS).filter(([, store]) => store === 'memory' || ctx.redisUrl !== null).map(([name]) => name);
}

/**
 * An oidc authenticator at the bench's authorization server. The provider's access tokens live 12
 * hours and refresh.beforeExpiryMs is 0, and the session timeouts are as long: no request of a run
 * refreshes, so the figures are the price of the cookie → session lookup alone.
 */
function oidcAuthenticator(login, name) {
  return {
    type: 'oidc', issuer: login.issuer, clientId: login.clientId, clientSecret: login.clientSecret,
    redirectUri: `${login.base}${callbackPath(name)}`, claims: { tenant: 'tenant_id' },
    session: { store: SESSION_AUTHENTICATORS[name], idleTimeout: '12h', absoluteTimeout: '12h' },
    refresh: { beforeExpiryMs: 0 },
  };
}

/**
 * The policy scenarios' request: a JSON order of exactly 1 KB, POSTed with the RS256 token; and
 * the JSON Schema the checked route validates it against (every member typed, no others allowed).
 */
export const ORDER_BODY = (() => {
  const order = {
    customer: 'bench-customer-0001', currency: 'EUR', channel: 'web',
    items: Array.from({ length: 8 }, (_, i) => ({ sku: `SKU-${String(1000 + i)}`, quantity: i + 1, price: 9.5 + i, gift: i % 2 === 0 })),
    note: '',
  };
  const bare = JSON.stringify(order).length;
  return JSON.stringify({ ...order, note: 'n'.repeat(1024 - bare) });
})();
const ORDER_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['customer', 'currency', 'items'],
  properties: {
    customer: { type: 'string', minLength: 1, maxLength: 64 },
    currency: { enum: ['EUR', 'USD', 'GBP'] },
    channel: { enum: ['web', 'app', 'phone'] },
    note: { type: 'string', maxLength: 2048 },
    items: {
      type: 'array', minItems: 1, maxItems: 100,
      items: {
        type: 'object', additionalProperties: false, required: ['sku', 'quantity', 'price'],
        properties: {
          sku: { type: 'string', pattern: '^SKU-[0-9]{4}$' },
          quantity: { type: 'integer', minimum: 1, maximum: 1000 },
          price: { type: 'number', minimum: 0 },
          gift: { type: 'boolean' },
        },
      },
    },
  },
};

/**
 * The policy routes: the same authenticated POST route twice, the second with two attribute rules
 * (the caller's tenant is the path's, the client is on the loopback network) and the order's JSON
 * Schema (strict parse within limits, then the schema). Their ratio is the price of both.
 */
function policyRoutes() {
  const base = (name) => ({
    name, match: { methods: ['POST'], path: `/${name}/{tenant}/orders` }, upstream: 'bench',
    authenticate: ['rs256'], authorize: { scopes: ['bench:read'] },
  });
  return [
    base('orders-plain'),
    {
      ...base('orders-checked'),
      when: [
        { name: 'own-tenant', expr: 'identity.tenant == request.params.tenant' },
        { name: 'loopback', expr: 'inCidr(client.ip, "127.0.0.0/8")' },
      ],
      validate: { jsonSchema: ORDER_SCHEMA, bodyRequired: true },
    },
  ];
}

function fullRoute(name, path, rateLimit) {
  return { name, match: { methods: ['GET'], path }, upstream: 'bench', authenticate: ['rs256'], authorize: { scopes: ['bench:read'] }, rateLimit };
}

/** The field's floor and nginx at full concurrency, and their one-connection runs. */
const FIELD = { stream: 'bare-proxy-stream', nginx: 'nginx' };
const FIELD_C1 = { stream: 'bare-proxy-stream-c1', nginx: 'nginx-c1' };

/** Issue 13's targets for the public route and the full pipeline, against the field's floor. */
const FLOOR = 'bare-proxy-stream';

/** The Cookie header of a session scenario: the session cookie of the login run.mjs made before the load. */
function sessionHeaders(name) {
  return (ctx) => ({ cookie: `${sessionCookieName(name)}=${ctx.sessionCookies[name]}` });
}

/** The scenarios, run in this order in odd rounds and in reverse order in even rounds. */
export function scenarios({ connections }) {
  const path = '/bench/hello';
  const jwtRs256 = { authorization: `Bearer ${tokens.RS256}` };
  const throughput = [
    // The field: no proxy, nginx, the minimal Node proxies, a peer Node gateway.
    { name: 'upstream-direct', target: 'upstream', path, connections, baseline: 'bare-proxy',
      note: 'no proxy; the upstream shares core 0 with the load generator' },
    { name: 'nginx', target: 'nginx', path, connections, baseline: 'bare-proxy',
      note: 'nginx as a plain reverse proxy: one worker, keep-alive to the upstream' },
    { name: 'bare-proxy', target: 'bare-proxy', path, connections, baseline: 'bare-proxy',
      note: 'node:http + one undici Pool, the floor for any Node proxy' },
    { name: 'bare-proxy-stream', target: 'bare-proxy-stream', path, connections, baseline: 'bare-proxy',
      note: 'node:http + undici pool.stream, as the gateway forwards: the stricter floor' },
    { name: 'peer-fast-gateway', target: 'peer-fast-gateway', path: '/jwt-rs256/hello', connections, baseline: 'bare-proxy',
      headers: jwtRs256, note: 'fast-gateway + jose jwtVerify with a verified-token cache: the same RS256 token check' },

    { name: 'gateway-public', target: 'gateway', path, connections, baseline: 'bare-proxy',
      aims: [
        { metric: 'throughput', min: 0.80, goal: 0.90 },
        { metric: 'throughput', against: FLOOR, min: 0.90 },
        { metric: 'cpuPerRequest', against: FLOOR, max: 1.15 },
        { metric: 'throughput', against: 'gateway-public-audit-off', min: 0.90 },
      ],
      note: 'public route: routing, header hygiene, chained and checkpointed audit record, metrics' },

    // The price of the audit trail: the same routes with a trail that keeps nothing, and with every
    // record also published to NATS JetStream.
    { name: 'gateway-public-audit-off', target: 'gateway-audit-off', path, connections, baseline: 'bare-proxy',
      note: 'the public route with a trail that keeps nothing (the baseline of the audit aims)' },
    { name: 'gateway-public-nats', target: 'gateway-nats', path, connections, baseline: 'gateway-public-audit-off',
      aims: [{ metric: 'throughput', min: 0.90 }],
      note: 'the public route; the chained file trail and every record published to JetStream (acks, Nats-Msg-Id)' },
    { name: 'gateway-full-audit-off', target: 'gateway-audit-off', path: '/full/hello', connections, baseline: 'bare-proxy', headers: jwtRs256,
      note: 'the full pipeline with a trail that keeps nothing' },

    // The public route over TLS: a keep-alive connection per load connection (the record cipher's
    // price per request), and a new connection for every request (the full handshake's price).
    { name: 'gateway-public-https', target: 'gateway', https: true, path, connections, baseline: 'gateway-public',
      aims: [{ metric: 'throughput', min: 0.85 }],
      note: 'the public route over HTTPS (TLS 1.3, ECDSA P-256), keep-alive' },
    { name: 'gateway-https-handshakes', target: 'gateway', https: true, path, connections, baseline: 'gateway-public-https',
      headers: { connection: 'close' },
      note: 'the public route over HTTPS with a new connection per request: requests/s is the full-handshake rate' },

    // JWT-protected routes, priced against the public route of the same run.
    { name: 'gateway-jwt-rs256', target: 'gateway', path: '/jwt-rs256/hello', connections, baseline: 'gateway-public',
      headers: jwtRs256, aims: [{ metric: 'throughput', min: 0.90 }],
      note: 'RS256 token, verified-token cache on (repeat token: no signature check)' },
    { name: 'gateway-jwt-rs256-nocache', target: 'gateway', path: '/jwt-rs256-nocache/hello', connections, baseline: 'gateway-public',
      headers: jwtRs256, aims: [{ metric: 'throughput', min: 0.60 }],
      note: 'RS256 token verified on every request (cacheMaxEntries: 0)' },
    { name: 'gateway-jwt-es256', target: 'gateway', path: '/jwt-es256/hello', connections, baseline: 'gateway-public',
      headers: { authorization: `Bearer ${tokens.ES256}` }, aims: [{ metric: 'throughput', min: 0.90 }],
      note: 'ES256 token, verified-token cache on' },
    { name: 'gateway-jwt-es256-nocache', target: 'gateway', path: '/jwt-es256-nocache/hello', connections, baseline: 'gateway-public',
      headers: { authorization: `Bearer ${tokens.ES256}` },
      note: 'ES256 token verified on every request (ECDSA verify costs more than RSA verify)' },

    // An opaque token introspected at a real authorization server (oidc-provider), priced against
    // the cached JWT route: once cached, an introspected token should cost what a cached JWT does.
    { name: 'gateway-introspection-cached', target: 'gateway', path: '/introspection-opaque/hello', connections, baseline: 'gateway-public',
      needsAuthorizationServer: true, headers: (ctx) => ({ authorization: `Bearer ${ctx.introspectionToken}` }),
      aims: [{ metric: 'throughput', against: 'gateway-jwt-rs256', min: 0.90 }],
      note: 'opaque token, introspection cache warm (no call to the authorization server)' },

    { name: 'gateway-apikey', target: 'gateway', path: '/apikey/hello', connections, baseline: 'gateway-public',
      headers: { 'x-api-key': apiKey }, aims: [{ metric: 'throughput', min: 0.90 }],
      note: 'API key in X-API-Key (directory cache hit; usage counted in memory, flushed in batches)' },

    // A browser session: the session cookie of one real login (through the gateway, at the bench's
    // oidc-provider) on every request, looked up in process or in Redis.
    { name: 'gateway-oidc-session', target: 'gateway', path: '/oidc-memory/hello', connections, baseline: 'gateway-public',
      needsAuthorizationServer: true, session: 'oidc-memory', identityPath: '/oidc-memory/whoami', headers: sessionHeaders('oidc-memory'),
      aims: [{ metric: 'throughput', min: 0.85 }],
      note: 'oidc browser session: session cookie → session in memory (no refresh), identity headers' },
    { name: 'gateway-oidc-session-redis', target: 'gateway', path: '/oidc-redis/hello', connections, baseline: 'gateway-public', needsRedis: true,
      needsAuthorizationServer: true, session: 'oidc-redis', identityPath: '/oidc-redis/whoami', headers: sessionHeaders('oidc-redis'),
      note: 'oidc browser session kept in Redis (oauth.redis): one session read per request (no refresh), identity headers' },

    { name: 'gateway-ratelimit-memory', target: 'gateway', path: '/limited-memory/hello', connections, baseline: 'gateway-public',
      aims: [{ metric: 'throughput', min: 0.95 }],
      note: 'public route with a token-bucket limit per client address, in process' },
    { name: 'gateway-ratelimit-redis', target: 'gateway', path: '/limited-redis/hello', connections, baseline: 'gateway-public', needsRedis: true,
      aims: [{ metric: 'throughput', min: 0.70 }],
      note: 'public route with a token-bucket limit per client address, in Redis (one script per request)' },

    // The realistic pipeline, against the field.
    { name: 'gateway-full', target: 'gateway', path: '/full/hello', connections, baseline: 'gateway-public', headers: jwtRs256,
      aims: [
        { metric: 'throughput', against: FLOOR, min: 0.80 },
        { metric: 'throughput', against: 'peer-fast-gateway', min: 1.5 },
        { metric: 'cpuPerRequest', against: FLOOR, max: 1.4 },
        { metric: 'throughput', against: 'gateway-full-audit-off', min: 0.90 },
      ],
      note: 'RS256 token (cached) + scope + in-process limit per caller + identity headers + audit record' },
    { name: 'gateway-full-redis', target: 'gateway', path: '/full-redis/hello', connections, baseline: 'gateway-full', headers: jwtRs256, needsRedis: true,
      note: 'the full pipeline with its limit in Redis (one script per request)' },
    // Policy as code: a 1 KB JSON order POSTed to an authenticated route, without and with two
    // attribute rules and the order's JSON Schema.
    { name: 'gateway-post-1k', target: 'gateway', path: '/orders-plain/acme/orders', method: 'POST', body: ORDER_BODY, connections, baseline: 'gateway-post-1k',
      headers: { ...jwtRs256, 'content-type': 'application/json' },
      note: 'RS256 token (cached) + scope + identity headers, a 1 KB JSON body forwarded (the baseline of the policy aim)' },
    { name: 'gateway-policy-validated', target: 'gateway', path: '/orders-checked/acme/orders', method: 'POST', body: ORDER_BODY, connections, baseline: 'gateway-post-1k',
      headers: { ...jwtRs256, 'content-type': 'application/json' },
      aims: [{ metric: 'throughput', min: 0.85 }],
      note: 'the same route with two attribute rules (CEL) and the 1 KB body parsed within limits and checked against its JSON Schema' },
    // HTTP/2 on the HTTPS listener: the public route, 10 streams in flight on each connection (as
    // many in flight as the others' connections), TLS and HPACK included. Reported, no aim.
    { name: 'gateway-https-h2', target: 'gateway', https: true, path, connections: Math.max(1, Math.round(connections / 10)), streams: 10, baseline: 'gateway-public',
      note: 'HTTPS with HTTP/2 (node:http2 load driver): the public route, 10 streams per connection' },
    { name: 'gateway-workers-2', target: 'gateway-workers-2', path: '/full/hello', connections, baseline: 'gateway-full', headers: jwtRs256,
      note: 'the full pipeline under `start --workers 2`, unpinned: its workers share both CPUs with the load generator' },
  ];
  const oneConnection = [
    { name: 'upstream-direct-c1', target: 'upstream', path, connections: 1, baseline: 'bare-proxy-c1',
      note: 'one connection: latency without queueing' },
    { name: 'nginx-c1', target: 'nginx', path, connections: 1, baseline: 'bare-proxy-c1' },
    { name: 'bare-proxy-c1', target: 'bare-proxy', path, connections: 1, baseline: 'bare-proxy-c1' },
    { name: 'gateway-public-c1', target: 'gateway', path, connections: 1, baseline: 'bare-proxy-c1',
      aims: [{ metric: 'addedP50Ms', max: 0.25 }, { metric: 'addedP50Ms', against: 'bare-proxy-stream-c1', max: 0.03 }] },
    { name: 'bare-proxy-stream-c1', target: 'bare-proxy-stream', path, connections: 1, baseline: 'bare-proxy-c1' },
    // Cold cache: every request is one introspection call to oidc-provider (cache.maxEntries 0; one
    // connection, so no request shares another's call). Reported: its p50 is the cold-cache latency.
    { name: 'gateway-introspection-cold-c1', target: 'gateway', path: '/introspection-opaque-nocache/hello', connections: 1, baseline: 'gateway-public-c1',
      needsAuthorizationServer: true, headers: (ctx) => ({ authorization: `Bearer ${ctx.introspectionToken}` }),
      note: 'opaque token introspected on every request (cache off): the cold-cache latency, authorization server included' },
  ];
  return [
    ...throughput.map((s) => ({ ...s, references: FIELD })),
    ...oneConnection.map((s) => ({ ...s, references: FIELD_C1 })),
  ];
}
