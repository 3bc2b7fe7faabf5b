import type { ImpossibleTravelOptions } from '../../config/compile-anomalies.js';
import type { GeoLookup } from './geo.js';
import type { Observation, RecordDetector } from './observation.js';
import { AlertGate, KeyTable, makeAlert, Windows } from './tracking.js';
import type { Alert } from './types.js';

interface LastSeen {
  country: string;
  network: string | null;
  /** The chain (gateway instance and process) the record came from, when the reader says. */
  chain: string | null;
  at: number;
}

/** How often a full table is swept of entries too old to matter: at most once a minute, so a flood cannot make every record sweep. */
const SWEEP_EVERY_MS = 60_000;

/**
 * One credential seen from two countries less than `minTravelMs` apart. Keeps, per credential, the
 * country and time it was last seen; an entry older than `minTravelMs` can no longer alert and is
 * swept when the table is full (never displaced by a new credential).
 */
export class ImpossibleTravel implements RecordDetector {
  readonly name = 'impossibleTravel';
  private readonly last: KeyTable<LastSeen>;
  private readonly gate = new AlertGate(this.name);
  private readonly windows: Windows;
  private nextSweep = 0;

  constructor(private readonly options: ImpossibleTravelOptions, maxTrackedKeys: number, private readonly geo: GeoLookup) {
    this.last = new KeyTable(maxTrackedKeys);
    this.windows = new Windows(options.minTravelMs);
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { credentials: this.last.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    if (this.windows.advance(now) > 0) this.gate.reset();
    const credential = o.credential;
    if (credential === null) return;
    const ip = o.clientIp;
    if (ip === null) return;
    const country = this.geo.country(ip);
    if (country === null) return;
    let seen = this.last.entries.get(credential);
    if (seen === undefined) {
      if (this.last.size >= this.last.cap) this.sweep(now);
      const made = this.last.get(credential, () => ({ country, network: o.network, chain: o.chain, at: now }));
      if (made === null) {
        const saturated = this.gate.saturated('credentials', this.last.cap, now);
        if (saturated !== null) out.push(saturated);
      }
      return;
    }
    const elapsed = now - seen.at;
    if (seen.country !== country && elapsed >= 0 && elapsed < this.options.minTravelMs && this.gate.first(credential)) {
      const minutes = Math.round(elapsed / 60_000);
      out.push(makeAlert(this.name, this.options.severity, credential,
        `${credential} was used from ${seen.country} and then ${country} ${minutes} min apart (less than ${this.options.minTravelMs / 60_000} min)`,
        {
          fromCountry: seen.country, toCountry: country, fromNetwork: seen.network, toNetwork: o.network,
          fromChain: seen.chain, toChain: o.chain, elapsedSeconds: Math.round(elapsed / 1000), minTravelSeconds: this.options.minTravelMs / 1000,
        }, now));
    }
    seen = { country, network: o.network, chain: o.chain, at: now };
    this.last.entries.set(credential, seen);
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + Math.min(SWEEP_EVERY_MS, this.options.minTravelMs);
    for (const [key, seen] of this.last.entries) {
      if (now - seen.at >= this.options.minTravelMs) this.last.entries.delete(key);
    }
  }
}
