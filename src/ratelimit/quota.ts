import type { Clock } from '../lib/clock.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Calendar } from './calendar.js';
import { callerKey, IDENTITY_DIMENSIONS, type Dimension } from './limit.js';
import type { LimitDecision, Limiter } from './limiter.js';
import type { QuotaStore, QuotaUse } from './quota-store.js';

export interface QuotaSpec {
  readonly name: string;
  readonly limit: number;
  /** Limits for caller tiers; a tier not listed (or no tier) uses `limit`. */
  readonly tiers: ReadonlyMap<string, number>;
  readonly by: readonly Dimension[];
  readonly calendar: Calendar;
  readonly store: QuotaStore;
  /** Store down: admit without counting (true) or answer 503 (false). */
  readonly failOpen: boolean;
  readonly ipv6PrefixBits: number;
  /** The clock that places a request in its period. */
  readonly clock: Clock;
}

/**
 * A long-window allowance (per calendar day or month in a time zone) per caller: counted in a
 * store that survives restarts, refused with 429 quota_exceeded until the period ends.
 */
export class QuotaLimiter implements Limiter {
  readonly refusal = 'quota_exceeded';
  readonly afterAuth: boolean;

  constructor(readonly spec: QuotaSpec) {
    this.afterAuth = spec.tiers.size > 0 || spec.by.some((d) => IDENTITY_DIMENSIONS.has(d.kind));
  }

  get name(): string {
    return this.spec.name;
  }

  decide(ex: Exchange): LimitDecision | Promise<LimitDecision> {
    const now = this.spec.clock.now();
    const period = this.spec.calendar.periodAt(now);
    const limit = this.limitFor(ex);
    const key = callerKey(this.spec.name, `quota:${this.spec.calendar.kind}`, this.spec.by, this.spec.ipv6PrefixBits, ex);
    const windowSec = Math.round((period.endMs - period.startMs) / 1000);
    const untilEnd = period.endMs - now;
    const conclude = (use: QuotaUse): LimitDecision => ({
      name: this.spec.name, policy: `"${this.spec.name}";q=${limit};w=${windowSec}`, allowed: use.allowed, limit, windowSec, remaining: Math.max(0, limit - use.used), resetMs: untilEnd, retryAfterMs: use.allowed ? 0 : untilEnd,
      describe: `quota of ${limit} per ${this.spec.calendar.kind} ${period.id} (${this.spec.calendar.timeZone})`,
    });
    const use = this.spec.store.consume(key, period, limit);
    return use instanceof Promise ? use.then(conclude) : conclude(use);
  }

  /** Fail open admits uncounted, and reports nothing in the headers (the count is unknown). */
  fallback(): LimitDecision | null {
    return this.spec.failOpen ? UNCOUNTED : null;
  }

  private limitFor(ex: Exchange): number {
    const tier = ex.identity?.tier;
    return tier === null || tier === undefined ? this.spec.limit : this.spec.tiers.get(tier) ?? this.spec.limit;
  }
}

const UNCOUNTED: LimitDecision = Object.freeze({ name: '', policy: '', allowed: true, limit: 0, windowSec: 0, remaining: 0, resetMs: 0, retryAfterMs: 0, describe: 'uncounted', unreported: true });
