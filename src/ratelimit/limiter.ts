import type { DenialCode } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';

/** One limiter's decision on one request, with the figures the response headers report. */
export interface LimitDecision {
  /** The limiter's name. */
  readonly name: string;
  /** Its `RateLimit-Policy` item: `"name";q=<limit>;w=<window s>`. */
  readonly policy: string;
  readonly allowed: boolean;
  readonly limit: number;
  readonly windowSec: number;
  readonly remaining: number;
  /** Milliseconds until the limit is fully available again. */
  readonly resetMs: number;
  /** Milliseconds until a request would be allowed; 0 when this one was. */
  readonly retryAfterMs: number;
  /** For the audit detail: what was exceeded. */
  readonly describe: string;
  /** True when the figures are unknown (a fail-open decision without a count): no headers for it. */
  readonly unreported?: boolean;
}

/**
 * Something a request is counted against: a rate limit or a quota. `decide` may be async (a shared
 * store) and throws LimitStoreUnavailableError when its store cannot decide; `fallback` then gives
 * the decision under the limiter's failure policy, or null to fail closed.
 */
export interface Limiter {
  readonly name: string;
  /** Needs the identity (counts by subject, key, tenant or claim, or has tiers): runs after authentication. */
  readonly afterAuth: boolean;
  /** The denial when it refuses. */
  readonly refusal: Extract<DenialCode, 'rate_limited' | 'quota_exceeded'>;
  decide(ex: Exchange): LimitDecision | Promise<LimitDecision>;
  fallback(ex: Exchange): LimitDecision | null;
}
