import type { SecureContext, TLSSocket, TlsOptions } from 'node:tls';
import type { Clock } from '../lib/clock.js';
import { peerAddress } from '../lib/peer-address.js';
import type { TlsServerHooks } from '../server/listener.js';
import { handshakeFailureReason, RecordBudget, suppressedTail, type HandshakeFailureReason } from './handshake-failures.js';
import { derDigest, type ServerTls } from './server-tls.js';

/** At most this many audit records of handshake failures per second per listener; the rest are counted and summarised. */
export const HANDSHAKE_RECORDS_PER_SECOND = 10;

/** One failed handshake, for the audit record. */
export interface HandshakeFailure {
  readonly listener: string;
  readonly reason: HandshakeFailureReason;
  /** The client's address, when the connection still knew it. */
  readonly clientIp: string;
  /** `handshake failed: <reason> (<code>); sni <name|none>`, and the summary of those not recorded before it. */
  readonly detail: string;
}

export interface TlsServingOptions {
  readonly listener: string;
  readonly handshakeTimeoutMs: number;
  readonly clock: Clock;
  /** Counts every failure (the metric). */
  count(listener: string, reason: HandshakeFailureReason): void;
  /** Writes one audit record of a sampled failure. */
  record(failure: HandshakeFailure): void;
}

/**
 * What an HTTPS listener serves beyond its default certificate, swapped whole on reload: the SNI
 * table read on every handshake, the OCSP staples; and how its failed handshakes are counted and
 * recorded (sampled, see RecordBudget).
 */
export class TlsServing implements TlsServerHooks {
  private current: ServerTls;
  private readonly budget: RecordBudget;
  readonly options: Pick<TlsOptions, 'SNICallback' | 'handshakeTimeout'>;

  constructor(initial: ServerTls, private readonly settings: TlsServingOptions) {
    this.current = initial;
    this.budget = new RecordBudget(HANDSHAKE_RECORDS_PER_SECOND, settings.clock);
    this.options = {
      handshakeTimeout: settings.handshakeTimeoutMs,
      // Read per handshake, so a reload's table is used from the next one; null: the default certificate.
      SNICallback: (servername: string, done: (err: Error | null, ctx?: SecureContext) => void) => {
        const context = this.current.sni.lookup(servername);
        if (context === null) done(null); else done(null, context);
      },
    };
  }

  /** Takes a reload's material: the SNI table and staples of new handshakes (the default context is the listener's updateTls). */
  update(next: ServerTls): void {
    this.current = next;
  }

  ocspRequest(certificate: Buffer, _issuer: Buffer, done: (err: Error | null, response?: Buffer) => void): void {
    const staple = this.current.staples.get(derDigest(certificate));
    if (staple === undefined) done(null); else done(null, staple);
  }

  handshakeFailed(err: NodeJS.ErrnoException, socket: TLSSocket): void {
    const { listener } = this.settings;
    const reason = handshakeFailureReason(err);
    this.settings.count(listener, reason);
    // A connection closed before its handshake ended (a port scan, a TCP health check) is counted only.
    if (reason === 'reset') return;
    const sampled = this.budget.take();
    if (sampled === null) return;
    // The name is the client's: only name characters are kept, so it cannot forge anything in the record.
    const servername = typeof socket.servername === 'string' && socket.servername !== '' ? socket.servername.slice(0, 253).replace(/[^A-Za-z0-9.*_-]/g, '?') : 'none';
    const code = (err.code ?? 'unknown').slice(0, 80);
    this.settings.record({
      listener, reason, clientIp: peerAddress(socket),
      detail: `handshake failed: ${reason} (${code}); sni ${servername}${suppressedTail(sampled)}`,
    });
  }
}
