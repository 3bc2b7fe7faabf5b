import { AlertGate, KeyTable, Windows } from './tracking.js';
import type { Alert } from './types.js';

/** Counts per key in fixed windows, at most `cap` keys; every count starts again at each window. */
export class WindowedCounts {
  private readonly windows: Windows;
  private readonly table: KeyTable<{ n: number }>;
  readonly gate: AlertGate;

  constructor(detector: string, windowMs: number, cap: number, private readonly tableName: string) {
    this.windows = new Windows(windowMs);
    this.table = new KeyTable(cap);
    this.gate = new AlertGate(detector);
  }

  get size(): number {
    return this.table.size;
  }

  /** Starts a new window when `now` is past the current one (and says so). Call before add. */
  roll(now: number): boolean {
    if (this.windows.advance(now) === 0) return false;
    this.table.clear();
    this.gate.reset();
    return true;
  }

  /** The key's count in this window after this one; null when the table is full and the key is not tracked. */
  add(key: string, now: number, out: Alert[]): number | null {
    const entry = this.table.get(key, () => ({ n: 0 }));
    if (entry === null) {
      const saturated = this.gate.saturated(this.tableName, this.table.cap, now);
      if (saturated !== null) out.push(saturated);
      return null;
    }
    return ++entry.n;
  }
}
