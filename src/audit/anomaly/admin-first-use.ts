import type { AdminFirstUseOptions } from '../../config/compile-anomalies.js';
import type { Observation, RecordDetector } from './observation.js';
import { AlertGate, KeyTable, makeAlert, Windows } from './tracking.js';
import type { Alert } from './types.js';

/** How often a full table may say so again: it never empties, so once an hour rather than once ever. */
const SATURATION_REPEAT_MS = 3_600_000;

/**
 * The first admin operation from a client network this process has not seen one from. The set of
 * networks is learned from the process's start (restarts learn again) and holds at most
 * maxTrackedKeys networks; once full, new networks are not reported, and the saturation alert says so.
 */
export class AdminFirstUse implements RecordDetector {
  readonly name = 'adminFirstUse';
  private readonly seen: KeyTable<true>;
  private readonly gate = new AlertGate(this.name);
  private readonly windows = new Windows(SATURATION_REPEAT_MS);

  constructor(private readonly options: AdminFirstUseOptions, maxTrackedKeys: number) {
    this.seen = new KeyTable(maxTrackedKeys);
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { networks: this.seen.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    if (o.record.kind !== 'admin') return;
    if (this.windows.advance(now) > 0) this.gate.reset();
    const network = o.network;
    if (network === null || this.seen.entries.has(network)) return;
    if (this.seen.get(network, () => true) === null) {
      const saturated = this.gate.saturated('networks', this.seen.cap, now);
      if (saturated !== null) out.push(saturated);
      return;
    }
    const r = o.record;
    const method = typeof r.method === 'string' ? r.method : '';
    const path = typeof r.path === 'string' ? r.path : '';
    out.push(makeAlert(this.name, this.options.severity, `network:${network}`,
      `first admin operation from ${network}: ${method} ${path}`,
      { method, path, status: o.status, identity: o.identity, clientIp: o.clientIp }, now));
  }
}
