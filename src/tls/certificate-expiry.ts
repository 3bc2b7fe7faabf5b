import { X509Certificate } from 'node:crypto';

/** What a certificate is used for: what the gateway serves, trusts, or presents. */
export type CertificateUse = 'server' | 'client-ca' | 'upstream-ca' | 'upstream-client';

/**
 * One certificate a config uses, for the expiry metric and warnings: what it is for, the option
 * or component it belongs to (`listen.https`, an upstream's name), and when it stops being valid.
 */
export interface CertificateInUse {
  readonly use: CertificateUse;
  readonly name: string;
  readonly subject: string;
  readonly notAfter: Date;
  readonly fingerprint256: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, in order; an unparseable block is an error naming its position. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the PEM text is not a valid X.509 certificate (${(err as Error).message})`, { cause: err });
    }
  });
}

/** A certificate's subject on one line, as the metric labels it: `CN=orders, O=Example`. */
export function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}

/** A certificate's notAfter in Unix milliseconds. */
export function notAfterMs(cert: X509Certificate): number {
  return Date.parse(cert.validTo);
}

/** A parsed certificate as the expiry metric and warnings name it. */
export function inUse(use: CertificateUse, name: string, cert: X509Certificate): CertificateInUse {
  return { use, name, subject: subjectOf(cert), notAfter: new Date(notAfterMs(cert)), fingerprint256: cert.fingerprint256 };
}
