// The mtls authenticator with clientAuth.mode request: every connection completes its handshake,
// and each request answers for its certificate — refused with a precise code and one audit
// record, or admitted as the mapped identity through the same authorization, limits and audit.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { connect as connectH2 } from 'node:http2';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';
import { attempt, clientPki, presenting, writeClientPki, type Attempt, type ClientPki } from './harness/mtls.js';
import type { ConnectionOptions } from 'node:tls';
import type { IssuedCertificate } from '../src/tls/issue-certificates.js';

let pki: ClientPki;
let upstream: EchoUpstream;
let gw: TestGateway;
let key: TestKey;

const SERVICE = { match: { spiffe: 'spiffe://example.org/ns/payments/**' }, tenant: 'payments', roles: ['service', 'payments'] };
const ORDERS = { match: { spiffe: 'spiffe://example.org/ns/orders/sa/*' }, tenant: 'orders', roles: ['service'] };

function config(): ConfigObject {
  return {
    listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'request', ca: 'tls/clients-ca.crt', crl: 'tls/clients.crl' } } },
    upstreams: { echo: { targets: [upstream.url] } },
    authenticators: {
      services: { type: 'mtls', identities: [SERVICE, ORDERS], headers: { san: 'X-Peer-SAN' } },
      raw: { type: 'mtls', identities: [SERVICE, ORDERS], forwardCertificate: 'rfc9440' },
      users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] },
    },
    rateLimits: { perService: { algorithm: 'token-bucket', limit: 2, per: '1h', burst: 2, by: ['subject'] } },
    routes: [
      { name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'], authorize: { roles: { anyOf: ['service'] } } },
      { name: 'payments', match: { path: '/payments/**' }, upstream: 'echo', authenticate: ['services'], authorize: { roles: { anyOf: ['payments'] }, tenant: { fixed: ['payments'] } } },
      { name: 'tenant', match: { path: '/tenants/{tenant}/**' }, upstream: 'echo', authenticate: ['services'], authorize: { tenant: { param: 'tenant' } } },
      { name: 'rfc', match: { path: '/rfc/**' }, upstream: 'echo', authenticate: ['raw'] },
      { name: 'limited', match: { path: '/limited/**' }, upstream: 'echo', authenticate: ['services'], rateLimit: 'perService' },
      { name: 'bound', match: { path: '/bound/**' }, upstream: 'echo', authenticate: ['users'], requireCertificateBoundToken: true },
      { name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true },
    ],
  };
}

before(async () => {
  pki = await clientPki();
  key = await testKey('ES256', 'k1');
  upstream = await startEchoUpstream();
  gw = await startGateway(config(), { beforeStart: (dir) => writeClientPki(dir, pki) });
});
after(async () => {
  await gw.close();
  await upstream.close();
});

const port = (): number => Number(new URL(gw.httpsUrl ?? '').port);
const send = (options: ConnectionOptions, path: string, headers: readonly string[] = []): Promise<Attempt> => attempt(port(), pki.server.ca.cert, options, path, headers);
const hex = (cert: IssuedCertificate): string => cert.fingerprint256.replace(/:/g, '').toLowerCase();
const received = (path: string) => upstream.received.find((r) => r.url === path);

/** The one audit record of the response's request id. */
async function recordOf(result: Attempt) {
  const records = await gw.auditFor(result.headers['x-request-id'] ?? '');
  assert.equal(records.length, 1, JSON.stringify(records));
  return records[0];
}

describe('clientAuth.mode request: each certificate answered at the request', () => {
  it('abstains without a certificate: 401 unauthenticated, audited, nothing forwarded', async () => {
    const result = await send({}, '/svc/no-cert');
    assert.equal(result.status, 401, JSON.stringify(result));
    assert.match(result.body, /"type":"[^"]*unauthenticated"/);
    assert.equal((await recordOf(result))?.reason, 'unauthenticated');
    assert.equal(received('/svc/no-cert'), undefined);
  });

  const invalid: readonly (readonly [string, () => ConnectionOptions, RegExp])[] = [
    ['from an unknown CA', () => presenting(pki.unknownCa), /did not verify: UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
    ['expired', () => presenting(pki.expired), /did not verify: CERT_HAS_EXPIRED/],
    ['not yet valid', () => presenting(pki.notYetValid), /did not verify: CERT_NOT_YET_VALID/],
    ['revoked in the CRL', () => presenting(pki.revoked), /did not verify: CERT_REVOKED/],
    ['for serverAuth only', () => presenting(pki.serverEku), /did not verify: INVALID_PURPOSE/],
    ['with a chain longer than maxChainDepth', () => presenting(pki.deep, [pki.inter2, pki.inter]), /4 certificates, more than maxChainDepth 3/],
    ['with a SPIFFE URI beside another URI (not an X.509-SVID)', () => presenting(pki.twoUris), /not a valid X\.509-SVID: .*exactly one URI SAN/],
  ];
  for (const [label, options, detail] of invalid) {
    it(`refuses a certificate ${label}: 401 client_certificate_invalid, the reason in the audit detail`, async () => {
      const path = `/svc/invalid-${label.replace(/\W+/g, '-')}`;
      const result = await send(options(), path);
      assert.equal(result.status, 401, JSON.stringify(result));
      assert.match(result.headers['content-type'] ?? '', /application\/problem\+json/);
      assert.match(result.body, /client_certificate_invalid/);
      assert.doesNotMatch(result.body, /CERT_|maxChainDepth|SVID/, 'the precise reason stays in the audit record');
      const record = await recordOf(result);
      assert.equal(record?.reason, 'client_certificate_invalid');
      assert.match(record?.detail ?? '', detail);
      assert.equal(received(path), undefined);
    });
  }

  it('refuses a valid certificate no identities entry maps: 403 client_certificate_unmapped', async () => {
    const result = await send(presenting(pki.unmapped), '/svc/unmapped');
    assert.equal(result.status, 403);
    assert.match(result.body, /client_certificate_unmapped/);
    assert.match((await recordOf(result))?.detail ?? '', /no identities entry matches .*spiffe:\/\/elsewhere\.org\/ns\/x\/sa\/y/);
  });

  it('admits a certificate without any extended key usage (any purpose, RFC 5280)', async () => {
    const result = await send(presenting(pki.noEku), '/svc/no-eku');
    assert.equal(result.status, 200, JSON.stringify(result));
  });

  it('one connection, many requests: the certificate is judged once and each request audited', async () => {
    const { request, Agent } = await import('node:https');
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.server.ca.cert, servername: 'localhost', ...presenting(pki.orders) });
    try {
      for (const path of ['/svc/keep-1', '/svc/keep-2', '/svc/keep-3']) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(`${gw.httpsUrl}${path}`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
          req.on('error', reject);
          req.end();
        });
        assert.equal(status, 200);
        assert.equal(received(path)?.headers['x-user-id'], 'spiffe://example.org/ns/orders/sa/web');
      }
      await gw.auditBarrier();
      const records = (await gw.audit()).filter((r) => r.path.startsWith('/svc/keep-'));
      assert.equal(records.length, 3);
    } finally {
      agent.destroy();
    }
  });
});

describe('mtls identities go through authorization, limits and audit like any other', () => {
  it('admits a service on its route, and refuses it where its roles or tenant do not fit', async () => {
    const payments = await send(presenting(pki.payments), '/payments/charge');
    assert.equal(payments.status, 200, JSON.stringify(payments));
    const record = await recordOf(payments);
    assert.deepEqual(record?.identity, { subject: 'spiffe://example.org/ns/payments/sa/api', authMethod: 'mtls', keyId: hex(pki.payments) });
    assert.equal(record?.tenant, 'payments');
    const orders = await send(presenting(pki.orders), '/payments/charge-2');
    assert.equal(orders.status, 403);
    assert.match(orders.body, /insufficient_role/);
    assert.equal(received('/payments/charge-2'), undefined);
    // Orders may use the shared route.
    assert.equal((await send(presenting(pki.orders), '/svc/shared')).status, 200);
    // Tenant isolation reads the certificate's mapped tenant.
    assert.equal((await send(presenting(pki.orders), '/tenants/orders/x')).status, 200);
    const other = await send(presenting(pki.orders), '/tenants/payments/x');
    assert.equal(other.status, 403);
    assert.match(other.body, /tenant_mismatch/);
    assert.equal(received('/tenants/payments/x'), undefined);
  });

  it('rate limits by the certificate identity: each service has its own count', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await send(presenting(pki.payments), `/limited/p${i}`)).status, 200);
    const third = await send(presenting(pki.payments), '/limited/p2');
    assert.equal(third.status, 429, JSON.stringify(third));
    assert.equal((await recordOf(third))?.limit, 'perService');
    assert.equal((await send(presenting(pki.orders), '/limited/o0')).status, 200, 'another certificate, another identity');
  });
});

describe('certificate headers towards the upstream', () => {
  it('headers: subject, SAN (under its configured name) and fingerprint of the verified certificate', async () => {
    const result = await send(presenting(pki.viaInter, [pki.inter]), '/svc/headers');
    assert.equal(result.status, 200, JSON.stringify(result));
    const seen = received('/svc/headers');
    assert.equal(seen?.headers['x-client-cert-subject'], 'CN=via-inter');
    assert.equal(seen?.headers['x-peer-san'], 'URI:spiffe://example.org/ns/payments/sa/batch');
    assert.equal(seen?.headers['x-client-cert-fingerprint'], hex(pki.viaInter));
    assert.equal(seen?.headers['client-cert'], undefined);
  });

  it('rfc9440: Client-Cert is the DER of the certificate, Client-Cert-Chain its intermediates without the trust anchor', async () => {
    const result = await send(presenting(pki.viaInter, [pki.inter]), '/rfc/chain');
    assert.equal(result.status, 200, JSON.stringify(result));
    const seen = received('/rfc/chain');
    const value = seen?.headers['client-cert'];
    assert.ok(typeof value === 'string' && value.startsWith(':') && value.endsWith(':'), String(value));
    assert.equal(new X509Certificate(Buffer.from(value.slice(1, -1), 'base64')).fingerprint256, pki.viaInter.fingerprint256);
    const chain = String(seen?.headers['client-cert-chain']).split(', ');
    assert.equal(chain.length, 1);
    assert.equal(new X509Certificate(Buffer.from((chain[0] ?? '').slice(1, -1), 'base64')).fingerprint256, pki.inter.fingerprint256);
    assert.equal(seen?.headers['x-client-cert-subject'], undefined);
  });
});

describe('client-sent certificate headers never reach an upstream', () => {
  const spoofed = [
    'X-Client-Cert-Subject: CN=admin', 'x-client-cert-san: URI:spiffe://example.org/ns/admin/sa/root', 'X-CLIENT-CERT-FINGERPRINT: 00',
    'Client-Cert: :MIIBspoof:', 'Client-Cert-Chain: :MIIBspoof:', 'X-Forwarded-Client-Cert: By=spiffe://x;Hash=00;URI=spiffe://example.org/ns/admin',
    'X-SSL-Client-Cert: spoof', 'X-SSL-Client-S-DN: CN=admin', 'SSL-Client-Cert: spoof', 'X-Client-Verify: SUCCESS', 'X-Client-S-DN: CN=admin',
    'X-Peer-SAN: URI:spiffe://example.org/ns/admin', 'X-Spiffe-Id: spiffe://example.org/ns/admin', 'X-TLS-Client-Cert: spoof', 'X-ARR-ClientCert: spoof',
    'X_Client_Cert_Subject: CN=admin', 'Client_Cert: :MIIBspoof:',
  ];
  const leaked = (path: string): string[] => {
    const seen = received(path);
    assert.ok(seen !== undefined, `${path} was not forwarded`);
    return seen.rawHeaders.filter((v, i) => i % 2 === 1 && /spoof|admin|SUCCESS|^00$/.test(v));
  };

  it('on an mtls route, alongside the real certificate, only the gateway\'s values arrive', async () => {
    for (const [path, auth] of [['/svc/spoof', 'services'], ['/rfc/spoof', 'raw']] as const) {
      const result = await send(presenting(pki.payments), path, spoofed);
      assert.equal(result.status, 200, `${auth}: ${JSON.stringify(result)}`);
      assert.deepEqual(leaked(path), []);
    }
    assert.equal(received('/svc/spoof')?.headers['x-client-cert-fingerprint'], hex(pki.payments));
  });

  it('on a public route over HTTPS without a certificate, and over plain HTTP', async () => {
    const result = await send({}, '/open/spoof-tls', spoofed);
    assert.equal(result.status, 200, JSON.stringify(result));
    assert.deepEqual(leaked('/open/spoof-tls'), []);
    const headers = new Headers(spoofed.filter((h) => !h.includes('_')).map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()] as [string, string]));
    const res = await fetch(`${gw.url}/open/spoof-plain`, { headers });
    assert.equal(res.status, 200);
    assert.deepEqual(leaked('/open/spoof-plain'), []);
  });
});

describe('certificate-bound tokens (RFC 8705)', () => {
  const bearer = async (claims: Record<string, unknown>): Promise<string> => `Authorization: Bearer ${await mint(key, claims)}`;

  it('admits a token bound to the certificate of its connection', async () => {
    const result = await send(presenting(pki.payments), '/bound/own', [await bearer({ cnf: { 'x5t#S256': pki.payments.thumbprint } })]);
    assert.equal(result.status, 200, JSON.stringify(result));
    assert.equal(received('/bound/own')?.headers['x-user-id'], 'user-1');
  });

  const refused: readonly (readonly [string, () => Promise<string>, () => ConnectionOptions, RegExp])[] = [
    ['used with another client certificate', () => bearer({ cnf: { 'x5t#S256': pki.payments.thumbprint } }), () => presenting(pki.orders), /not the thumbprint/],
    ['used without a client certificate', () => bearer({ cnf: { 'x5t#S256': pki.payments.thumbprint } }), () => ({}), /no client certificate/],
    ['without cnf', () => bearer({}), () => presenting(pki.payments), /no cnf/],
    ['with cnf of another shape', () => bearer({ cnf: { 'x5t#S256': [pki.payments.thumbprint] } }), () => presenting(pki.payments), /no cnf/],
    ['with a thumbprint that differs in one character', () => bearer({ cnf: { 'x5t#S256': `${pki.payments.thumbprint.slice(0, -1)}${pki.payments.thumbprint.endsWith('A') ? 'B' : 'A'}` } }), () => presenting(pki.payments), /not the thumbprint/],
  ];
  for (const [label, token, options, detail] of refused) {
    it(`refuses a token ${label}: 401 token_certificate_mismatch, invalid_token`, async () => {
      const path = `/bound/${label.replace(/\W+/g, '-')}`;
      const result = await send(options(), path, [await token()]);
      assert.equal(result.status, 401, JSON.stringify(result));
      assert.match(result.body, /token_certificate_mismatch/);
      assert.match(result.headers['www-authenticate'] ?? '', /^Bearer realm="portcullis", error="invalid_token"/);
      const record = await recordOf(result);
      assert.equal(record?.reason, 'token_certificate_mismatch');
      assert.match(record?.detail ?? '', detail);
      assert.equal(received(path), undefined);
    });
  }
});

describe('over HTTP/2: the certificate of the connection the stream belongs to', () => {
  /** One h2 request on its own session, presenting `options`' certificate. */
  async function h2(options: ConnectionOptions, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    const session = connectH2(`https://localhost:${port()}`, { ca: pki.server.ca.cert, ...options });
    try {
      const stream = session.request({ ':path': path, ...headers });
      const chunks: Buffer[] = [];
      const [response] = await once(stream, 'response') as [Record<string, unknown>];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return { status: Number(response[':status']), headers: response, body: Buffer.concat(chunks).toString('utf8') };
    } finally {
      session.close();
    }
  }

  it('admits a mapped certificate as its identity, and the upstream hears https', async () => {
    const result = await h2(presenting(pki.payments), '/svc/over-h2');
    assert.equal(result.status, 200, result.body);
    const seen = received('/svc/over-h2');
    assert.equal(seen?.headers['x-auth-method'], 'mtls');
    assert.equal(seen?.headers['x-tenant-id'], 'payments');
    assert.equal(seen?.headers['x-forwarded-proto'], 'https');
    const [record] = await gw.auditFor(String(result.headers['x-request-id']));
    assert.equal(record?.identity?.keyId, hex(pki.payments));
    assert.equal(record?.httpVersion, '2.0');
  });

  it('refuses a certificate that did not verify, and answers no certificate as unauthenticated', async () => {
    const revoked = await h2(presenting(pki.revoked), '/svc/h2-revoked');
    assert.equal(revoked.status, 401);
    assert.match(revoked.body, /client_certificate_invalid/);
    const none = await h2({}, '/svc/h2-none');
    assert.equal(none.status, 401);
    assert.match(none.body, /unauthenticated/);
    assert.equal(received('/svc/h2-revoked'), undefined);
    assert.equal(received('/svc/h2-none'), undefined);
  });

  it('binds a token to the certificate of the stream\'s connection', async () => {
    const token = `Bearer ${await mint(key, { cnf: { 'x5t#S256': pki.payments.thumbprint } })}`;
    const own = await h2(presenting(pki.payments), '/bound/h2-own', { authorization: token });
    assert.equal(own.status, 200, own.body);
    const other = await h2(presenting(pki.orders), '/bound/h2-other', { authorization: token });
    assert.equal(other.status, 401);
    assert.match(other.body, /token_certificate_mismatch/);
    assert.equal(received('/bound/h2-other'), undefined);
  });
});
