import type { LimitStormOptions } from '../../config/compile-anomalies.js';
import type { Observation, RecordDetector } from './observation.js';
import { makeAlert } from './tracking.js';
import { WindowedCounts } from './windowed-counts.js';
import type { Alert } from './types.js';

/** The refusals a storm is made of: rate limits, quotas and the brute-force guard. */
const STORM_REASONS: ReadonlySet<string> = new Set(['rate_limited', 'quota_exceeded', 'too_many_failures']);

/** A storm of rate-limit, quota and brute-force refusals in a window: globally and per client network. */
export class LimitStorm implements RecordDetector {
  readonly name = 'limitStorm';
  private readonly counts: WindowedCounts;
  private global = 0;

  constructor(private readonly options: LimitStormOptions, maxTrackedKeys: number) {
    this.counts = new WindowedCounts(this.name, options.windowMs, maxTrackedKeys, 'networks');
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { networks: this.counts.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    if (this.counts.roll(now)) this.global = 0;
    const reason = o.reason;
    if (reason === null || !STORM_REASONS.has(reason)) return;
    this.global++;
    const seconds = this.options.windowMs / 1000;
    if (this.global >= this.options.globalThreshold && this.counts.gate.first('global')) {
      out.push(makeAlert(this.name, this.options.severity, 'global',
        `${this.global} requests refused by rate limits, quotas or the brute-force guard within ${seconds}s`,
        { scope: 'global', count: this.global, threshold: this.options.globalThreshold, windowSeconds: seconds }, now));
    }
    const network = o.network;
    if (network === null) return;
    const n = this.counts.add(network, now, out);
    const subject = `network:${network}`;
    if (n !== null && n >= this.options.networkThreshold && this.counts.gate.first(subject)) {
      out.push(makeAlert(this.name, this.options.severity, subject,
        `${n} requests from ${network} refused by rate limits, quotas or the brute-force guard within ${seconds}s`,
        { scope: 'network', count: n, threshold: this.options.networkThreshold, windowSeconds: seconds, lastReason: reason }, now));
    }
  }
}
