import type { TenantFanOutOptions } from '../../config/compile-anomalies.js';
import { DistinctValues } from './distinct-values.js';
import type { Observation, RecordDetector } from './observation.js';
import { makeAlert } from './tracking.js';
import type { Alert } from './types.js';

/** One identity touching more than `maxTenants` distinct tenants in a window (a token minted or replayed across tenants). */
export class TenantFanOut implements RecordDetector {
  readonly name = 'tenantFanOut';
  private readonly seen: DistinctValues;

  constructor(private readonly options: TenantFanOutOptions, maxTrackedKeys: number) {
    this.seen = new DistinctValues(this.name, options.windowMs, maxTrackedKeys, options.maxTenants, 'identities');
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { identities: this.seen.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    this.seen.roll(now);
    const tenant = o.tenant;
    if (tenant === null) return;
    const identity = o.identity;
    if (identity === null) return;
    const tenants = this.seen.add(identity, tenant, now, out);
    if (tenants === null) return;
    const seconds = this.options.windowMs / 1000;
    out.push(makeAlert(this.name, this.options.severity, identity,
      `${identity} touched ${tenants.length} tenants within ${seconds}s (at most ${this.options.maxTenants} expected)`,
      { tenants, maxTenants: this.options.maxTenants, windowSeconds: seconds }, now));
  }
}
