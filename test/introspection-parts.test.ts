// The small parts of the introspection authenticator, each on its own: the duplicate-member scan,
// the circuit breaker and the cache's bounds, on an injected clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CircuitBreaker } from '../src/authn/introspection/circuit-breaker.js';
import { duplicateMember } from '../src/authn/introspection/duplicate-members.js';
import { IntrospectionCache } from '../src/authn/introspection/introspection-cache.js';
import { MemoryRevocations } from '../src/authn/oauth/memory-revocations.js';
import { ManualClock } from './harness/manual-clock.js';

describe('duplicate JSON members', () => {
  const CASES: [string, string | null][] = [
    ['{"active":true}', null],
    ['{"active":false,"active":true}', 'active'],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['{"a":{"b":1},"b":2}', null],
    ['[{"a":1},{"a":2}]', null],
    ['{"a":"\\"a\\":","a":1}', 'a'],
    ['{"\\u0061":1,"a":2}', 'a'],
    ['{"a" : 1, "b": ["a", "a"]}', null],
    ['{"active": tru', null],
    ['<html>', null],
  ];
  for (const [text, expected] of CASES) {
    it(`${text} → ${String(expected)}`, () => { assert.equal(duplicateMember(text), expected); });
  }
});

describe('circuit breaker', () => {
  it('opens after N consecutive failures, lets one probe through after openMs, closes on its success', () => {
    const clock = new ManualClock();
    const changes: boolean[] = [];
    const breaker = new CircuitBreaker(3, 1000, () => clock, (open) => changes.push(open));
    for (let i = 0; i < 2; i++) { assert.equal(breaker.admit(), null); breaker.failed(); }
    assert.equal(breaker.admit(), null);
    breaker.succeeded(); // a success resets the count
    for (let i = 0; i < 3; i++) { assert.equal(breaker.admit(), null); breaker.failed(); }
    assert.equal(breaker.admit(), 1000);
    clock.advance(999);
    assert.equal(breaker.admit(), 1);
    clock.advance(1);
    assert.equal(breaker.admit(), null, 'the probe');
    assert.ok((breaker.admit() ?? 0) >= 1, 'others wait while the probe is out');
    breaker.failed();
    assert.equal(breaker.admit(), 1000, 'a failed probe opens it again');
    clock.advance(1000);
    assert.equal(breaker.admit(), null);
    breaker.succeeded();
    assert.equal(breaker.admit(), null);
    assert.deepEqual(changes, [true, false]);
  });
});

describe('introspection cache', () => {
  const options = { maxEntries: 2, ttlMs: 1000, negativeTtlMs: 100, negativeMaxEntries: 2, staleMs: 500 };
  const claims = { active: true, sub: 'a' };

  it('serves a positive until min(ttl, exp), a stale one until min(ttl + staleMs, exp), never past exp', () => {
    const cache = new IntrospectionCache('t', options);
    cache.positive('long', claims, 0, null);
    cache.positive('short', claims, 0, 700);
    assert.equal(cache.fresh('long', 999)?.kind, 'positive');
    assert.equal(cache.fresh('long', 1000), undefined);
    assert.equal(cache.stale('long', 1499)?.kind, 'positive');
    assert.equal(cache.stale('long', 1500), undefined);
    assert.equal(cache.fresh('short', 699)?.kind, 'positive');
    assert.equal(cache.fresh('short', 700), undefined);
    assert.equal(cache.stale('short', 700), undefined, 'never past exp');
  });

  it('does not keep an answer already at or past exp', () => {
    const cache = new IntrospectionCache('t', options);
    cache.positive('expired', claims, 5000, 5000);
    assert.equal(cache.sizes.positives, 0);
  });

  it('a flood of refusals evicts only refusals, never a good answer', () => {
    const cache = new IntrospectionCache('t', options);
    cache.positive('good', claims, 0, null);
    for (let i = 0; i < 100; i++) cache.negative(`bad-${i}`, 0);
    assert.equal(cache.fresh('good', 10)?.kind, 'positive');
    assert.deepEqual(cache.sizes, { positives: 1, negatives: 2 });
    assert.equal(cache.fresh('bad-99', 99)?.kind, 'negative');
    assert.equal(cache.fresh('bad-99', 100), undefined, 'negativeTtlMs');
  });

  it('drops a revoked token and never serves a negative as stale', () => {
    const cache = new IntrospectionCache('t', options);
    cache.positive('p', claims, 0, null);
    cache.negative('n', 0);
    cache.drop('p');
    assert.equal(cache.fresh('p', 1), undefined);
    assert.equal(cache.stale('p', 1), undefined);
    assert.equal(cache.stale('n', 1), undefined);
  });

  it('follows revocation lists across reloads without piling up listeners', () => {
    const clock = new ManualClock();
    const cache = new IntrospectionCache('t', options);
    const dropped: string[] = [];
    cache.onDrop = (digest) => dropped.push(digest);
    const lists = Array.from({ length: 6 }, () => new MemoryRevocations(10, clock));
    cache.follow(lists[0] as MemoryRevocations);
    cache.follow(lists[0] as MemoryRevocations);
    cache.positive('p', claims, 0, null);
    (lists[0] as MemoryRevocations).add('p', 1000);
    assert.equal(cache.fresh('p', 1), undefined, 'dropped');
    assert.deepEqual(dropped, ['p'], 'once, though followed twice');
    for (const list of lists.slice(1)) cache.follow(list);
    cache.positive('q', claims, 0, null);
    (lists[0] as MemoryRevocations).add('q', 1000);
    assert.equal(cache.fresh('q', 1)?.kind, 'positive', 'the oldest list is no longer followed');
    (lists[5] as MemoryRevocations).add('q', 1000);
    assert.equal(cache.fresh('q', 1), undefined);
  });
});
