// Revocation everywhere within a second: two gateway processes share a real redis-server. A token
// revoked on one is refused by the other within 1 s; a revocation made while a gateway's
// subscription was down is loaded when it reconnects; while Redis is gone for longer than
// maxStalenessMs, bearer tokens are refused (503) and readiness says why; after Redis restarts,
// revocations travel again; and the shared set stays bounded under a flood.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { TokenDigester, tokenHash } from '../src/authn/oauth/token-digest.js';
import { admin, ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { assertProblem, waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcesses, type GatewayProcess } from './harness/gateway.js';
import { mint, nowSec, testKey, type TestKey } from './harness/jwt.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const ISS = 'https://issuer.test/';
const TOKEN_HASH_KEY = 'token-hash-key-for-tests-0123456789abcdef';
const PREFIX = 'portcullis:oauth';
const MAX_ENTRIES = 50;
const digester = new TokenDigester(Buffer.from(TOKEN_HASH_KEY, 'utf8'));

const get = (gw: GatewayProcess, token: string): ReturnType<typeof call> => call(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } });

/** Polls `gw` every 50 ms until `token` is refused with 401; returns how long that took (fails past `boundMs`). */
async function refusedWithin(gw: GatewayProcess, token: string, since: number, boundMs: number): Promise<number> {
  for (;;) {
    const res = await get(gw, token);
    const elapsed = performance.now() - since;
    if (res.status === 401) return elapsed;
    assert.equal(res.status, 200, `unexpected ${res.status}: ${res.body}`);
    if (elapsed > boundMs) assert.fail(`still admitted after ${Math.round(elapsed)} ms`);
    await delay(50);
  }
}

describe('revocations across two gateway processes sharing Redis', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  let key: TestKey;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let client: Redis;

  before(async () => {
    redis = await startRedis();
    if (typeof redis === 'string') return;
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'k1');
    const config = {
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      // A generous command timeout: under the flood below a loaded 2-core machine is slow, and latency is not what that test measures.
      oauth: { tokenHashKey: TOKEN_HASH_KEY, redis: { url: redis.url, timeoutMs: 2000 }, revocations: { maxEntries: MAX_ENTRIES, maxStalenessMs: 1000 } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
    };
    [a, b] = await startGatewayProcesses([config, config]) as [GatewayProcess, GatewayProcess];
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => { /* the test kills Redis; commands after that fail on their own */ });
    // Both subscribed and loaded before the first test.
    for (const gw of [a, b]) assert.ok(await gw.logged('revocation list synchronised with Redis', 10_000), 'subscribed');
  });
  after(async () => {
    if (typeof redis === 'string') return;
    client.disconnect();
    await Promise.all([a.stop(), b.stop()]);
    await echo.close();
    await redis.stop();
  });

  it('a token revoked on gateway A is refused by gateway B within 1 s', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const token = await mint(key, { sub: 'alice' });
    assert.equal((await get(a, token)).status, 200);
    assert.equal((await get(b, token)).status, 200, 'B has verified and cached it');
    const started = performance.now();
    const res = await admin(a.adminUrl, 'POST', '/admin/revocations', { token });
    assert.equal(res.status, 200, res.body);
    const answered = performance.now() - started;
    assert.equal((await get(a, token)).status, 401, 'A refuses it once it answered');
    const elapsed = await refusedWithin(b, token, started, 1000);
    assert.ok(elapsed < 1000, `B refused it after ${Math.round(elapsed)} ms (A answered after ${Math.round(answered)} ms)`);
    t.diagnostic(`A answered after ${Math.round(answered)} ms; B refused after ${Math.round(elapsed)} ms`);
    assertProblem(await get(b, token), 401, 'invalid_credential');
    // The shared set holds the digest, never the token or its plain hash.
    const members = await client.zrange(`${PREFIX}:revocations`, 0, -1);
    assert.ok(members.includes(digester.ofToken(token)));
    assert.ok(!members.some((m) => m === token || m === tokenHash(token)));
    const metricsA = (await call(`${a.adminUrl}/metrics`)).body;
    const metricsB = (await call(`${b.adminUrl}/metrics`)).body;
    assert.match(metricsA, /^portcullis_revocations_total\{source="local"\} [1-9]/m);
    assert.match(metricsB, /^portcullis_revocations_total\{source="shared"\} [1-9]/m);
    assert.match(metricsB, /^portcullis_revocations_subscribed\{redis="redis:\/\/127\.0\.0\.1:\d+"\} 1$/m);
  });

  it('a token revoked by its hash on B is refused by A within 1 s', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const token = await mint(key, { sub: 'bob' });
    assert.equal((await get(a, token)).status, 200);
    const started = performance.now();
    assert.equal((await admin(b.adminUrl, 'POST', '/admin/revocations', { tokenHash: tokenHash(token), expiresAt: nowSec() + 600 })).status, 200);
    assert.ok(await refusedWithin(a, token, started, 1000) < 1000);
  });

  it('loads revocations it missed when its subscription comes back', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const token = await mint(key, { sub: 'carol' });
    assert.equal((await get(b, token)).status, 200);
    // Made while nobody listens: stored, not published (as if published while B was cut off).
    await client.zadd(`${PREFIX}:revocations`, Date.now() + 600_000, digester.ofToken(token));
    assert.equal((await get(b, token)).status, 200, 'not heard of yet');
    await client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const started = performance.now();
    assert.ok(await refusedWithin(b, token, started, 5000) < 5000);
    assert.equal((await get(a, token)).status, 401);
  });

  it('refuses bearer tokens (503) once cut off from Redis past maxStalenessMs, and recovers when Redis is back', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const token = await mint(key, { sub: 'dave', exp: nowSec() + 600 });
    assert.equal((await get(b, token)).status, 200);
    await redis.kill();
    await waitUntil('B refuses bearer tokens while cut off', async () => (await get(b, token)).status === 503, 5000);
    const refused = await get(b, token);
    assertProblem(refused, 503, 'authentication_unavailable');
    const ready = await call(`${b.adminUrl}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /revocation list \(Redis\) has not been reachable/);
    const forwarded = echo.received.length;
    await get(a, token);
    assert.equal(echo.received.length, forwarded, 'nothing forwarded while the list may be stale');
    // Revoking while Redis is gone: refused here at once, 503 for not being shared.
    const lost = await mint(key, { sub: 'erin' });
    assertProblem(await admin(a.adminUrl, 'POST', '/admin/revocations', { token: lost }), 503, 'revocations_unavailable');

    await redis.restart();
    await waitUntil('B serves again', async () => (await get(b, token)).status === 200, 10_000);
    await waitUntil('A serves again', async () => (await get(a, token)).status === 200, 10_000);
    assert.equal((await call(`${b.adminUrl}/readyz`)).status, 200);
    // Redis came back empty: revocations travel again, over the new subscription.
    const after = await mint(key, { sub: 'frank' });
    assert.equal((await get(b, after)).status, 200);
    const started = performance.now();
    assert.equal((await admin(a.adminUrl, 'POST', '/admin/revocations', { token: after })).status, 200);
    assert.ok(await refusedWithin(b, after, started, 1000) < 1000);
    // What each gateway held in memory survives the outage.
    assert.equal((await get(b, (await mint(key, { sub: 'alice' })))).status, 200);
  });

  it(`keeps the shared set at ${MAX_ENTRIES} entries under a flood, the latest-ending kept`, async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    await Promise.all(Array.from({ length: 200 }, (_, i) => admin(a.adminUrl, 'POST', '/admin/revocations', { tokenHash: tokenHash(`flood-${i}`), expiresAt: nowSec() + 600 + i })
      .then((r) => assert.equal(r.status, 200, r.body))));
    assert.ok(await client.zcard(`${PREFIX}:revocations`) <= MAX_ENTRIES);
    const kept = await client.zrange(`${PREFIX}:revocations`, -1, -1);
    assert.deepEqual(kept, [digester.ofHash(tokenHash('flood-199'))]);
  });
});
