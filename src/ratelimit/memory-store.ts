import { decide, type LimitShape, type LimitState, type Verdict } from './algorithms.js';
import type { LimitStore } from './store.js';

interface Entry {
  state: LimitState;
  /** Clock time after which the state is the same as no state. */
  expiresAt: number;
}

/** Entries examined per insertion when the map is full, looking for expired ones to drop. */
const SWEEP = 32;
/** How often the whole map is swept of expired entries. */
const SWEEP_INTERVAL_MS = 10_000;

/**
 * Limit state in this process: exact for one gateway, the default store. Expired entries are
 * swept every 10 s. Bounded: at `maxEntries` an insertion first drops expired entries, then the
 * oldest ones. Dropping a live entry forgets a caller's count (it starts afresh), so size the
 * bound above the number of callers active within the longest window.
 */
export class MemoryLimitStore implements LimitStore {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Entry>();

  private readonly timer: NodeJS.Timeout;

  constructor(private readonly maxEntries: number, private readonly now: () => number = Date.now) {
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  /** Drops every expired entry. */
  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  hit(shape: LimitShape, key: string): Verdict {
    const now = this.now();
    // An entry past its expiry is as good as none, except that it still remembers the latest time
    // seen; it is used as it is and only dropped to make room.
    const entry = this.entries.get(key);
    const verdict = decide(shape, entry?.state ?? null, now);
    const expiresAt = verdict.state[0] + verdict.ttlMs;
    if (entry !== undefined) {
      entry.state = verdict.state;
      entry.expiresAt = expiresAt;
    } else {
      if (this.entries.size >= this.maxEntries) this.makeRoom(now);
      this.entries.set(key, { state: verdict.state, expiresAt });
    }
    return verdict;
  }

  private makeRoom(now: number): void {
    let examined = 0;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.entries.delete(key);
      if (++examined >= SWEEP) break;
    }
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    this.entries.clear();
    return Promise.resolve();
  }
}
