// Hostile mTLS clients with clientAuth.mode request: a certificate-bound token (RFC 8705) presented
// with the very certificate it is bound to, when the CA has since revoked that certificate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';
import { attempt, clientPki, presenting, writeClientPki, type ClientPki } from './harness/mtls.js';

let pki: ClientPki;
let upstream: EchoUpstream;
let gw: TestGateway;
let key: TestKey;

before(async () => {
  pki = await clientPki();
  key = await testKey('ES256', 'k1');
  upstream = await startEchoUpstream();
  gw = await startGateway({
    listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'request', ca: 'tls/clients-ca.crt', crl: 'tls/clients.crl' } } },
    upstreams: { echo: { targets: [upstream.url] } },
    authenticators: {
      users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] },
    },
    routes: [{ name: 'bound', match: { path: '/bound/**' }, upstream: 'echo', authenticate: ['users'], requireCertificateBoundToken: true }],
  }, { beforeStart: (dir) => writeClientPki(dir, pki) });
});
after(async () => {
  await gw.close();
  await upstream.close();
});

const port = (): number => Number(new URL(gw.httpsUrl ?? '').port);

describe('certificate-bound tokens and revocation', () => {
  it('refuses a token bound to a certificate the CA revoked, presented with that certificate (its key is known compromised)', async () => {
    const token = `Authorization: Bearer ${await mint(key, { cnf: { 'x5t#S256': pki.revoked.thumbprint } })}`;
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      const path = `/bound/revoked-${maxVersion}`;
      const result = await attempt(port(), pki.server.ca.cert, { ...presenting(pki.revoked), maxVersion }, path, [token]);
      assert.equal(result.status, 401, `${maxVersion}: ${JSON.stringify(result)}`);
      assert.match(result.body, /token_certificate_mismatch/);
      const records = await gw.auditFor(result.headers['x-request-id'] ?? '');
      assert.equal(records.length, 1);
      assert.match(String(records[0]?.detail), /CERT_REVOKED/);
      assert.equal(upstream.received.find((r) => r.url === path), undefined, 'nothing forwarded');
    }
  });

  it('still admits a token bound to a certificate that chains to no configured CA (RFC 8705 §2.2, self-signed binding)', async () => {
    const token = `Authorization: Bearer ${await mint(key, { cnf: { 'x5t#S256': pki.unknownCa.thumbprint } })}`;
    const result = await attempt(port(), pki.server.ca.cert, presenting(pki.unknownCa), '/bound/unknown-ca', [token]);
    assert.equal(result.status, 200, JSON.stringify(result));
  });

  it('admits a token bound to a valid certificate', async () => {
    const own = await attempt(port(), pki.server.ca.cert, presenting(pki.payments), '/bound/own', [`Authorization: Bearer ${await mint(key, { cnf: { 'x5t#S256': pki.payments.thumbprint } })}`]);
    assert.equal(own.status, 200, JSON.stringify(own));
  });
});
