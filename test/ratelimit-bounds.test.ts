// In-process limit state is bounded without being forgettable: every limit, fallback and
// brute-force table holds its own callers, a flood of new keys never evicts a live count or lifts
// an active block, and callers a full table has no room for share one overflow count (stricter,
// never looser). Entries leave when their window ends, not under pressure.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newKey } from '../src/authn/api-key/key-format.js';
import type { LimitShape } from '../src/ratelimit/algorithms.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { ResourceSet } from '../src/lifecycle/resources.js';
import { BlockTable } from '../src/ratelimit/block-table.js';
import { MemoryLimitStore } from '../src/ratelimit/memory-store.js';
import { SqliteQuotaStore } from '../src/ratelimit/quota-store.js';
import { RedisLimitStore } from '../src/ratelimit/redis-store.js';
import { ManualClock } from './harness/manual-clock.js';
import { toYaml } from './harness/gateway.js';
import { assertProblem } from './harness/assertions.js';
import { call, withKey } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';

const CAPACITY = 100;

describe('a flood of new keys through the gateway', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      trustedProxies: ['127.0.0.1/32'],
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      rateLimiting: { maxEntries: CAPACITY, bruteForce: { maxFailures: 2, within: '1h', blockFor: '1h', by: ['ip'] } },
      rateLimits: {
        login: { algorithm: 'fixed-window', limit: 3, per: '1h', by: ['ip'] },
        noisy: { algorithm: 'fixed-window', limit: 1000, per: '1h', by: ['header:x-flood'] },
      },
      routes: [
        { name: 'login', match: { path: '/login' }, upstream: 'echo', public: true, rateLimit: 'login' },
        { name: 'noisy', match: { path: '/noisy' }, upstream: 'echo', public: true, rateLimit: 'noisy' },
        { name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['machines'] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  const from = (ip: string, headers: Record<string, string> = {}) => ({ 'x-forwarded-for': ip, ...headers });

  it('keeps a caller\'s count on one limit while another limit is flooded with distinct header values', async () => {
    const victim = from('198.51.100.10');
    for (let i = 0; i < 3; i++) assert.equal((await call(`${gw.url}/login`, { headers: victim })).status, 200);
    assertProblem(await call(`${gw.url}/login`, { headers: victim }), 429, 'rate_limited');
    for (let i = 0; i < CAPACITY * 2; i++) assert.equal((await call(`${gw.url}/noisy`, { headers: { 'x-flood': `v${i}` } })).status, 200);
    assertProblem(await call(`${gw.url}/login`, { headers: victim }), 429, 'rate_limited');
  });

  it('keeps a caller\'s count on a limit flooded with new addresses; the callers it has no room for share one overflow count', async () => {
    const victim = from('198.51.100.20');
    for (let i = 0; i < 3; i++) assert.equal((await call(`${gw.url}/login`, { headers: victim })).status, 200);
    const statuses: number[] = [];
    let overflowRefusal = '';
    for (let i = 0; i < CAPACITY + 10; i++) {
      const res = await call(`${gw.url}/login`, { headers: from(`203.0.113.${i}`) });
      statuses.push(res.status);
      if (res.status === 429 && overflowRefusal === '') overflowRefusal = (JSON.parse(res.body) as { requestId: string }).requestId;
    }
    // The victim is still refused: its count was never dropped to make room.
    assertProblem(await call(`${gw.url}/login`, { headers: victim }), 429, 'rate_limited');
    // The store filled up (two callers from the test above plus new ones); past it, new addresses
    // were counted together: three of them were admitted, the rest refused.
    const refused = statuses.filter((s) => s === 429).length;
    assert.ok(refused > 0 && statuses.slice(-5).every((s) => s === 429), `statuses ${statuses.join(',')}`);
    const record = (await gw.auditFor(overflowRefusal))[0];
    assert.equal(record?.reason, 'rate_limited');
    assert.equal(record?.limit, 'login');
    assert.match(record?.detail ?? '', /shared overflow count \(store full\)/);
    assert.ok(gw.logs.some((l) => l.includes('rate-limit store full')), 'the full store is logged');
  });

  it('keeps an address blocked by the brute-force guard while many other addresses fail and get blocked', async () => {
    const blocked = '192.0.2.1';
    for (let i = 0; i < 2; i++) assertProblem(await withKey(`${gw.url}/api/x`, newKey('live'), from(blocked)), 401, 'invalid_credential');
    assertProblem(await withKey(`${gw.url}/api/x`, newKey('live'), from(blocked)), 429, 'too_many_failures');
    // More sources fail twice each than the guard has room for: each would be blocked in turn.
    const flood = Array.from({ length: CAPACITY + 20 }, (_, i) => `10.9.${Math.floor(i / 200)}.${i % 200}`);
    const last: number[] = [];
    for (const ip of flood) for (let i = 0; i < 2; i++) last.push((await withKey(`${gw.url}/api/x`, newKey('live'), from(ip))).status);
    assertProblem(await withKey(`${gw.url}/api/x`, newKey('live'), from(blocked)), 429, 'too_many_failures');
    // Past the guard's capacity the sources it cannot name are blocked together (fail closed):
    // an address it has never seen is refused before authentication until that block ends.
    const stranger = await withKey(`${gw.url}/api/x`, newKey('live'), from('10.200.0.1'));
    const doc = assertProblem(stranger, 429, 'too_many_failures');
    const record = (await gw.auditFor(doc.requestId))[0];
    assert.match(record?.detail ?? '', /tables are full/);
    assert.ok(last.slice(-4).every((s) => s === 429), `the flood ends refused: ${last.slice(-4).join(',')}`);
  });
});

describe('the in-process limit store and its bound', () => {
  const shape: LimitShape = { algorithm: 'fixed-window', limit: 2, windowMs: 60_000, burst: 1 };
  const FUTURE = 4_102_444_800_000;

  it('never holds more than maxEntries callers and never drops a live one: new callers share the overflow count', () => {
    const clock = new ManualClock(FUTURE);
    const full: number[] = [];
    const store = new MemoryLimitStore(100, clock, (max) => full.push(max));
    try {
      store.hit(shape, 'victim');
      store.hit(shape, 'victim');
      assert.equal(store.hit(shape, 'victim').allowed, false);
      for (let i = 0; i < 1000; i++) store.hit(shape, `flood-${i}`);
      assert.equal(store.size, 100);
      assert.equal(store.has('victim'), true);
      assert.equal(store.hit(shape, 'victim').allowed, false, 'the victim is still limited');
      const overflow = [store.hit(shape, 'new-1'), store.hit(shape, 'new-2')];
      assert.deepEqual(overflow.map((v) => [v.allowed, v.overflow]), [[false, true], [false, true]], 'the overflow count is used up by the flood');
      assert.deepEqual(full, [100], 'reported once per interval');
      // Once the window has ended, entries are reclaimed by time, and new callers get their own.
      clock.advance(60_000);
      const fresh = store.hit(shape, 'after-the-window');
      assert.deepEqual([fresh.allowed, fresh.overflow], [true, undefined]);
      store.sweep();
      assert.equal(store.size, 1);
    } finally {
      void store.close();
    }
  });

  it('reclaims expired entries anywhere in the map on a full insert, not only the oldest', () => {
    const clock = new ManualClock(FUTURE);
    const store = new MemoryLimitStore(100, clock);
    const long: LimitShape = { ...shape, windowMs: 3_600_000 };
    try {
      for (let i = 0; i < 50; i++) store.hit(long, `long-${i}`);
      for (let i = 0; i < 50; i++) store.hit(shape, `short-${i}`);
      clock.advance(60_000); // the short ones have ended, the long ones are live and first in the map
      const v = store.hit(shape, 'newcomer');
      assert.equal(v.overflow, undefined, 'an expired entry made room');
      for (let i = 0; i < 50; i++) assert.equal(store.has(`long-${i}`), true);
    } finally {
      void store.close();
    }
  });
});

describe('the brute-force block table and its bound', () => {
  it('never lifts a block to make room: a full table raises the overflow block instead, and ended blocks are reclaimed', () => {
    const clock = new ManualClock(1_000_000);
    const table = new BlockTable(100, clock);
    assert.equal(table.block('victim', clock.now() + 60_000), true);
    for (let i = 0; i < 99; i++) assert.equal(table.block(`b-${i}`, clock.now() + 60_000), true);
    assert.equal(table.block('one-too-many', clock.now() + 60_000), false);
    assert.equal(table.size, 100);
    assert.ok(table.leftFor('victim') > 0, 'the first block is still in force');
    assert.equal(table.leftFor('one-too-many'), 0);
    assert.equal(table.overflowLeft(), 60_000);
    clock.advance(60_000);
    assert.equal(table.overflowLeft(), 0);
    assert.equal(table.block('later', clock.now() + 60_000), true, 'ended blocks make room');
    assert.equal(table.size, 1);
  });
});

describe('the Redis key-name cache and its bound', () => {
  it('remembers at most 10000 key names', async () => {
    const store = new RedisLimitStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'p', timeoutMs: 10, connectTimeoutMs: 10, breakerFailures: 1, breakerOpenMs: 10 });
    try {
      for (let i = 0; i < 25_000; i++) store.redisKey(`k${i}`);
      assert.ok(store.cachedKeys <= 10_000, `${store.cachedKeys} names cached`);
    } finally {
      await store.close();
    }
  });
});

describe('the stores kept across reloads and their bound', () => {
  it('keeps the stores the live config uses and retires the others, so renamed limits do not accumulate', async () => {
    const resources = new ResourceSet({ logger: createLogger('silent'), clock: new ManualClock(), metrics: new Metrics(false) });
    const config = (limits: string[]) => loadConfigText(toYaml({
      upstreams: { echo: { targets: ['http://127.0.0.1:1'] } },
      rateLimits: Object.fromEntries(limits.map((name) => [name, { algorithm: 'fixed-window', limit: 1, per: '1m', by: ['ip'] }])),
      quotas: { a: { limit: 1, period: 'day', by: ['ip'] }, b: { limit: 1, period: 'day', by: ['ip'] } },
      dataDir: '/nonexistent',
      routes: [{ name: 'r', match: { path: '/' }, upstream: 'echo', public: true }],
    }), 'gateway.yaml', {});
    const memoryOf = (c: ReturnType<typeof compileConfig>, name: string) => c.rateLimiting.limits.get(name)?.spec.store as MemoryLimitStore;
    try {
      const first = compileConfig(config(['kept', 'removed']), { resources, clock: new ManualClock() });
      const generation = await resources.prepare(first.resources.filter((r) => !(r instanceof SqliteQuotaStore)));
      const kept = memoryOf(first, 'kept');
      const removed = memoryOf(first, 'removed');
      removed.hit({ algorithm: 'fixed-window', limit: 1, windowMs: 60_000, burst: 1 }, 'caller');
      const second = compileConfig(config(['kept']), { resources, clock: new ManualClock() });
      await resources.prepare(second.resources.filter((r) => !(r instanceof SqliteQuotaStore)));
      await resources.retire(generation);
      assert.equal(memoryOf(second, 'kept'), kept, 'a limit still configured keeps its counts');
      assert.equal(removed.size, 0, 'a removed limit\'s store is closed');
      const third = compileConfig(config(['kept', 'removed']), { resources, clock: new ManualClock() });
      assert.notEqual(memoryOf(third, 'removed'), removed);
      const quotaStore = (name: string) => second.rateLimiting.quotas.get(name)?.spec.store;
      assert.notEqual(quotaStore('a'), quotaStore('b'), 'each quota has its own count cache');
      assert.equal(quotaStore('a'), quotaStore('a'));
    } finally {
      await resources.stopAll();
    }
  });
});
