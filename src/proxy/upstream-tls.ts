import { createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { buildConnector, type Dispatcher } from 'undici';

/** The TLS versions an upstream may be held to at least. */
export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

/**
 * The PEM texts an upstream's TLS uses, read from the files the config names. Serialised (as
 * part of the upstream's resource key, or anywhere else) it is only the digest of the texts: the
 * private key never appears in a key, a log line or a report.
 */
export class TlsMaterial {
  constructor(
    /** CA bundles replacing the default roots, or null for the runtime's default trust store. */
    readonly ca: readonly string[] | null,
    /** Client certificate (and its chain) for mTLS, or null. */
    readonly cert: string | null,
    /** Private key of `cert`, or null. */
    readonly key: string | null,
    /** SHA-256 (hex) over every text above: a changed file makes a different upstream. */
    readonly digest: string,
  ) {}

  toJSON(): string {
    return `sha256:${this.digest}`;
  }
}

/** An https:// upstream's TLS settings, compiled: see `upstreams.<name>.tls` in docs/configuration.md. */
export interface UpstreamTls {
  /** The configured name sent in SNI and verified, or null: the target's host (an IP: no SNI). */
  readonly servername: string | null;
  readonly minVersion: TlsMinVersion;
  /** SPKI pins: base64 SHA-256 of the leaf's SubjectPublicKeyInfo; empty: no pinning. */
  readonly pins: readonly string[];
  readonly insecureSkipVerify: boolean;
  readonly material: TlsMaterial;
}

/** The error code a verified chain whose leaf key matches no pin fails with (see UPSTREAM_FAILURES). */
export const PIN_MISMATCH = 'ERR_UPSTREAM_TLS_PIN_MISMATCH';

/** `sha256/<base64>` of a certificate's SubjectPublicKeyInfo (DER), as HPKP (RFC 7469) and curl --pinnedpubkey write it. */
export function spkiPin(spki: Buffer): string {
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * Node's name check, then the pins: a chain that verifies and names the host still fails when its
 * leaf's public key is none of the pinned ones. Runs during the handshake, before any request byte
 * is written. (A resumed session skips it; sessions are cached per pool, and a pool only ever
 * holds sessions that passed this check.)
 */
function pinnedIdentity(pins: readonly string[]): (host: string, cert: PeerCertificate) => Error | undefined {
  const allowed = new Set(pins);
  return (host, cert) => {
    const error = checkServerIdentity(host, cert);
    if (error !== undefined) return error;
    // `cert.pubkey` is the bare key (an EC point), not the SubjectPublicKeyInfo a pin is taken over.
    const pin = spkiPin(new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' }));
    if (allowed.has(pin)) return undefined;
    return Object.assign(new Error(`the upstream certificate's public key sha256/${pin} matches none of tls.pins`), { code: PIN_MISMATCH });
  };
}

/** A target's host as a URL spells it, without the brackets of an IPv6 literal. */
function hostOf(origin: string): string {
  return new URL(origin).hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * The name the gateway sends in SNI and verifies for `origin`: the configured servername, else the
 * target's host; undefined for an IP address target without a configured name (RFC 6066 §3: SNI
 * carries host names only; the certificate's IP SAN is verified instead).
 */
export function serverNameOf(tls: UpstreamTls, origin: string): string | undefined {
  if (tls.servername !== null) return tls.servername;
  const host = hostOf(origin);
  return isIP(host) === 0 ? host : undefined;
}

/**
 * The connector of one https:// target's pool: undici's own, with the trust, client certificate,
 * minimum version and identity check of the upstream. The server name is fixed here rather than
 * taken from the request: undici would otherwise derive it from the Host header, which is the
 * client's own with `preserveHost`, and let a client choose the name the gateway verifies.
 */
export function tlsConnector(tls: UpstreamTls, origin: string, timeoutMs: number): buildConnector.connector {
  const { ca, cert, key } = tls.material;
  const servername = serverNameOf(tls, origin);
  const base = buildConnector({
    timeout: timeoutMs,
    minVersion: tls.minVersion,
    rejectUnauthorized: !tls.insecureSkipVerify,
    checkServerIdentity: tls.pins.length === 0 ? checkServerIdentity : pinnedIdentity(tls.pins),
    ...(ca === null ? {} : { ca: [...ca] }),
    ...(cert === null || key === null ? {} : { cert, key }),
  });
  return (options, callback) => {
    const fixed: buildConnector.Options = { ...options };
    if (servername === undefined) delete fixed.servername;
    else fixed.servername = servername;
    base(fixed, (...result) => {
      const socket = result[1];
      // A fatal alert after the handshake (in TLS 1.3 an upstream refuses a missing or untrusted
      // client certificate only after the client's Finished) is emitted just before the stream
      // ends, and undici would report the end ("other side closed") instead of it. Ending the
      // socket with the alert keeps the precise reason; the connection is dead either way.
      socket?.on('error', (error: Error & { code?: unknown }) => {
        if (typeof error.code === 'string' && error.code.startsWith('ERR_SSL_') && !socket.destroyed) socket.destroy(error);
      });
      callback(...result);
    });
  };
}

/**
 * What a pool of an https:// target with `preserveHost` dispatches through: every request carries
 * the same server name, so undici does not close the connection when the client's Host changes
 * (it ties connections to the name it derived from the Host header). The connector decides the
 * name actually sent (tlsConnector).
 */
export function fixedServerName(dispatcher: Dispatcher, label: string): Dispatcher {
  return dispatcher.compose((dispatch) => (options, handler) => dispatch({ ...options, servername: label } as Dispatcher.DispatchOptions, handler));
}
