import { systemClock, type Clock } from '../lib/clock.js';

/**
 * The sources a brute-force guard has blocked, each until a time (ms on the guard's clock).
 *
 * Bounded without forgetting: a block leaves the table only when it has ended. Blocks are inserted
 * in (nearly) expiry order — every block a guard starts lasts its `blockMs`, and the blocks it
 * takes over at a reload are inserted sorted by their end, each at most `blockMs` away — so ended
 * blocks are reclaimed from the front. When `maxEntries` blocks are in force and another source
 * must be blocked, the table has no room to name it: it raises the overflow block instead, which
 * the guard applies to every source it holds no entry for (fail closed, never "lift someone's
 * block to make room").
 */
export class BlockTable {
  private readonly until = new Map<string, number>();
  private overflowUntil = 0;

  constructor(readonly maxEntries: number, private readonly clock: Clock = systemClock) {}

  private now(): number {
    return this.clock.now();
  }

  /** Blocks in force or not yet reclaimed. */
  get size(): number {
    return this.until.size;
  }

  /** True when nothing can be blocked right now: the request path can skip building a key. */
  get empty(): boolean {
    return this.until.size === 0 && this.overflowUntil === 0;
  }

  /** Milliseconds `key`'s own block lasts, or 0. */
  leftFor(key: string): number {
    if (this.until.size === 0) return 0;
    const until = this.until.get(key);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left > 0) return left;
    this.until.delete(key);
    return 0;
  }

  /** Milliseconds the overflow block lasts, or 0. */
  overflowLeft(): number {
    if (this.overflowUntil === 0) return 0;
    const left = this.overflowUntil - this.now();
    if (left > 0) return left;
    this.overflowUntil = 0;
    return 0;
  }

  /**
   * Blocks `key` until `untilMs`, or keeps its block if that one ends later (a block is never
   * shortened by another). Returns false when the table is full of blocks in force and the
   * overflow block was raised instead.
   */
  block(key: string, untilMs: number): boolean {
    const current = this.until.get(key);
    if (current === undefined && this.until.size >= this.maxEntries) {
      const now = this.now();
      for (const [k, t] of this.until) {
        if (t > now) break;
        this.until.delete(k);
      }
      if (this.until.size >= this.maxEntries) {
        this.blockOverflow(untilMs);
        return false;
      }
    }
    this.until.delete(key);
    this.until.set(key, Math.max(current ?? 0, untilMs));
    return true;
  }

  /** Raises the overflow block until `untilMs` (never shortens it). */
  blockOverflow(untilMs: number): void {
    this.overflowUntil = Math.max(this.overflowUntil, untilMs);
  }

  /** The blocks in force, each with its end (ms); the overflow block's end, or 0, under `null`. */
  inForce(): Array<[key: string | null, untilMs: number]> {
    const now = this.now();
    const out: Array<[string | null, number]> = [];
    for (const [key, until] of this.until) if (until > now) out.push([key, until]);
    if (this.overflowUntil > now) out.push([null, this.overflowUntil]);
    return out;
  }
}
