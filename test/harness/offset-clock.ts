import { MAX_TIMEOUT_MS, type Clock, type Timer } from '../../src/lib/clock.js';

interface Pending { readonly at: number; readonly fn: () => void; handle: NodeJS.Timeout | null }

/**
 * The machine's clock plus an offset the test moves forward. Unlike ManualClock, time also passes
 * on its own, for the parts of a test that wait on real I/O (a browser, a provider): a test jumps
 * over the minutes a token takes to age without sleeping, while everything else runs in real time.
 * A timer is due at a point of this clock's time, so `advance` fires the timers it passes.
 */
export class OffsetClock implements Clock {
  private offsetMs = 0;
  private readonly pending = new Set<Pending>();

  now(): number {
    return Date.now() + this.offsetMs;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry: Pending = { at: this.now() + Math.max(0, ms), fn, handle: null };
    this.pending.add(entry);
    this.arm(entry);
    return {
      cancel: () => {
        if (entry.handle !== null) clearTimeout(entry.handle);
        this.pending.delete(entry);
      },
    };
  }

  /** Moves this clock `ms` ahead of the machine's; timers that fall due fire on the next turn. */
  advance(ms: number): void {
    this.offsetMs += ms;
    for (const entry of this.pending) this.arm(entry);
  }

  /** (Re)arms a timer for what is left of it; a long wait goes in steps, as systemClock's does. */
  private arm(entry: Pending): void {
    if (entry.handle !== null) clearTimeout(entry.handle);
    const remaining = Math.max(0, entry.at - this.now());
    entry.handle = setTimeout(() => {
      entry.handle = null;
      if (this.now() < entry.at) { this.arm(entry); return; }
      this.pending.delete(entry);
      entry.fn();
    }, Math.min(remaining, MAX_TIMEOUT_MS));
    entry.handle.unref();
  }
}
