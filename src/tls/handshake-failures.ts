import type { Clock } from '../lib/clock.js';

/** Why a TLS handshake failed, as `portcullis_tls_handshake_failures_total{reason}` and the audit record name it. */
export const HANDSHAKE_FAILURE_REASONS = [
  'protocol_version', 'no_shared_cipher', 'unknown_ca', 'certificate_required', 'bad_certificate', 'certificate_expired',
  'certificate_revoked', 'unsupported_certificate', 'http_request', 'timeout', 'reset', 'other',
] as const;
export type HandshakeFailureReason = typeof HANDSHAKE_FAILURE_REASONS[number];

/**
 * OpenSSL's reason (in Node's error code `ERR_SSL_<REASON>` and in `err.reason`) or Node's own code,
 * matched in this order: the first that fits names the failure. A TLS alert the peer sent
 * (`…_ALERT_UNKNOWN_CA`) and the same fault found here read alike.
 */
const CLASSES: readonly (readonly [HandshakeFailureReason, RegExp])[] = [
  ['timeout', /handshake timeout/],
  ['reset', /econnreset|epipe|socket hang up/],
  ['http_request', /http request|https proxy request/],
  ['protocol_version', /unsupported protocol|protocol version|version too low|wrong version number|unknown protocol|inappropriate fallback/],
  ['no_shared_cipher', /no shared cipher|no ciphers available|no shared (?:groups|signature)|no suitable signature/],
  ['certificate_required', /did not return a certificate|certificate required/],
  ['certificate_expired', /certificate expired|certificate has expired/],
  ['certificate_revoked', /certificate revoked|certificate has been revoked/],
  ['unsupported_certificate', /unsupported certificate/],
  ['unknown_ca', /unknown ca|unable to get (?:local )?issuer|self[- ]signed/],
  ['bad_certificate', /bad certificate|certificate verify failed|certificate unknown|decrypt error/],
];

/** The reason of a failed handshake, from the error Node reports (never its free text alone). */
export function handshakeFailureReason(err: NodeJS.ErrnoException & { reason?: unknown }): HandshakeFailureReason {
  const text = `${err.code ?? ''} ${typeof err.reason === 'string' ? err.reason : ''} ${err.message}`.toLowerCase().replace(/_/g, ' ');
  for (const [reason, pattern] of CLASSES) if (pattern.test(text)) return reason;
  return 'other';
}

/** What a sampled failure's record says beyond its own facts: how many went unrecorded before it, since when. */
export interface Sampled {
  readonly suppressed: number;
  /** When the first unrecorded failure happened (ms since the epoch); null when none was. */
  readonly since: number | null;
}

/**
 * A token bucket over audit records of one listener's handshake failures: at most `perSecond`
 * records a second (bursts of as many), so a handshake flood cannot flood the audit trail. A
 * failure past the budget is counted; the next record written says how many there were and since
 * when. Time comes from the injected clock.
 */
export class RecordBudget {
  private tokens: number;
  private last: number;
  private suppressed = 0;
  private since: number | null = null;

  /** `burst`: most records written at once after a quiet spell (default: one second's worth). */
  constructor(private readonly perSecond: number, private readonly clock: Clock, private readonly burst: number = perSecond) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Sampled (write a record, with what it stands for) or null (counted, not written). */
  take(): Sampled | null {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.suppressed++;
      this.since ??= now;
      return null;
    }
    this.tokens--;
    const sampled = { suppressed: this.suppressed, since: this.since };
    this.suppressed = 0;
    this.since = null;
    return sampled;
  }
}

/** The tail of a sampled record's detail: ` … and 1234 more since <ISO time>`, or nothing. */
export function suppressedTail(sampled: Sampled): string {
  return sampled.suppressed === 0 || sampled.since === null ? '' : ` … and ${sampled.suppressed} more since ${new Date(sampled.since).toISOString()}`;
}
