// Config of client certificates: every mistake named at its file, line and option, with what
// would be right; and the matchers and SPIFFE ID rules the mtls authenticator compiles.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configProblems } from './harness/config.js';
import { clientPki, writeClientPki, type ClientPki } from './harness/mtls.js';
import { issueCertificate, issueCrl } from '../src/tls/issue-certificates.js';
import { certificateFacts, spiffeIdProblem } from '../src/authn/mtls/certificate-facts.js';
import { compileIdentityPattern, type MatchKind } from '../src/authn/mtls/identity-pattern.js';
import { X509Certificate } from 'node:crypto';

describe('clientAuth and mtls config', () => {
  let dir: string;
  let pki: ClientPki;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-mtls-config-'));
    pki = await clientPki();
    await writeClientPki(dir, pki);
    await writeFile(join(dir, 'tls', 'leaf.crt'), pki.payments.cert);
    await writeFile(join(dir, 'tls', 'root-only.crl'), await issueCrl(pki.root, []));
    await writeFile(join(dir, 'tls', 'stale.crl'), await issueCrl(pki.root, [], { thisUpdate: new Date(Date.now() - 10 * 86_400_000), nextUpdate: new Date(Date.now() - 86_400_000) }));
    await writeFile(join(dir, 'tls', 'two-cas.crt'), pki.root.cert + pki.other.cert);
    await writeFile(join(dir, 'tls', 'garbage.crl'), 'not a crl\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const file = (): string => join(dir, 'gateway.yaml');
  const problems = (clientAuth: string | null, authenticators = 'authenticators: { svc: { type: mtls, identities: [{ match: { spiffe: "spiffe://example.org/ns/a/*" } }] } }\n', route = 'authenticate: [svc]'): string =>
    configProblems(
      `listen:\n  https:\n    cert: tls/server.crt\n    key: tls/server.key\n${clientAuth === null ? '' : `    clientAuth: ${clientAuth}\n`}` +
      `upstreams: { u: { targets: [http://127.0.0.1:1] } }\n${authenticators}routes: [{ name: r, match: { path: /a }, upstream: u, ${route} }]\n`, {}, file(),
    ).join('\n');

  it('accepts a CA bundle with the CRL of each of its CAs', () => {
    assert.equal(problems('{ mode: request, ca: tls/clients-ca.crt, crl: tls/clients.crl, maxChainDepth: 4 }'), '');
    assert.equal(problems('{ ca: [tls/clients-ca.crt] }'), '');
  });

  it('names the option and what is wrong with each file', () => {
    assert.match(problems('{ ca: tls/missing.crt }'), /gateway\.yaml:5.*listen\.https\.clientAuth\.ca.*missing\.crt.*give the path of a PEM file/);
    assert.match(problems('{ ca: tls/leaf.crt }'), /listen\.https\.clientAuth\.ca.*CN=payments is not a CA certificate/);
    assert.match(problems('{ ca: tls/clients-ca.crt, crl: tls/garbage.crl }'), /listen\.https\.clientAuth\.crl.*holds no PEM CRL/);
    assert.match(problems('{ ca: tls/clients-ca.crt, crl: [tls/stale.crl] }'), /listen\.https\.clientAuth\.crl\[0\].*was due for replacement on .*publish a fresh CRL/);
    assert.match(problems('{ ca: tls/clients-ca.crt, maxChainDepth: 0 }'), /maxChainDepth/);
    assert.match(problems('{ ca: tls/clients-ca.crt, mode: optional }'), /listen\.https\.clientAuth\.mode/);
  });

  it('refuses CRLs that leave a CA without its CRL (OpenSSL would refuse every certificate it issued)', () => {
    assert.match(problems('{ ca: tls/two-cas.crt, crl: tls/root-only.crl }'), /listen\.https\.clientAuth\.crl.*no CRL for CA CN=Unknown CA.*add that CA's CRL/);
    assert.equal(problems('{ ca: tls/two-cas.crt }'), '', 'without CRLs no CA needs one');
  });

  it('refuses an expired client CA', async () => {
    const old = await issueCertificate({ commonName: 'Old CA', ca: true, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    await writeFile(join(dir, 'tls', 'old-ca.crt'), old.cert);
    assert.match(problems('{ ca: tls/old-ca.crt }'), /listen\.https\.clientAuth\.ca.*CA CN=Old CA expired on/);
  });

  it('refuses an mtls authenticator without listen.https.clientAuth', () => {
    assert.match(problems(null), /authenticators\.svc\.type.*needs listen\.https\.clientAuth/);
  });

  it('refuses identities that are not one well-formed match', () => {
    const with_ = (identities: string) => problems('{ ca: tls/clients-ca.crt }', `authenticators: { svc: { type: mtls, identities: ${identities} } }\n`);
    assert.match(with_('[{ match: { spiffe: "spiffe://Example.org/a" } }]'), /identities\[0\]\.match\.spiffe.*trust domain.*lower-case/);
    assert.match(with_('[{ match: { spiffe: "spiffe://*.org/a" } }]'), /identities\[0\]\.match\.spiffe/);
    assert.match(with_('[{ match: { spiffe: "spiffe://example.org/**/a" } }]'), /identities\[0\]\.match\.spiffe.*\*\* is only allowed as the last segment/);
    assert.match(with_('[{ match: { spiffe: "spiffe://example.org/a*" } }]'), /identities\[0\]\.match\.spiffe/);
    assert.match(with_('[{ match: { dns: "api.**.example.com" } }]'), /identities\[0\]\.match\.dns.*only allowed as the first label/);
    assert.match(with_('[{ match: { dns: "*.*" } }]'), /identities\[0\]\.match\.dns.*at least one literal label/);
    assert.match(with_('[{ match: { uri: "https://*.example.org/a" } }]'), /identities\[0\]\.match\.uri.*wildcards outside the path/);
    assert.match(with_('[{ match: { dns: a.example, cn: a } }]'), /identities\[0\]\.match.*exactly one of spiffe, uri, dns and cn \(found dns, cn\)/);
    assert.match(with_('[{ match: {} }]'), /identities\[0\]\.match.*exactly one/);
    assert.match(with_('[]'), /identities/);
    assert.match(problems('{ ca: tls/clients-ca.crt }', 'authenticators: { svc: { type: mtls, identities: [{ match: { cn: a } }], headers: { san: X-User-Id } } }\n'), /authenticators\.svc\.headers\.san.*X-Client-Cert-SAN/);
  });

  it('refuses to take the certificate headers the gateway asserts from a trusted proxy', () => {
    const text = (names: string) => configProblems(
      `listen: { https: { cert: tls/server.crt, key: tls/server.key, clientAuth: { ca: tls/clients-ca.crt } } }\ntrustedProxies: [10.0.0.0/8]\nheaders: { fromTrustedProxies: [${names}] }\n` +
      'upstreams: { u: { targets: [http://127.0.0.1:1] } }\nauthenticators: { svc: { type: mtls, identities: [{ match: { cn: a } }] } }\nroutes: [{ name: r, match: { path: /a }, upstream: u, authenticate: [svc] }]\n', {}, file(),
    ).join('\n');
    assert.match(text('Client-Cert'), /headers\.fromTrustedProxies\[0\].*Client-Cert is asserted by the gateway/);
    assert.match(text('X-Client-Cert-SAN'), /headers\.fromTrustedProxies\[0\].*asserted by the gateway/);
  });

  it('refuses requireCertificateBoundToken on a route without a jwt authenticator', () => {
    assert.match(problems('{ ca: tls/clients-ca.crt }', undefined, 'authenticate: [svc], requireCertificateBoundToken: true'), /routes\[0\]\.requireCertificateBoundToken.*no bearer-token \(jwt\) authenticator/);
  });

  it('adds each client CA to the certificates in use', async () => {
    const { compileConfig } = await import('../src/config/compile.js');
    const { loadConfigText } = await import('../src/config/load.js');
    const text = 'listen: { https: { cert: tls/server.crt, key: tls/server.key, clientAuth: { ca: tls/two-cas.crt } } }\nupstreams: { u: { targets: [http://127.0.0.1:1] } }\nroutes: [{ name: r, match: { path: /a }, upstream: u, public: true }]\n';
    const config = compileConfig(loadConfigText(text, file(), {}));
    const cas = config.certificates.filter((c) => c.use === 'client-ca');
    assert.deepEqual(cas.map((c) => [c.name, c.fingerprint256]), [['listen.https.clientAuth.ca', pki.root.fingerprint256], ['listen.https.clientAuth.ca', pki.other.fingerprint256]]);
  });
});

describe('SPIFFE IDs', () => {
  const cases: readonly (readonly [string, RegExp | null])[] = [
    ['spiffe://example.org/ns/payments/sa/api', null],
    ['spiffe://example.org/a', null],
    ['spiffe://my-domain_1.example/a.b-c_d', null],
    ['SPIFFE://example.org/a', /scheme/],
    ['spiffe://Example.org/a', /trust domain/],
    ['spiffe://example.org:8443/a', /trust domain/],
    ['spiffe://user@example.org/a', /trust domain/],
    ['spiffe://example.org', /needs a path/],
    ['spiffe://example.org/', /needs a path/],
    ['spiffe://example.org/a/', /empty path segment/],
    ['spiffe://example.org/a//b', /empty path segment/],
    ['spiffe://example.org/a/../b', /dot segments/],
    ['spiffe://example.org/./b', /dot segments/],
    ['spiffe://example.org/a?x=1', /no query/],
    ['spiffe://example.org/a#f', /no query/],
    ['spiffe://example.org/a%2Fb', /percent-encoding/],
    ['spiffe:///a', /trust domain/],
    [`spiffe://example.org/${'a'.repeat(2100)}`, /longer than 2048/],
  ];
  for (const [id, problem] of cases) {
    it(`${id.length > 60 ? `${id.slice(0, 40)}…` : id}: ${problem === null ? 'valid' : `invalid (${problem.source})`}`, () => {
      const found = spiffeIdProblem(id);
      if (problem === null) assert.equal(found, null);
      else assert.match(found ?? 'valid', problem);
    });
  }

  it('reads SANs from the certificate\'s structure: a value holding ", URI:" is one DNS name, never a second entry', async () => {
    const cert = await issueCertificate({ commonName: 'x', dns: ['a.example, URI:spiffe://example.org/ns/admin'] });
    const facts = certificateFacts(new X509Certificate(cert.cert).raw);
    assert.deepEqual(facts.uris, []);
    assert.equal(facts.spiffe, null);
    assert.deepEqual(facts.dnsNames, ['a.example, URI:spiffe://example.org/ns/admin']);
  });

  it('a certificate with two SPIFFE URIs is not an X.509-SVID', async () => {
    const cert = await issueCertificate({ commonName: 'x', uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] });
    const facts = certificateFacts(new X509Certificate(cert.cert).raw);
    assert.equal(facts.spiffe?.ok, false);
  });
});

describe('identity patterns', () => {
  const cases: readonly (readonly [MatchKind, string, string, boolean])[] = [
    ['spiffe', 'spiffe://example.org/ns/payments/sa/api', 'spiffe://example.org/ns/payments/sa/api', true],
    ['spiffe', 'spiffe://example.org/ns/payments/sa/api', 'spiffe://example.org/ns/payments/sa/api2', false],
    ['spiffe', 'spiffe://example.org/ns/*/sa/api', 'spiffe://example.org/ns/orders/sa/api', true],
    ['spiffe', 'spiffe://example.org/ns/*/sa/api', 'spiffe://example.org/ns/a/b/sa/api', false],
    ['spiffe', 'spiffe://example.org/ns/payments/**', 'spiffe://example.org/ns/payments/sa/api', true],
    ['spiffe', 'spiffe://example.org/ns/payments/**', 'spiffe://example.org/ns/payments', false],
    ['spiffe', 'spiffe://example.org/ns/payments/**', 'spiffe://example.org/ns/paymentsx/sa', false],
    ['spiffe', 'spiffe://example.org/ns/payments/**', 'spiffe://example.org.evil/ns/payments/sa', false],
    ['spiffe', 'spiffe://example.org/ns/payments/**', 'spiffe://evil.example.org/ns/payments/sa', false],
    ['uri', 'https://example.org/svc/*', 'https://example.org/svc/billing', true],
    ['uri', 'https://example.org/svc/*', 'https://example.org/svc/billing?x', false],
    ['uri', 'https://example.org/svc/*', 'https://example.org.evil/svc/billing', false],
    ['uri', 'urn:example:billing', 'urn:example:billing', true],
    ['dns', 'billing.internal.example', 'Billing.Internal.Example', true],
    ['dns', '*.internal.example', 'billing.internal.example', true],
    ['dns', '*.internal.example', 'a.billing.internal.example', false],
    ['dns', '*.internal.example', 'internal.example', false],
    ['dns', '**.internal.example', 'a.billing.internal.example', true],
    ['dns', '**.internal.example', 'internal.example', false],
    ['dns', '**.internal.example', 'evilinternal.example', false],
    ['dns', '*.internal.example', '.internal.example', false],
    ['cn', 'payments', 'payments', true],
    ['cn', 'payments', 'Payments', false],
    ['cn', '*.svc', 'payments.svc', true],
  ];
  for (const [kind, source, value, expected] of cases) {
    it(`${kind} ${source} ${expected ? 'matches' : 'does not match'} ${value}`, () => {
      const pattern = compileIdentityPattern(kind, source);
      if (typeof pattern === 'string') assert.fail(pattern);
      assert.equal(pattern.test(value), expected);
    });
  }
});
