/**
 * The four rate-limit algorithms as pure functions of (shape, stored state, now). Every store (the
 * in-process map, the Redis Lua script) applies exactly this arithmetic, so a limit behaves the same
 * whichever store holds it; the Lua in redis-scripts.ts mirrors these functions line for line.
 *
 * All arithmetic is on integers below 2^53 (times in whole milliseconds, token and TAT fractions
 * scaled), so JavaScript and Redis's Lua compute bit-identical results and decisions at window edges
 * do not depend on floating-point rounding. Config limits keep `limit × windowMs × burst` in range.
 *
 * Time never runs backwards for a limit: every state records the latest time it saw, and a clock
 * that steps back is treated as no time having passed (never as a reason to refill or reset).
 */

export const ALGORITHMS = ['fixed-window', 'sliding-window', 'token-bucket', 'gcra'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** What a limit allows, independent of where its state lives. */
export interface LimitShape {
  readonly algorithm: Algorithm;
  /** Requests per window (fixed, sliding window); tokens or emissions per window (token bucket, gcra). */
  readonly limit: number;
  readonly windowMs: number;
  /** token-bucket: bucket capacity; gcra: requests that may arrive back to back. Unused by the window algorithms. */
  readonly burst: number;
}

/**
 * A limit's stored state: three integers, the first always the latest time seen (ms).
 * fixed-window [seen, count, 0] · sliding-window [seen, current, previous] ·
 * token-bucket [seen, tokens × windowMs, 0] · gcra [seen, tat ms, tat fraction × limit].
 */
export type LimitState = readonly [number, number, number];

/** The outcome of one request against one limit. */
export interface Verdict {
  readonly allowed: boolean;
  /** The state to store (also after a denial: it records the time seen). */
  readonly state: LimitState;
  /** Requests that would still be allowed right now. */
  readonly remaining: number;
  /** Milliseconds until the limit is fully available again. */
  readonly resetMs: number;
  /** Milliseconds until a request would be allowed; 0 when this one was. */
  readonly retryAfterMs: number;
  /** Milliseconds after which the state is indistinguishable from no state (the store's expiry). */
  readonly ttlMs: number;
}

/** The largest value of `limit × windowMs × burst` the integer arithmetic allows. */
export const MAX_PRODUCT = 2 ** 52;

/** Applies one request at `now` (ms) to `state` (null: never seen). */
export function decide(shape: LimitShape, state: LimitState | null, now: number): Verdict {
  switch (shape.algorithm) {
    case 'fixed-window': return fixedWindow(shape, state, now);
    case 'sliding-window': return slidingWindow(shape, state, now);
    case 'token-bucket': return tokenBucket(shape, state, now);
    case 'gcra': return gcra(shape, state, now);
  }
}

/** Counts requests in consecutive windows aligned to multiples of windowMs since the epoch. */
function fixedWindow(shape: LimitShape, state: LimitState | null, now: number): Verdict {
  const w = shape.windowMs;
  const t = state === null ? now : Math.max(now, state[0]);
  const index = Math.floor(t / w);
  let count = state !== null && Math.floor(state[0] / w) === index ? state[1] : 0;
  const allowed = count < shape.limit;
  if (allowed) count++;
  const resetMs = (index + 1) * w - t;
  return { allowed, state: [t, count, 0], remaining: shape.limit - count, resetMs, retryAfterMs: allowed ? 0 : resetMs, ttlMs: resetMs };
}

/**
 * The weighted two-window counter: the previous window's count, weighted by how much of it the
 * sliding window still covers, plus the current window's count. Allowed while
 * `previous × (w − elapsed) / w + current + 1 ≤ limit`, compared multiplied through by w.
 */
function slidingWindow(shape: LimitShape, state: LimitState | null, now: number): Verdict {
  const w = shape.windowMs;
  const limit = shape.limit;
  const t = state === null ? now : Math.max(now, state[0]);
  const index = Math.floor(t / w);
  let current = 0;
  let previous = 0;
  if (state !== null) {
    const seen = Math.floor(state[0] / w);
    if (seen === index) { current = state[1]; previous = state[2]; }
    else if (seen === index - 1) previous = state[1];
  }
  const elapsed = t - index * w;
  const allowed = previous * (w - elapsed) + (current + 1) * w <= limit * w;
  if (allowed) current++;
  const remaining = Math.max(0, Math.floor((limit * w - previous * (w - elapsed) - current * w) / w));
  const windowEnd = (index + 1) * w - t;
  const resetMs = current > 0 ? windowEnd + w : previous > 0 ? windowEnd : 0;
  let retryAfterMs = 0;
  if (!allowed) {
    // Earliest elapsed time in this window at which one more fits, else in the next window (where
    // this window's count becomes the previous one). previous > 0 here, or current ≥ limit.
    const inThis = previous > 0 ? w - Math.floor(((limit - current - 1) * w) / previous) : w;
    if (current + 1 <= limit && inThis < w) retryAfterMs = inThis - elapsed;
    else retryAfterMs = windowEnd + (current === 0 ? 0 : Math.max(0, w - Math.floor(((limit - 1) * w) / current)));
  }
  return { allowed, state: [t, current, previous], remaining, resetMs, retryAfterMs, ttlMs: windowEnd + w };
}

/**
 * A bucket of `burst` tokens refilled at `limit` per window; each request takes one. Tokens are
 * kept multiplied by windowMs, so a millisecond adds exactly `limit` units and a request costs
 * `windowMs` units.
 */
function tokenBucket(shape: LimitShape, state: LimitState | null, now: number): Verdict {
  const w = shape.windowMs;
  const rate = shape.limit;
  const capacity = shape.burst * w;
  let t = now;
  let units = capacity;
  if (state !== null) {
    t = Math.max(now, state[0]);
    // Idle time past a full refill adds nothing; bounding it keeps the product below 2^53.
    const idle = Math.min(t - state[0], Math.ceil(capacity / rate));
    units = Math.min(capacity, state[1] + idle * rate);
  }
  const allowed = units >= w;
  if (allowed) units -= w;
  const resetMs = Math.ceil((capacity - units) / rate);
  return {
    allowed,
    state: [t, units, 0],
    remaining: Math.floor(units / w),
    resetMs,
    retryAfterMs: allowed ? 0 : Math.ceil((w - units) / rate),
    ttlMs: resetMs,
  };
}

/**
 * The generic cell rate algorithm (virtual scheduling form of a leaky bucket): one request per
 * emission interval T = windowMs / limit, with up to `burst` back to back. The theoretical arrival
 * time (TAT) is held as whole milliseconds plus a fraction in units of 1/limit ms, so T, which is
 * rarely a whole number of milliseconds, is added exactly.
 */
function gcra(shape: LimitShape, state: LimitState | null, now: number): Verdict {
  const w = shape.windowMs;
  const limit = shape.limit;
  const stepMs = Math.floor(w / limit);
  const stepFrac = w % limit;
  const t = state === null ? now : Math.max(now, state[0]);
  let tatMs = t;
  let tatFrac = 0;
  if (state !== null && (state[1] > t || (state[1] === t && state[2] > 0))) { tatMs = state[1]; tatFrac = state[2]; }
  let nextMs = tatMs + stepMs;
  let nextFrac = tatFrac + stepFrac;
  if (nextFrac >= limit) { nextFrac -= limit; nextMs++; }
  // (next − t) in units of 1/limit ms; allowed while it is within burst emission intervals.
  const ahead = (nextMs - t) * limit + nextFrac;
  const allowed = ahead <= shape.burst * w;
  if (allowed) { tatMs = nextMs; tatFrac = nextFrac; }
  const backlog = (tatMs - t) * limit + tatFrac;
  const resetMs = Math.ceil(backlog / limit);
  return {
    allowed,
    state: [t, tatMs, tatFrac],
    remaining: Math.max(0, Math.floor((shape.burst * w - backlog) / w)),
    resetMs,
    retryAfterMs: allowed ? 0 : Math.ceil((ahead - shape.burst * w) / limit),
    ttlMs: resetMs,
  };
}
