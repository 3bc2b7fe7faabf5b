import type { AuthFailureSpikeOptions } from '../../config/compile-anomalies.js';
import type { Observation, RecordDetector } from './observation.js';
import { AlertGate, KeyTable, makeAlert, Windows } from './tracking.js';
import type { Alert } from './types.js';

interface Counter {
  count: number;
  /** Exponentially weighted moving average of the counts of past windows. */
  baseline: number;
}

/**
 * A spike of 401 and 403 answers: globally, per client network and per credential, each window's
 * count against the learned baseline of past windows. A key alerts when its count reaches
 * max(minCount, multiplier × baseline); the global count only after `warmupWindows` windows.
 *
 * At the end of a window each baseline takes in the window's count. A key that had no failures in
 * the window just ended and whose baseline no longer raises its threshold above minCount is
 * forgotten: it would start again from the same threshold. Keys with a history that matters stay.
 */
export class AuthFailureSpike implements RecordDetector {
  readonly name = 'authFailureSpike';
  private readonly windows: Windows;
  private readonly gate = new AlertGate(this.name);
  private readonly global: Counter = { count: 0, baseline: 0 };
  private readonly networks: KeyTable<Counter>;
  private readonly credentials: KeyTable<Counter>;
  private windowsSeen = 0;

  constructor(private readonly options: AuthFailureSpikeOptions, maxTrackedKeys: number) {
    this.windows = new Windows(options.windowMs);
    this.networks = new KeyTable(maxTrackedKeys);
    this.credentials = new KeyTable(maxTrackedKeys);
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { networks: this.networks.size, credentials: this.credentials.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    const ended = this.windows.advance(now);
    if (ended > 0) this.endWindows(ended);
    const status = o.status;
    if (status !== 401 && status !== 403) return;
    const opt = this.options;
    this.global.count++;
    if (this.windowsSeen >= opt.warmupWindows) this.check('global', 'global', this.global, opt.globalMinCount, now, out);
    const network = o.network;
    if (network !== null) this.count(this.networks, 'network', network, opt.networkMinCount, now, out);
    const credential = o.credential;
    if (credential !== null) this.count(this.credentials, 'credential', credential, opt.credentialMinCount, now, out);
  }

  private count(table: KeyTable<Counter>, scope: string, key: string, minCount: number, now: number, out: Alert[]): void {
    const counter = table.get(key, () => ({ count: 0, baseline: 0 }));
    if (counter === null) {
      const saturated = this.gate.saturated(scope === 'network' ? 'networks' : 'credentials', table.cap, now);
      if (saturated !== null) out.push(saturated);
      return;
    }
    counter.count++;
    this.check(scope, scope === 'network' ? `network:${key}` : key, counter, minCount, now, out);
  }

  private check(scope: string, subject: string, c: Counter, minCount: number, now: number, out: Alert[]): void {
    const threshold = Math.max(minCount, Math.ceil(this.options.multiplier * c.baseline));
    if (c.count < threshold || !this.gate.first(subject)) return;
    const seconds = this.options.windowMs / 1000;
    out.push(makeAlert(this.name, this.options.severity, subject,
      `${c.count} authentication or authorization failures (401/403) ${scope === 'global' ? 'in total' : `for ${subject}`} within ${seconds}s, against a baseline of ${round(c.baseline)}`,
      { scope, count: c.count, baseline: round(c.baseline), threshold, windowSeconds: seconds }, now));
  }

  private endWindows(ended: number): void {
    const { smoothing: a, multiplier } = this.options;
    // The window that just ended weighs `a`; each empty one after it decays the baseline by (1 - a).
    const decay = Math.pow(1 - a, ended - 1);
    const fold = (c: Counter): void => {
      c.baseline = (a * c.count + (1 - a) * c.baseline) * decay;
      c.count = 0;
    };
    fold(this.global);
    this.windowsSeen = Math.min(this.windowsSeen + ended, Number.MAX_SAFE_INTEGER);
    for (const [table, minCount] of [[this.networks, this.options.networkMinCount], [this.credentials, this.options.credentialMinCount]] as const) {
      for (const [key, c] of table.entries) {
        // Idle in the last window that ended: no failures in it, or empty windows came after.
        const idle = c.count === 0 || ended > 1;
        fold(c);
        if (idle && multiplier * c.baseline < minCount) table.entries.delete(key);
      }
    }
    this.gate.reset();
  }
}

const round = (n: number): number => Math.round(n * 100) / 100;
