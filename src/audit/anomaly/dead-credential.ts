import type { DeadCredentialOptions } from '../../config/compile-anomalies.js';
import type { Observation, RecordDetector } from './observation.js';
import { makeAlert } from './tracking.js';
import { WindowedCounts } from './windowed-counts.js';
import type { Alert } from './types.js';

/**
 * How a record says its credential is dead. API keys: the authenticator's detail
 * `<authenticator>: api_key_revoked: key <id>` (also `api_key_expired`, `api_key_superseded`,
 * which say `key <id>, replaced by …`); those are reached only with the right secret, so the id
 * is the real key's. JWT: `<authenticator>: expired: exp <n>, …`, after a valid signature.
 */
const DEAD = /(?:^|: )(api_key_revoked|api_key_expired|api_key_superseded): key ([0-9a-z]{1,64})\b|(?:^|: )(expired): exp \d/;

/** A revoked, expired or superseded API key, or an expired token, tried more than `maxAttempts` times in a window. */
export class DeadCredential implements RecordDetector {
  readonly name = 'deadCredential';
  private readonly counts: WindowedCounts;

  constructor(private readonly options: DeadCredentialOptions, maxTrackedKeys: number) {
    this.counts = new WindowedCounts(this.name, options.windowMs, maxTrackedKeys, 'credentials');
  }

  get trackedKeys(): Readonly<Record<string, number>> {
    return { credentials: this.counts.size };
  }

  observe(o: Observation, now: number, out: Alert[]): void {
    this.counts.roll(now);
    const status = o.status;
    if (status !== 401 && status !== 403) return;
    const detail = o.detail;
    if (detail === null) return;
    const m = DEAD.exec(detail.length > 1024 ? detail.slice(0, 1024) : detail);
    if (m === null) return;
    const why = m[1] ?? 'token_expired';
    // The key id of the record's identity when it has one, else the one the detail names; an
    // expired token without an identity counts against its client network.
    const network = o.network;
    const subject = o.credential ?? (m[2] !== undefined ? `key:${m[2]}` : network === null ? null : `network:${network}`);
    if (subject === null) return;
    const n = this.counts.add(subject, now, out);
    if (n === null || n <= this.options.maxAttempts || !this.counts.gate.first(subject)) return;
    const seconds = this.options.windowMs / 1000;
    out.push(makeAlert(this.name, this.options.severity, subject,
      `${subject} was tried ${n} times within ${seconds}s after it stopped being valid (${why})`,
      { reason: why, count: n, maxAttempts: this.options.maxAttempts, windowSeconds: seconds }, now));
  }
}
