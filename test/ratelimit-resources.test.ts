// Limit stores, quota stores and the brute-force guard are resources: compiling a config opens
// nothing (no Redis connection, no SQLite handle, no timer), a reload that changes a store's
// settings lets the requests already using the old store finish on it before it is stopped, and a
// reload that keeps a limit's definition keeps its counts.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import type { SqliteQuotaStore } from '../src/ratelimit/quota-store.js';
import type { RedisLimitStore } from '../src/ratelimit/redis-store.js';
import { call } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, toYaml, type ConfigObject } from './harness/gateway.js';
import { startRedis, type TestRedis } from './harness/redis.js';
import { waitUntil } from './harness/assertions.js';


const openFds = (): number => readdirSync('/proc/self/fd').length;
const connectedClients = async (control: Redis): Promise<number> => Number(/connected_clients:(\d+)/.exec(await control.info('clients'))?.[1] ?? -1);

describe('rate-limit stores as resources', () => {
  let redis: TestRedis | string = 'not started';
  let echo: EchoUpstream;
  let control: Redis | null = null;
  let dir = '';

  before(async () => {
    redis = await startRedis();
    echo = await startEchoUpstream();
    dir = await mkdtemp(join(tmpdir(), 'portcullis-rl-resources-'));
    if (typeof redis !== 'string') control = new Redis(redis.url);
  });
  after(async () => {
    control?.disconnect();
    await echo.close();
    if (typeof redis !== 'string') await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (url: string, rateLimiting: Record<string, unknown> = {}, extraRoutes: ConfigObject[] = []): ConfigObject => ({
    dataDir: join(dir, 'data'),
    upstreams: { echo: { targets: [echo.url] } },
    rateLimiting: { store: 'redis', redis: { url, timeoutMs: 10_000 }, bruteForce: { store: 'redis' }, ...rateLimiting },
    rateLimits: {
      shared: { algorithm: 'fixed-window', limit: 1000, per: '1h', by: ['route'] },
      local: { algorithm: 'fixed-window', limit: 2, per: '1h', by: ['route'], store: 'memory' },
    },
    quotas: { daily: { limit: 1000, period: 'day', by: ['route'], store: 'embedded' } },
    routes: [
      { name: 'metered', match: { path: '/metered' }, upstream: 'echo', public: true, rateLimit: 'shared', quota: 'daily' },
      { name: 'small', match: { path: '/small' }, upstream: 'echo', public: true, rateLimit: 'local', quota: 'daily' },
      ...extraRoutes,
    ],
  });

  it('compiling a config with a Redis store and quotas in SQLite opens nothing', async (t) => {
    if (typeof redis === 'string' || control === null) { t.skip(typeof redis === 'string' ? redis : 'no control connection'); return; }
    assert.equal(await connectedClients(control), 1, 'only the test\'s own connection before');
    const loaded = loadConfigText(toYaml(config(redis.url)), join(dir, 'gateway.yaml'), {});
    const handles = process.getActiveResourcesInfo().length;
    const fds = openFds();
    const compiled = compileConfig(loaded);
    assert.equal(process.getActiveResourcesInfo().length, handles, 'no new handle (socket, timer)');
    assert.equal(openFds(), fds, 'no new file descriptor');
    assert.ok(compiled.rateLimiting.resources.length >= 4, 'the stores and the guard are described as resources');
    await new Promise((done) => setImmediate(done));
    assert.equal(await connectedClients(control), 1, 'redis-server saw no connection from the compile');
    assert.equal(existsSync(join(dir, 'data', 'quotas')), false, 'no quota file was created');
  });

  it('a reload that changes the Redis and quota store settings lets requests in flight finish on the old stores, then stops them', async (t) => {
    if (typeof redis === 'string' || control === null) { t.skip(typeof redis === 'string' ? redis : 'no control connection'); return; }
    const gw = await startGateway(config(redis.url, { quotaFlushMs: 1000 }));
    try {
      assert.equal((await call(`${gw.url}/metered`)).status, 200);
      const old = gw.gateway.config;
      const oldRedis = old.rateLimiting.limits.get('shared')?.spec.store as RedisLimitStore;
      const oldQuota = old.rateLimiting.quotas.get('daily')?.spec.store as SqliteQuotaStore;
      assert.ok(oldRedis.ready && oldQuota.size > 0);
      // Decisions in Redis wait while clients are paused: these requests hold the old generation.
      await control.call('CLIENT', 'PAUSE', '20000', 'WRITE');
      const inFlight = Array.from({ length: 8 }, () => call(`${gw.url}/metered`));
      await waitUntil('the requests are in flight', () => gw.gateway.metrics.requestsInFlight === 8);
      await gw.writeConfig(config(redis.url, { redis: { url: redis.url, timeoutMs: 10_000, keyPrefix: 'portcullis:rl2' }, quotaFlushMs: 500 }));
      const reloaded = await gw.gateway.reload();
      assert.equal(reloaded.ok && reloaded.changed, true);
      const next = gw.gateway.config.rateLimiting;
      assert.notEqual(next.limits.get('shared')?.spec.store, oldRedis, 'new Redis settings: a new store');
      assert.notEqual(next.quotas.get('daily')?.spec.store, oldQuota, 'a new flush interval: a new quota store');
      assert.ok(oldRedis.ready, 'the old Redis store still serves its requests');
      assert.ok(oldQuota.size > 0, 'the old quota store is still open');
      await control.call('CLIENT', 'UNPAUSE');
      const statuses = (await Promise.all(inFlight)).map((r) => r.status);
      assert.deepEqual(statuses, Array<number>(8).fill(200), 'every request in flight completed on the old stores');
      await waitUntil('the old Redis store is stopped', () => !oldRedis.ready);
      await waitUntil('the old quota store is stopped', () => oldQuota.size === 0);
      assert.equal((await call(`${gw.url}/metered`)).status, 200, 'the new stores decide');
    } finally {
      await control.call('CLIENT', 'UNPAUSE');
      await gw.close();
    }
  });

  it('a reload that keeps a limit\'s definition keeps its counts', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const gw = await startGateway(config(redis.url));
    try {
      const store = gw.gateway.config.rateLimiting.limits.get('local')?.spec.store;
      const quota = gw.gateway.config.rateLimiting.quotas.get('daily')?.spec.store;
      assert.deepEqual([(await call(`${gw.url}/small`)).status, (await call(`${gw.url}/small`)).status], [200, 200]);
      await gw.writeConfig(config(redis.url, {}, [{ name: 'more', match: { path: '/more' }, upstream: 'echo', public: true }]));
      const reloaded = await gw.gateway.reload();
      assert.equal(reloaded.ok && reloaded.changed, true);
      assert.equal(gw.gateway.config.rateLimiting.limits.get('local')?.spec.store, store, 'the running store is reused');
      assert.equal(gw.gateway.config.rateLimiting.quotas.get('daily')?.spec.store, quota, 'the running quota store is reused');
      assert.equal((await call(`${gw.url}/small`)).status, 429, 'the count survived the reload');
    } finally {
      await gw.close();
    }
  });
});
