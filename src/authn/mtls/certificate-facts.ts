import 'reflect-metadata';
import { SubjectAlternativeNameExtension, X509Certificate as ParsedCertificate } from '@peculiar/x509';
import { createHash } from 'node:crypto';

/**
 * What a client certificate says, read from its DER once per connection: the subject, its common
 * names and its subjectAltName entries, each as the ASN.1 structure holds it. Nothing is parsed
 * out of a printed form (Node's `subjectAltName` string quotes and joins entries, and a value
 * holding `, URI:` must never read as a second entry: SAN confusion).
 */
export interface CertificateFacts {
  /** The subject DN, RFC 4514. */
  readonly subject: string;
  readonly commonNames: readonly string[];
  readonly dnsNames: readonly string[];
  readonly uris: readonly string[];
  readonly ips: readonly string[];
  readonly emails: readonly string[];
  /** SHA-256 of the DER, lower-case hex: the credential id in the audit record. */
  readonly fingerprint: string;
  /** SHA-256 of the DER, base64url: RFC 8705 `x5t#S256`. */
  readonly thumbprint: string;
  /** The SPIFFE ID (X.509-SVID), null when the certificate carries none, or why it is not a valid SVID. */
  readonly spiffe: { readonly ok: true; readonly id: string } | { readonly ok: false; readonly problem: string } | null;
}

/** The facts of a DER certificate; throws when it cannot be parsed (the TLS layer parsed it already). */
export function certificateFacts(der: Buffer): CertificateFacts {
  const cert = new ParsedCertificate(der);
  const names = cert.getExtension(SubjectAlternativeNameExtension)?.names.items ?? [];
  const of = (type: string): string[] => names.filter((n) => n.type === type).map((n) => n.value);
  const uris = of('url');
  const digest = createHash('sha256').update(der).digest();
  return {
    subject: cert.subject,
    commonNames: cert.subjectName.getField('CN'),
    dnsNames: of('dns'),
    uris,
    ips: of('ip'),
    emails: of('email'),
    fingerprint: digest.toString('hex'),
    thumbprint: digest.toString('base64url'),
    spiffe: svidOf(uris),
  };
}

/**
 * The SPIFFE ID of an X.509-SVID: exactly one URI SAN, and it is a SPIFFE ID (SPIFFE X.509-SVID
 * §2). A certificate with a `spiffe:` URI beside other URIs is not a valid SVID, whichever comes
 * first. Null when no URI SAN uses the spiffe scheme.
 */
function svidOf(uris: readonly string[]): CertificateFacts['spiffe'] {
  if (!uris.some((u) => /^spiffe:/i.test(u))) return null;
  if (uris.length !== 1) return { ok: false, problem: `an X.509-SVID has exactly one URI SAN; this certificate has ${uris.length}` };
  const id = uris[0] as string;
  const problem = spiffeIdProblem(id);
  return problem === null ? { ok: true, id } : { ok: false, problem: `the SPIFFE ID is malformed: ${problem}` };
}

/** Longest SPIFFE ID accepted (SPIFFE ID §2.3 asks implementations to accept 2048 bytes). */
export const MAX_SPIFFE_ID = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Why a text is not a SPIFFE ID of a workload (SPIFFE ID §2), or null: `spiffe://` in lower
 * case, a trust domain of lower-case letters, digits, `.`, `-`, `_` (no port, no userinfo), and a
 * non-empty path of segments of letters, digits, `.`, `-`, `_`; no empty, `.` or `..` segment, no
 * trailing `/`, no query, fragment or percent-encoding.
 */
export function spiffeIdProblem(id: string): string | null {
  if (id.length > MAX_SPIFFE_ID) return `longer than ${MAX_SPIFFE_ID} characters`;
  if (!id.startsWith('spiffe://')) return 'the scheme must be spiffe:// in lower case';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain)) return `the trust domain "${trustDomain}" must be lower-case letters, digits, ".", "-" and "_" (no port, userinfo or upper case)`;
  if (slash === -1 || slash === rest.length - 1) return 'a workload ID needs a path after the trust domain';
  for (const segment of rest.slice(slash + 1).split('/')) {
    if (segment === '') return 'empty path segment (// or a trailing /)';
    if (segment === '.' || segment === '..') return 'dot segments are not allowed';
    if (!PATH_SEGMENT.test(segment)) return `path segment "${segment}" must be letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)`;
  }
  return null;
}
