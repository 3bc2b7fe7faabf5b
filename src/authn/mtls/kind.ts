import { Type, type Static } from '@sinclair/typebox';
import { formatted, HEADER_NAME_PATTERN, HEADER_NAME_FORMAT, strict } from '../../config/schema-parts.js';
import { authenticatorKind, type AuthenticatorCompileContext } from '../authenticator-kind.js';
import { isHeaderSafe, isListElement } from '../identity.js';
import { compileIdentityPattern, type MatchKind } from './identity-pattern.js';
import { MtlsAuthenticator, type IdentityMapping } from './mtls-authenticator.js';

const MatchValue = (what: string) => Type.String({ minLength: 1, maxLength: 2048, description: what });
const HeaderName = (description: string) => formatted(HEADER_NAME_PATTERN, HEADER_NAME_FORMAT, { description });

/** The options of `type: mtls`. */
export const MtlsAuthenticatorSchema = strict({
  type: Type.Literal('mtls'),
  subjectFrom: Type.Optional(Type.Union([Type.Literal('spiffe'), Type.Literal('uri'), Type.Literal('dns'), Type.Literal('cn')], {
    description: 'The certificate value that becomes the subject when a mapping names none: the SPIFFE ID, the URI SAN, the DNS SAN or the subject CN (the certificate must have exactly one). Default spiffe.',
  })),
  identities: Type.Array(strict({
    match: strict({
      spiffe: Type.Optional(MatchValue('The SPIFFE ID, exact or with * (one path segment) and a final ** (one or more).')),
      uri: Type.Optional(MatchValue('A URI SAN, exact or with whole-segment * and a final ** in its path.')),
      dns: Type.Optional(MatchValue('A DNS SAN, exact (case-insensitive) or with * (one label) and a leading ** (one or more labels).')),
      cn: Type.Optional(MatchValue('The subject common name, exact or with * (one dot-separated part) and a leading **.')),
    }, 'Exactly one of spiffe, uri, dns and cn.'),
    subject: Type.Optional(formatted('^[\\x20-\\x7e]{1,256}$', '1 to 256 printable ASCII characters', { description: 'The subject for certificates of this entry. Default: the certificate\'s subjectFrom value.' })),
    tenant: Type.Optional(formatted('^[\\x21-\\x7e]{1,256}$', '1 to 256 printable ASCII characters without spaces', { description: 'The tenant of the identity. Default: none.' })),
    roles: Type.Optional(Type.Array(formatted('^[\\x21-\\x2b\\x2d-\\x7e]{1,128}$', 'a role name of printable ASCII without spaces or commas', {}), { maxItems: 64, description: 'Roles of the identity. Default: none.' })),
  }, 'One mapping: certificates its match accepts become this identity. The first entry that matches wins.'), { minItems: 1, maxItems: 1000, description: 'Which certificates are admitted, and as whom, in order. Required.' }),
  forwardCertificate: Type.Optional(Type.Union([Type.Literal('headers'), Type.Literal('rfc9440'), Type.Literal('none')], {
    description: 'How the upstream learns of the certificate: headers (subject, SAN and fingerprint headers), rfc9440 (Client-Cert and Client-Cert-Chain, RFC 9440) or none. Default headers.',
  })),
  headers: Type.Optional(strict({
    subject: Type.Optional(HeaderName('Header carrying the subject DN (RFC 4514).')),
    san: Type.Optional(HeaderName('Header carrying the subjectAltName entries.')),
    fingerprint: Type.Optional(HeaderName('Header carrying the SHA-256 fingerprint (lower-case hex).')),
  }, 'Header names of forwardCertificate: headers. Defaults: subject X-Client-Cert-Subject, san X-Client-Cert-SAN, fingerprint X-Client-Cert-Fingerprint.')),
}, 'Client certificates verified by the HTTPS listener (listen.https.clientAuth), mapped to identities.');

export type RawMtlsAuthenticator = Static<typeof MtlsAuthenticatorSchema>;

/** Documented defaults of `type: mtls`, by option path; docs/authentication.md lists the same values. */
export const MTLS_DEFAULTS = Object.freeze({
  subjectFrom: 'spiffe',
  forwardCertificate: 'headers',
  'headers.subject': 'X-Client-Cert-Subject',
  'headers.san': 'X-Client-Cert-SAN',
  'headers.fingerprint': 'X-Client-Cert-Fingerprint',
});

/** Client certificates from the HTTPS listener's handshake, mapped to identities (stateless: no resource). */
export const mtlsKind = authenticatorKind<RawMtlsAuthenticator>({
  type: 'mtls',
  schema: MtlsAuthenticatorSchema,
  defaults: MTLS_DEFAULTS,
  docs: 'docs/authentication.md',
  compile: compileMtls,
});

const KINDS: readonly MatchKind[] = ['spiffe', 'uri', 'dns', 'cn'];

function compileMtls(raw: RawMtlsAuthenticator, context: AuthenticatorCompileContext): MtlsAuthenticator | null {
  const { name, at, loaded, reserved, problems } = context;
  const before = problems.length;
  // Client certificates exist only where the HTTPS listener asks for them.
  if (!context.clientCertificates) {
    problems.push(loaded.problem(at('type'), 'an mtls authenticator needs listen.https.clientAuth (the CAs client certificates chain to): without it no client presents a certificate'));
  }
  const identities: IdentityMapping[] = [];
  raw.identities.forEach((entry, i) => {
    const given = KINDS.filter((k) => entry.match[k] !== undefined);
    if (given.length !== 1) {
      problems.push(loaded.problem(at('identities', i, 'match'), `set exactly one of spiffe, uri, dns and cn${given.length > 1 ? ` (found ${given.join(', ')}); write one entry per value` : ''}`));
      return;
    }
    const kind = given[0] as MatchKind;
    const pattern = compileIdentityPattern(kind, entry.match[kind] ?? '');
    if (typeof pattern === 'string') { problems.push(loaded.problem(at('identities', i, 'match', kind), pattern)); return; }
    if (entry.subject !== undefined && !isHeaderSafe(entry.subject)) problems.push(loaded.problem(at('identities', i, 'subject'), 'must not start or end with a space'));
    const roles = entry.roles ?? [];
    roles.forEach((role, r) => { if (!isListElement(role)) problems.push(loaded.problem(at('identities', i, 'roles', r), 'must be printable ASCII without spaces or commas')); });
    identities.push({ pattern, subject: entry.subject ?? null, tenant: entry.tenant ?? null, roles: Object.freeze([...roles]) });
  });
  const names = raw.headers ?? {};
  const headers = {
    subject: (names.subject ?? MTLS_DEFAULTS['headers.subject']).toLowerCase(),
    san: (names.san ?? MTLS_DEFAULTS['headers.san']).toLowerCase(),
    fingerprint: (names.fingerprint ?? MTLS_DEFAULTS['headers.fingerprint']).toLowerCase(),
  };
  const seen = new Set<string>();
  for (const part of ['subject', 'san', 'fingerprint'] as const) {
    const header = headers[part];
    const normalised = header.replace(/_/g, '-');
    if (reserved.has(normalised) || normalised === 'client-cert' || normalised === 'client-cert-chain' || normalised.startsWith('x-portcullis-')) {
      problems.push(loaded.problem(at('headers', part), `${header} is a header the gateway sets or relies on; choose another name, such as ${MTLS_DEFAULTS[`headers.${part}`]} (the default)`));
    } else if (seen.has(normalised)) {
      problems.push(loaded.problem(at('headers', part), `${header} is already the name of another certificate header; each needs its own`));
    }
    seen.add(normalised);
  }
  if (problems.length > before) return null;
  return new MtlsAuthenticator({
    name,
    subjectFrom: raw.subjectFrom ?? 'spiffe',
    identities,
    forward: raw.forwardCertificate ?? 'headers',
    headers,
  });
}
