// The introspection authenticator (RFC 7662) against a real authorization server (oidc-provider):
// the three client authentication methods, discovery, claims mapping, JWTs of chosen issuers,
// single-flight, caching bounds (exp, negative answers, revocation) on an injected clock.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { IntrospectionAuthenticator, type IntrospectionAuthenticatorSpec } from '../src/authn/introspection/introspection-authenticator.js';
import type { OAuthServices } from '../src/authn/oauth/oauth-services.js';
import { assertProblem, oneAuditRecordFor, waitUntil } from './harness/assertions.js';
import { startRedis } from './harness/redis.js';
import { startAuthorizationServer, type TestAuthorizationServer } from './harness/authorization-server.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';

interface Reply { status: number; headers: Record<string, string>; body: string; complete: true }

async function get(gw: TestGateway, path: string, token?: string): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

function header(seen: EchoedRequest | undefined, name: string): string | undefined {
  assert.ok(seen !== undefined, 'the upstream received the request');
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) if ((seen.rawHeaders[i] ?? '').toLowerCase() === name) return seen.rawHeaders[i + 1];
  return undefined;
}

/** The OAuth services the running config's introspection authenticator was compiled with (what POST /admin/revocations reaches). */
function oauthOf(gw: TestGateway): OAuthServices {
  const authenticator = gw.gateway.config.authenticators.get('opaque');
  assert.ok(authenticator instanceof IntrospectionAuthenticator);
  return (authenticator as unknown as { spec: IntrospectionAuthenticatorSpec }).spec.oauth;
}

const RESOURCE = 'https://orders.test';
const INTROSPECT = '/token/introspection';

describe('introspection against a real authorization server', () => {
  let as: TestAuthorizationServer;
  let echo: EchoUpstream;
  const gateways: TestGateway[] = [];

  before(async () => {
    as = await startAuthorizationServer({ resources: [{ audience: RESOURCE, format: 'jwt', scope: 'orders:read orders:write' }] });
    echo = await startEchoUpstream();
  });
  after(async () => {
    for (const gw of gateways) await gw.close();
    await echo.close();
    await as.close();
  });

  function config(authenticator: Record<string, unknown>, extra: ConfigObject = {}): ConfigObject {
    return {
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { opaque: { type: 'introspection', issuer: as.issuer, clientId: as.gateway.clientId, clientSecret: as.gateway.clientSecret, ...authenticator } },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['opaque'], authorize: { scopes: ['orders:read'] } },
        { name: 'stale', match: { path: '/stale/**' }, upstream: 'echo', authenticate: ['opaque'], onAuthUnavailable: 'serveStale' },
      ],
      ...extra,
    };
  }

  async function gateway(authenticator: Record<string, unknown>, options: { clock?: ManualClock; beforeStart?: (dir: string) => Promise<void> } = {}, extra: ConfigObject = {}): Promise<TestGateway> {
    const gw = await startGateway(config(authenticator, extra), options);
    gateways.push(gw);
    return gw;
  }

  it('authenticates an opaque token with client_secret_basic after discovering the endpoint, and maps its claims', async () => {
    const gw = await gateway({ claims: { tenant: 'tenant' }, forwardClaims: { 'X-Department': 'dept' } });
    const token = await as.userToken('alice', { scope: 'orders:read', claims: { tenant: 'acme', roles: ['admin', 'clerk'], dept: 'sales' } });
    const res = await get(gw, '/orders/basic', token);
    assert.equal(res.status, 200, res.body);
    const seen = echo.received.at(-1);
    assert.equal(header(seen, 'x-user-id'), 'alice');
    assert.equal(header(seen, 'x-tenant-id'), 'acme');
    assert.equal(header(seen, 'x-roles'), 'admin clerk');
    assert.equal(header(seen, 'x-scopes'), 'orders:read');
    assert.equal(header(seen, 'x-auth-method'), 'introspection');
    assert.equal(header(seen, 'x-department'), 'sales');
    assert.equal(header(seen, 'authorization'), undefined, 'the token is not forwarded');
    const record = await oneAuditRecordFor(gw, '/orders/basic');
    assert.equal(record.identity?.subject, 'alice');
    assert.equal(record.identity?.authMethod, 'introspection');
    const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { ready: boolean };
    assert.equal(ready.ready, true);
  });

  it('authenticates with client_secret_post at a configured endpoint', async () => {
    const gw = await gateway({ clientId: as.gatewayPost.clientId, clientSecret: as.gatewayPost.clientSecret, clientAuth: 'client_secret_post', introspectionEndpoint: `${as.issuer}${INTROSPECT}` });
    const res = await get(gw, '/orders/post', await as.userToken('bob'));
    assert.equal(res.status, 200, res.body);
    assert.equal(header(echo.received.at(-1), 'x-user-id'), 'bob');
  });

  it('authenticates with private_key_jwt (ES256 client assertion, kid)', async () => {
    const gw = await gateway({ clientId: as.gatewayKeyJwt.clientId, clientSecret: undefined, clientAuth: 'private_key_jwt', privateKey: { file: 'gateway-key.pem', kid: as.gatewayKeyJwt.kid } }, {
      beforeStart: async (dir) => { await writeFile(join(dir, 'gateway-key.pem'), as.gatewayKeyJwt.privateKeyPem); },
    });
    const res = await get(gw, '/orders/key', await as.userToken('carol'));
    assert.equal(res.status, 200, res.body);
    assert.equal(header(echo.received.at(-1), 'x-user-id'), 'carol');
  });

  it('a wrong client secret is 503 authentication_unavailable (the gateway cannot verify), nothing forwarded', async () => {
    const gw = await gateway({ clientSecret: 'not-the-secret-0123456789abcdef0123' });
    const before = echo.received.length;
    const res = await get(gw, '/orders/wrong-secret', await as.userToken('dave'));
    const doc = assertProblem(res, 503, 'authentication_unavailable');
    assert.ok(doc.detail.length > 0);
    assert.ok(Number(res.headers['retry-after']) >= 1);
    assert.equal(echo.received.length, before);
    const record = await oneAuditRecordFor(gw, '/orders/wrong-secret');
    assert.equal(record.reason, 'authentication_unavailable');
    assert.match(record.detail ?? '', /HTTP 401 .*invalid_client/);
  });

  it('a machine token without sub takes client_id as the subject', async () => {
    const gw = await gateway({});
    const { access_token: token } = await as.clientCredentials({ scope: 'orders:read' });
    const res = await get(gw, '/orders/machine', token);
    assert.equal(res.status, 200, res.body);
    assert.equal(header(echo.received.at(-1), 'x-user-id'), 'service');
  });

  it('the shared claim rules apply to answers: authorized parties by client_id, required values, several sources', async () => {
    const gw = await gateway({
      authorizedParties: ['service'],
      requiredClaimValues: { '/plan': ['gold', 'silver'] },
      claims: { roles: ['roles', '/groups'], tenant: { claim: 'org', take: 'keys' } },
    });
    const token = await as.userToken('frank', { claims: { roles: ['admin'], groups: ['clerk'], plan: 'gold', org: { acme: { id: 7 } } } });
    const ok = await get(gw, '/orders/rules', token);
    assert.equal(ok.status, 200, ok.body);
    const seen = echo.received.at(-1);
    assert.equal(header(seen, 'x-roles'), 'admin clerk');
    assert.equal(header(seen, 'x-tenant-id'), 'acme');
    const wrongPlan = await get(gw, '/orders/rules-plan', await as.userToken('frank', { claims: { plan: 'bronze' } }));
    assertProblem(wrongPlan, 401, 'invalid_credential');
    assert.match((await oneAuditRecordFor(gw, '/orders/rules-plan')).detail ?? '', /claim_value_mismatch/);
    // A token the authorization server issued to another client, for the same audience.
    const otherClient = await get(gw, '/orders/rules-client', await as.userToken('frank', { clientId: as.gatewayPost.clientId, claims: { plan: 'gold' } }));
    assertProblem(otherClient, 401, 'invalid_credential');
    assert.match((await oneAuditRecordFor(gw, '/orders/rules-client')).detail ?? '', /authorized_party_mismatch/);
  });

  it('a revocation list cut off from Redis past maxStalenessMs refuses introspected tokens with 503, cached or not, until it is back', async (t) => {
    const redis = await startRedis();
    if (typeof redis === 'string') { t.skip(redis); return; }
    try {
      const gw = await gateway({}, {}, { oauth: { tokenHashKey: 'k'.repeat(40), redis: { url: redis.url }, revocations: { maxStalenessMs: 1000 } } });
      await waitUntil('the revocation list is loaded', async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200);
      const token = await as.userToken('gina');
      assert.equal((await get(gw, '/orders/list-up', token)).status, 200, 'cached now');
      await redis.kill();
      await waitUntil('introspected tokens are refused while the list may be stale', async () => (await get(gw, '/orders/list-down', token)).status === 503, 10_000);
      const forwarded = echo.received.length;
      assertProblem(await get(gw, '/orders/list-down-again', token), 503, 'authentication_unavailable');
      assertProblem(await get(gw, '/orders/list-down-new', await as.userToken('hank')), 503, 'authentication_unavailable');
      assert.equal(echo.received.length, forwarded, 'nothing forwarded while the list may be stale');
      await redis.restart();
      await waitUntil('served again once the list is back', async () => (await get(gw, '/orders/list-back', token)).status === 200, 10_000);
    } finally {
      await redis.stop();
    }
  });

  it('JWT access tokens: introspected when their iss is in jwtIssuers, absent (left to others) otherwise', async () => {
    const jwt = await as.userToken('erin', { resource: RESOURCE, scope: 'orders:read' });
    assert.equal(jwt.split('.').length, 3);
    const without = await gateway({});
    let calls = as.calls(INTROSPECT);
    assertProblem(await get(without, '/orders/jwt-absent', jwt), 401, 'unauthenticated');
    assert.equal(as.calls(INTROSPECT), calls, 'not introspected');
    const gw = await gateway({ jwtIssuers: [as.issuer], audience: RESOURCE });
    calls = as.calls(INTROSPECT);
    // oidc-provider introspects only the tokens it stores (opaque ones): a JWT access token reads inactive there.
    // tests/introspection-hostile.test.ts has an endpoint that vouches for one.
    assertProblem(await get(gw, '/orders/jwt', jwt), 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls + 1, 'introspected');
    const other = await gateway({ jwtIssuers: ['https://another-issuer.test'] });
    calls = as.calls(INTROSPECT);
    assertProblem(await get(other, '/orders/jwt-other', jwt), 401, 'unauthenticated');
    assert.equal(as.calls(INTROSPECT), calls, 'another issuer\'s JWT is left to other authenticators');
  });

  it('an active token for another audience is 401 with the reason in the audit record', async () => {
    const gw = await gateway({ audience: 'https://billing.test' });
    const res = await get(gw, '/orders/other-aud', await as.userToken('frank'));
    assertProblem(res, 401, 'invalid_credential');
    assert.match(res.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    const record = await oneAuditRecordFor(gw, '/orders/other-aud');
    assert.match(record.detail ?? '', /audience mismatch/);
  });

  it('50 concurrent requests with one new token make exactly one introspection call', async () => {
    const gw = await gateway({});
    const token = await as.userToken('grace');
    const calls = as.calls(INTROSPECT);
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => get(gw, `/orders/flight-${i}`, token)));
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [200]);
    assert.equal(as.calls(INTROSPECT) - calls, 1);
    assert.equal((await get(gw, '/orders/flight-again', token)).status, 200);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const value = (series: string) => new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(metrics)?.[1];
    assert.equal(value('portcullis_introspection_requests_total{authenticator="opaque",outcome="active"}'), '1');
    // Requests that came before the answer are misses (they shared the call), the others hits.
    assert.equal(Number(value('portcullis_introspection_cache_total{authenticator="opaque",result="miss"}')) + Number(value('portcullis_introspection_cache_total{authenticator="opaque",result="hit"}')), 51);
    assert.equal(value('portcullis_introspection_breaker_open{authenticator="opaque"}'), '0');
    assert.match(metrics, /^portcullis_introspection_duration_seconds_count\{authenticator="opaque"\} 1$/m);
  });

  it('revoked at the provider: served from the cache until its TTL, then refused, and the refusal is cached', async () => {
    const clock = new ManualClock(Date.now());
    const gw = await gateway({ cache: { ttlMs: 60_000, negativeTtlMs: 10_000 } }, { clock });
    const token = await as.userToken('heidi');
    assert.equal((await get(gw, '/orders/rev-1', token)).status, 200);
    await as.revoke(token, as.service);
    const calls = as.calls(INTROSPECT);
    assert.equal((await get(gw, '/orders/rev-2', token)).status, 200, 'cached within ttlMs');
    assert.equal(as.calls(INTROSPECT), calls);
    clock.advance(60_001);
    assertProblem(await get(gw, '/orders/rev-3', token), 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls + 1);
    assertProblem(await get(gw, '/orders/rev-4', token), 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls + 1, 'the inactive answer is cached');
    const record = await oneAuditRecordFor(gw, '/orders/rev-4');
    assert.match(record.detail ?? '', /inactive/);
    clock.advance(10_001);
    assertProblem(await get(gw, '/orders/rev-5', token), 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls + 2, 'asked again after negativeTtlMs');
  });

  it('a cached token is never served at or past its exp, whatever the TTL', async () => {
    const clock = new ManualClock(Date.now());
    const gw = await gateway({ cache: { ttlMs: 3_600_000 }, clockSkewMs: 0 }, { clock });
    const token = await as.userToken('ivan', { ttlSeconds: 30 });
    assert.equal((await get(gw, '/orders/exp-1', token)).status, 200);
    const calls = as.calls(INTROSPECT);
    clock.advance(20_000);
    assert.equal((await get(gw, '/orders/exp-2', token)).status, 200);
    assert.equal(as.calls(INTROSPECT), calls, 'from the cache');
    clock.advance(11_000);
    // Past exp on the gateway's clock: not served from the cache; the provider (on real time) still says active, with exp in the past here.
    const res = await get(gw, '/orders/exp-3', token);
    assertProblem(res, 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls + 1, 'asked again');
    const record = await oneAuditRecordFor(gw, '/orders/exp-3');
    assert.match(record.detail ?? '', /expired/);
  });

  it('a token revoked at the gateway is refused before any cache or call', async () => {
    const gw = await gateway({});
    const token = await as.userToken('judy');
    assert.equal((await get(gw, '/orders/gw-rev-1', token)).status, 200);
    const { digester, revocations } = oauthOf(gw);
    await revocations.revoke(digester.ofToken(token), Date.now() + 60_000);
    const calls = as.calls(INTROSPECT);
    const res = await get(gw, '/orders/gw-rev-2', token);
    assertProblem(res, 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls);
    assert.match((await oneAuditRecordFor(gw, '/orders/gw-rev-2')).detail ?? '', /revoked/);
  });

  it('provider down: failClosed routes get 503 with Retry-After; serveStale routes serve a cached positive within staleMs, never past it', async () => {
    const clock = new ManualClock(Date.now());
    const gw = await gateway({ cache: { ttlMs: 10_000, staleMs: 20_000 }, timeoutMs: 500 }, { clock });
    const token = await as.userToken('mallory-not', { scope: 'orders:read' });
    assert.equal((await get(gw, '/stale/1', token)).status, 200);
    await as.stop();
    try {
      clock.advance(10_001);
      const closed = await get(gw, '/orders/down', token);
      assertProblem(closed, 503, 'authentication_unavailable');
      assert.ok(Number(closed.headers['retry-after']) >= 1);
      assert.equal((await get(gw, '/stale/2', token)).status, 200, 'stale positive served');
      const revokedToken = await Promise.resolve(token + 'x');
      assertProblem(await get(gw, '/stale/never-seen', revokedToken), 503, 'authentication_unavailable');
      assertProblem(await get(gw, '/stale/unknown', await Promise.resolve('opaque-unknown-token-0123456789')), 503, 'authentication_unavailable');
      clock.advance(20_000);
      assertProblem(await get(gw, '/stale/3', token), 503, 'authentication_unavailable');
    } finally {
      await as.start();
    }
  });

  it('a reload with equal endpoint and cache settings keeps the cached answers; the new checks and mapping apply to them at once', async () => {
    // A fixed token hash key: the digests under which answers are cached stay the same across the reload.
    const oauth = { oauth: { tokenHashKey: 'reload-token-hash-key-0123456789abcdef' } };
    const gw = await gateway({}, {}, oauth);
    const token = await as.userToken('reload-user', { claims: { dept: 'ops' } });
    assert.equal((await get(gw, '/orders/reload-1', token)).status, 200);
    const calls = as.calls(INTROSPECT);
    await gw.writeConfig(config({ forwardClaims: { 'X-Department': 'dept' } }, oauth));
    assert.equal((await gw.gateway.reload()).ok, true);
    assert.equal((await get(gw, '/orders/reload-2', token)).status, 200);
    assert.equal(header(echo.received.at(-1), 'x-department'), 'ops', 'the new mapping');
    assert.equal(as.calls(INTROSPECT), calls, 'answered from the kept cache');
    await gw.writeConfig(config({ audience: 'https://elsewhere.test' }, oauth));
    assert.equal((await gw.gateway.reload()).ok, true);
    assertProblem(await get(gw, '/orders/reload-3', token), 401, 'invalid_credential');
    assert.equal(as.calls(INTROSPECT), calls, 'the new audience check applies to the cached answer');
  });

  it('discovery failing at start: not ready and 503, retried in the background until it succeeds', async () => {
    await as.stop();
    const clock = new ManualClock(Date.now());
    let gw: TestGateway;
    try {
      gw = await gateway({ timeoutMs: 500 }, { clock });
      const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { ready: boolean; components: Record<string, { ready: boolean; reason?: string }> };
      assert.equal(ready.ready, false);
      assert.match(ready.components['authenticator:opaque']?.reason ?? JSON.stringify(ready.components), /not discovered yet/);
      const res = await get(gw, '/orders/undiscovered', 'opaque-token-before-discovery-0123456789');
      assertProblem(res, 503, 'authentication_unavailable');
      assert.match((await oneAuditRecordFor(gw, '/orders/undiscovered')).detail ?? '', /not discovered yet/);
    } finally {
      await as.start();
    }
    clock.advance(5000);
    const token = await as.userToken('late-discovery');
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await get(gw, `/orders/discovered-${i}`, token)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 200);
  });
});
