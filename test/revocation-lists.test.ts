// One contract for every revocation list (the process's, and the one shared through a real
// redis-server), then what only the shared one does: refuse to vouch for tokens before its first
// load or after being cut off past maxStalenessMs, and take only well-formed messages from the
// channel. Time is an injected clock.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { LocalRevocations } from '../src/authn/oauth/local-revocations.js';
import { RedisRevocations } from '../src/authn/oauth/redis-revocations.js';
import type { RevocationList } from '../src/authn/oauth/revocations.js';
import type { Resource } from '../src/lifecycle/resources.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { waitUntil } from './harness/assertions.js';
import { freePort } from './harness/free-port.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const T0 = Date.UTC(2026, 0, 1);
const digest = (n: number): string => `d${String(n).padStart(42, '0')}`;
const context = (clock: ManualClock) => ({ logger: createLogger('error', new PassThrough()), clock, metrics: new Metrics(false) });

type List = RevocationList & Resource & { readonly size: number };
type Maker = (clock: ManualClock, maxEntries: number) => Promise<List | string>;

function contract(name: string, make: Maker): void {
  describe(`revocation list contract: ${name}`, () => {
    const lists: List[] = [];
    const start = async (t: { skip(reason: string): void }, maxEntries = 100): Promise<{ list: List; clock: ManualClock } | null> => {
      const clock = new ManualClock(T0);
      const list = await make(clock, maxEntries);
      if (typeof list === 'string') { t.skip(list); return null; }
      await list.start(context(clock));
      lists.push(list);
      return { list, clock };
    };
    after(async () => { await Promise.all(lists.map((l) => l.stop())); });

    it('starts empty and current', async (t) => {
      const s = await start(t);
      if (s === null) return;
      assert.equal(s.list.empty, true);
      assert.equal(s.list.unavailable, null);
      assert.equal(s.list.isRevoked(digest(1)), false);
    });

    it('refuses a revoked digest until its end, and tells its listeners', async (t) => {
      const s = await start(t);
      if (s === null) return;
      const heard: string[] = [];
      s.list.onRevoked((d) => heard.push(d));
      await s.list.revoke(digest(1), T0 + 1000);
      assert.equal(s.list.isRevoked(digest(1)), true);
      assert.equal(s.list.empty, false);
      assert.ok(heard.includes(digest(1)));
      s.clock.advance(999);
      assert.equal(s.list.isRevoked(digest(1)), true);
      s.clock.advance(1);
      assert.equal(s.list.isRevoked(digest(1)), false, 'the token has expired anyway');
    });

    it('keeps the later end when a token is revoked twice', async (t) => {
      const s = await start(t);
      if (s === null) return;
      await s.list.revoke(digest(2), T0 + 10_000);
      await s.list.revoke(digest(2), T0 + 1000);
      s.clock.advance(5000);
      assert.equal(s.list.isRevoked(digest(2)), true);
    });

    it('stays within maxEntries under a flood, dropping what ends soonest', async (t) => {
      const s = await start(t, 5);
      if (s === null) return;
      for (let i = 0; i < 50; i++) await s.list.revoke(digest(i), T0 + 10_000 + i);
      assert.equal(s.list.size, 5);
      assert.equal(s.list.isRevoked(digest(49)), true);
      assert.equal(s.list.isRevoked(digest(0)), false);
    });
  });
}

let redis: TestRedis | string = 'not started';
let prefixes = 0;
const redisSettings = (url: string, maxEntries: number, maxStalenessMs = 1000) => ({
  redis: { url, keyPrefix: `test-${process.pid}-${prefixes++}`, timeoutMs: 1000, connectTimeoutMs: 500 }, maxEntries, maxStalenessMs,
});

before(async () => { redis = await startRedis(); });
after(async () => { if (typeof redis !== 'string') await redis.stop(); });

contract('in this process', (clock, maxEntries) => Promise.resolve(new LocalRevocations(maxEntries, clock)));
contract('shared through Redis', (clock, maxEntries) => Promise.resolve(typeof redis === 'string' ? redis : new RedisRevocations(redisSettings(redis.url, maxEntries), clock)));

describe('the Redis-shared list', () => {
  it('compiled but never started (check, explain) is neither stale nor consulted', () => {
    const list = new RedisRevocations(redisSettings('redis://127.0.0.1:9', 10), new ManualClock(T0));
    assert.equal(list.unavailable, null);
    assert.equal(list.empty, true);
  });

  it('vouches for nothing before its first load: an unreachable Redis makes it unavailable from the start', async () => {
    const clock = new ManualClock(T0);
    const list = new RedisRevocations(redisSettings(`redis://127.0.0.1:${await freePort()}`, 10), clock);
    try {
      await list.start(context(clock));
      assert.equal(list.empty, false, 'the hot path must look');
      assert.match(list.unavailable ?? '', /not been loaded from Redis yet/);
    } finally {
      await list.stop();
    }
  });

  it('becomes unavailable once cut off past maxStalenessMs, and current again after Redis is back', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const clock = new ManualClock(T0);
    const list = new RedisRevocations(redisSettings(redis.url, 10, 2000), clock);
    await list.start(context(clock));
    try {
      assert.equal(list.unavailable, null);
      await list.revoke(digest(7), T0 + 600_000);
      await redis.kill();
      await waitUntil('the list notices its subscription dropped', () => !list.current, 5000);
      clock.advance(1999);
      assert.equal(list.unavailable, null, 'within maxStalenessMs it serves with what it knows');
      clock.advance(2);
      assert.match(list.unavailable ?? '', /maxStalenessMs 2000/);
      assert.equal(list.isRevoked(digest(7)), true, 'what it knew is kept');
      await redis.restart();
      await waitUntil('the list is current again', () => list.unavailable === null, 10_000);
    } finally {
      await list.stop();
    }
  });

  it('applies well-formed messages from the channel and drops the rest', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const clock = new ManualClock(T0);
    const settings = redisSettings(redis.url, 10);
    const list = new RedisRevocations(settings, clock);
    const publisher = new Redis(redis.url);
    await list.start(context(clock));
    try {
      const channel = `${settings.redis.keyPrefix}:revocations`;
      for (const junk of ['', 'x', digest(1), `${digest(1)} soon`, `${digest(1)} 1e400`, `${digest(1)}  ${T0 + 1000}`, `../../etc ${T0 + 1000}`, `${digest(1)} ${T0 + 1000} extra`]) {
        await publisher.publish(channel, junk);
      }
      await publisher.publish(channel, `${digest(2)} ${T0 + 1000}`);
      await waitUntil('the good message arrives', () => list.isRevoked(digest(2)), 5000);
      assert.equal(list.isRevoked(digest(1)), false);
      assert.equal(list.size, 1);
    } finally {
      publisher.disconnect();
      await list.stop();
    }
  });
});
