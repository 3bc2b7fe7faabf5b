// Redis killed under a running gateway and started again: limits that fail closed answer 503
// rate_limit_unavailable, limits that fail open keep limiting in-process, routes without limits are
// untouched, every request is answered, and Redis decides again once it is back. The test waits on
// events (the store reporting down, a decision succeeding again), never on throughput or timing windows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';
import { waitUntil } from './harness/assertions.js';

interface Answer { readonly status: number; readonly type: string | undefined; readonly retryAfter: string | undefined }


describe('rate limits while Redis goes away and comes back', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  let gw: TestGateway;
  let pool: Pool;

  before(async () => {
    redis = await startRedis();
    if (typeof redis === 'string') return; // each test skips with the reason (under CI=true startRedis throws instead)
    echo = await startEchoUpstream();
    gw = await startGateway({
      log: { level: 'info' },
      upstreams: { echo: { targets: [echo.url] } },
      // A generous decision timeout: on a loaded machine a round trip can take longer than the
      // default, and this test is about what happens when Redis is gone, not when it is slow.
      rateLimiting: { store: 'redis', redis: { url: redis.url, timeoutMs: 2000, breakerFailures: 3, breakerOpenMs: 500 } },
      rateLimits: {
        closed: { algorithm: 'fixed-window', limit: 1_000_000, per: '60s', by: ['route'] },
        open: { algorithm: 'gcra', limit: 1_000_000, per: '60s', burst: 1000, by: ['route'], onStoreError: 'failOpen' },
        openSmall: { algorithm: 'fixed-window', limit: 5, per: '1h', by: ['route'], onStoreError: 'failOpen' },
      },
      routes: [
        { name: 'closed', match: { path: '/closed' }, upstream: 'echo', public: true, rateLimit: 'closed' },
        { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true, rateLimit: 'open' },
        { name: 'open-small', match: { path: '/open-small' }, upstream: 'echo', public: true, rateLimit: 'openSmall' },
        { name: 'free', match: { path: '/free' }, upstream: 'echo', public: true },
      ],
      // Windows (in Redis and in the fail-open stand-ins) are timed by a clock that stands still: the
      // small hourly limit cannot meet an hour's edge mid-test. Far ahead of the real clock, since Redis
      // expires keys by its own.
    }, { clock: new ManualClock(4_102_444_800_000) });
    pool = new Pool(gw.url, { connections: 8 });
  });
  after(async () => {
    if (typeof redis === 'string') return;
    await pool.close();
    await gw.close();
    await echo.close();
    await redis.stop();
  });

  // A request that hangs fails the test through the client's timeouts.
  const get = async (path: string): Promise<Answer> => {
    const res = await pool.request({ path, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 });
    const body = await res.body.text();
    const retryAfter = res.headers['retry-after'];
    return {
      status: res.statusCode,
      type: res.statusCode >= 400 ? (JSON.parse(body) as { type: string }).type : undefined,
      retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    };
  };
  const statusesOf = async (path: string, n: number): Promise<number[]> => (await Promise.all(Array.from({ length: n }, () => get(path)))).map((a) => a.status);

  it('fails closed and open as configured during the outage, answers every request, and recovers after the restart', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const r = redis;
    // Redis decides.
    assert.deepEqual(await statusesOf('/closed', 8), Array<number>(8).fill(200));
    assert.deepEqual(await statusesOf('/open', 8), Array<number>(8).fill(200));

    await r.kill();
    await waitUntil('the gateway reports the store down', () => gw.logs.some((l) => l.includes('rate-limit store unavailable')));
    const metricsDown = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metricsDown, /portcullis_rate_limit_store_up\{store="redis:\/\/127\.0\.0\.1:\d+"\} 0/);

    // failClosed: 503 rate_limit_unavailable with Retry-After, for every request, concurrent ones included.
    const closed = await Promise.all(Array.from({ length: 16 }, () => get('/closed')));
    for (const a of closed) assert.deepEqual(a, { status: 503, type: 'urn:portcullis:error:rate_limit_unavailable', retryAfter: '1' });
    // failOpen: decided in process, so still admitted…
    assert.deepEqual(await statusesOf('/open', 16), Array<number>(16).fill(200));
    // …and still limited: the in-process stand-in enforces the limit's shape.
    const small: number[] = [];
    for (let i = 0; i < 7; i++) small.push((await get('/open-small')).status);
    assert.deepEqual(small, [200, 200, 200, 200, 200, 429, 429], 'the fallback limiter enforces the limit');
    // A route without limits never notices.
    assert.deepEqual(await statusesOf('/free', 8), Array<number>(8).fill(200));

    await r.restart();
    await waitUntil('a fail-closed limit is decided by Redis again', async () => (await get('/closed')).status === 200);
    assert.deepEqual(await statusesOf('/closed', 8), Array<number>(8).fill(200), 'all admitted after recovery');
    assert.deepEqual(await statusesOf('/open', 8), Array<number>(8).fill(200));
    await waitUntil('the store is reported reachable again', () => gw.logs.filter((l) => l.includes('rate-limit store reachable')).length === 2);
    const metricsUp = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metricsUp, /portcullis_rate_limit_store_up\{store="redis:\/\/127\.0\.0\.1:\d+"\} 1/);

    let records = await gw.audit();
    await waitUntil('the refusals are audited', async () => {
      records = await gw.audit();
      return records.filter((rec) => rec.reason === 'rate_limit_unavailable').length >= closed.length && records.filter((rec) => rec.path === '/open-small').length === small.length;
    });
    const unavailable = records.filter((rec) => rec.reason === 'rate_limit_unavailable');
    assert.ok(unavailable.length >= closed.length, `${unavailable.length} refusals audited`);
    assert.ok(unavailable.every((rec) => rec.limit === 'closed' && rec.status === 503 && rec.path === '/closed'));
    const smallRefusals = records.filter((rec) => rec.path === '/open-small' && rec.status === 429);
    assert.deepEqual(smallRefusals.map((rec) => [rec.reason, rec.limit]), [['rate_limited', 'openSmall'], ['rate_limited', 'openSmall']]);
  });
});
