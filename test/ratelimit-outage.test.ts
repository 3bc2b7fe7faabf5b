// Redis killed in the middle of load and started again: limits that fail closed answer 503, limits
// that fail open keep limiting in-process, no request hangs, the gateway keeps serving, and Redis
// decides again within seconds of coming back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool } from 'undici';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { startRedis, type TestRedis } from './harness/redis.js';

interface Sample { readonly path: string; readonly at: number; readonly status: number; readonly ms: number; readonly type: string | undefined }

describe('rate limits while Redis goes away and comes back', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    redis = await startRedis();
    if (typeof redis === 'string') return; // each test skips with the reason (under CI=true startRedis throws instead)
    echo = await startEchoUpstream();
    gw = await startGateway({
      log: { level: 'info' },
      upstreams: { echo: { targets: [echo.url] } },
      rateLimiting: { store: 'redis', redis: { url: redis.url, timeoutMs: 100, breakerFailures: 3, breakerOpenMs: 500 } },
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
    });
  });
  after(async () => {
    if (typeof redis === 'string') return;
    await gw.close();
    await echo.close();
    await redis.stop();
  });

  it('fails closed and open as configured, never hangs, and recovers within seconds', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const r = redis;
    const pool = new Pool(gw.url, { connections: 8 });
    const samples: Sample[] = [];
    const t0 = performance.now();
    let stop = false;
    const one = async (path: string): Promise<void> => {
      const start = performance.now();
      const res = await pool.request({ path, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
      const body = await res.body.text();
      const type = res.statusCode >= 400 ? (JSON.parse(body) as { type: string }).type : undefined;
      samples.push({ path, at: start - t0, status: res.statusCode, ms: performance.now() - start, type });
    };
    // Eight clients, each cycling through the routes, bounded by time and count.
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; !stop && i < 3000; i++) await one(['/closed', '/open', '/free'][(i + c) % 3] as string);
    });

    await delay(800);
    const killedAt = performance.now() - t0;
    await r.kill();
    await delay(1500);
    // The fail-open limit still limits, in-process, while Redis is away.
    const small: number[] = [];
    for (let i = 0; i < 7; i++) { const res = await pool.request({ path: '/open-small', method: 'GET' }); await res.body.text(); small.push(res.statusCode); }
    const restartedAt = performance.now() - t0;
    await r.restart();
    // Recovery: /closed is decided by Redis again.
    let recoveredAt = Infinity;
    while (performance.now() - t0 < restartedAt + 8000) {
      const recent = samples.filter((s) => s.path === '/closed' && s.at > restartedAt);
      const firstOk = recent.find((s) => s.status === 200);
      if (firstOk !== undefined) { recoveredAt = firstOk.at; break; }
      await delay(50);
    }
    await delay(500);
    stop = true;
    await Promise.all(clients);
    await pool.close();

    const slowest = Math.max(...samples.map((s) => s.ms));
    t.diagnostic(`Redis outage: ${samples.length} requests, slowest ${slowest.toFixed(1)} ms, limits decided by Redis again ${Math.round(recoveredAt - restartedAt)} ms after its restart`);
    assert.deepEqual(small, [200, 200, 200, 200, 200, 429, 429], 'the fallback limiter enforces the limit');
    assert.ok(recoveredAt - restartedAt < 5000, `recovered ${Math.round(recoveredAt - restartedAt)} ms after the restart`);
    assert.ok(slowest < 1000, `slowest request took ${Math.round(slowest)} ms`);
    const during = samples.filter((s) => s.at > killedAt + 300 && s.at + s.ms < restartedAt);
    assert.ok(during.length > 50, `${during.length} requests during the outage`);
    for (const s of during) {
      if (s.path === '/closed') assert.deepEqual([s.status, s.type], [503, 'urn:portcullis:error:rate_limit_unavailable']);
      else assert.equal(s.status, 200, `${s.path} during the outage`);
    }
    const before = samples.filter((s) => s.at + s.ms < killedAt);
    assert.ok(before.length > 50 && before.every((s) => s.status === 200), 'all admitted before the outage');
    const afterRecovery = samples.filter((s) => s.at > recoveredAt + 100);
    assert.ok(afterRecovery.length > 20 && afterRecovery.every((s) => s.status === 200), 'all admitted after recovery');

    const records = await gw.audit();
    const unavailable = records.filter((rec) => rec.reason === 'rate_limit_unavailable');
    assert.ok(unavailable.length > 0 && unavailable.every((rec) => rec.limit === 'closed' && rec.status === 503));
    assert.ok(gw.logs.some((l) => l.includes('rate-limit store unavailable')));
    assert.equal(gw.logs.filter((l) => l.includes('rate-limit store reachable')).length, 2, 'reachable at start and after the restart');
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /portcullis_rate_limit_store_up\{store="redis:\/\/127\.0\.0\.1:\d+"\} 1/);
  });
});
