// One contract for every limit store: the in-process map and Redis (a private redis-server).
// Each store must give, key by key, exactly the verdicts of the pure algorithm over the stored state.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { ALGORITHMS, decide, type LimitShape, type LimitState } from '../src/ratelimit/algorithms.js';
import { systemClock, type Clock } from '../src/lib/clock.js';
import { MemoryLimitStore } from '../src/ratelimit/memory-store.js';
import { RedisLimitStore, type RedisStoreSettings } from '../src/ratelimit/redis-store.js';
import { LimitStoreUnavailableError, type LimitStore } from '../src/ratelimit/store.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { waitUntil } from './harness/assertions.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';

// Far ahead of the real clock, so Redis (which expires keys by its own clock) keeps every key while
// the injected clock moves about.
const FUTURE = 4_102_444_800_000;

interface Subject {
  readonly name: string;
  make(clock: () => number): LimitStore;
}

const op = fc.record({ key: fc.constantFrom('a', 'b', 'c{x}', 'header:\u00e9'), step: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: -300, max: 5000 }), fc.integer({ min: 0, max: 400_000 })) });

function contract(subject: () => Subject | null, skip: () => string | false): void {
  it('decides exactly as the algorithm over each key\'s stored state, for every algorithm', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    const s = subject() as Subject;
    for (const algorithm of ALGORITHMS) {
      await fc.assert(fc.asyncProperty(
        fc.record({ limit: fc.integer({ min: 1, max: 6 }), windowMs: fc.constantFrom(1000, 60_000, 7), burst: fc.integer({ min: 1, max: 6 }) }),
        fc.array(op, { minLength: 1, maxLength: 40, size: 'max' }),
        async (dims, ops) => {
          const shape: LimitShape = { algorithm, ...dims };
          let now = FUTURE + Math.floor(Math.random() * 1e9);
          const store = s.make(() => now);
          const prefix = `${Math.random()}`;
          const model = new Map<string, LimitState>();
          try {
            for (const { key, step } of ops) {
              now = Math.max(0, now + step);
              const want = decide(shape, model.get(key) ?? null, now);
              model.set(key, want.state);
              const got = await store.hit(shape, prefix + key);
              assert.deepEqual(
                { allowed: got.allowed, remaining: got.remaining, retryAfterMs: got.retryAfterMs, resetMs: got.resetMs },
                { allowed: want.allowed, remaining: want.remaining, retryAfterMs: want.retryAfterMs, resetMs: want.resetMs },
              );
            }
          } finally {
            await store.close();
          }
        },
      ), { numRuns: 25 });
    }
  });

  it('admits exactly limit of many concurrent requests on one key', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    const s = subject() as Subject;
    const store = s.make(() => FUTURE);
    try {
      for (const algorithm of ALGORITHMS) {
        const shape: LimitShape = { algorithm, limit: 37, windowMs: 60_000, burst: 37 };
        const verdicts = await Promise.all(Array.from({ length: 100 }, () => Promise.resolve(store.hit(shape, `concurrent-${algorithm}`))));
        const allowed = verdicts.filter((v) => v.allowed).length;
        assert.equal(allowed, 37, algorithm);
        assert.ok(verdicts.filter((v) => !v.allowed).every((v) => v.retryAfterMs > 0 && v.remaining === 0));
      }
    } finally {
      await store.close();
    }
  });
}

describe('limit store contract: memory', () => {
  const clockOf = (now: () => number): Clock => ({ now, setTimer: (fn, ms) => systemClock.setTimer(fn, ms) });
  contract(() => ({ name: 'memory', make: (clock) => new MemoryLimitStore(10_000, clockOf(clock)) }), () => false);

  it('holds at most maxEntries keys, dropping expired ones first, then the oldest', () => {
    let now = FUTURE;
    const store = new MemoryLimitStore(100, clockOf(() => now));
    const shape: LimitShape = { algorithm: 'fixed-window', limit: 1, windowMs: 1000, burst: 1 };
    for (let i = 0; i < 100; i++) store.hit(shape, `old-${i}`);
    now += 5000; // all expired
    store.hit(shape, 'keeper');
    for (let i = 0; i < 500; i++) store.hit(shape, `new-${i}`);
    assert.ok(store.size <= 100);
    store.sweep();
    assert.ok(store.size <= 100);
    now += 5000;
    store.sweep();
    assert.equal(store.size, 0, 'a sweep drops every expired entry');
    void store.close();
  });
});

describe('limit store contract: redis', () => {
  let redis: TestRedis | string = 'not started';
  const settings = (url: string): RedisStoreSettings => ({ url, keyPrefix: 'test:rl', timeoutMs: 200, connectTimeoutMs: 500, breakerFailures: 3, breakerOpenMs: 300 });
  const stores: RedisLimitStore[] = [];
  const open = (clock: (() => number) | null, url?: string): RedisLimitStore => {
    const store = new RedisLimitStore(settings(url ?? (redis as TestRedis).url), () => {}, clock);
    stores.push(store);
    void store.connect();
    return store;
  };
  /** Waits (bounded, 2 s) for the store's connection to be up: a real connection, no clock to move. */
  const ready = (store: RedisLimitStore): Promise<void> => waitUntil('the redis store is ready', () => store.ready, 2000);

  before(async () => { redis = await startRedis(); });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    if (typeof redis !== 'string') await redis.stop();
  });
  const skip = () => (typeof redis === 'string' ? redis : false);

  // One connection for the whole contract; each run installs its own clock.
  let clock: () => number = () => FUTURE;
  let shared: RedisLimitStore | null = null;
  contract(() => ({
    name: 'redis',
    make: (runClock) => {
      clock = runClock;
      shared ??= open(() => clock());
      const store = shared;
      return { kind: 'redis', hit: async (shape, key) => { await ready(store); return store.hit(shape, key); }, close: () => Promise.resolve() };
    },
  }), skip);

  it('names keys <prefix>:{digest}: no caller text in key names, one hash slot per decision, expiring with the state', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    const store = open(null);
    await ready(store);
    await store.hit({ algorithm: 'token-bucket', limit: 10, windowMs: 60_000, burst: 10 }, 'lim\0token-bucket\0evil}{key\r\nFLUSHALL');
    const client = new Redis((redis as TestRedis).url);
    try {
      const keys = await client.keys('*');
      assert.ok(keys.length > 0);
      for (const k of keys) assert.match(k, /^test:rl:\{[A-Za-z0-9_-]{22}\}$/);
      const key = store.redisKey('lim\0token-bucket\0evil}{key\r\nFLUSHALL');
      assert.ok(keys.includes(key));
      const ttl = await client.pttl(key);
      assert.ok(ttl > 0 && ttl <= 6000, `one token refills in 6 s: ttl ${ttl}`);
    } finally {
      client.disconnect();
    }
  });

  it('uses one round trip per decision and Redis\'s clock', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    const store = open(null);
    await ready(store);
    const client = new Redis((redis as TestRedis).url);
    try {
      await client.config('RESETSTAT');
      const shape: LimitShape = { algorithm: 'sliding-window', limit: 5, windowMs: 60_000, burst: 1 };
      for (let i = 0; i < 20; i++) await store.hit(shape, 'round-trips');
      const stats = await client.info('commandstats');
      const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
      assert.equal(calls('evalsha') + calls('eval'), 20);
      const [seconds] = await client.time();
      const v = await store.hit(shape, 'round-trips');
      assert.ok(Math.abs(v.state[0] - Number(seconds) * 1000) < 5000, 'the script timed the decision with Redis TIME');
    } finally {
      client.disconnect();
    }
  });

  it('times out on a Redis that does not answer, then opens its circuit and fails at once until a probe succeeds', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    // The circuit breaker runs on the store's clock: the test moves it instead of waiting.
    const clock = new ManualClock();
    const store = new RedisLimitStore(settings((redis as TestRedis).url), () => {});
    stores.push(store);
    await store.start({ logger: createLogger('silent'), clock, metrics: new Metrics(false) });
    await ready(store);
    const shape: LimitShape = { algorithm: 'gcra', limit: 1000, windowMs: 1000, burst: 100 };
    await store.hit(shape, 'paused');
    const control = new Redis((redis as TestRedis).url);
    try {
      await control.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const timings: number[] = [];
      for (let i = 0; i < 8; i++) {
        const started = performance.now();
        await assert.rejects(store.hit(shape, 'paused'), LimitStoreUnavailableError);
        timings.push(performance.now() - started);
      }
      // breakerFailures 3: three timeouts of ~200 ms, then the circuit answers at once.
      assert.ok(timings.slice(0, 3).every((ms) => ms >= 150 && ms < 600), `timeouts: ${timings.map(Math.round).join(', ')}`);
      assert.ok(timings.slice(3).every((ms) => ms < 20), `open circuit: ${timings.map(Math.round).join(', ')}`);
      await control.call('CLIENT', 'UNPAUSE');
      clock.advance(350); // breakerOpenMs 300, then one probe goes through
      assert.equal((await store.hit(shape, 'paused')).allowed, true);
    } finally {
      control.disconnect();
    }
  });

  it('fails fast while Redis is down, opens its circuit, and recovers when Redis is back', async (t) => {
    const reason = skip();
    if (reason !== false) { t.skip(reason); return; }
    const r = redis as TestRedis;
    let reports: boolean[] = [];
    const store = new RedisLimitStore(settings(r.url), (up) => { reports.push(up); });
    stores.push(store);
    await store.connect();
    const shape: LimitShape = { algorithm: 'fixed-window', limit: 100, windowMs: 60_000, burst: 1 };
    await store.hit(shape, 'outage');
    reports = [];
    await r.kill();
    const started = performance.now();
    for (let i = 0; i < 20; i++) await assert.rejects(Promise.resolve(store.hit(shape, 'outage')), LimitStoreUnavailableError);
    assert.ok(performance.now() - started < 1000, 'twenty decisions failed within a second');
    assert.deepEqual(reports, [false]);
    await r.restart();
    // The client reconnects on its own schedule: poll decisions (bounded) until one succeeds.
    await waitUntil('the store decides again after the restart', async () => {
      try { await store.hit(shape, 'outage'); return true; } catch { return false; }
    }, 5000);
    assert.deepEqual(reports, [false, true]);
  });
});
