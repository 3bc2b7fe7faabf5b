// Exactness across instances: three gateways share one redis-server (started here on a free port)
// and are hammered at once on one limit per algorithm. Together they admit exactly what one gateway
// would. Each gateway has its own connection to Redis; the decisions are timed by one injected
// clock that stands still, so no test run meets a window's edge.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { ALGORITHMS } from '../src/ratelimit/algorithms.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const LIMIT = 40;
const PER_GATEWAY = 70;
const HOUR_MS = 3_600_000;

describe('rate limits across three gateways sharing Redis', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  const gateways: TestGateway[] = [];
  // Far ahead of the real clock: Redis expires keys by its own clock, which must not see them as past.
  const clock = new ManualClock(4_102_444_800_000);

  before(async () => {
    redis = await startRedis();
    if (typeof redis === 'string') return; // each test skips with the reason (under CI=true startRedis throws instead)
    echo = await startEchoUpstream();
    const config = {
      upstreams: { echo: { targets: [echo.url] } },
      // Exactness is under test, not latency: a generous timeout keeps a slow first decision on a
      // loaded machine from counting as an outage (503), which would fail closed and skew the count.
      rateLimiting: { store: 'redis', redis: { url: redis.url, timeoutMs: 2000 } },
      rateLimits: Object.fromEntries(ALGORITHMS.map((algorithm) => [algorithm, {
        algorithm, limit: LIMIT, per: '1h', by: ['route'],
        ...(algorithm === 'token-bucket' || algorithm === 'gcra' ? { burst: LIMIT } : {}),
      }])),
      routes: ALGORITHMS.map((algorithm) => ({ name: algorithm, match: { path: `/${algorithm}` }, upstream: 'echo', public: true, rateLimit: algorithm })),
    };
    for (let i = 0; i < 3; i++) gateways.push(await startGateway(config, { clock }));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    if (typeof redis !== 'string') { await echo.close(); await redis.stop(); }
  });

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: exactly ${LIMIT} of ${3 * PER_GATEWAY} concurrent requests are admitted`, async (t) => {
      if (typeof redis === 'string') { t.skip(redis); return; }
      const forwardedBefore = echo.received.length;
      const started = Date.now();
      const results = await Promise.all(gateways.map(async (gw) => {
        const pool = new Pool(gw.url, { connections: 20 });
        try {
          return await Promise.all(Array.from({ length: PER_GATEWAY }, async () => {
            const res = await pool.request({ path: `/${algorithm}`, method: 'GET' });
            await res.body.text();
            return { status: res.statusCode, retryAfter: res.headers['retry-after'], remaining: res.headers['x-ratelimit-remaining'] };
          }));
        } finally {
          await pool.close();
        }
      }));
      const elapsedMs = Date.now() - started;
      const all = results.flat();
      const allowed = all.filter((r) => r.status === 200).length;
      const denied = all.filter((r) => r.status === 429);
      assert.equal(allowed + denied.length, all.length, `only 200 and 429: ${JSON.stringify([...new Set(all.map((r) => r.status))])}`);
      // Token bucket and GCRA may add what refills meanwhile: one request per 90 s here.
      const refill = algorithm === 'token-bucket' || algorithm === 'gcra' ? Math.floor((elapsedMs * LIMIT) / HOUR_MS) : 0;
      assert.ok(allowed >= LIMIT && allowed <= LIMIT + refill, `${allowed} admitted, expected ${LIMIT}${refill > 0 ? `..${LIMIT + refill}` : ''}`);
      assert.equal(echo.received.length - forwardedBefore, allowed, 'exactly the admitted requests reached the upstream');
      assert.ok(denied.every((r) => Number(r.retryAfter) >= 1 && r.remaining === '0'));
      assert.ok(results.every((perGateway) => perGateway.some((r) => r.status === 429)), 'every gateway refused some');
    });
  }
});
