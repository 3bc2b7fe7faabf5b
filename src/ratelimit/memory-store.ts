import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { Resource, ResourceContext } from '../lifecycle/resources.js';
import { decide, type LimitShape, type LimitState } from './algorithms.js';
import type { LimitStore, StoreVerdict } from './store.js';

interface Entry {
  state: LimitState;
  /** Clock time after which the state is the same as no state. */
  expiresAt: number;
}

/** Entries examined per insertion when the map is full, looking for expired ones to drop. */
const SCAN = 64;
/** How often the whole map is swept of expired entries. */
const SWEEP_INTERVAL_MS = 10_000;
/** A full map sweeps all of itself at most this often on the request path (a flood of new keys must not make every request O(n)). */
const FULL_SWEEP_MIN_INTERVAL_MS = 1000;

/** Called when a caller is counted in the overflow entry because the store is full (at most once per `SWEEP_INTERVAL_MS`). */
export type OnFull = (maxEntries: number) => void;

/**
 * Limit state in this process: exact for one gateway, the default store. One store per limit (and
 * per fail-open fallback, per brute-force table), so one limit's callers can never push out another
 * limit's counts.
 *
 * Bounded without forgetting: entries leave only when their window has ended (swept every 10 s, and
 * reclaimed on insertion when the store is full). A flood of new keys never evicts a live count.
 * When the store holds `maxEntries` live callers, a caller without an entry of its own is counted
 * in one overflow entry per limit shape, shared by every such caller: the limit then applies to
 * them together, which is only ever stricter than applying it to each (the verdict says
 * `overflow`). Entries are re-inserted on every write, so the map is ordered by last use and the
 * entries scanned first on a full insert are the likeliest to have expired.
 *
 * A resource: constructing it arms nothing; `start` arms the sweep on the clock, `stop` disarms
 * it and forgets every count. A reload that keeps the limit (same `key`) keeps the running store.
 */
export class MemoryLimitStore implements LimitStore, Resource {
  readonly kind = 'memory';
  readonly key: string;
  private readonly entries = new Map<string, Entry>();
  /** The overflow entry per shape (`algorithm:limit:windowMs:burst`). */
  private readonly overflow = new Map<string, Entry>();
  private nextFullSweepAt = 0;
  private nextFullReportAt = 0;
  private timer: Timer | null = null;
  private stopped = false;

  /**
   * `id` names the table (its role and limit, e.g. `limit:perIp`) in its resource key; `onFull` is
   * told when callers start sharing the overflow count (the default logs it once started).
   */
  constructor(
    readonly maxEntries: number,
    private readonly clock: Clock = systemClock,
    private onFull: OnFull | null = null,
    readonly id = 'memory',
  ) {
    this.key = MemoryLimitStore.keyOf(id, maxEntries);
  }

  /** The resource key of the table `id` holding at most `maxEntries` callers. */
  static keyOf(id: string, maxEntries: number): string {
    return `memory limit store ${JSON.stringify([id, maxEntries])}`;
  }

  start(context: ResourceContext): Promise<void> {
    this.onFull ??= (max) => {
      context.logger.error({ store: this.id, maxEntries: max }, 'rate-limit store full: callers without an entry of their own share one overflow count');
    };
    this.stopped = false;
    this.arm();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return this.close();
  }

  private arm(): void {
    this.timer = this.clock.setTimer(() => {
      if (this.stopped) return;
      this.sweep();
      this.arm();
    }, SWEEP_INTERVAL_MS);
  }

  private now(): number {
    return this.clock.now();
  }

  /** Drops every expired entry (overflow entries included). */
  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
    for (const [key, entry] of this.overflow) if (entry.expiresAt <= now) this.overflow.delete(key);
  }

  /** Callers with an entry of their own (never more than `maxEntries`). */
  get size(): number {
    return this.entries.size;
  }

  /** True when `key` has an unexpired entry of its own (it is not counted in the overflow). */
  has(key: string): boolean {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAt > this.now();
  }

  hit(shape: LimitShape, key: string): StoreVerdict {
    const now = this.now();
    // An entry past its expiry is as good as none, except that it still remembers the latest time
    // seen; it is used as it is and only dropped when it is reclaimed.
    const entry = this.entries.get(key);
    if (entry !== undefined || this.entries.size < this.maxEntries || this.reclaim(now)) {
      const verdict = decide(shape, entry?.state ?? null, now);
      if (entry !== undefined) this.entries.delete(key);
      this.entries.set(key, { state: verdict.state, expiresAt: verdict.state[0] + verdict.ttlMs });
      return verdict;
    }
    return this.hitOverflow(shape, now);
  }

  private hitOverflow(shape: LimitShape, now: number): StoreVerdict {
    if (this.onFull !== null && now >= this.nextFullReportAt) {
      this.nextFullReportAt = now + SWEEP_INTERVAL_MS;
      this.onFull(this.maxEntries);
    }
    const id = `${shape.algorithm}:${shape.limit}:${shape.windowMs}:${shape.burst}`;
    const entry = this.overflow.get(id);
    const verdict = decide(shape, entry?.state ?? null, now);
    this.overflow.set(id, { state: verdict.state, expiresAt: verdict.state[0] + verdict.ttlMs });
    return { ...verdict, overflow: true };
  }

  /** Makes room by dropping expired entries only; false when every entry is still live. */
  private reclaim(now: number): boolean {
    let examined = 0;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.entries.delete(key);
      if (++examined >= SCAN) break;
    }
    if (this.entries.size < this.maxEntries) return true;
    if (now < this.nextFullSweepAt) return false;
    this.nextFullSweepAt = now + FULL_SWEEP_MIN_INTERVAL_MS;
    this.sweep();
    return this.entries.size < this.maxEntries;
  }

  close(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.entries.clear();
    this.overflow.clear();
    return Promise.resolve();
  }
}
