import { ipKey } from '../lib/ip.js';
import type { Logger } from '../observability/logger.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Stage } from '../pipeline/stage.js';
import type { LimitShape, Verdict } from './algorithms.js';
import type { MemoryLimitStore } from './memory-store.js';
import type { LimitStore } from './store.js';

export interface GuardSpec {
  /** Failed authentications within `windowMs` that start a block. */
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly blockMs: number;
  /** Count per client address (blocks the address outright). */
  readonly byIp: boolean;
  /** Count per presented credential id (API key id): blocks failures with it, never a correct credential. */
  readonly byCredential: boolean;
  /** Where failures are counted (shared with the other instances when Redis). */
  readonly store: LimitStore;
  readonly maxEntries: number;
  readonly ipv6PrefixBits: number;
}

/** The guard's name in audit records and rate-limit figures. */
export const GUARD_NAME = 'bruteForce';

type StageResult = Denial | undefined | Promise<Denial | undefined>;

/**
 * What the guard counts: a credential its authenticator flagged as a possible guess (forged or
 * malformed token, unknown kid or key, wrong secret). An honest mistake — a correctly signed token
 * past its exp, an API key presented with its correct secret after it was revoked or expired — is
 * refused but not counted, so a client retrying with a stale credential does not get its address
 * blocked; nor is an outage (503) counted.
 */
function countsAsFailure(ex: Exchange): boolean {
  return ex.credentialGuess === true;
}

/** This failure reached the threshold (or the count was already past it, on another instance). */
const crossed = (v: Verdict): boolean => !v.allowed || v.remaining === 0;

/**
 * Counts failed authentications per client address and per presented credential id. Past
 * `maxFailures` within the window the source is blocked for `blockMs`:
 * - a blocked address gets 429 before authentication, whatever it sends;
 * - a blocked credential id gets 429 instead of 401 when it fails again, while a request that
 *   presents the correct credential still passes (so nobody can lock a key's owner out by
 *   failing on purpose with its public id).
 * Successful requests are never counted or slowed: the check before authentication is one map
 * lookup, and the store is written only on failures. Blocks are held in memory per instance; with
 * a shared store the failures count across instances and each instance blocks on the next failure
 * it sees from the source.
 */
export class BruteForceGuard {
  private readonly blocked: Map<string, number> = new Map();
  private readonly shape: LimitShape;
  constructor(private readonly spec: GuardSpec, private readonly fallback: MemoryLimitStore | null, private readonly logger: () => Logger | null) {
    this.shape = { algorithm: 'fixed-window', limit: spec.maxFailures, windowMs: spec.windowMs, burst: 1 };
  }

  /** Wraps a route's authenticate stage: refuse blocked addresses first, count failures after. */
  wrap(authenticate: Stage): Stage {
    return {
      name: 'authenticate',
      run: (ex): StageResult => {
        // Nothing blocked (the usual case): no key to build, one size check.
        if (this.spec.byIp && this.blocked.size > 0) {
          const blocked = this.blockedFor(`ip\0${ipKey(ex.clientIp, this.spec.ipv6PrefixBits)}`);
          if (blocked > 0) return this.refuse(ex, blocked, `address ${ex.clientIp} blocked after repeated failed authentications`);
        }
        const result = authenticate.run(ex);
        return result instanceof Promise ? result.then((d) => this.after(ex, d)) : this.after(ex, result);
      },
    };
  }

  private after(ex: Exchange, denial: Denial | undefined): StageResult {
    if (denial === undefined || !countsAsFailure(ex)) return denial;
    const keys: string[] = [];
    if (this.spec.byIp) keys.push(`ip\0${ipKey(ex.clientIp, this.spec.ipv6PrefixBits)}`);
    const credential = this.spec.byCredential ? ex.presentedKeyId : null;
    const credentialBlocked = credential === null ? 0 : this.blockedFor(`credential\0${credential}`);
    if (credential !== null && credentialBlocked === 0) keys.push(`credential\0${credential}`);
    const conclude = (blocks: readonly boolean[]): Denial => {
      const result = this.conclude(ex, denial, keys, blocks);
      if (credentialBlocked === 0) return result;
      return this.refuse(ex, credentialBlocked, `credential ${credential ?? ''} blocked after repeated failed authentications; ${denial.reason}`);
    };
    const counted = keys.map((key) => this.count(key));
    return counted.some((c) => c instanceof Promise) ? Promise.all(counted.map((c) => Promise.resolve(c))).then(conclude) : conclude(counted as boolean[]);
  }

  /**
   * Counts one failure for `key`; true when it starts a block. A shared store that cannot count
   * hands over to the in-process fallback (the guard is not an access decision: failing to count
   * must not refuse anyone).
   */
  private count(key: string): boolean | Promise<boolean> {
    try {
      const verdict = this.spec.store.hit(this.shape, `${GUARD_NAME}\0${key}`);
      return verdict instanceof Promise ? verdict.then(crossed, () => this.countLocally(key)) : crossed(verdict);
    } catch {
      return this.countLocally(key);
    }
  }

  private countLocally(key: string): boolean {
    return this.fallback === null ? false : crossed(this.fallback.hit(this.shape, `${GUARD_NAME}\0${key}`));
  }

  private conclude(ex: Exchange, denial: Denial, keys: readonly string[], blocks: readonly boolean[]): Denial {
    const started = keys.filter((_, i) => blocks[i] === true);
    if (started.length === 0) return denial;
    const until = Date.now() + this.spec.blockMs;
    for (const key of started) this.block(key, until);
    ex.limitName = GUARD_NAME;
    const what = started.map((k) => k.replace('\0', ' ')).join(', ');
    this.logger()?.warn({ requestId: ex.requestId, blocked: what, forMs: this.spec.blockMs }, 'brute-force guard: source blocked');
    return { ...denial, reason: `${denial.reason}; ${what} blocked for ${this.spec.blockMs} ms after ${this.spec.maxFailures} failures` };
  }

  private block(key: string, until: number): void {
    if (this.blocked.size >= this.spec.maxEntries) {
      const now = Date.now();
      for (const [k, t] of this.blocked) if (t <= now) this.blocked.delete(k);
      if (this.blocked.size >= this.spec.maxEntries) this.blocked.delete(this.blocked.keys().next().value as string);
    }
    this.blocked.set(key, until);
  }

  /** Milliseconds `key` stays blocked, or 0. */
  private blockedFor(key: string): number {
    if (this.blocked.size === 0) return 0;
    const until = this.blocked.get(key);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left <= 0) { this.blocked.delete(key); return 0; }
    return left;
  }

  private refuse(ex: Exchange, leftMs: number, reason: string): Denial {
    ex.limitName = GUARD_NAME;
    return deny('too_many_failures', reason, { 'retry-after': String(Math.ceil(leftMs / 1000)) });
  }
}
