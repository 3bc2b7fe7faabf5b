// Introspection answers shared between gateways through a real redis-server (cache.shared): two
// gateways in one process introspect a token once between them; Redis down never denies a
// request (each gateway introspects itself); a revocation removes the shared answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { IntrospectionAuthenticator, type IntrospectionAuthenticatorSpec } from '../src/authn/introspection/introspection-authenticator.js';
import type { TestAuthorizationServer } from './harness/authorization-server.js';
import type { TestGateway } from './harness/gateway.js';
import { startSharedCacheGateways, type SharedCacheSetup } from './harness/introspection.js';
import { redisGet, redisKeys, type TestRedis } from './harness/redis.js';
import { waitUntil } from './harness/assertions.js';

const INTROSPECT = '/token/introspection';

async function status(gw: TestGateway, path: string, token: string): Promise<number> {
  const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.dump();
  return res.statusCode;
}

describe('introspection answers shared between gateways in Redis', () => {
  let redis: TestRedis | string = 'not started';
  let as: TestAuthorizationServer;
  const gateways: TestGateway[] = [];

  let setup: SharedCacheSetup | string = 'not started';

  before(async () => {
    setup = await startSharedCacheGateways('shared-token-hash-key-0123456789abcdef');
    if (typeof setup === 'string') { redis = setup; return; } // each test skips with the reason (under CI=true it throws instead)
    ({ redis, as } = setup);
    gateways.push(...setup.gateways);
  });
  after(async () => {
    if (typeof setup !== 'string') await setup.close();
  });

  it('two gateways introspect a token once between them', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a, b] = gateways as [TestGateway, TestGateway];
    const token = await as.userToken('alice');
    const calls = as.calls(INTROSPECT);
    assert.equal(await status(a, '/orders/1', token), 200);
    assert.equal(as.calls(INTROSPECT), calls + 1);
    // The first gateway writes the shared answer without waiting; give the write its round trip.
    for (let i = 0; i < 50 && await sharedKeys(redis) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await status(b, '/orders/2', token), 200);
    assert.equal(as.calls(INTROSPECT), calls + 1, 'the second gateway found the shared answer');
    const metrics = await (await fetch(`${b.adminUrl}/metrics`)).text();
    assert.match(metrics, /^portcullis_introspection_cache_total\{authenticator="opaque",result="shared"\} 1$/m);
  });

  it('stores no raw token in Redis, only keyed digests', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const token = await as.userToken('bob');
    assert.equal(await status(gateways[0] as TestGateway, '/orders/3', token), 200);
    await waitUntil('the answer is shared', async () => (await redisKeys(redis as TestRedis, '*:introspection:*')).length > 0);
    const keys = await redisKeys(redis, '*');
    assert.ok(!keys.some((k) => k.includes(token)), 'no key holds the token');
    for (const key of keys.filter((k) => k.includes(':introspection:'))) {
      const value = await redisGet(redis, key);
      assert.ok(value !== null && !value.includes(token), 'no value holds the token');
    }
  });

  it('a revocation removes the shared answer', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a] = gateways as [TestGateway];
    const token = await as.userToken('carol');
    assert.equal(await status(a, '/orders/4', token), 200);
    for (let i = 0; i < 50 && !(await redisKeys(redis, '*')).some((k) => k.includes(digestOf(a, token))); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok((await redisKeys(redis, '*')).some((k) => k.includes(digestOf(a, token))));
    const { revocations } = specOf(a).oauth;
    await revocations.revoke(digestOf(a, token), Date.now() + 60_000);
    for (let i = 0; i < 50 && (await redisKeys(redis, '*')).some((k) => k.includes(digestOf(a, token))); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!(await redisKeys(redis, '*')).some((k) => k.includes(digestOf(a, token))));
    assert.equal(await status(a, '/orders/5', token), 401);
  });

  it('Redis down: each gateway introspects itself, nobody is denied', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a, b] = gateways as [TestGateway, TestGateway];
    await redis.kill();
    try {
      const token = await as.userToken('dave');
      const calls = as.calls(INTROSPECT);
      const started = performance.now();
      assert.equal(await status(a, '/orders/6', token), 200);
      assert.equal(await status(b, '/orders/7', token), 200);
      assert.equal(as.calls(INTROSPECT), calls + 2);
      assert.ok(performance.now() - started < 2000, 'not held by the dead Redis');
    } finally {
      await redis.restart();
    }
  });
});

function specOf(gw: TestGateway): IntrospectionAuthenticatorSpec {
  const authenticator = gw.gateway.config.authenticators.get('opaque');
  assert.ok(authenticator instanceof IntrospectionAuthenticator);
  return (authenticator as unknown as { spec: IntrospectionAuthenticatorSpec }).spec;
}

function digestOf(gw: TestGateway, token: string): string {
  return specOf(gw).oauth.digester.ofToken(token);
}

async function sharedKeys(redis: TestRedis): Promise<number> {
  return (await redisKeys(redis, '*:introspection:*')).length;
}

/** One command on a fresh connection (RESP), the raw reply. */
