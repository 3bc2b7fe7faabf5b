import type { TLSSocket } from 'node:tls';
import { peerChain, type ClientAuth, type PeerChain } from './client-auth.js';

/**
 * How a TLS connection is refused for its client certificate before any request exists. The
 * audit record of such a connection carries the code and nginx's statuses for certificate errors
 * (496 no certificate, 495 a certificate that is not accepted): no HTTP response is sent.
 * docs/errors.md lists the same codes.
 */
export const HANDSHAKE_REFUSALS = {
  client_certificate_missing: { status: 496, title: 'No client certificate' },
  client_certificate_invalid: { status: 495, title: 'Client certificate not accepted' },
  client_certificate_chain_too_deep: { status: 495, title: 'Client certificate chain too deep' },
} as const;

export type HandshakeRefusalCode = keyof typeof HANDSHAKE_REFUSALS;

/**
 * Records of refusals are sampled (a client with no credential can cause them as fast as it can
 * handshake): 10 a second, after a quiet spell up to this many at once, so the few refusals of a
 * misconfigured client are each recorded.
 */
export const REFUSAL_RECORD_BURST = 50;

/** Told of each connection refused for its client certificate (audit record, metric). */
export type HandshakeRefused = (socket: TLSSocket, code: HandshakeRefusalCode, detail: string) => void;

/** What the gate learnt of a verified client certificate's chain right after the handshake. */
export interface PeerVerdict extends PeerChain {
  /** What is wrong with the chain (too long), or null. */
  readonly problem: string | null;
}

/** Verdicts by connection; weak: gone with the connection. */
const verdicts = new WeakMap<TLSSocket, PeerVerdict>();

/**
 * The gate's verdict on a connection's verified client certificate; undefined when the gate did
 * not look (no certificate, a certificate that did not verify — the socket's authorizationError
 * says why — or a connection the gate never saw: the mtls authenticator then refuses, since a
 * chain nobody measured is not accepted).
 */
export function peerVerdict(socket: TLSSocket): PeerVerdict | undefined {
  return verdicts.get(socket);
}

/**
 * Checks client certificates where OpenSSL does not, right after each handshake on the HTTPS
 * listener and before any request on the connection is read. In `require` mode a connection that
 * fails is closed here, or was ended by OpenSSL and Node (no certificate, or one that does not
 * verify) — each such refusal is recorded once through `refused`. In `request` mode the verdict
 * is kept for the mtls authenticator, which refuses the request with a record of its own.
 */
export class ClientAuthGate {
  constructor(private readonly current: () => ClientAuth | null, private readonly refused: HandshakeRefused) {}

  /** After a completed handshake. */
  secureConnection(socket: TLSSocket): void {
    const auth = this.current();
    if (auth === null || !socket.authorized) return;
    const chain = peerChain(socket);
    if (chain === null) return;
    // Node has no verify-depth option: the chain is measured here.
    const problem = chain.length > auth.maxChainDepth ? `the verified chain has ${chain.length} certificates, more than maxChainDepth ${auth.maxChainDepth}` : null;
    verdicts.set(socket, { ...chain, problem });
    if (problem !== null && auth.mode === 'require') {
      // Destroyed before the HTTP parser reads a byte from it: no request on it is ever handled.
      socket.destroy();
      this.refused(socket, 'client_certificate_chain_too_deep', problem);
    }
  }

  /**
   * A handshake that failed. OpenSSL ends one without a certificate itself; Node ends one whose
   * certificate did not verify after the handshake, leaving the reason in authorizationError.
   * Other failures (protocol versions, ciphers, a client that hung up) are not about certificates:
   * false, and the listener records them as it records any malformed connection.
   */
  tlsClientError(err: NodeJS.ErrnoException, socket: TLSSocket): boolean {
    if (this.current() === null) return false;
    if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
      this.refused(socket, 'client_certificate_missing', 'the client presented no certificate (clientAuth.mode require)');
      return true;
    }
    const reason = (socket as { authorizationError?: unknown }).authorizationError;
    if (typeof reason !== 'string' || reason === '') return false;
    this.refused(socket, 'client_certificate_invalid', `the client certificate did not verify: ${reason}`);
    return true;
  }
}
