// The remote JWK Set cache: rotation, outages, garbage, slowness and unknown-kid storms against a
// real JWKS HTTP server on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { VerifyKey } from '../src/authn/jwt/algorithms.js';
import { KeysUnavailableError, MAX_JWKS_KEYS } from '../src/authn/jwt/key-source.js';
import { MAX_MISSED_KIDS, RemoteJwks, type RemoteJwksOptions } from '../src/authn/jwt/remote-jwks.js';
import { Metrics } from '../src/observability/metrics.js';
import type { ResourceContext } from '../src/lifecycle/resources.js';
import { JwksServer, testKey, type TestKey } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';

const silentLogger = pino({ level: 'silent' });
/** Each set runs on its own clock, which the test moves instead of sleeping. */
const clocks = new Map<RemoteJwks, ManualClock>();
const context = (set: RemoteJwks): ResourceContext => ({ logger: silentLogger, clock: clocks.get(set) ?? new ManualClock(), metrics: new Metrics() });
let k1: TestKey, k2: TestKey;
let server: JwksServer;
const sets: RemoteJwks[] = [];

/**
 * Each set fetches a URL of its own and a test counts only that URL's requests: a fetch an earlier
 * test's set had in flight when it was stopped may still reach the server later.
 */
const uris = new Map<RemoteJwks, string>();
const fetches = (set: RemoteJwks): number => server.requestsTo(uris.get(set) ?? server.url);

function remote(overrides: Partial<RemoteJwksOptions> = {}, clock = new ManualClock()): RemoteJwks {
  const uri = `${server.url}?set=${sets.length}`;
  const set = new RemoteJwks({ uri, algorithms: ['RS256'], timeoutMs: 1000, maxBytes: 65536, refreshMs: 60_000, cooldownMs: 60_000, ...overrides });
  clocks.set(set, clock);
  uris.set(set, uri);
  sets.push(set);
  return set;
}

async function kids(result: readonly VerifyKey[] | Promise<readonly VerifyKey[]>): Promise<(string | null)[]> {
  return (await result).map((k) => k.kid);
}

describe('remote JWKS', () => {
  before(async () => {
    [k1, k2] = await Promise.all([testKey('RS256', 'k1'), testKey('RS256', 'k2')]);
    server = await JwksServer.start();
  });
  after(async () => {
    for (const set of sets) await set.stop();
    await server.close();
  });

  /** Stops the sets of earlier tests (their timers would hit the shared server) and resets it. */
  async function reset(keys: TestKey[]): Promise<void> {
    for (const set of sets) await set.stop();
    server.setKeys(keys);
    server.mode = 'ok';
    server.cacheControl = null;
  }

  it('accepts a new kid after one refetch, and forgets a removed key after a refresh', async () => {
    await reset([k1]);
    const set = remote({ cooldownMs: 0 });
    await set.start(context(set));
    assert.deepEqual(await kids(set.keysFor('RS256', 'k1')), ['k1']);
    assert.ok(!(set.keysFor('RS256', 'k1') instanceof Promise), 'known keys are answered from memory');
    server.setKeys([k1, k2]);
    const rotated = set.keysFor('RS256', 'k2');
    assert.ok(rotated instanceof Promise, 'an unknown kid refetches');
    assert.deepEqual(await kids(rotated), ['k2']);
    assert.equal(fetches(set), 2);
    const revision = set.revision;
    server.setKeys([k2]);
    await set.refresh();
    assert.ok(set.revision > revision, 'a changed set has a new revision');
    assert.deepEqual(await kids(set.keysFor('RS256', 'k1')), []);
  });

  it('refreshes in the background before keys go stale', async () => {
    await reset([k1]);
    const clock = new ManualClock();
    const set = remote({ refreshMs: 150 }, clock);
    await set.start(context(set));
    server.setKeys([k1, k2]);
    clock.advance(400);
    await set.idle();
    const answer = set.keysFor('RS256', 'k2');
    assert.ok(!(answer instanceof Promise), 'the new key arrived without a request waiting for it');
    assert.deepEqual(answer.map((k) => k.kid), ['k2']);
  });

  it('refreshes sooner when the response\'s Cache-Control max-age asks, but not sooner than the cooldown', async () => {
    await reset([k1]);
    server.cacheControl = 'public, max-age=0';
    const clock = new ManualClock();
    const set = remote({ refreshMs: 60_000, cooldownMs: 200 }, clock);
    await set.start(context(set));
    server.cacheControl = null;
    server.setKeys([k1, k2]);
    clock.advance(100);
    await set.idle();
    assert.equal(fetches(set), 1, 'not before the cooldown');
    clock.advance(250);
    await set.idle();
    const answer = set.keysFor('RS256', 'k2');
    assert.ok(!(answer instanceof Promise), 'refreshed on the max-age schedule, not the 60 s one');
    assert.equal(fetches(set), 2);
  });

  it('down at start: fails closed (KeysUnavailableError), then recovers once the endpoint is back', async () => {
    await reset([k1]);
    server.mode = 'refuse';
    const clock = new ManualClock();
    const set = remote({ cooldownMs: 200 }, clock);
    await set.start(context(set));
    assert.equal(set.loaded, false);
    await assert.rejects(async () => set.keysFor('RS256', 'k1'), KeysUnavailableError);
    server.mode = 'ok';
    clock.advance(250);
    await set.idle();
    assert.deepEqual(await kids(set.keysFor('RS256', 'k1')), ['k1']);
  });

  for (const mode of ['error', 'garbage', 'huge', 'refuse'] as const) {
    it(`keeps the last good keys when the endpoint later answers ${mode}`, async () => {
      await reset([k1]);
      const set = remote({ cooldownMs: 0, maxBytes: 65536 });
      await set.start(context(set));
      server.mode = mode;
      server.setKeys([k2]);
      await set.refresh();
      assert.deepEqual(await kids(set.keysFor('RS256', 'k1')), ['k1']);
      // The refetch for the unknown kid failed: the kid may exist, so 503 (not a 401 saying the token is bad).
      await assert.rejects(async () => set.keysFor('RS256', 'k2'), KeysUnavailableError);
      assert.ok(fetches(set) >= 3);
    });
  }

  it('a slow endpoint costs at most timeoutMs, and the last good keys stay', async () => {
    await reset([k1]);
    const set = remote({ cooldownMs: 0, timeoutMs: 300 });
    await set.start(context(set));
    server.mode = 'slow';
    server.slowMs = 3000;
    const started = performance.now();
    await assert.rejects(async () => set.keysFor('RS256', 'unknown'), KeysUnavailableError);
    const waited = performance.now() - started;
    assert.ok(waited < 1500, `waited ${Math.round(waited)} ms for a 300 ms timeout`);
    assert.deepEqual(await kids(set.keysFor('RS256', 'k1')), ['k1']);
  });

  it('a key rotated in right after start, a reload or a scheduled refresh is fetched on first sight', async () => {
    await reset([k1]);
    const set = remote({ cooldownMs: 60_000 });
    await set.start(context(set));
    await set.refresh(); // a scheduled refresh (or a reload's start) just happened too
    server.setKeys([k1, k2]);
    const rotated = set.keysFor('RS256', 'k2');
    assert.ok(rotated instanceof Promise, 'the unknown kid refetches although a fetch just happened');
    assert.deepEqual(await kids(rotated), ['k2']);
    assert.equal(fetches(set), 3);
  });

  it('a storm of unknown kids causes one fetch per cooldown, collapsed; the others get 503 with the time left, known kids never wait', async () => {
    await reset([k1]);
    const clock = new ManualClock();
    const set = remote({ cooldownMs: 30_000 }, clock);
    await set.start(context(set));
    assert.equal(fetches(set), 1);
    assert.deepEqual(await kids(set.keysFor('RS256', 'early')), [], 'start does not start the cooldown: one refetch, not found');
    assert.equal(fetches(set), 2);
    assert.deepEqual(set.keysFor('RS256', 'early'), [], 'within the cooldown, a kid refetched for and not found is refused at once (401), no fetch');
    clock.advance(10_000);
    assert.throws(() => set.keysFor('RS256', 'other'), (err: unknown) => err instanceof KeysUnavailableError && err.retryAfterMs === 20_000,
      'a new unknown kid within the cooldown: 503, retry when the cooldown ends');
    assert.equal(fetches(set), 2);
    clock.advance(20_000);
    const storm = Array.from({ length: 500 }, (_, i) => Promise.resolve().then(() => set.keysFor('RS256', `forged-${i}`)).then((r) => r.length, (err: unknown) => (err instanceof KeysUnavailableError ? 'unavailable' : err)));
    const known = set.keysFor('RS256', 'k1');
    assert.ok(!(known instanceof Promise));
    const results = await Promise.all(storm);
    assert.equal(results.filter((r) => r === 0).length, 1, 'the kid that refetched is not found');
    assert.equal(results.filter((r) => r === 'unavailable').length, 499, 'the rest waited for that fetch, then met the cooldown');
    assert.equal(fetches(set), 3, 'one collapsed refetch for the whole storm');
    for (let i = 0; i < 100; i++) assert.throws(() => set.keysFor('RS256', `again-${i}`), KeysUnavailableError);
    assert.equal(fetches(set), 3, 'no further fetch within the cooldown');
  });

  it('within the cooldown, a kid looked for or removed is refused at once; a changed set forgets the missing ones', async () => {
    await reset([k1]);
    const set = remote({ cooldownMs: 60_000 });
    await set.start(context(set));
    assert.deepEqual(await kids(set.keysFor('RS256', 'k2')), [], 'k2 not published yet');
    server.setKeys([k1, k2]);
    assert.deepEqual(set.keysFor('RS256', 'k2'), [], 'still refused until the set changes');
    await set.refresh();
    assert.deepEqual(await kids(set.keysFor('RS256', 'k2')), ['k2']);
    server.setKeys([k2]);
    await set.refresh();
    assert.deepEqual(set.keysFor('RS256', 'k1'), [], 'a removed key: refused at once (401), not 503');
  });

  it(`remembers at most ${MAX_MISSED_KIDS} missing kids, and a missing kid may refetch again once the cooldown ends`, async () => {
    await reset([k1]);
    const clock = new ManualClock();
    const set = remote({ cooldownMs: 1000 }, clock);
    await set.start(context(set));
    for (let i = 0; i <= MAX_MISSED_KIDS; i++) {
      clock.advance(1000);
      assert.deepEqual(await kids(set.keysFor('RS256', `missing-${i}`)), []);
    }
    const before = fetches(set);
    assert.deepEqual(set.keysFor('RS256', 'missing-0'), [], 'remembered: 401 at once, no fetch');
    assert.throws(() => set.keysFor('RS256', `missing-${MAX_MISSED_KIDS}`), KeysUnavailableError, 'the one past the bound was not remembered: 503');
    assert.equal(fetches(set), before);
    clock.advance(1000);
    server.setKeys([k1, k2]);
    assert.deepEqual(await kids(set.keysFor('RS256', 'k2')), ['k2'], 'after the cooldown an unknown kid refetches again');
  });

  it(`refuses a set of more than ${MAX_JWKS_KEYS} keys and keeps the last good one`, async () => {
    const many = await Promise.all(Array.from({ length: MAX_JWKS_KEYS + 1 }, (_, i) => testKey('ES256', `many-${i}`)));
    await reset(many.slice(0, 1));
    const set = remote({ cooldownMs: 0, algorithms: ['ES256'] });
    await set.start(context(set));
    server.setKeys(many);
    assert.equal(await set.refresh(), false, 'the oversized set is refused');
    assert.deepEqual(await kids(set.keysFor('ES256', 'many-0')), ['many-0']);
    await assert.rejects(async () => set.keysFor('ES256', 'many-1'), KeysUnavailableError, 'the last good set kept; refetching for the new kid fails again: 503');
    server.setKeys(many.slice(0, MAX_JWKS_KEYS));
    assert.equal(await set.refresh(), true, `${MAX_JWKS_KEYS} keys are accepted`);
    assert.deepEqual(await kids(set.keysFor('ES256', `many-${MAX_JWKS_KEYS - 1}`)), [`many-${MAX_JWKS_KEYS - 1}`]);
  });
});
