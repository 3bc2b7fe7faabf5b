// The four algorithms against straightforward reference models (request logs and exact BigInt
// arithmetic), with an injected clock that hits window edges, bursts, long idles and steps back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decide, type Algorithm, type LimitShape, type LimitState } from '../src/ratelimit/algorithms.js';

/** One clock movement: a small or large step (possibly backwards), or a jump to a window edge ±1 ms. */
type Move = { kind: 'step'; ms: number } | { kind: 'edge'; offset: number };

const step = (ms: number): Move => ({ kind: 'step', ms });
const edge = (offset: number): Move => ({ kind: 'edge', offset });
const moveArb: fc.Arbitrary<Move> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 3 }).map(step) }, // bursts
  { weight: 3, arbitrary: fc.integer({ min: -200, max: 2000 }).map(step) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 10_000_000 }).map(step) }, // long idle
  { weight: 1, arbitrary: fc.integer({ min: -5000, max: -1 }).map(step) }, // clock back
  { weight: 2, arbitrary: fc.integer({ min: -1, max: 1 }).map(edge) },
);

function shapeArb(algorithm: Algorithm): fc.Arbitrary<LimitShape> {
  return fc.record({
    limit: fc.integer({ min: 1, max: 25 }),
    windowMs: fc.constantFrom(1000, 999, 7, 60_000, 3_600_000),
    burst: fc.integer({ min: 1, max: 25 }),
  }).map((s) => ({ algorithm, ...s }));
}

/** Clock readings for a list of moves, starting near today's epoch milliseconds. */
function clockReadings(start: number, windowMs: number, moves: readonly Move[]): number[] {
  let t = start;
  return moves.map((m) => {
    if (m.kind === 'step') t = Math.max(0, t + m.ms);
    else t = (Math.floor(t / windowMs) + 1) * windowMs + m.offset;
    return t;
  });
}

/** Runs the algorithm over the readings, returning each decision and the monotonic time it used. */
function runAlgorithm(shape: LimitShape, readings: readonly number[]): { allowed: boolean; at: number; state: LimitState }[] {
  let state: LimitState | null = null;
  let seen = -Infinity;
  return readings.map((now) => {
    const v = decide(shape, state, now);
    state = v.state;
    seen = Math.max(seen, now);
    assert.equal(v.state[0], seen, 'the state records the latest time seen');
    return { allowed: v.allowed, at: seen, state: v.state };
  });
}

const B = BigInt;

/** Reference models: each takes the monotonic times and answers allow/deny per request. */
const reference: Record<Algorithm, (shape: LimitShape, times: readonly number[]) => boolean[]> = {
  'fixed-window'(shape, times) {
    const log: number[] = [];
    return times.map((t) => {
      const inWindow = log.filter((x) => Math.floor(x / shape.windowMs) === Math.floor(t / shape.windowMs)).length;
      const ok = inWindow < shape.limit;
      if (ok) log.push(t);
      return ok;
    });
  },
  'sliding-window'(shape, times) {
    const w = shape.windowMs;
    const log: number[] = [];
    return times.map((t) => {
      const index = Math.floor(t / w);
      const current = log.filter((x) => Math.floor(x / w) === index).length;
      const previous = log.filter((x) => Math.floor(x / w) === index - 1).length;
      // previous × (w − elapsed)/w + current + 1 ≤ limit, in exact integers.
      const ok = B(previous) * B(w - (t - index * w)) + B(current + 1) * B(w) <= B(shape.limit) * B(w);
      if (ok) log.push(t);
      return ok;
    });
  },
  'token-bucket'(shape, times) {
    // Tokens as an exact fraction over windowMs; refill limit/windowMs per ms, capped at burst.
    const w = B(shape.windowMs);
    const capacity = B(shape.burst) * w;
    let level = capacity;
    let last: number | null = null;
    return times.map((t) => {
      if (last !== null) { level += B(t - last) * B(shape.limit); if (level > capacity) level = capacity; }
      last = t;
      const ok = level >= w;
      if (ok) level -= w;
      return ok;
    });
  },
  gcra(shape, times) {
    // Continuous-state leaky bucket (ITU-T I.371): content X drains 1 ms per ms, each conforming
    // cell adds T = windowMs/limit, conforming while the drained content is ≤ (burst − 1)·T.
    // Everything is scaled by limit so T is the integer windowMs.
    const T = B(shape.windowMs);
    const limit = B(shape.limit);
    let content = 0n;
    let lastConforming: number | null = null;
    return times.map((t) => {
      let drained = lastConforming === null ? 0n : content - B(t - lastConforming) * limit;
      if (drained < 0n) drained = 0n;
      const ok = drained <= B(shape.burst - 1) * T;
      if (ok) { content = drained + T; lastConforming = t; }
      return ok;
    });
  },
};

const ALL: readonly Algorithm[] = ['fixed-window', 'sliding-window', 'token-bucket', 'gcra'];
const START = 1_790_000_000_000;
const RUNS = 300;

describe('rate-limit algorithms against reference models', () => {
  for (const algorithm of ALL) {
    it(`${algorithm}: the same decision as the reference model for every request`, () => {
      fc.assert(fc.property(shapeArb(algorithm), fc.integer({ min: 0, max: 10_000_000 }), fc.array(moveArb, { minLength: 1, maxLength: 120, size: 'max' }), (shape, offset, moves) => {
        const readings = clockReadings(START + offset, shape.windowMs, moves);
        const got = runAlgorithm(shape, readings);
        const want = reference[algorithm](shape, got.map((g) => g.at));
        assert.deepEqual(got.map((g) => g.allowed), want);
      }), { numRuns: RUNS });
    });

    it(`${algorithm}: remaining, retry-after and reset say exactly what happens next`, () => {
      fc.assert(fc.property(shapeArb(algorithm), fc.array(moveArb, { minLength: 1, maxLength: 60, size: 'max' }), (shape, moves) => {
        let state: LimitState | null = null;
        for (const now of clockReadings(START, shape.windowMs, moves)) {
          const v = decide(shape, state, now);
          state = v.state;
          const t = v.state[0];
          // `remaining` more requests at the same instant are allowed, and the next one is not.
          let s: LimitState = v.state;
          for (let i = 0; i < v.remaining; i++) { const r = decide(shape, s, t); assert.ok(r.allowed, `remaining ${v.remaining}, request ${i + 1} denied`); s = r.state; }
          assert.equal(decide(shape, s, t).allowed, false, `more than remaining=${v.remaining} allowed`);
          if (!v.allowed) {
            assert.ok(v.retryAfterMs > 0);
            if (v.retryAfterMs > 1) assert.equal(decide(shape, v.state, t + v.retryAfterMs - 1).allowed, false, 'allowed before Retry-After');
            assert.equal(decide(shape, v.state, t + v.retryAfterMs).allowed, true, 'denied at Retry-After');
          } else assert.equal(v.retryAfterMs, 0);
          // After resetMs (and after ttlMs), the state is as good as no state.
          for (const later of [t + v.resetMs, t + v.ttlMs]) {
            const fresh = decide(shape, null, later);
            const kept = decide(shape, v.state, later);
            assert.equal(kept.remaining, fresh.remaining, `not fully reset after ${later - t} ms`);
          }
          assert.ok(v.ttlMs >= v.resetMs && v.ttlMs > 0);
        }
      }), { numRuns: RUNS });
    });
  }

  it('fixed and sliding window: never more than limit in one fixed window, never more than 2 × limit in any span of windowMs', () => {
    for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
      fc.assert(fc.property(shapeArb(algorithm), fc.array(moveArb, { minLength: 1, maxLength: 150, size: 'max' }), (shape, moves) => {
        const allowed = runAlgorithm(shape, clockReadings(START, shape.windowMs, moves)).filter((g) => g.allowed).map((g) => g.at);
        const perWindow = new Map<number, number>();
        for (const t of allowed) perWindow.set(Math.floor(t / shape.windowMs), (perWindow.get(Math.floor(t / shape.windowMs)) ?? 0) + 1);
        for (const n of perWindow.values()) assert.ok(n <= shape.limit);
        for (const t of allowed) assert.ok(allowed.filter((x) => x > t - shape.windowMs && x <= t).length <= 2 * shape.limit);
      }), { numRuns: RUNS });
    }
  });

  it('sliding window: after a full window at the limit, the next window admits only the share the previous one no longer covers', () => {
    const shape: LimitShape = { algorithm: 'sliding-window', limit: 100, windowMs: 1000, burst: 1 };
    let state: LimitState | null = null;
    for (let i = 0; i < 100; i++) state = decide(shape, state, START + 999).state;
    // 30 % into the next window the previous 100 still weigh 70: 30 more fit, the 31st does not.
    let admitted = 0;
    for (let i = 0; i < 40; i++) { const v = decide(shape, state, START + 1300); state = v.state; if (v.allowed) admitted++; }
    assert.equal(admitted, 30);
  });

  it('token bucket and gcra: at most burst plus what the rate refills over any span', () => {
    for (const algorithm of ['token-bucket', 'gcra'] as const) {
      fc.assert(fc.property(shapeArb(algorithm), fc.array(moveArb, { minLength: 1, maxLength: 150, size: 'max' }), (shape, moves) => {
        const allowed = runAlgorithm(shape, clockReadings(START, shape.windowMs, moves)).filter((g) => g.allowed).map((g) => g.at);
        for (let i = 0; i < allowed.length; i++) {
          for (let j = i; j < allowed.length; j++) {
            const span = (allowed[j] as number) - (allowed[i] as number);
            const bound = shape.burst + Math.floor((span * shape.limit) / shape.windowMs);
            assert.ok(j - i + 1 <= bound, `${j - i + 1} allowed within ${span} ms, bound ${bound}`);
          }
        }
      }), { numRuns: 150 });
    }
  });

  it('a clock stepping back neither refills nor resets', () => {
    for (const algorithm of ALL) {
      const shape: LimitShape = { algorithm, limit: 3, windowMs: 1000, burst: 3 };
      let state: LimitState | null = null;
      let allowed = 0;
      for (const now of [START + 500, START + 500, START + 500, START + 500, START - 10_000, START + 400]) {
        const v = decide(shape, state, now);
        state = v.state;
        if (v.allowed) allowed++;
      }
      assert.equal(allowed, 3, algorithm);
    }
  });

  it('keeps every intermediate value below 2^53 at the largest configurable shape', () => {
    // The config caps limit × windowMs × burst; at the cap after a year of idling nothing overflows.
    for (const algorithm of ALL) {
      const shape: LimitShape = { algorithm, limit: 1_000_000, windowMs: 86_400_000, burst: 50 };
      let state: LimitState | null = null;
      for (const now of [START, START, START + 365 * 86_400_000, START + 365 * 86_400_000 + 1]) {
        const v = decide(shape, state, now);
        state = v.state;
        for (const n of [...v.state, v.remaining, v.resetMs, v.retryAfterMs, v.ttlMs]) assert.ok(Number.isSafeInteger(n), `${algorithm}: ${n}`);
      }
    }
  });
});
