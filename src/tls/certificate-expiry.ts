import { X509Certificate } from 'node:crypto';
import type { Metrics } from '../observability/metrics.js';

/**
 * What a configured certificate is for, as the `kind` label of
 * `portcullis_certificate_expiry_seconds` says it: a CA an upstream's chain is verified against, the
 * client certificate presented to an upstream, a listener's server certificate, a CA client
 * certificates are verified against.
 */
export type CertificateKind = 'upstream-ca' | 'upstream-client' | 'server' | 'client-ca';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle, in order; a block that does not parse is an error naming its position. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the PEM text is not a valid X.509 certificate (${(err as Error).message})`);
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

/** The label sets each registry holds, by kind, so a kind's series can be dropped when the config changes. */
const recorded = new WeakMap<Metrics, Map<CertificateKind, Map<string, { kind: CertificateKind; name: string; subject: string }>>>();

/**
 * Sets `portcullis_certificate_expiry_seconds{kind,name,subject}` to the notAfter (Unix seconds) of
 * every certificate in the PEM bundle `pem`; `name` is the owner's config name (an upstream, a
 * listener). Two certificates with the same subject under one name keep the earlier expiry, the one
 * an alert must see first. Returns how many certificates were read; throws on a block that does not
 * parse (compilation has checked the files, so that is a bug).
 */
export function recordCertificateExpiry(metrics: Metrics, kind: CertificateKind, name: string, pem: string): number {
  const certs = parseCertificates(pem);
  const byKind = recorded.get(metrics) ?? new Map<CertificateKind, Map<string, { kind: CertificateKind; name: string; subject: string }>>();
  recorded.set(metrics, byKind);
  const series = byKind.get(kind) ?? new Map<string, { kind: CertificateKind; name: string; subject: string }>();
  byKind.set(kind, series);
  const earliest = new Map<string, number>();
  for (const cert of certs) {
    const subject = subjectOf(cert);
    const seconds = Math.floor(notAfterMs(cert) / 1000);
    const before = earliest.get(subject);
    if (before !== undefined && before <= seconds) continue;
    earliest.set(subject, seconds);
    const labels = { kind, name, subject };
    series.set(JSON.stringify([name, subject]), labels);
    metrics.certificateExpiry.set(labels, seconds);
  }
  return certs.length;
}

/**
 * Drops every series of `kind` recorded in this registry: called before the certificates of a new
 * config are recorded, so a certificate a reload removed no longer reads as expiring.
 */
export function forgetCertificateExpiry(metrics: Metrics, kind: CertificateKind): void {
  const series = recorded.get(metrics)?.get(kind);
  if (series === undefined) return;
  for (const labels of series.values()) metrics.certificateExpiry.remove(labels);
  series.clear();
}
