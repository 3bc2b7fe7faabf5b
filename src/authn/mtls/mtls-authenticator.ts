import type { TLSSocket } from 'node:tls';
import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { peerVerdict } from '../../tls/client-auth-gate.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import { isHeaderSafe, type Identity } from '../identity.js';
import { certificateFacts, type CertificateFacts } from './certificate-facts.js';
import type { IdentityPattern } from './identity-pattern.js';

/** Which certificate value becomes the subject when a mapping does not name one. */
export type SubjectFrom = 'spiffe' | 'uri' | 'dns' | 'cn';

/** How the certificate is described to the upstream. */
export type ForwardCertificate = 'headers' | 'rfc9440' | 'none';

/** One `identities` entry: the first whose pattern matches the certificate gives the identity. */
export interface IdentityMapping {
  readonly pattern: IdentityPattern;
  readonly subject: string | null;
  readonly tenant: string | null;
  readonly roles: readonly string[];
}

export interface MtlsAuthenticatorSpec {
  readonly name: string;
  readonly subjectFrom: SubjectFrom;
  readonly identities: readonly IdentityMapping[];
  readonly forward: ForwardCertificate;
  /** Lower-case header names of the `headers` form. */
  readonly headers: { readonly subject: string; readonly san: string; readonly fingerprint: string };
}

/** Longest RFC 9440 header value sent (bytes): a larger certificate or chain is left out and counted as omitted. */
export const MAX_CERTIFICATE_HEADER_BYTES = 16384;

/**
 * Client certificates verified in the TLS handshake of the HTTPS listener (`listen.https.clientAuth`),
 * mapped to identities by `identities`. Abstains when the connection carries no certificate (the
 * plain HTTP listener, or `request` mode without one). A certificate that did not verify — or whose
 * chain the listener found too long — is refused (401 `client_certificate_invalid`), as is an
 * invalid X.509-SVID when SPIFFE IDs are used; a valid one that no entry maps is refused with 403
 * `client_certificate_unmapped`: the holder proved who it is, and is not let in as anyone.
 *
 * A connection's certificate does not change, so the outcome is computed once per connection
 * (weakly held: gone with the socket) and per config (a reload builds a new authenticator).
 */
export class MtlsAuthenticator implements Authenticator {
  readonly type = 'mtls';
  /** No HTTP authentication scheme names TLS client certificates: its 401 carries no challenge. */
  readonly challenge = null;
  readonly assertedHeaders: ReadonlyMap<string, string>;
  readonly credentialHeaders: readonly string[] = [];
  readonly authorizationScheme = null;
  readonly queryParam = null;
  readonly alwaysAdmits = false;
  private readonly outcomes = new WeakMap<TLSSocket, AuthOutcome>();
  /** Whether SPIFFE IDs are used: an invalid SVID is then refused rather than ignored. */
  private readonly usesSpiffe: boolean;

  constructor(private readonly spec: MtlsAuthenticatorSpec) {
    const h = spec.headers;
    // Every name it may send, whichever form is configured: a client's copy never reaches an upstream.
    this.assertedHeaders = new Map([[h.subject, 'subject'], [h.san, 'subject'], [h.fingerprint, 'keyId'], ['client-cert', 'keyId'], ['client-cert-chain', 'keyId']]);
    this.usesSpiffe = spec.subjectFrom === 'spiffe' || spec.identities.some((m) => m.pattern.kind === 'spiffe');
  }

  get name(): string {
    return this.spec.name;
  }

  authenticate(ex: Exchange): AuthOutcome {
    const socket = ex.wire.tls;
    if (socket === null) return ABSENT;
    const known = this.outcomes.get(socket);
    if (known !== undefined) return known;
    const outcome = this.judge(socket);
    this.outcomes.set(socket, outcome);
    return outcome;
  }

  private judge(socket: TLSSocket): AuthOutcome {
    const peer = socket.getPeerX509Certificate();
    if (peer === undefined) return ABSENT;
    if (!socket.authorized) {
      const reason = (socket as { authorizationError?: unknown }).authorizationError;
      return this.invalid(`the certificate did not verify: ${typeof reason === 'string' ? reason : 'unknown reason'}`);
    }
    const verdict = peerVerdict(socket);
    if (verdict === undefined) return this.invalid('the listener did not inspect this connection\'s certificate chain');
    if (verdict.problem !== null) return this.invalid(verdict.problem);
    let facts: CertificateFacts;
    try {
      facts = certificateFacts(peer.raw);
    } catch (err) {
      return this.invalid(`the certificate cannot be read: ${(err as Error).message}`);
    }
    if (this.usesSpiffe && facts.spiffe !== null && !facts.spiffe.ok) return this.invalid(`not a valid X.509-SVID: ${facts.spiffe.problem}`);
    const mapping = this.spec.identities.find((m) => valuesOf(facts, m.pattern.kind).some((v) => m.pattern.test(v)));
    if (mapping === undefined) return this.unmapped(`no identities entry matches ${describe(facts)}`);
    let subject = mapping.subject;
    if (subject === null) {
      const values = valuesOf(facts, this.spec.subjectFrom);
      if (values.length !== 1) {
        return this.unmapped(`subjectFrom ${this.spec.subjectFrom} needs exactly one such value, the certificate has ${values.length} (${describe(facts)}); set identities[].subject or another subjectFrom`);
      }
      subject = values[0] as string;
      if (!isHeaderSafe(subject)) return this.unmapped(`the ${this.spec.subjectFrom} value cannot be sent as a header (not printable ASCII, or longer than 1024)`);
    }
    const rfc9440 = this.spec.forward === 'rfc9440' ? rfc9440Headers(peer.raw, verdict.issuers) : null;
    const identity: Identity = Object.freeze({
      subject, method: 'mtls', authenticator: this.spec.name, keyId: facts.fingerprint,
      roles: mapping.roles, scopes: [], tenant: mapping.tenant, tier: null, claims: null,
      claimHeaders: this.spec.forward === 'headers' ? this.descriptiveHeaders(facts) : rfc9440?.omitted ?? [],
      bearerRealm: null,
      ...(rfc9440 === null ? {} : { renderedHeaders: rfc9440.headers }),
    });
    return { kind: 'authenticated', identity };
  }

  /** X-Client-Cert-Subject, -SAN and -Fingerprint; a value that cannot be sent verbatim is left out and counted. */
  private descriptiveHeaders(facts: CertificateFacts): (readonly [string, string | null])[] {
    const h = this.spec.headers;
    const san = sanList(facts);
    return [
      [h.subject, isHeaderSafe(facts.subject) ? facts.subject : null],
      ...(san === '' ? [] : [[h.san, isHeaderSafe(san) ? san : null] as const]),
      [h.fingerprint, facts.fingerprint],
    ];
  }

  private invalid(reason: string): AuthOutcome {
    // The handshake proved possession of the key: nothing here is a guess at a secret.
    return { kind: 'rejected', denial: deny('client_certificate_invalid', `${this.spec.name}: ${reason}`), guess: false };
  }

  private unmapped(reason: string): AuthOutcome {
    return { kind: 'rejected', denial: deny('client_certificate_unmapped', `${this.spec.name}: ${reason}`), guess: false };
  }
}

/** The certificate's values of one kind, as the match and subjectFrom read them. */
function valuesOf(facts: CertificateFacts, kind: SubjectFrom): readonly string[] {
  switch (kind) {
    case 'spiffe': return facts.spiffe?.ok === true ? [facts.spiffe.id] : [];
    case 'uri': return facts.uris;
    case 'dns': return facts.dnsNames;
    case 'cn': return facts.commonNames;
  }
}

/** Characters that would split or quote a list entry, percent-encoded in the SAN header. */
const LIST_UNSAFE = /[%,;"\\\s]/g;

/**
 * The subjectAltName as `DNS:<name>, URI:<uri>, IP:<address>, email:<address>`, in the
 * certificate's order within each type; a `%`, `,`, `;`, quote, backslash or white space inside a
 * value is percent-encoded, so a value can never read as a second entry.
 */
function sanList(facts: CertificateFacts): string {
  const encode = (v: string): string => v.replace(LIST_UNSAFE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  return [
    ...facts.dnsNames.map((v) => `DNS:${encode(v)}`),
    ...facts.uris.map((v) => `URI:${encode(v)}`),
    ...facts.ips.map((v) => `IP:${encode(v)}`),
    ...facts.emails.map((v) => `email:${encode(v)}`),
  ].join(', ');
}

/** The certificate for a denial's private detail: SANs and CN, bounded. */
function describe(facts: CertificateFacts): string {
  const text = `subject ${facts.subject}${facts.dnsNames.length + facts.uris.length > 0 ? `, SAN ${sanList(facts)}` : ''}`;
  return text.length > 512 ? `${text.slice(0, 509)}...` : text;
}

/** RFC 8941 byte sequence. */
const byteSequence = (der: Buffer): string => `:${der.toString('base64')}:`;

/**
 * RFC 9440: `Client-Cert` (the client certificate) and `Client-Cert-Chain` (the certificates that
 * issued it as the handshake verified them, trust anchor left out). A value longer than
 * MAX_CERTIFICATE_HEADER_BYTES is left out, and named as omitted (a claim header without value).
 */
function rfc9440Headers(leaf: Buffer, issuers: readonly Buffer[]): { headers: readonly string[]; omitted: (readonly [string, null])[] } {
  const headers: string[] = [];
  const omitted: (readonly [string, null])[] = [];
  const add = (name: string, value: string): void => {
    if (value.length <= MAX_CERTIFICATE_HEADER_BYTES) headers.push(name, value);
    else omitted.push([name, null]);
  };
  add('client-cert', byteSequence(leaf));
  const chain = issuers.map(byteSequence).join(', ');
  if (chain !== '') add('client-cert-chain', chain);
  return { headers: Object.freeze(headers), omitted };
}
