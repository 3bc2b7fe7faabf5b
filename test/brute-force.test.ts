// The brute-force guard: failed authentications per client address and per presented API key id,
// blocks with 429 and Retry-After, audited; the key's owner and other callers are not slowed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newKey } from '../src/authn/api-key/key-format.js';
import { assertProblem } from './harness/assertions.js';
import { ADMIN_TOKEN_HASH, createKey, withKey, type IssuedKeyReply } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';

describe('brute-force guard', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let owner: IssuedKeyReply;
  // Blocks end on the gateway's clock: the test moves it instead of waiting for them.
  const clock = new ManualClock();

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      trustedProxies: ['127.0.0.1/32'],
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      rateLimiting: { bruteForce: { maxFailures: 3, within: '1m', blockFor: '2s' } },
      routes: [
        { name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['machines'] },
        { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
      ],
    }, { clock });
    owner = await createKey(gw.adminUrl, { name: 'owner', expires: '30d' });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  const from = (ip: string, key: string) => withKey(`${gw.url}/api/x`, key, { 'x-forwarded-for': ip });

  it('blocks an address after repeated failures, whatever it sends next, and lifts the block after the cooling period', async () => {
    const ip = '198.51.100.1';
    for (let i = 0; i < 3; i++) assertProblem(await from(ip, newKey('live')), 401, 'invalid_credential');
    const blocked = await from(ip, owner.key);
    const doc = assertProblem(blocked, 429, 'too_many_failures');
    assert.ok(['1', '2'].includes(blocked.headers['retry-after'] ?? ''), `Retry-After ${blocked.headers['retry-after']}`);
    // Other callers are untouched, and public routes are not guarded.
    assert.equal((await from('198.51.100.2', owner.key)).status, 200);
    assert.equal((await withKey(`${gw.url}/open`, null, { 'x-forwarded-for': ip })).status, 200);
    const records = await gw.audit();
    const third = records.filter((r) => r.clientIp === ip && r.reason === 'invalid_credential').at(-1);
    assert.match(third?.detail ?? '', /ip 198\.51\.100\.1 blocked for 2000 ms after 3 failures/);
    assert.equal(third?.limit, 'bruteForce');
    const refusal = records.find((r) => r.requestId === doc.requestId);
    assert.deepEqual([refusal?.reason, refusal?.limit, refusal?.status], ['too_many_failures', 'bruteForce', 429]);
    assert.ok(gw.logs.some((l) => l.includes('brute-force guard: source blocked')));
    clock.advance(2100);
    assert.equal((await from(ip, owner.key)).status, 200, 'the block ends');
  });

  it('blocks failures with a key id tried from many addresses, but never the key\'s owner', async () => {
    const guessed = (i: number) => from(`203.0.113.${i}`, newKey('live', owner.id)); // right id, wrong secret
    for (let i = 1; i <= 3; i++) assertProblem(await guessed(i), 401, 'invalid_credential');
    const doc = assertProblem(await guessed(4), 429, 'too_many_failures');
    assert.equal((await from('203.0.113.5', owner.key)).status, 200, 'the correct key still works');
    const record = (await gw.audit()).find((r) => r.requestId === doc.requestId);
    assert.match(record?.detail ?? '', new RegExp(`credential ${owner.id} blocked`));
  });

  it('does not count or slow successful requests', async () => {
    const ip = '198.51.100.50';
    for (let i = 0; i < 20; i++) assert.equal((await from(ip, owner.key)).status, 200);
    // Two failures after twenty successes do not reach the threshold of three.
    for (let i = 0; i < 2; i++) assertProblem(await from(ip, newKey('live')), 401, 'invalid_credential');
    assert.equal((await from(ip, owner.key)).status, 200);
  });
});

describe('brute-force guard across two gateways sharing Redis', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  const gateways: TestGateway[] = [];

  before(async () => {
    redis = await startRedis();
    if (typeof redis === 'string') return; // each test skips with the reason (under CI=true startRedis throws instead)
    echo = await startEchoUpstream();
    const config = {
      trustedProxies: ['127.0.0.1/32'],
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      rateLimiting: { redis: { url: redis.url, timeoutMs: 2000 }, bruteForce: { maxFailures: 3, within: '1m', blockFor: '1m', store: 'redis' } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['machines'] }],
    };
    gateways.push(await startGateway(config), await startGateway(config));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    if (typeof redis !== 'string') { await echo.close(); await redis.stop(); }
  });

  it('counts failures from one address on both gateways together; each blocks it at the next failure it sees', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a, b] = gateways as [TestGateway, TestGateway];
    const attempt = (gw: TestGateway) => withKey(`${gw.url}/api/x`, newKey('live'), { 'x-forwarded-for': '192.0.2.77' });
    assertProblem(await attempt(a), 401, 'invalid_credential');
    assertProblem(await attempt(a), 401, 'invalid_credential');
    assertProblem(await attempt(b), 401, 'invalid_credential'); // the third failure, counted in Redis: b blocks
    assertProblem(await attempt(b), 429, 'too_many_failures');
    assertProblem(await attempt(a), 401, 'invalid_credential'); // a learns of it with its next failure…
    assertProblem(await attempt(a), 429, 'too_many_failures'); // …and blocks too
  });
});
