import type { AnomalyOptions } from '../../config/compile-anomalies.js';
import { AdminFirstUse } from './admin-first-use.js';
import { AuthFailureSpike } from './auth-failure-spike.js';
import { CredentialNetworks } from './credential-networks.js';
import { DeadCredential } from './dead-credential.js';
import { openGeoDatabase, type GeoLookup } from './geo.js';
import { ImpossibleTravel } from './impossible-travel.js';
import { LimitStorm } from './limit-storm.js';
import { Observation, type RecordDetector } from './observation.js';
import { TenantFanOut } from './tenant-fan-out.js';
import type { Alert, Detector, ObservedRecord } from './types.js';

export interface AnomalyEngineDeps {
  /** The country database impossibleTravel needs; without one that detector does not run. */
  readonly geo?: GeoLookup | null;
}

/**
 * Every enabled detector of `audit.anomalies`, fed the trail one record at a time: the gateway's
 * own records as it writes them, or the merged stream of every instance (`audit watch`). Only
 * `request` and `admin` records are looked at (never alerts, checkpoints, file, start or gap
 * records, so an alert cannot feed on itself). Deterministic: all time comes from `now`. Memory is
 * bounded by maxTrackedKeys per table of each detector, whatever it is fed.
 */
export class AnomalyEngine implements Detector {
  readonly name = 'anomalies';
  private readonly detectors: readonly RecordDetector[];

  constructor(readonly options: AnomalyOptions, deps: AnomalyEngineDeps = {}) {
    const o = options;
    const cap = o.maxTrackedKeys;
    const geo = deps.geo ?? null;
    const all: (RecordDetector | null)[] = !o.enabled ? [] : [
      o.authFailureSpike.enabled ? new AuthFailureSpike(o.authFailureSpike, cap) : null,
      o.tenantFanOut.enabled ? new TenantFanOut(o.tenantFanOut, cap) : null,
      o.credentialNetworks.enabled ? new CredentialNetworks(o.credentialNetworks, cap) : null,
      o.impossibleTravel.enabled && geo !== null ? new ImpossibleTravel(o.impossibleTravel, cap, geo) : null,
      o.limitStorm.enabled ? new LimitStorm(o.limitStorm, cap) : null,
      o.deadCredential.enabled ? new DeadCredential(o.deadCredential, cap) : null,
      o.adminFirstUse.enabled ? new AdminFirstUse(o.adminFirstUse, cap) : null,
    ];
    this.detectors = Object.freeze(all.filter((d): d is RecordDetector => d !== null));
  }

  /** An engine with the geo database of `options.geoDatabase` opened (when impossibleTravel is on and none is given). */
  static async create(options: AnomalyOptions, deps: AnomalyEngineDeps = {}): Promise<AnomalyEngine> {
    let geo = deps.geo ?? null;
    if (geo === null && options.enabled && options.impossibleTravel.enabled && options.geoDatabase !== null) {
      geo = await openGeoDatabase(options.geoDatabase);
    }
    return new AnomalyEngine(options, { geo });
  }

  /** The names of the detectors that run. */
  get running(): readonly string[] {
    return this.detectors.map((d) => d.name);
  }

  /** Keys tracked now, by `<detector>.<table>`; each table holds at most maxTrackedKeys. */
  trackedKeys(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.detectors.flatMap((d) => Object.entries(d.trackedKeys).map(([table, n]) => [`${d.name}.${table}`, n])));
  }

  /** The alerts this record raises (usually none; a new array each call). `now`: the engine's clock, ms since the epoch. */
  observe(record: ObservedRecord, now: number): Alert[] {
    const out: Alert[] = [];
    if (record === null || typeof record !== 'object') return out;
    const kind = record.kind;
    if (kind !== 'request' && kind !== 'admin') return out;
    const o = new Observation(record);
    for (const d of this.detectors) d.observe(o, now, out);
    return out;
  }
}
