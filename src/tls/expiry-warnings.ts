import type { Clock, Timer } from '../lib/clock.js';
import type { Logger } from '../observability/logger.js';
import { alertRecord } from '../audit/anomaly/alert-record.js';
import type { CertificateInUse } from './certificate-expiry.js';

const DAY_MS = 86_400_000;

/** Where a warning goes besides the log: the audit trail. */
export interface ExpiryOutlets {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Appends one audit record (an `alert`). */
  append(record: Record<string, unknown>): void;
}

/**
 * Warns about certificates the config uses that expire within `tls.expiryWarningDays` (or have
 * expired): one log line and one `alert` audit record per certificate per day, at most. Checked at
 * start, after each reload, and once a day (the clock's timer, so a test moves time instead of
 * waiting). What it remembers is bounded by the certificates of the config in effect.
 */
export class ExpiryWarnings {
  /** The day (days since the epoch) each certificate was last warned about, by name and fingerprint. */
  private warned = new Map<string, number>();
  private certificates: readonly CertificateInUse[] = [];
  private days = 14;
  private timer: Timer | null = null;

  constructor(private readonly outlets: ExpiryOutlets) {}

  /** Checks the certificates of the config in effect now, and daily from now on. */
  check(certificates: readonly CertificateInUse[], days: number): void {
    this.certificates = certificates;
    this.days = days;
    const now = this.outlets.clock.now();
    const today = Math.floor(now / DAY_MS);
    const seen = new Map<string, number>();
    for (const cert of certificates) {
      const key = `${cert.use}|${cert.name}|${cert.fingerprint256}`;
      const last = this.warned.get(key);
      const msLeft = cert.notAfter.getTime() - now;
      if (msLeft > days * DAY_MS) continue;
      if (last === today) { seen.set(key, today); continue; }
      seen.set(key, today);
      this.warn(cert, msLeft, now);
    }
    // Only certificates still in use are remembered.
    this.warned = seen;
    this.timer?.cancel();
    this.timer = this.outlets.clock.setTimer(() => this.check(this.certificates, this.days), DAY_MS);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private warn(cert: CertificateInUse, msLeft: number, now: number): void {
    const expired = msLeft <= 0;
    const daysLeft = Math.floor(msLeft / DAY_MS);
    const notAfter = cert.notAfter.toISOString();
    const summary = expired
      ? `the ${cert.use} certificate of ${cert.name} (${cert.subject}) expired on ${notAfter}`
      : `the ${cert.use} certificate of ${cert.name} (${cert.subject}) expires on ${notAfter}, in ${daysLeft} day${daysLeft === 1 ? '' : 's'}`;
    this.outlets.logger.warn({ use: cert.use, name: cert.name, subject: cert.subject, fingerprint: cert.fingerprint256, notAfter, daysLeft }, `certificate ${expired ? 'expired' : 'expires soon'}: ${summary}`);
    this.outlets.append(alertRecord({
      detector: 'certificateExpiry',
      severity: expired ? 'critical' : daysLeft < 3 ? 'high' : 'medium',
      subject: `${cert.use}:${cert.name}`.slice(0, 200),
      summary: summary.slice(0, 500),
      evidence: { fingerprint: cert.fingerprint256, notAfter, daysLeft, warningDays: this.days },
      time: new Date(now).toISOString(),
    }));
  }
}
