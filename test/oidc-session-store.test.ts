// The session store contract, run against every implementation (memory, Redis): round trips,
// secrets that do not match, idle and absolute ends, compare-and-set updates, logout by sid and
// subject, the global and per-subject bounds, the refresh lock and one-time names. Then what only
// Redis has: what a dump of it holds, an outage (fail closed, then recovery), and two gateways
// sharing one Redis.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MemorySessionStore } from '../src/authn/oidc/memory-session-store.js';
import { RedisSessionStore } from '../src/authn/oidc/redis-session-store.js';
import { SessionStoreUnavailableError, type SessionKey, type SessionLimits, type SessionRecord, type SessionStore } from '../src/authn/oidc/session-store.js';
import type { ResourceContext } from '../src/lifecycle/resources.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { waitUntil } from './harness/assertions.js';
import { ManualClock } from './harness/manual-clock.js';
import { redisCall, redisKeys, startRedis, type TestRedis } from './harness/redis.js';

const HASH_KEY = 'token-hash-key-for-tests-0123456789abcdef';
const MINUTE = 60_000;
const LIMITS: SessionLimits = { idleTimeoutMs: 30 * MINUTE, maxSessions: 100, maxSessionsPerSubject: 10 };

/** A fresh session key as the authenticator makes one: 256 random bits, and their keyed digest. */
function newKey(): SessionKey {
  const secret = randomBytes(32).toString('base64url');
  return { id: createHmac('sha256', HASH_KEY).update(secret).digest('base64url'), secret };
}

function recordAt(now: number, fields: Partial<SessionRecord> = {}): SessionRecord {
  return {
    authenticator: 'login',
    subject: 'alice',
    sid: 'idp-session-1',
    claims: { sub: 'alice', groups: ['admins'], profile: { name: 'Alice' } },
    idToken: 'eyJhbGciOiJFUzI1NiJ9.ID-TOKEN-PAYLOAD.sig',
    accessToken: 'ACCESS-TOKEN-do-not-store-in-clear',
    accessExpiresAt: now + 5 * MINUTE,
    refreshToken: 'REFRESH-TOKEN-do-not-store-in-clear',
    createdAt: now,
    expiresAt: now + 8 * 60 * MINUTE,
    version: 1,
    ...fields,
  };
}

interface Subject {
  readonly store: SessionStore;
  readonly clock: ManualClock;
  /** Lets a lock of `ms` lapse: the store's clock is moved (a Redis lock ends on the gateways' clock too). */
  readonly lapse: (ms: number) => Promise<void>;
  readonly close: () => Promise<void>;
}

const context = (clock: ManualClock): ResourceContext => ({ logger: createLogger('silent'), clock, metrics: new Metrics(false) });

/** The contract every store passes. `make` builds a fresh, empty, started store (or says why it cannot). */
function contract(name: string, make: () => Promise<Subject | string>): void {
  const each = (title: string, body: (s: Subject) => Promise<void>): void => {
    it(title, async (t) => {
      const subject = await make();
      if (typeof subject === 'string') { t.skip(subject); return; }
      try { await body(subject); } finally { await subject.close(); }
    });
  };

  describe(`session store contract: ${name}`, () => {
    each('a created session reads back equal and frozen, and later changes to the input do not reach it', async ({ store, clock }) => {
      const key = newKey();
      const record = recordAt(clock.now());
      const claims = structuredClone(record.claims) as Record<string, unknown>;
      assert.equal(await store.create(key, { ...record, claims }, clock.now(), LIMITS), 'created');
      claims['groups'] = ['changed'];
      const read = await store.get(key, clock.now(), LIMITS.idleTimeoutMs);
      assert.deepEqual(read, record);
      assert.ok(read !== null && Object.isFrozen(read) && Object.isFrozen(read.claims) && Object.isFrozen(read.claims['profile']));
      assert.throws(() => { (read as { subject: string }).subject = 'mallory'; }, TypeError);
      assert.equal(await store.size(), 1);
    });

    each('an unknown or malformed id finds nothing', async ({ store, clock }) => {
      await store.create(newKey(), recordAt(clock.now()), clock.now(), LIMITS);
      const secret = newKey().secret;
      for (const id of [newKey().id, '', '*', '../s:*', '\u0000', 'x'.repeat(100_000), 'live', 'ľ∂😀']) {
        assert.equal(await store.get({ id, secret }, clock.now(), LIMITS.idleTimeoutMs), null, JSON.stringify(id.slice(0, 20)));
      }
    });

    each('the right id with another secret finds nothing (a tampered cookie), and leaves the session to its owner', async ({ store, clock }) => {
      const key = newKey();
      await store.create(key, recordAt(clock.now()), clock.now(), LIMITS);
      const flipped = `${key.secret.slice(0, -1)}${key.secret.endsWith('A') ? 'B' : 'A'}`;
      for (const secret of [newKey().secret, flipped, '', key.id, `${key.secret}x`]) {
        assert.equal(await store.get({ id: key.id, secret }, clock.now(), LIMITS.idleTimeoutMs), null);
        assert.equal(await store.update({ id: key.id, secret }, recordAt(clock.now(), { version: 2 }), clock.now(), LIMITS.idleTimeoutMs), false);
      }
      assert.equal((await store.get(key, clock.now(), LIMITS.idleTimeoutMs))?.version, 1);
    });

    each('a session unused for the idle timeout ends; each use slides it', async ({ store, clock }) => {
      const key = newKey();
      const idle = LIMITS.idleTimeoutMs;
      await store.create(key, recordAt(clock.now()), clock.now(), LIMITS);
      for (let i = 0; i < 3; i++) {
        clock.advance(idle - 1);
        assert.notEqual(await store.get(key, clock.now(), idle), null, `use ${i}`);
      }
      clock.advance(idle);
      assert.equal(await store.get(key, clock.now(), idle), null);
      clock.advance(-idle);
      assert.equal(await store.get(key, clock.now(), idle), null, 'an ended session stays ended');
    });

    each('a session ends at its absolute end however active it is', async ({ store, clock }) => {
      const key = newKey();
      const start = clock.now();
      await store.create(key, recordAt(start, { expiresAt: start + 2 * LIMITS.idleTimeoutMs }), start, LIMITS);
      while (clock.now() + MINUTE < start + 2 * LIMITS.idleTimeoutMs) {
        clock.advance(MINUTE);
        assert.notEqual(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), null);
      }
      clock.advance(start + 2 * LIMITS.idleTimeoutMs - clock.now());
      assert.equal(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), null);
    });

    each('update is a compare-and-set on version, of the same login only', async ({ store, clock }) => {
      const key = newKey();
      const now = clock.now();
      await store.create(key, recordAt(now), now, LIMITS);
      const refreshed = recordAt(now, { version: 2, accessToken: 'ACCESS-2', refreshToken: 'REFRESH-2' });
      assert.equal(await store.update(key, refreshed, now, LIMITS.idleTimeoutMs), true);
      assert.deepEqual(await store.get(key, now, LIMITS.idleTimeoutMs), refreshed);
      const refused: [string, SessionRecord][] = [
        ['a stale version (a writer that lost the race)', refreshed],
        ['a version skipped ahead', recordAt(now, { version: 4 })],
        ['a version behind', recordAt(now, { version: 1 })],
        ['another subject', recordAt(now, { version: 3, subject: 'mallory' })],
        ['another sid', recordAt(now, { version: 3, sid: 'other' })],
        ['another authenticator', recordAt(now, { version: 3, authenticator: 'other' })],
        ['a later absolute end', recordAt(now, { version: 3, expiresAt: now + 1e9 })],
      ];
      for (const [why, record] of refused) assert.equal(await store.update(key, record, now, LIMITS.idleTimeoutMs), false, why);
      assert.deepEqual(await store.get(key, now, LIMITS.idleTimeoutMs), refreshed, 'refused updates changed nothing');
      clock.advance(LIMITS.idleTimeoutMs);
      assert.equal(await store.update(key, recordAt(now, { version: 3 }), clock.now(), LIMITS.idleTimeoutMs), false, 'ended');
      assert.equal(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), null);
    });

    each('an update keeps the idle deadline sliding', async ({ store, clock }) => {
      const key = newKey();
      const now = clock.now();
      await store.create(key, recordAt(now), now, LIMITS);
      clock.advance(LIMITS.idleTimeoutMs - 1);
      assert.equal(await store.update(key, recordAt(now, { version: 2 }), clock.now(), LIMITS.idleTimeoutMs), true);
      clock.advance(LIMITS.idleTimeoutMs - 1);
      assert.equal((await store.get(key, clock.now(), LIMITS.idleTimeoutMs))?.version, 2);
    });

    each('delete ends one session, its lock and its index entries', async ({ store, clock }) => {
      const [a, b] = [newKey(), newKey()];
      await store.create(a, recordAt(clock.now()), clock.now(), LIMITS);
      await store.create(b, recordAt(clock.now()), clock.now(), LIMITS);
      assert.notEqual(await store.lock(a, MINUTE), null);
      await store.delete(a);
      await store.delete(a);
      await store.delete(newKey());
      assert.equal(await store.get(a, clock.now(), LIMITS.idleTimeoutMs), null);
      assert.equal(await store.update(a, recordAt(clock.now(), { version: 2 }), clock.now(), LIMITS.idleTimeoutMs), false);
      assert.notEqual(await store.get(b, clock.now(), LIMITS.idleTimeoutMs), null);
      assert.equal(await store.deleteWhere('login', { sid: 'idp-session-1' }), 1, 'only b was left in the sid index');
      assert.equal(await store.size(), 0);
    });

    each('deleteWhere by sid ends that provider session\'s sessions of that authenticator only', async ({ store, clock }) => {
      const now = clock.now();
      const made: [SessionKey, SessionRecord][] = [
        [newKey(), recordAt(now, { sid: 's1' })],
        [newKey(), recordAt(now, { sid: 's1' })],
        [newKey(), recordAt(now, { sid: 's2' })],
        [newKey(), recordAt(now, { sid: null })],
        [newKey(), recordAt(now, { sid: 's1', authenticator: 'partners' })],
        [newKey(), recordAt(now, { sid: 's1', subject: 'bob' })],
      ];
      for (const [key, record] of made) await store.create(key, record, now, LIMITS);
      assert.equal(await store.deleteWhere('login', { sid: 's1' }), 3);
      const alive = await Promise.all(made.map(async ([key]) => await store.get(key, now, LIMITS.idleTimeoutMs) !== null));
      assert.deepEqual(alive, [false, false, true, true, true, false]);
      assert.equal(await store.deleteWhere('login', { sid: 's1' }), 0, 'already gone');
      assert.equal(await store.deleteWhere('login', { sid: 'unknown' }), 0);
    });

    each('deleteWhere by subject ends that subject\'s sessions of that authenticator only, whatever the subject looks like', async ({ store, clock }) => {
      const now = clock.now();
      for (const subject of ['alice', 'a:b*c', '', 'x'.repeat(10_000), '\u0000\r\n', 'ľ∂😀', '{tag}']) {
        const mine = [newKey(), newKey()];
        const others: [SessionKey, SessionRecord][] = [
          [newKey(), recordAt(now, { subject: `${subject}-other`, sid: null })],
          [newKey(), recordAt(now, { subject, authenticator: 'partners' })],
        ];
        for (const key of mine) await store.create(key, recordAt(now, { subject }), now, LIMITS);
        for (const [key, record] of others) await store.create(key, record, now, LIMITS);
        assert.equal(await store.deleteWhere('login', { subject }), 2, JSON.stringify(subject.slice(0, 20)));
        for (const key of mine) assert.equal(await store.get(key, now, LIMITS.idleTimeoutMs), null);
        for (const [key] of others) assert.notEqual(await store.get(key, now, LIMITS.idleTimeoutMs), null);
        assert.equal(await store.deleteWhere('login', { sid: 'idp-session-1' }), 0, 'the sid index went with them');
      }
    });

    each('past maxSessions a login is refused and no existing session is evicted; ended sessions make room', async ({ store, clock }) => {
      const limits: SessionLimits = { ...LIMITS, maxSessions: 3 };
      const now = clock.now();
      const held = [newKey(), newKey(), newKey()];
      for (const [i, key] of held.entries()) assert.equal(await store.create(key, recordAt(now, { subject: `user-${i}`, sid: null }), now, limits), 'created');
      for (let i = 0; i < 5; i++) assert.equal(await store.create(newKey(), recordAt(now, { subject: `flood-${i}` }), now, limits), 'full');
      assert.equal(await store.create(newKey(), recordAt(now, { subject: 'user-0' }), now, limits), 'full', 'strict: refused even for a subject already holding one');
      for (const key of held) assert.notEqual(await store.get(key, now, limits.idleTimeoutMs), null);
      assert.equal(await store.size(), 3);
      await store.delete(held[0] as SessionKey);
      assert.equal(await store.create(newKey(), recordAt(now, { subject: 'next' }), now, limits), 'created');
      assert.equal(await store.create(newKey(), recordAt(now, { subject: 'next-2' }), now, limits), 'full');
      clock.advance(limits.idleTimeoutMs);
      const later = newKey();
      assert.equal(await store.create(later, recordAt(clock.now(), { subject: 'later' }), clock.now(), limits), 'created', 'the idle ones were dropped first');
      assert.notEqual(await store.get(later, clock.now(), limits.idleTimeoutMs), null);
    });

    each('a longer idle timeout (a reload) keeps held sessions alive and counted', async ({ store, clock }) => {
      const short: SessionLimits = { ...LIMITS, maxSessions: 2, idleTimeoutMs: 10 * MINUTE };
      const long: SessionLimits = { ...short, idleTimeoutMs: 60 * MINUTE };
      const [a, b] = [newKey(), newKey()];
      await store.create(a, recordAt(clock.now(), { subject: 'a' }), clock.now(), short);
      await store.create(b, recordAt(clock.now(), { subject: 'b' }), clock.now(), short);
      clock.advance(20 * MINUTE);
      assert.equal(await store.create(newKey(), recordAt(clock.now(), { subject: 'c' }), clock.now(), long), 'full');
      assert.notEqual(await store.get(a, clock.now(), long.idleTimeoutMs), null);
      assert.notEqual(await store.get(b, clock.now(), long.idleTimeoutMs), null);
      assert.equal(await store.create(newKey(), recordAt(clock.now(), { subject: 'c' }), clock.now(), long), 'full', 'still counted after use');
    });

    each('past maxSessionsPerSubject the subject\'s own oldest sessions end, nobody else\'s', async ({ store, clock }) => {
      const limits: SessionLimits = { ...LIMITS, maxSessionsPerSubject: 2 };
      const alice = [newKey(), newKey(), newKey(), newKey()];
      const bob = newKey();
      const partner = newKey();
      const start = clock.now();
      await store.create(bob, recordAt(start, { subject: 'bob' }), start, limits);
      await store.create(partner, recordAt(start, { authenticator: 'partners' }), start, limits);
      for (const key of alice) {
        clock.advance(1000);
        assert.equal(await store.create(key, recordAt(clock.now()), clock.now(), limits), 'created');
      }
      const alive = await Promise.all(alice.map(async (key) => await store.get(key, clock.now(), limits.idleTimeoutMs) !== null));
      assert.deepEqual(alive, [false, false, true, true]);
      assert.notEqual(await store.get(bob, clock.now(), limits.idleTimeoutMs), null);
      assert.notEqual(await store.get(partner, clock.now(), limits.idleTimeoutMs), null);
      assert.equal(await store.size(), 4);
      assert.equal(await store.deleteWhere('login', { subject: 'alice' }), 2, 'the ended ones left the subject index');
    });

    each('the refresh lock is exclusive, lapses after its ttl, and only its token releases it', async ({ store, lapse }) => {
      const [a, b] = [newKey(), newKey()];
      const token = await store.lock(a, 60_000);
      assert.ok(typeof token === 'string' && token.length >= 16);
      assert.equal(await store.lock(a, 60_000), null);
      assert.notEqual(await store.lock(b, 60_000), null, 'another session\'s lock is its own');
      for (const wrong of ['', 'wrong', `${token}x`, token.slice(1)]) {
        await store.unlock(a, wrong);
        assert.equal(await store.lock(a, 60_000), null, `unlock with ${JSON.stringify(wrong)} released it`);
      }
      await store.unlock(a, token);
      const again = await store.lock(a, 200);
      assert.ok(again !== null && again !== token);
      assert.equal(await store.lock(a, 200), null);
      await lapse(200);
      const third = await store.lock(a, 60_000);
      assert.ok(third !== null, 'a lapsed lock is taken again');
      await store.unlock(a, again);
      assert.equal(await store.lock(a, 60_000), null, 'the lapsed holder\'s token does not free the new holder\'s lock');
    });

    each('once is true the first time, false for a replay, and bounded', async ({ store, clock }) => {
      const now = clock.now();
      const names = ['state-1', '', '\u0000', 'x'.repeat(100_000), '*'];
      for (const name of names) assert.equal(await store.once(name, now + 1000, now, 10), true, JSON.stringify(name.slice(0, 10)));
      for (const name of names) assert.equal(await store.once(name, now + 1000, now, 10), false, 'replayed');
      for (let i = 0; i < 5; i++) assert.equal(await store.once(`fill-${i}`, now + 2000, now, 10), true);
      assert.equal(await store.once('one-too-many', now + 1000, now, 10), false, 'full of names not yet due: refused');
      clock.advance(1000);
      assert.equal(await store.once('one-too-many', clock.now() + 1000, clock.now(), 10), true, 'due names were forgotten');
      assert.equal(await store.once('state-1', clock.now() + 1000, clock.now(), 10), true);
      assert.equal(await store.once('fill-0', clock.now() + 1000, clock.now(), 10), false, 'not yet due');
      await store.forget('fill-0');
      assert.equal(await store.once('fill-0', clock.now() + 1000, clock.now(), 10), true, 'forgotten: new again');
      await store.forget('never-recorded');
    });
  });
}

contract('memory', () => {
  const clock = new ManualClock();
  const store = new MemorySessionStore();
  return store.start(context(clock)).then(() => ({
    store,
    clock,
    lapse: (ms: number) => { clock.advance(ms); return Promise.resolve(); },
    close: () => store.stop(),
  }));
});

describe('session store: memory only', () => {
  it('get answers synchronously (the hot path awaits nothing)', async () => {
    const clock = new ManualClock();
    const store = new MemorySessionStore(clock);
    const key = newKey();
    await store.create(key, recordAt(clock.now()), clock.now(), LIMITS);
    const read = store.get(key, clock.now(), LIMITS.idleTimeoutMs);
    assert.ok(read !== null && !(read instanceof Promise));
    assert.equal(read.subject, 'alice');
  });

  it('a shorter idle timeout (a reload) frees a full store of sessions idle past it', async () => {
    const clock = new ManualClock();
    const store = new MemorySessionStore(clock);
    const long: SessionLimits = { ...LIMITS, maxSessions: 2, idleTimeoutMs: 60 * MINUTE };
    const short: SessionLimits = { ...long, idleTimeoutMs: 10 * MINUTE };
    await store.create(newKey(), recordAt(clock.now(), { subject: 'a' }), clock.now(), long);
    await store.create(newKey(), recordAt(clock.now(), { subject: 'b' }), clock.now(), long);
    assert.equal(await store.create(newKey(), recordAt(clock.now(), { subject: 'c' }), clock.now(), long), 'full');
    clock.advance(20 * MINUTE);
    assert.equal(await store.create(newKey(), recordAt(clock.now(), { subject: 'c' }), clock.now(), short), 'created');
    assert.equal(await store.size(), 1);
  });

  it('many ended sessions are swept by later creates without a full store', async () => {
    const clock = new ManualClock();
    const store = new MemorySessionStore(clock);
    for (let i = 0; i < 200; i++) await store.create(newKey(), recordAt(clock.now(), { subject: `u${i}` }), clock.now(), LIMITS);
    clock.advance(LIMITS.idleTimeoutMs);
    for (let i = 0; i < 30; i++) await store.create(newKey(), recordAt(clock.now(), { subject: `v${i}` }), clock.now(), LIMITS);
    assert.ok(await store.size() <= 30, `${await store.size()} sessions held`);
  });
});

let redis: TestRedis | string = 'not started';
let prefixes = 0;
const redisSettings = (url: string, timeoutMs = 2000): ConstructorParameters<typeof RedisSessionStore>[0] =>
  ({ url, keyPrefix: `test${++prefixes}`, timeoutMs, connectTimeoutMs: 1000 });

before(async () => { redis = await startRedis(); });
after(async () => { if (typeof redis !== 'string') await redis.stop(); });

contract('redis', async () => {
  if (typeof redis === 'string') return redis;
  const clock = new ManualClock();
  const store = new RedisSessionStore(redisSettings(redis.url));
  await store.start(context(clock));
  return {
    store,
    clock,
    lapse: (ms: number) => { clock.advance(ms); return Promise.resolve(); },
    close: () => store.stop(),
  };
});

describe('session store: redis only', () => {
  const started: RedisSessionStore[] = [];
  const open = async (settings: ConstructorParameters<typeof RedisSessionStore>[0], clock: ManualClock): Promise<RedisSessionStore> => {
    const store = new RedisSessionStore(settings);
    started.push(store);
    await store.start(context(clock));
    return store;
  };
  after(async () => { await Promise.all(started.map((s) => s.stop())); });

  it('a copy of Redis yields neither tokens, nor the cookie value, nor who is logged in', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const clock = new ManualClock();
    const settings = redisSettings(redis.url);
    const store = await open(settings, clock);
    const key = newKey();
    const record = recordAt(clock.now(), { subject: 'alice@example.com', sid: 'idp-sid-0123' });
    await store.create(key, record, clock.now(), LIMITS);
    await store.lock(key, MINUTE);
    await store.once('login-state-value', clock.now() + MINUTE, clock.now(), 10);
    const keys = await redisKeys(redis, `${settings.keyPrefix}:*`);
    assert.ok(keys.length >= 5, keys.join(' '));
    let dump = keys.join('\n');
    for (const k of keys) {
      const type = await redisCall(redis, 'TYPE', k);
      const read = { string: ['GET', k], hash: ['HGETALL', k], zset: ['ZRANGE', k, '0', '-1', 'WITHSCORES'], set: ['SMEMBERS', k] }[String(type)];
      assert.ok(read !== undefined, `unexpected ${String(type)} at ${k}`);
      const [command, ...args] = read as [string, ...string[]];
      dump += `\n${JSON.stringify(await redisCall(redis, command, ...args))}`;
      const ttl = await redisCall(redis, 'PTTL', k);
      assert.ok(typeof ttl === 'number' && ttl > 0, `${k} expires (${String(ttl)})`);
    }
    for (const secret of [record.accessToken, record.refreshToken, record.idToken, 'ID-TOKEN-PAYLOAD', key.secret, key.id, record.subject, record.sid, 'login-state-value', 'admins']) {
      assert.ok(secret !== null && !dump.includes(secret), `${String(secret)} is in the dump`);
    }
    assert.deepEqual(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), record);
  });

  it('a sealed record moved under another session, or altered, does not open', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const clock = new ManualClock();
    const settings = redisSettings(redis.url);
    const store = await open(settings, clock);
    const [victim, attacker] = [newKey(), newKey()];
    await store.create(victim, recordAt(clock.now(), { subject: 'victim' }), clock.now(), LIMITS);
    await store.create(attacker, recordAt(clock.now(), { subject: 'attacker' }), clock.now(), LIMITS);
    const hashes = (await redisKeys(redis, `${settings.keyPrefix}:session:s:*`)).sort();
    const blobs = await Promise.all(hashes.map(async (k) => String(await redisCall(redis as TestRedis, 'HGET', k, 'r'))));
    // Swap the sealed records: each now sits under the other's id.
    await redisCall(redis, 'HSET', hashes[0] as string, 'r', blobs[1] as string);
    await redisCall(redis, 'HSET', hashes[1] as string, 'r', blobs[0] as string);
    assert.equal(await store.get(victim, clock.now(), LIMITS.idleTimeoutMs), null);
    assert.equal(await store.get(attacker, clock.now(), LIMITS.idleTimeoutMs), null);
    const altered = `${(blobs[0] as string).slice(0, 20)}${(blobs[0] as string)[20] === 'A' ? 'B' : 'A'}${(blobs[0] as string).slice(21)}`;
    for (const blob of [altered, '', 'not base64 at all', 'AAAA']) {
      await redisCall(redis, 'HSET', hashes[0] as string, 'r', blob);
      await redisCall(redis, 'HSET', hashes[1] as string, 'r', blob);
      assert.equal(await store.get(victim, clock.now(), LIMITS.idleTimeoutMs), null);
      assert.equal(await store.get(attacker, clock.now(), LIMITS.idleTimeoutMs), null);
    }
  });

  it('two gateways on one Redis share sessions, bounds, locks, logouts and one-time names', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const clock = new ManualClock();
    const settings = redisSettings(redis.url);
    const [a, b] = [await open(settings, clock), await open(settings, clock)];
    const limits: SessionLimits = { ...LIMITS, maxSessions: 2 };
    const [k1, k2] = [newKey(), newKey()];
    assert.equal(await a.create(k1, recordAt(clock.now(), { subject: 'u1', sid: 's1' }), clock.now(), limits), 'created');
    assert.equal(await b.create(k2, recordAt(clock.now(), { subject: 'u2' }), clock.now(), limits), 'created');
    assert.equal(await a.create(newKey(), recordAt(clock.now(), { subject: 'u3' }), clock.now(), limits), 'full', 'the bound holds across gateways');
    assert.equal((await b.get(k1, clock.now(), limits.idleTimeoutMs))?.subject, 'u1');
    const token = await b.lock(k1, MINUTE);
    assert.ok(token !== null);
    assert.equal(await a.lock(k1, MINUTE), null, 'one refresh at a time across gateways');
    await a.unlock(k1, token);
    assert.notEqual(await b.lock(k1, MINUTE), null, 'the holder\'s token releases it from any gateway');
    assert.equal(await a.update(k1, recordAt(clock.now(), { subject: 'u1', sid: 's1', version: 2 }), clock.now(), limits.idleTimeoutMs), true);
    assert.equal(await b.update(k1, recordAt(clock.now(), { subject: 'u1', sid: 's1', version: 2 }), clock.now(), limits.idleTimeoutMs), false, 'the second refresher lost');
    assert.equal(await b.deleteWhere('login', { sid: 's1' }), 1);
    assert.equal(await a.get(k1, clock.now(), limits.idleTimeoutMs), null, 'back-channel logout received by B ends it on A');
    assert.equal(await a.once('jti-1', clock.now() + MINUTE, clock.now(), 10), true);
    assert.equal(await b.once('jti-1', clock.now() + MINUTE, clock.now(), 10), false, 'a replay at another gateway');
    assert.equal(await a.size(), 1);
  });

  it('fails closed while Redis is down or slow, and works again once it is back', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const live = redis;
    const clock = new ManualClock();
    const timeoutMs = 200;
    const store = await open(redisSettings(live.url, timeoutMs), clock);
    const key = newKey();
    await store.create(key, recordAt(clock.now()), clock.now(), LIMITS);
    const calls: [string, () => Promise<unknown>][] = [
      ['get', async () => store.get(key, clock.now(), LIMITS.idleTimeoutMs)],
      ['create', () => store.create(newKey(), recordAt(clock.now()), clock.now(), LIMITS)],
      ['update', () => store.update(key, recordAt(clock.now(), { version: 2 }), clock.now(), LIMITS.idleTimeoutMs)],
      ['delete', () => store.delete(key)],
      ['deleteWhere', () => store.deleteWhere('login', { subject: 'alice' })],
      ['lock', () => store.lock(key, MINUTE)],
      ['unlock', () => store.unlock(key, 'token')],
      ['once', () => store.once('state', clock.now() + MINUTE, clock.now(), 10)],
      ['size', () => store.size()],
    ];
    const control = new Redis(live.url, { maxRetriesPerRequest: 1 });
    control.on('error', () => { /* the server is killed below */ });
    try {
      // Slow: every command waits on a paused Redis, and gives up after timeoutMs.
      await control.call('CLIENT', 'PAUSE', '2500', 'ALL');
      for (const [name, call] of calls.slice(0, 3)) {
        const started = performance.now();
        await assert.rejects(call(), SessionStoreUnavailableError, name);
        const took = performance.now() - started;
        assert.ok(took >= timeoutMs * 0.8 && took < timeoutMs * 5, `${name} took ${Math.round(took)} ms`);
      }
    } finally {
      control.disconnect();
    }
    await waitUntil('Redis answers again', async () => { try { await store.size(); return true; } catch { return false; } });
    assert.notEqual(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), null, 'a pause loses nothing');

    // Down: the connection is gone, every call fails at once (nothing is queued).
    await live.kill();
    await waitUntil('the store sees Redis gone', async () => { try { await store.size(); return false; } catch { return true; } });
    for (const [name, call] of calls) {
      const started = performance.now();
      await assert.rejects(call(), SessionStoreUnavailableError, name);
      assert.ok(performance.now() - started < timeoutMs * 5, `${name} did not fail within its bound`);
    }
    await live.restart();
    await waitUntil('the store reconnects', async () => { try { await store.size(); return true; } catch { return false; } });
    // The restarted Redis is empty (no persistence in tests) and has lost the scripts: they are sent again.
    assert.equal(await store.get(key, clock.now(), LIMITS.idleTimeoutMs), null);
    const fresh = newKey();
    assert.equal(await store.create(fresh, recordAt(clock.now()), clock.now(), LIMITS), 'created');
    assert.equal((await store.get(fresh, clock.now(), LIMITS.idleTimeoutMs))?.subject, 'alice');
    assert.notEqual(await store.lock(fresh, MINUTE), null);
  });
});
