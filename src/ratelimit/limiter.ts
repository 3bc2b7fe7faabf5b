import type { DenialCode } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { LimitDecision } from './limit-decision.js';

export type { LimitDecision };

/**
 * Something a request is counted against: a rate limit or a quota. `decide` may be async (a shared
 * store) and throws LimitStoreUnavailableError when its store cannot decide; `fallback` then gives
 * the decision under the limiter's failure policy (async when the stand-in is the primary's, in a
 * worker), or null to fail closed.
 */
export interface Limiter {
  readonly name: string;
  /** Needs the identity (counts by subject, key, tenant or claim, or has tiers): runs after authentication. */
  readonly afterAuth: boolean;
  /** The denial when it refuses. */
  readonly refusal: Extract<DenialCode, 'rate_limited' | 'quota_exceeded'>;
  decide(ex: Exchange): LimitDecision | Promise<LimitDecision>;
  fallback(ex: Exchange): LimitDecision | Promise<LimitDecision> | null;
}
