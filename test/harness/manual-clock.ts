import type { Clock, Timer } from '../../src/lib/clock.js';

interface Pending { readonly at: number; readonly seq: number; readonly fn: () => void; cancelled: boolean }

/**
 * A clock that moves only when the test says so. `advance` runs every timer that falls due, in
 * order, each seeing `now()` at its own due time: a test waits for a window, a block or an expiry
 * without sleeping.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry: Pending = { at: this.current + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(entry);
    return { cancel: () => { entry.cancelled = true; } };
  }

  /** Moves time forward by `ms`, running the timers that fall due on the way. */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      const due = this.pending.filter((p) => p.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.pending.splice(this.pending.indexOf(due), 1);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = until;
  }

  /** Timers waiting to fire. */
  get timers(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }
}
