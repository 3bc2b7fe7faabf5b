import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;

/**
 * Issues X.509 certificates and CRLs: a certificate authority, intermediates, server and client
 * certificates, revocation lists. `portcullis certs dev` makes a local CA with it, and the tests
 * make every certificate they present with it (expired, not yet valid, wrong usage, chains of any
 * depth). Nothing on the request path imports this module.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The key types certificates are made with: ECDSA P-256 (default) or RSA 2048. */
export type KeyType = 'ec' | 'rsa';

const ALGORITHMS: Record<KeyType, webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams & { hash: string }> = {
  ec: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  rsa: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
};

/** A certificate with its private key, both PEM, and what issuing more from it needs. */
export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
  /** Hexadecimal serial number, as a CRL names it. */
  readonly serial: string;
  /** SHA-256 of the DER certificate, base64url (RFC 8705 `x5t#S256`). */
  readonly thumbprint: string;
  /** SHA-256 of the DER certificate, upper-case hex with colons, as Node's `fingerprint256`. */
  readonly fingerprint256: string;
  /** For issuing: the certificate and key as objects. */
  readonly issuer: { readonly certificate: x509.X509Certificate; readonly keys: CryptoKeyPair; readonly algorithm: Algorithm };
}

/** What a certificate says and how long it holds. Every member has a usable default. */
export interface CertificateSpec {
  /** Common name of the subject. */
  readonly commonName: string;
  /** Further subject attributes as `O=Example, OU=Payments` (appended after CN). */
  readonly subjectExtra?: string;
  /** DNS names in the subjectAltName. */
  readonly dns?: readonly string[];
  /** URIs in the subjectAltName (SPIFFE IDs: `spiffe://trust-domain/ns/x/sa/y`). */
  readonly uris?: readonly string[];
  /** IP addresses in the subjectAltName. */
  readonly ips?: readonly string[];
  /** Extended key usages (`serverAuth`, `clientAuth`); absent: none listed. */
  readonly extendedKeyUsage?: readonly ('serverAuth' | 'clientAuth' | 'codeSigning' | 'emailProtection')[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** A CA certificate (basicConstraints cA), with an optional path length constraint. */
  readonly ca?: boolean;
  readonly pathLength?: number;
  readonly keyType?: KeyType;
}

const DAY_MS = 86_400_000;

function subjectOf(spec: CertificateSpec): string {
  const cn = spec.commonName.replace(/([,+"\\<>;=])/g, '\\$1');
  return spec.subjectExtra === undefined ? `CN=${cn}` : `CN=${cn}, ${spec.subjectExtra}`;
}

function serialNumber(): string {
  // Positive, 16 bytes: what CAs issue (RFC 5280 §4.1.2.2 allows up to 20).
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f | 0x10;
  return bytes.toString('hex');
}

async function extensionsOf(spec: CertificateSpec, keys: CryptoKeyPair, issuer: IssuedCertificate['issuer'] | null): Promise<x509.Extension[]> {
  const extensions: x509.Extension[] = [];
  if (spec.ca === true) {
    extensions.push(new x509.BasicConstraintsExtension(true, spec.pathLength, true));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  } else {
    extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true));
  }
  const names: x509.JsonGeneralName[] = [
    ...(spec.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(spec.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (spec.extendedKeyUsage !== undefined && spec.extendedKeyUsage.length > 0) {
    extensions.push(new x509.ExtendedKeyUsageExtension(spec.extendedKeyUsage.map((u) => x509.ExtendedKeyUsage[u]), false));
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  if (issuer !== null) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  return extensions;
}

function pemKey(keys: CryptoKeyPair): string {
  return KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function issued(certificate: x509.X509Certificate, keys: CryptoKeyPair, algorithm: Algorithm): Promise<IssuedCertificate> {
  const der = Buffer.from(certificate.rawData);
  const digest = Buffer.from(await webcrypto.subtle.digest('SHA-256', der));
  return {
    cert: certificate.toString('pem') + '\n',
    key: pemKey(keys),
    serial: certificate.serialNumber,
    thumbprint: digest.toString('base64url'),
    fingerprint256: digest.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:'),
    issuer: { certificate, keys, algorithm },
  };
}

/**
 * Issues a certificate: self-signed when `issuer` is null (a root CA), else signed by the issuer.
 * Validity defaults to one hour ago until 365 days from now.
 */
export async function issueCertificate(spec: CertificateSpec, issuer: IssuedCertificate | null = null): Promise<IssuedCertificate> {
  const algorithm = ALGORITHMS[spec.keyType ?? 'ec'];
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = Date.now();
  const common = {
    serialNumber: serialNumber(),
    notBefore: spec.notBefore ?? new Date(now - 3_600_000),
    notAfter: spec.notAfter ?? new Date(now + 365 * DAY_MS),
    extensions: await extensionsOf(spec, keys, issuer?.issuer ?? null),
  };
  if (issuer === null) {
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: subjectOf(spec), keys, signingAlgorithm: algorithm });
    return issued(certificate, keys, algorithm);
  }
  const certificate = await x509.X509CertificateGenerator.create({
    ...common,
    subject: subjectOf(spec),
    issuer: issuer.issuer.certificate.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.issuer.keys.privateKey,
    signingAlgorithm: issuer.issuer.algorithm,
  });
  return issued(certificate, keys, algorithm);
}

/** A root CA: a self-signed CA certificate. */
export function issueCertificateAuthority(commonName: string, options: Omit<CertificateSpec, 'commonName' | 'ca'> = {}): Promise<IssuedCertificate> {
  return issueCertificate({ ...options, commonName, ca: true });
}

/** A certificate revocation list signed by `issuer`, revoking the given serial numbers. */
export async function issueCrl(issuer: IssuedCertificate, revoked: readonly string[], options: { readonly thisUpdate?: Date; readonly nextUpdate?: Date } = {}): Promise<string> {
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.issuer.certificate.subject,
    thisUpdate: options.thisUpdate ?? new Date(now - 3_600_000),
    nextUpdate: options.nextUpdate ?? new Date(now + 7 * DAY_MS),
    entries: revoked.map((serialNumber) => ({ serialNumber, revocationDate: new Date(now - 60_000), reason: x509.X509CrlReason.keyCompromise })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(issuer.issuer.keys.publicKey)],
    signingKey: issuer.issuer.keys.privateKey,
    signingAlgorithm: issuer.issuer.algorithm,
  });
  // OpenSSL (and so Node) reads the RFC 7468 label `X509 CRL`.
  return crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----') + '\n';
}
