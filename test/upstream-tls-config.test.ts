// Upstream TLS settings are checked when the config is compiled: every mistake is reported with
// file, line, option and what would be right, and the compiled upstream's identity covers the
// contents of its files without ever holding the private key in its key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileConfig, DEFAULTS } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { Upstream } from '../src/proxy/upstream.js';
import { Metrics } from '../src/observability/metrics.js';
import { inUse, parseCertificates, type CertificateInUse, type CertificateUse } from '../src/tls/certificate-expiry.js';
import { issueCertificate, issueCertificateAuthority, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import { configProblems } from './harness/config.js';

const DAY_MS = 86_400_000;

let dir: string;
let file: string;
let ca: IssuedCertificate;
let client: IssuedCertificate;
let other: IssuedCertificate;
let expired: IssuedCertificate;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-upstream-tls-'));
  file = join(dir, 'gateway.yaml');
  ca = await issueCertificateAuthority('Config CA');
  [client, other, expired] = await Promise.all([
    issueCertificate({ commonName: 'gateway-client', extendedKeyUsage: ['clientAuth'] }, ca),
    issueCertificate({ commonName: 'someone-else', extendedKeyUsage: ['clientAuth'] }, ca),
    issueCertificate({ commonName: 'old-client', extendedKeyUsage: ['clientAuth'], notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) }, ca),
  ]);
  await Promise.all([
    writeFile(join(dir, 'ca.pem'), ca.cert),
    writeFile(join(dir, 'client.pem'), client.cert),
    writeFile(join(dir, 'client.key'), client.key),
    writeFile(join(dir, 'other.key'), other.key),
    writeFile(join(dir, 'expired.pem'), expired.cert),
    writeFile(join(dir, 'expired.key'), expired.key),
    writeFile(join(dir, 'garbage.pem'), 'this is not a certificate\n'),
    writeFile(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
  ]);
});

after(() => rm(dir, { recursive: true, force: true }));

/** A config with one upstream `svc` whose YAML lines (indented under it) are `upstream`. */
const config = (upstream: string): string => `upstreams:
  svc:
${upstream}
routes:
  - name: r
    match: { path: /r/** }
    upstream: svc
    public: true
`;

const problems = (upstream: string): string => configProblems(config(upstream), {}, file).join('\n');
const compile = (upstream: string) => compileConfig(loadConfigText(config(upstream), file, {}));

void describe('upstream TLS config: located errors', () => {
  const cases: readonly { name: string; upstream: string; expect: RegExp }[] = [
    {
      name: 'tls on http:// targets',
      upstream: '    targets: [http://127.0.0.1:3001]\n    tls: { ca: ca.pem }',
      expect: /gateway\.yaml:4:5: upstreams\.svc\.tls: applies to https:\/\/ targets only.*write the targets as https:\/\/ or remove tls/,
    },
    {
      name: 'http and https targets mixed',
      upstream: '    targets:\n      - https://127.0.0.1:3001\n      - http://127.0.0.1:3002',
      expect: /gateway\.yaml:5:9: upstreams\.svc\.targets\[1\]: mixes https:\/\/ and http:\/\/ targets.*give each scheme its own upstream/,
    },
    {
      name: 'a CA file that does not exist',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls: { ca: missing.pem }',
      expect: /gateway\.yaml:4:16: upstreams\.svc\.tls\.ca: cannot read missing\.pem: ENOENT: write the path of a PEM file/,
    },
    {
      name: 'a CA file in a list that is not PEM',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls:\n      ca: [ca.pem, garbage.pem]',
      expect: /gateway\.yaml:5:20: upstreams\.svc\.tls\.ca\[1\]: garbage\.pem holds no PEM certificate/,
    },
    {
      name: 'a CA file whose PEM block is not a certificate',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls: { ca: broken.pem }',
      expect: /upstreams\.svc\.tls\.ca: broken\.pem: certificate 1 of the PEM text is not a valid X\.509 certificate/,
    },
    {
      name: 'a key that is not the certificate\'s',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls:\n      cert: client.pem\n      key: other.key',
      expect: /gateway\.yaml:6:12: upstreams\.svc\.tls\.key: other\.key is not the private key of the certificate in client\.pem \(CN=gateway-client\)/,
    },
    {
      name: 'a key file that is not a key',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls:\n      cert: client.pem\n      key: garbage.pem',
      expect: /upstreams\.svc\.tls\.key: garbage\.pem is not an unencrypted PEM private key/,
    },
    {
      name: 'an expired client certificate',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls:\n      cert: expired.pem\n      key: expired.key',
      expect: /gateway\.yaml:5:13: upstreams\.svc\.tls\.cert: expired\.pem \(CN=old-client\) expired on \d{4}-.*issue a new client certificate/,
    },
    {
      name: 'a certificate without its key',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls: { cert: client.pem }',
      expect: /upstreams\.svc\.tls\.cert: needs tls\.key too/,
    },
    {
      name: 'an IP address as servername',
      upstream: '    targets: [https://orders.internal:3001]\n    tls: { servername: 10.0.0.5 }',
      expect: /upstreams\.svc\.tls\.servername: is an IP address, which is never sent in SNI/,
    },
    {
      name: 'insecureSkipVerify beside pins',
      upstream: `    targets: [https://127.0.0.1:3001]\n    tls: { insecureSkipVerify: true, pins: [sha256/${'A'.repeat(43)}=] }`,
      expect: /upstreams\.svc\.tls\.pins: has no effect with tls\.insecureSkipVerify: true/,
    },
    {
      name: 'a pin that is not sha256/<base64>',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls: { pins: [sha1/abc] }',
      expect: /upstreams\.svc\.tls\.pins\[0\]: must be sha256\/ and the base64 SHA-256/,
    },
    {
      name: 'a TLS version below 1.2',
      upstream: '    targets: [https://127.0.0.1:3001]\n    tls: { minVersion: TLSv1.1 }',
      expect: /upstreams\.svc\.tls\.minVersion: /,
    },
  ];
  for (const c of cases) {
    void test(`refuses ${c.name}, at its line`, () => {
      assert.match(problems(c.upstream), c.expect);
    });
  }

  void test('every problem of one upstream is reported at once', () => {
    const all = problems('    targets: [https://127.0.0.1:3001]\n    tls:\n      ca: missing.pem\n      cert: client.pem\n      key: other.key');
    assert.match(all, /tls\.ca: cannot read missing\.pem/);
    assert.match(all, /tls\.key: other\.key is not the private key/);
  });
});

void describe('upstream TLS config: what is compiled', () => {
  void test('an https target without tls is verified against the default roots, at TLS 1.2 or above, by its host name', () => {
    const spec = compile('    targets: [https://orders.internal:8443]').upstreams.get('svc');
    assert.equal(spec?.tls?.minVersion, DEFAULTS.upstreamTlsMinVersion);
    assert.equal(spec.tls.minVersion, 'TLSv1.2');
    assert.equal(spec.tls.material.ca, null);
    assert.equal(spec.tls.servername, null);
    assert.equal(spec.tls.insecureSkipVerify, false);
    assert.equal(compile('    targets: [http://127.0.0.1:3001]').upstreams.get('svc')?.tls, null);
  });

  void test('the upstream key covers the files\' contents by digest and never holds the private key', async () => {
    const text = '    targets: [https://127.0.0.1:3001]\n    tls: { ca: ca.pem, cert: client.pem, key: client.key }';
    const first = compile(text).upstreams.get('svc');
    assert.ok(first?.tls !== null && first?.tls !== undefined);
    assert.equal(first.tls.material.key, client.key);
    const key = Upstream.keyOf(first);
    assert.ok(!key.includes('PRIVATE KEY') && !key.includes('BEGIN'), 'no PEM text in the resource key');
    assert.equal(Upstream.keyOf(compile(text).upstreams.get('svc') ?? first), key, 'same files, same upstream');
    const renewed = await issueCertificateAuthority('Config CA');
    await writeFile(join(dir, 'ca.pem'), renewed.cert);
    try {
      assert.notEqual(Upstream.keyOf(compile(text).upstreams.get('svc') ?? first), key, 'a changed CA file is a new upstream');
    } finally {
      await writeFile(join(dir, 'ca.pem'), ca.cert);
    }
  });
});

void describe('certificate expiry metric', () => {
  void test('every certificate of a bundle is listed, and the metric follows the config in effect', async () => {
    const metrics = new Metrics(false);
    const renewed = await issueCertificateAuthority('Config CA', { notAfter: new Date(Date.now() + 900 * DAY_MS) });
    const bundle = ca.cert + renewed.cert + client.cert;
    const seconds = (pem: string): number => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
    const listed = (pem: string, use: CertificateUse, name: string): CertificateInUse[] => parseCertificates(pem).map((c) => inUse(use, name, c));
    metrics.certificatesInUse([...listed(bundle, 'upstream-ca', 'svc'), ...listed(client.cert, 'server', 'listen.https')]);
    const values = async () => (await metrics.certificateExpiry.get()).values.map((v) => [v.labels.use, v.labels.name, v.labels.subject, v.value]);
    assert.deepEqual(await values(), [
      ['upstream-ca', 'svc', 'CN=Config CA', seconds(ca.cert)],
      ['upstream-ca', 'svc', 'CN=Config CA', seconds(renewed.cert)],
      ['upstream-ca', 'svc', 'CN=gateway-client', seconds(client.cert)],
      ['server', 'listen.https', 'CN=gateway-client', seconds(client.cert)],
    ]);
    metrics.certificatesInUse(listed(client.cert, 'server', 'listen.https'));
    assert.deepEqual((await values()).map((v) => v[0]), ['server'], 'a config without the bundle drops its series');
  });
});
