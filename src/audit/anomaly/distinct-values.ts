import { AlertGate, KeyTable, Windows } from './tracking.js';
import type { Alert } from './types.js';

/**
 * Per key, the distinct values seen in a window (an identity's tenants, a credential's networks),
 * up to `max` + 1 per key: the one past `max` is the alert, and nothing more needs keeping. Memory
 * is bounded by `cap` × (`max` + 1) values, whatever the traffic.
 */
export class DistinctValues {
  private readonly windows: Windows;
  private readonly table: KeyTable<Set<string>>;
  readonly gate: AlertGate;

  constructor(detector: string, windowMs: number, cap: number, private readonly max: number, private readonly tableName: string) {
    this.windows = new Windows(windowMs);
    this.table = new KeyTable(cap);
    this.gate = new AlertGate(detector);
  }

  get size(): number {
    return this.table.size;
  }

  /**
   * Counts `value` for `key` (after roll); returns the values seen when this one made them more than `max`
   * for the first time in the window (the caller alerts), else null.
   */
  /** Starts a new window when `now` is past the current one: every key is forgotten. Call on every record. */
  roll(now: number): void {
    if (this.windows.advance(now) > 0) { this.table.clear(); this.gate.reset(); }
  }

  add(key: string, value: string, now: number, out: Alert[]): readonly string[] | null {
    const seen = this.table.get(key, () => new Set());
    if (seen === null) {
      const saturated = this.gate.saturated(this.tableName, this.table.cap, now);
      if (saturated !== null) out.push(saturated);
      return null;
    }
    if (seen.size > this.max || seen.has(value)) return null;
    seen.add(value);
    return seen.size > this.max && this.gate.first(key) ? [...seen] : null;
  }
}
