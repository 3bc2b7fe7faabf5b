// Upstream TLS material is picked up on reload: a replaced CA file switches trust from the next
// request, and a reload with a bad file is rejected, located, while the running pools keep serving
// with the trust they had. An unverified upstream is announced at every reload that keeps it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { issueCertificate, issueCertificateAuthority, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import { assertProblem, waitUntil } from './harness/assertions.js';
import { startGateway, startGatewayProcess, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

let caA: IssuedCertificate;
let caB: IssuedCertificate;
let server: Server;
let url: string;
let received = 0;

before(async () => {
  [caA, caB] = await Promise.all([issueCertificateAuthority('Reload CA A'), issueCertificateAuthority('Reload CA B')]);
  const cert = await issueCertificate({ commonName: 'svc', ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, caA);
  server = createServer({ cert: cert.cert, key: cert.key }, (_req, res) => { received++; res.end('ok'); });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
});

const get = (gw: TestGateway, path = '/svc/a') => rawRequest(gw.port, requestHead('GET', path), { settleMs: 0 });

const configWith = (tls: Record<string, unknown>, timeoutMs = 30000): ConfigObject => ({
  upstreams: { svc: { targets: [url], timeoutMs, tls } },
  routes: [{ name: 'svc', match: { path: '/svc/**' }, upstream: 'svc', public: true }],
});

void describe('upstream TLS across reloads', () => {
  void test('a reload with a new CA file switches trust; a reload with a bad file is rejected and the old trust keeps serving', async () => {
    let caFile = '';
    const gw = await startGateway(configWith({ ca: 'ca.pem' }), {
      beforeStart: async (dir) => { caFile = join(dir, 'ca.pem'); await writeFile(caFile, caB.cert); },
    });
    try {
      const before = received;
      assertProblem(await get(gw), 502, 'upstream_tls_untrusted');
      assert.equal(received, before, 'nothing reached the upstream under the wrong CA');

      await writeFile(caFile, caA.cert);
      const applied = await gw.gateway.reload();
      assert.equal(applied.ok, true, JSON.stringify(applied));
      assert.equal((await get(gw)).status, 200, 'the new CA is trusted from the next request');
      const { text } = await gw.gateway.metricsText();
      assert.match(text, /portcullis_certificate_expiry_timestamp_seconds\{use="upstream-ca",name="svc",subject="CN=Reload CA A",fingerprint="[0-9A-F:]+"\} \d+/);
      assert.doesNotMatch(text, /subject="CN=Reload CA B"/, 'the replaced CA is no longer listed');

      for (const bad of ['not a certificate\n', '']) {
        await writeFile(caFile, bad);
        const rejected = await gw.gateway.reload();
        assert.equal(rejected.ok, false);
        assert.match(rejected.ok ? '' : rejected.errors.join('\n'), /gateway\.yaml:\d+:\d+: upstreams\.svc\.tls\.ca: ca\.pem holds no PEM certificate/);
        assert.equal((await get(gw)).status, 200, 'the running pool keeps the trust it had');
      }

      await writeFile(caFile, caB.cert);
      assert.equal((await gw.gateway.reload()).ok, true);
      assertProblem(await get(gw), 502, 'upstream_tls_untrusted');
    } finally {
      await gw.close();
    }
  });

  void test('a reload whose client key no longer matches its certificate is rejected, located, and the old pool keeps serving', async () => {
    const client = await issueCertificate({ commonName: 'gw-client', extendedKeyUsage: ['clientAuth'] }, caA);
    const other = await issueCertificate({ commonName: 'other', extendedKeyUsage: ['clientAuth'] }, caA);
    let dir = '';
    const gw = await startGateway(configWith({ ca: 'ca.pem', cert: 'client.pem', key: 'client.key' }), {
      beforeStart: async (d) => {
        dir = d;
        await Promise.all([writeFile(join(d, 'ca.pem'), caA.cert), writeFile(join(d, 'client.pem'), client.cert), writeFile(join(d, 'client.key'), client.key)]);
      },
    });
    try {
      assert.equal((await get(gw)).status, 200);
      await writeFile(join(dir, 'client.key'), other.key);
      const rejected = await gw.gateway.reload();
      assert.equal(rejected.ok, false);
      assert.match(rejected.ok ? '' : rejected.errors.join('\n'), /upstreams\.svc\.tls\.key: client\.key is not the private key of the certificate in client\.pem \(CN=gw-client\)/);
      assert.equal((await get(gw)).status, 200);
    } finally {
      await gw.close();
    }
  });

  void test('a reload that keeps insecureSkipVerify logs the warning again, changed or not', async () => {
    const gw = await startGateway(configWith({ insecureSkipVerify: true }));
    const warnings = (): number => gw.logs.filter((l) => l.includes('"upstream":"svc"') && l.includes('insecureSkipVerify')).length;
    try {
      assert.equal((await get(gw)).status, 200, 'any certificate is accepted');
      assert.equal(warnings(), 1, 'at start');
      assert.equal((await gw.gateway.reload()).ok, true);
      assert.equal(warnings(), 2, 'at a reload with nothing changed');
      await gw.writeConfig(configWith({ insecureSkipVerify: true }, 20000));
      const changed = await gw.gateway.reload();
      assert.ok(changed.ok && changed.changed, JSON.stringify(changed));
      assert.equal(warnings(), 3, 'at a reload that changed something else');
      await gw.writeConfig(configWith({}, 20000));
      assert.equal((await gw.gateway.reload()).ok, true);
      assert.equal(warnings(), 3, 'not once it is gone');
      assertProblem(await get(gw), 502, 'upstream_tls_untrusted');
    } finally {
      await gw.close();
    }
  });

  void test('under --workers, the primary\'s /readyz lists the unverified upstream and each worker warns', async () => {
    const gw = await startGatewayProcess(configWith({ insecureSkipVerify: true }), { args: ['--workers', '2'] });
    try {
      let body: { components?: { gateway?: { insecureUpstreams?: unknown } } } = {};
      await waitUntil('/readyz answers', async () => {
        const res = await fetch(`${gw.adminUrl}/readyz`);
        body = await res.json() as typeof body;
        return body.components?.gateway !== undefined;
      }, 15_000);
      assert.deepEqual(body.components?.gateway?.insecureUpstreams, ['svc']);
      assert.ok(await gw.logged('"upstream":"svc"'), 'the warning is logged');
      const res = await fetch(`${gw.url}/svc/a`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await gw.stop();
    }
  });
});
