import type { CredentialNetworksOptions } from '../../config/compile-anomalies.js';
import { DistinctValues } from './distinct-values.js';
import type { Observation, RecordDetector } from './observation.js';
import { makeAlert } from './tracking.js';
import type { Alert } from './types.js';

/** One credential used from more than `maxNetworks` client networks (IPv4 /24, IPv6 /48) in a window: a leaked key in many hands. */
export class CredentialNetworks implements RecordDetector {
  readonly name = 'credentialNetworks';
  private readonly seen: DistinctValues;

  constructor(private readonly options: CredentialNetworksOptions, maxTrackedKeys: number) {
    this.seen = new DistinctValues(this.name, options.windowMs, maxTrackedKeys, options.maxNetworks, 'credentials');
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { credentials: this.seen.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    this.seen.roll(now);
    const credential = o.credential;
    if (credential === null) return;
    const network = o.network;
    if (network === null) return;
    const networks = this.seen.add(credential, network, now, out);
    if (networks === null) return;
    const seconds = this.options.windowMs / 1000;
    out.push(makeAlert(this.name, this.options.severity, credential,
      `${credential} was used from ${networks.length} client networks within ${seconds}s (at most ${this.options.maxNetworks} expected)`,
      { networks, maxNetworks: this.options.maxNetworks, windowSeconds: seconds }, now));
  }
}
