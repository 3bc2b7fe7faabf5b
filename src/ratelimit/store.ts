import type { LimitShape, Verdict } from './algorithms.js';

/**
 * Where limit state lives. `hit` applies one request to the state under `key` atomically and
 * returns the verdict; it is synchronous where the store is in-process. Every implementation passes
 * the contract suite in test/ratelimit-store.test.ts.
 */
export interface LimitStore {
  readonly kind: 'memory' | 'redis';
  hit(shape: LimitShape, key: string): StoreVerdict | Promise<StoreVerdict>;
  close(): Promise<void>;
}

/** A verdict, and whether the caller was counted in a full store's shared overflow entry instead of one of its own. */
export interface StoreVerdict extends Verdict {
  readonly overflow?: true;
}

/** The store could not decide (unreachable, timed out, circuit open); the limit's failure policy applies. */
export class LimitStoreUnavailableError extends Error {
  override readonly name = 'LimitStoreUnavailableError';
}
