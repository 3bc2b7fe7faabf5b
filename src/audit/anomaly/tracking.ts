import { boundText } from '../bounded-text.js';
import type { Alert, Severity } from './types.js';

/** The most characters of any text an alert carries (subject, evidence strings). */
export const ALERT_TEXT_CHARS = 256;

/** The most entries of a list an alert's evidence carries (tenants, networks seen). */
export const EVIDENCE_LIST_MAX = 20;

/** An alert, with its subject and every evidence string bounded and escaped. `now` in ms. */
export function makeAlert(detector: string, severity: Severity, subject: string, summary: string, evidence: Record<string, unknown>, now: number): Alert {
  return Object.freeze({
    detector,
    severity,
    subject: boundText(subject, ALERT_TEXT_CHARS),
    summary: boundText(summary, 1024),
    evidence: Object.freeze(boundEvidence(evidence)),
    time: new Date(now).toISOString(),
  });
}

function boundEvidence(evidence: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(evidence)) {
    if (value === null || value === undefined) continue;
    if (typeof value === 'string') out[key] = boundText(value, ALERT_TEXT_CHARS);
    else if (Array.isArray(value)) out[key] = (value as unknown[]).slice(0, EVIDENCE_LIST_MAX).map((v) => (typeof v === 'string' ? boundText(v, ALERT_TEXT_CHARS) : v));
    else out[key] = value;
  }
  return out;
}

/**
 * Fixed windows of `windowMs`, aligned on the epoch (a 60 s window runs from one whole minute to
 * the next). `advance(now)` says how many windows have ended since the last call: 0 within the
 * same window; a clock that moved back starts a new window too (counts never carry over a jump).
 */
export class Windows {
  private index: number | null = null;

  constructor(readonly windowMs: number) {}

  advance(now: number): number {
    const index = Math.floor(now / this.windowMs);
    if (this.index === null) { this.index = index; return 0; }
    if (index === this.index) return 0;
    const ended = index > this.index ? index - this.index : 1;
    this.index = index;
    return ended;
  }
}

/**
 * A table of at most `cap` keys. A key is tracked only while there is room: a new key never
 * evicts a tracked one (so a flood of new keys cannot reset the count of a key being watched);
 * it is refused, and the caller reports the saturation. Keys leave only by the detector's own
 * rules (the end of a window, a baseline that no longer matters).
 */
export class KeyTable<V> {
  readonly entries = new Map<string, V>();

  constructor(readonly cap: number) {}

  /** The key's entry, made with `create` when there is room; null when the table is full. */
  get(key: string, create: () => V): V | null {
    const found = this.entries.get(key);
    if (found !== undefined) return found;
    if (this.entries.size >= this.cap) return null;
    const made = create();
    this.entries.set(key, made);
    return made;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * One alert per (detector, subject) per window, and one `detectorSaturated` alert per window when
 * a table was full. Its set holds only subjects that alerted, which are tracked keys: bounded by
 * the tables' caps.
 */
export class AlertGate {
  private readonly fired = new Set<string>();
  private saturatedReported = false;

  constructor(private readonly detector: string) {}

  /** A new window: every subject may alert again. */
  reset(): void {
    this.fired.clear();
    this.saturatedReported = false;
  }

  /** True the first time `subject` alerts in this window. */
  first(subject: string): boolean {
    if (this.fired.has(subject)) return false;
    this.fired.add(subject);
    return true;
  }

  /** The saturation alert, the first time a table of this detector is full in this window; else null. */
  saturated(table: string, cap: number, now: number): Alert | null {
    if (this.saturatedReported) return null;
    this.saturatedReported = true;
    return makeAlert('detectorSaturated', 'info', this.detector,
      `${this.detector} is tracking as many ${table} as it may (${cap}); new ones are not tracked until the window ends`,
      { table, maxTrackedKeys: cap }, now);
  }
}
