// The embedded API key store never stalls the event loop: another process holding a lock on the
// SQLite file (the keys CLI, a backup, a hostile local process) delays writes, retried off the
// loop, while every route keeps answering.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { ADMIN_TOKEN_HASH, admin, call, createKey, withKey } from './harness/api-keys.js';
import { eventually } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';


describe('the embedded API key store under another process\'s lock', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let file = '';
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { environment: 'live', usageFlushMs: 100 },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [
        { name: 'keyed', match: { path: '/keyed' }, upstream: 'echo', authenticate: ['machines'] },
        { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
      ],
    });
    file = join(gw.gateway.config.dataDir, 'keys', 'api-keys.db');
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const mode of ['IMMEDIATE', 'EXCLUSIVE'] as const) {
    it(`keeps answering while another connection holds BEGIN ${mode}; usage and a key created meanwhile are written once it is released`, async (t) => {
      const key = await createKey(gw.adminUrl, { name: `locked-${mode.toLowerCase()}` });
      assert.equal((await withKey(`${gw.url}/keyed`, key.key)).status, 200, 'the key works and is cached');
      const locker = new Database(file, { timeout: 0 });
      const uses = (): number => (locker.prepare('SELECT use_count AS n FROM api_keys WHERE id = ?').get(key.id) as { n: number }).n;
      assert.equal(await eventually(uses, 1), 1, 'the first use is written');
      const histogram = monitorEventLoopDelay({ resolution: 10 });
      const latencies: number[] = [];
      let created: Promise<Awaited<ReturnType<typeof admin>>> | null = null;
      let flushed: Promise<void> | null = null;
      try {
        locker.exec(`BEGIN ${mode}`);
        histogram.enable();
        // A key operation meets the lock: it waits, retrying off the event loop.
        created = admin(gw.adminUrl, 'POST', '/admin/keys', { name: `during-${mode.toLowerCase()}` });
        // The lock is held for a bounded time, well inside the store's 2 s retry budget for the
        // waiting key creation, however slow the machine: up to 30 uses or 600 ms.
        const lockedAt = performance.now();
        for (let i = 0; i < 30 && performance.now() - lockedAt < 600; i++) {
          const start = performance.now();
          assert.equal((await withKey(`${gw.url}/keyed`, key.key)).status, 200);
          assert.equal((await call(`${gw.url}/open`)).status, 200);
          latencies.push(performance.now() - start);
        }
        // A usage flush meets the lock while the loop is watched: it is retried off the loop.
        const usage = gw.gateway.config.apiKeys?.usage;
        assert.ok(usage !== undefined && usage.backlog > 0, 'uses are waiting to be written');
        flushed = usage.flush();
        for (let i = 0; i < 10; i++) assert.equal((await call(`${gw.url}/open`)).status, 200);
        histogram.disable();
      } finally {
        if (locker.inTransaction) locker.exec('COMMIT');
      }
      try {
        const maxLoopMs = histogram.max / 1e6;
        const slowest = Math.max(...latencies);
        t.diagnostic(`BEGIN ${mode}: slowest pair of requests ${slowest.toFixed(1)} ms, event-loop delay max ${maxLoopMs.toFixed(1)} ms`);
        // A locked write used to hold the event loop for the 2 s busy timeout at every usage flush.
        // The margin is for a loaded machine's scheduling, not for SQLite.
        assert.ok(maxLoopMs < 500, `event loop blocked for ${maxLoopMs.toFixed(0)} ms`);
        assert.ok(slowest < 500, `slowest requests took ${slowest.toFixed(0)} ms`);
        const reply = await created;
        assert.equal(reply?.status, 201, `a key created during the lock is created once it is released: ${reply?.body ?? ''}`);
        await flushed;
        const expected = 1 + latencies.length;
        assert.equal(await eventually(uses, expected), expected, 'every use is written once the lock is gone');
      } finally {
        locker.close();
      }
    });
  }
});
