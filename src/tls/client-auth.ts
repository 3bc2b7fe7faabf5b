import 'reflect-metadata';
import { X509Certificate as ParsedCertificate, X509Crl } from '@peculiar/x509';
import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigSource } from '../config/config-source.js';
import type { RawClientAuth } from '../config/schema-listen.js';
import { parseCertificates, inUse, type CertificateInUse } from './certificate-expiry.js';

/** Documented defaults of `listen.https.clientAuth`; docs/configuration.md lists the same values. */
export const CLIENT_AUTH_DEFAULTS = Object.freeze({
  mode: 'require' as const,
  maxChainDepth: 3,
});

/**
 * Client certificates on the HTTPS listener, compiled from `listen.https.clientAuth`. Live: a
 * reload (or a changed CA or CRL file) swaps it in for new handshakes; open connections keep the
 * verdict of their own handshake.
 */
export interface ClientAuth {
  /** `require`: no handshake completes without a valid certificate. `request`: the mtls authenticator judges. */
  readonly mode: 'request' | 'require';
  /** Most certificates in a verified chain, client certificate and trust anchor included. */
  readonly maxChainDepth: number;
  /** What every secure context of the listener adds: the client CAs and CRLs. */
  readonly context: SecureContextOptions;
  /** The client CAs, for the expiry metric. */
  readonly certificates: readonly CertificateInUse[];
}

/** The TLS socket options (not part of a secure context) a listener with client certificates needs. */
export interface PeerVerification {
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
}

/** A listener that asks for no client certificate. */
export const NO_PEER_VERIFICATION: PeerVerification = Object.freeze({ requestCert: false, rejectUnauthorized: false });

const AT = ['listen', 'https', 'clientAuth'] as const;
const PEM_CRL = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;

/**
 * Reads and checks the client CAs and CRLs (through the config's file reader, so their bytes are
 * part of the config version): PEM that parses, CA certificates valid now, CRLs not past their
 * next update. OpenSSL, once any CRL is loaded, checks revocation for every certificate of a
 * chain (Node sets X509_V_FLAG_CRL_CHECK_ALL) and refuses a chain whose CA has no CRL
 * (UNABLE_TO_GET_CRL): so with `crl` set, every CA in `ca` must have its CRL there, and a config
 * that would refuse all of one CA's clients is an error here rather than at the first handshake.
 */
export function compileClientAuth(raw: RawClientAuth | undefined, loaded: ConfigSource, problems: ConfigProblem[], now: Date): ClientAuth | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const caFiles = typeof raw.ca === 'string' ? [raw.ca] : raw.ca;
  const crlFiles = raw.crl === undefined ? [] : typeof raw.crl === 'string' ? [raw.crl] : raw.crl;
  const caTexts: string[] = [];
  const cas: X509Certificate[] = [];
  caFiles.forEach((file, i) => {
    const at = typeof raw.ca === 'string' ? [...AT, 'ca'] : [...AT, 'ca', i];
    const text = readText(file, at, loaded, problems);
    if (text === null) return;
    let certs: X509Certificate[];
    try { certs = parseCertificates(text); } catch (err) { problems.push(loaded.problem(at, `${file}: ${(err as Error).message}`)); return; }
    if (certs.length === 0) { problems.push(loaded.problem(at, `${file} holds no PEM certificate; expected the issuing CA certificates as \`-----BEGIN CERTIFICATE-----\` blocks`)); return; }
    for (const cert of certs) {
      const name = cert.subject.replace(/\n/g, ', ');
      if (!cert.ca) problems.push(loaded.problem(at, `${file}: ${name} is not a CA certificate (basicConstraints cA is not set); list the CA that issues the client certificates`));
      else if (now.getTime() > Date.parse(cert.validTo)) problems.push(loaded.problem(at, `${file}: CA ${name} expired on ${new Date(cert.validTo).toISOString()}; every certificate it issued is refused — renew it or remove it`));
      else if (now.getTime() < Date.parse(cert.validFrom)) problems.push(loaded.problem(at, `${file}: CA ${name} is not valid before ${new Date(cert.validFrom).toISOString()}; check the clock or the certificate`));
    }
    cas.push(...certs);
    caTexts.push(text);
  });
  const crlTexts: string[] = [];
  const crlIssuers = new Set<string>();
  crlFiles.forEach((file, i) => {
    const at = typeof raw.crl === 'string' ? [...AT, 'crl'] : [...AT, 'crl', i];
    const text = readText(file, at, loaded, problems);
    if (text === null) return;
    const blocks = text.match(PEM_CRL) ?? [];
    if (blocks.length === 0) { problems.push(loaded.problem(at, `${file} holds no PEM CRL; expected \`-----BEGIN X509 CRL-----\` blocks`)); return; }
    for (const block of blocks) {
      let crl: X509Crl;
      try { crl = new X509Crl(block); } catch (err) { problems.push(loaded.problem(at, `${file}: a CRL cannot be read (${(err as Error).message})`)); continue; }
      const next = crl.nextUpdate;
      if (next !== undefined && now.getTime() > next.getTime()) {
        problems.push(loaded.problem(at, `${file}: the CRL of ${crl.issuer} was due for replacement on ${next.toISOString()}; OpenSSL refuses every certificate it covers (CRL_HAS_EXPIRED) — publish a fresh CRL`));
      }
      crlIssuers.add(crl.issuerName.toString());
      // One block each: Node reads only the first CRL of a PEM string.
      crlTexts.push(block);
    }
  });
  if (crlFiles.length > 0) {
    for (const ca of cas) {
      const subject = subjectKey(ca);
      if (subject !== null && !crlIssuers.has(subject)) {
        problems.push(loaded.problem([...AT, 'crl'], `no CRL for CA ${ca.subject.replace(/\n/g, ', ')}: with CRLs set, OpenSSL checks revocation for every CA of a chain and refuses certificates whose CA has no CRL; add that CA's CRL (it may list nothing)`));
      }
    }
  }
  if (problems.length > before) return null;
  const context: SecureContextOptions = crlTexts.length === 0 ? { ca: caTexts } : { ca: caTexts, crl: crlTexts };
  return {
    mode: raw.mode ?? CLIENT_AUTH_DEFAULTS.mode,
    maxChainDepth: raw.maxChainDepth ?? CLIENT_AUTH_DEFAULTS.maxChainDepth,
    context,
    certificates: cas.map((ca) => inUse('client-ca', 'listen.https.clientAuth.ca', ca)),
  };
}

/** The secure context options client certificates add (none without clientAuth): spread into every context the listener serves. */
export function clientAuthContext(clientAuth: ClientAuth | null): SecureContextOptions {
  return clientAuth === null ? {} : clientAuth.context;
}

/**
 * The socket options of a listener with these client certificate settings. `require` lets
 * OpenSSL end a handshake without a certificate (alert certificate_required in TLS 1.3,
 * handshake_failure in TLS 1.2) and Node close one whose certificate does not verify.
 */
export function peerVerification(clientAuth: ClientAuth | null): PeerVerification {
  if (clientAuth === null) return NO_PEER_VERIFICATION;
  return { requestCert: true, rejectUnauthorized: clientAuth.mode === 'require' };
}

/** The subject of a CA as the CRL parser writes an issuer name, to pair CAs and CRLs; null if it cannot be read. */
function subjectKey(ca: X509Certificate): string | null {
  try {
    return new ParsedCertificate(ca.raw).subjectName.toString();
  } catch {
    return null;
  }
}

/** Most certificates read from a peer's chain: a bound on work whatever the peer sent. */
const MAX_WALK = 16;

/** A client's verified chain as the handshake left it. */
export interface PeerChain {
  /** Certificates in the chain, the client certificate and the trust anchor included (at most MAX_WALK). */
  readonly length: number;
  /** The DER of each certificate above the client's, without a self-signed trust anchor (RFC 9440 Client-Cert-Chain). */
  readonly issuers: readonly Buffer[];
}

/**
 * The peer's chain (Node completes the chain the peer sent with the CAs it trusts), or null
 * without a client certificate. Read it before anything calls `getPeerX509Certificate()`: on
 * Node 20 that call leaves `getPeerCertificate(true)` with the client certificate alone.
 */
export function peerChain(socket: TLSSocket): PeerChain | null {
  let cert = socket.getPeerCertificate(true) as Partial<DetailedPeerCertificate>;
  if (cert.raw === undefined) return null;
  const seen = new Set<string>();
  const issuers: Buffer[] = [];
  let length = 0;
  while (cert.raw !== undefined && cert.fingerprint256 !== undefined && length < MAX_WALK && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    const issuer = cert.issuerCertificate as Partial<DetailedPeerCertificate> | undefined;
    // A trust anchor signs itself: its issuer is itself.
    const anchor = issuer?.fingerprint256 === cert.fingerprint256;
    if (length > 0 && !anchor) issuers.push(cert.raw);
    length++;
    if (issuer === undefined || anchor) break;
    cert = issuer;
  }
  return { length, issuers };
}

function readText(file: string, at: (string | number)[], loaded: ConfigSource, problems: ConfigProblem[]): string | null {
  const read = loaded.files.readText(file);
  if (!read.ok) {
    problems.push(loaded.problem(at, `${read.message}; give the path of a PEM file, relative to the config file`));
    return null;
  }
  return read.text;
}
