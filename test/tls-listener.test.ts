// The HTTPS listener: the same pipeline over TLS 1.2+, its certificate checked at load, and swapped
// by a reload without dropping the connections already open.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { configProblems } from './harness/config.js';
import { handshake, httpsGet, testPki, writeCertificate, type TestPki } from './harness/tls.js';
import { issueCertificate } from '../src/tls/issue-certificates.js';

describe('HTTPS listener', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  const config = (): ConfigObject => ({
    listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
    upstreams: { echo: { targets: [upstream.url] } },
    routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
  });

  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    gw = await startGateway(config(), {
      beforeStart: async (dir) => {
        const { mkdir } = await import('node:fs/promises');
        await mkdir(join(dir, 'tls'));
        await writeCertificate(join(dir, 'tls'), 'server', pki.server);
      },
    });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('serves the route over TLS with the configured certificate, and plain HTTP still', async () => {
    assert.ok(gw.httpsUrl !== null);
    const res = await httpsGet(`${gw.httpsUrl}/open/a`, pki.ca.cert);
    assert.equal(res.status, 200);
    assert.equal(res.serverFingerprint, pki.server.fingerprint256);
    assert.equal(res.protocol, 'TLSv1.3');
    assert.equal((JSON.parse(res.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https', 'the upstream learns the request came over TLS');
    const records = await gw.auditWhere((r) => r.kind === 'request' && r.path === '/open/a');
    assert.equal(records.length, 1);
    const plain = await fetch(`${gw.url}/open/b`);
    assert.equal(plain.status, 200);
    // HSTS only on what arrived over TLS: a browser ignores it over plain HTTP, and a proxy in
    // between could not be trusted to have added it.
    assert.match(String(res.headers['strict-transport-security']), /^max-age=\d+/);
    assert.equal(plain.headers.get('strict-transport-security'), null);
    assert.equal((await plain.json() as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'http');
    // A client's own X-Forwarded-Proto is not believed over TLS either.
    const spoofed = await httpsGet(`${gw.httpsUrl}/open/c`, pki.ca.cert, { headers: { 'x-forwarded-proto': 'http' } });
    assert.equal((JSON.parse(spoofed.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
  });

  it('refuses TLS 1.0 and 1.1 clients in the handshake', async () => {
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const result = await handshake(port, { ca: pki.ca.cert, servername: 'localhost', minVersion: version, maxVersion: version, ciphers: 'DEFAULT:@SECLEVEL=0' });
      assert.equal(result.ok, false, `${version} must be refused`);
    }
    const tls12 = await handshake(port, { ca: pki.ca.cert, servername: 'localhost', maxVersion: 'TLSv1.2' });
    assert.ok(tls12.ok);
    tls12.socket.destroy();
  });

  it('swaps the certificate on reload: new handshakes see the new one, an open connection finishes on the old', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.cert });
    const first = await httpsGet(`${gw.httpsUrl}/open/keep`, pki.ca.cert, { agent });
    assert.equal(first.serverFingerprint, pki.server.fingerprint256);
    const renewed = await issueCertificate({ commonName: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
    await writeCertificate(join(gw.dir, 'tls'), 'server', renewed);
    const reloaded = await gw.gateway.reload();
    assert.equal(reloaded.ok, true);
    // The kept-alive connection was made with the old certificate and still serves.
    const again = await httpsGet(`${gw.httpsUrl}/open/keep`, pki.ca.cert, { agent });
    assert.equal(again.status, 200);
    assert.equal(again.serverFingerprint, pki.server.fingerprint256);
    agent.destroy();
    const fresh = await httpsGet(`${gw.httpsUrl}/open/new`, pki.ca.cert);
    assert.equal(fresh.serverFingerprint, renewed.fingerprint256);
    // The expiry metric follows: the renewed certificate's series replaced the old one.
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const series = metrics.split('\n').filter((l) => l.startsWith('portcullis_certificate_expiry_timestamp_seconds{'));
    assert.equal(series.length, 1, series.join('\n'));
    assert.ok(series[0]?.includes(`fingerprint="${renewed.fingerprint256}"`) && series[0].includes('use="server"'), series[0]);
  });

  it('refuses a reload whose key does not match its certificate, and keeps serving the old material', async () => {
    const before = (await httpsGet(`${gw.httpsUrl}/open/x`, pki.ca.cert)).serverFingerprint;
    const other = await issueCertificate({ commonName: 'localhost', dns: ['localhost'] }, pki.ca);
    await writeFile(join(gw.dir, 'tls', 'server.key'), other.key);
    const reloaded = await gw.gateway.reload();
    assert.equal(reloaded.ok, false);
    assert.match(reloaded.ok ? '' : reloaded.errors.join('\n'), /listen\.https\.key.*not the private key of the certificate/s);
    const after = await httpsGet(`${gw.httpsUrl}/open/y`, pki.ca.cert);
    assert.equal(after.status, 200);
    assert.equal(after.serverFingerprint, before);
  });
});

describe('HTTPS listener config', () => {
  it('names the file, the option and what is wrong with the material', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-tls-config-'));
    try {
      const pki = await testPki();
      const expired = await issueCertificate({ commonName: 'old', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }, pki.ca);
      await writeCertificate(dir, 'expired', expired);
      await writeFile(join(dir, 'garbage.crt'), 'not a certificate\n');
      const base = 'upstreams: { u: { targets: [http://127.0.0.1:1] } }\nroutes: [{ name: r, match: { path: /a }, upstream: u, public: true }]\n';
      const file = join(dir, 'gateway.yaml');
      const problems = (https: string): string => configProblems(`listen:\n  https: ${https}\n${base}`, {}, file).join('\n');
      assert.match(problems('{ cert: missing.crt, key: missing.key }'), /gateway\.yaml:2.*listen\.https\.cert.*cannot read missing\.crt: ENOENT/);
      assert.match(problems('{ cert: garbage.crt, key: expired.key }'), /listen\.https\.cert.*no readable PEM certificate/);
      assert.match(problems('{ cert: expired.crt, key: expired.key }'), /listen\.https\.cert.*expired on/);
      assert.match(problems('{ cert: expired.crt }'), /listen\.https.*key/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
