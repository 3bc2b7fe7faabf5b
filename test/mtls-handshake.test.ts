// Client certificates required at the HTTPS listener (clientAuth.mode require): the handshake
// matrix, each refusal recorded once, and a reload that swaps CA bundle and CRL for new handshakes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { attempt, clientPki, presenting, writeClientPki, writeCrls, type Attempt, type ClientPki } from './harness/mtls.js';
import { issueCrl, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import type { AuditRecord } from '../src/audit/audit-record.js';
import { skipWithout } from './harness/commands.js';

let pki: ClientPki;
let upstream: EchoUpstream;

before(async () => {
  pki = await clientPki();
  upstream = await startEchoUpstream();
});
after(async () => {
  await upstream.close();
});

function config(clientAuth: Record<string, unknown> = {}): ConfigObject {
  return {
    listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'require', ca: 'tls/clients-ca.crt', crl: 'tls/clients.crl', ...clientAuth } } },
    upstreams: { echo: { targets: [upstream.url] } },
    authenticators: {
      services: { type: 'mtls', identities: [{ match: { spiffe: 'spiffe://example.org/ns/payments/**' }, tenant: 'payments', roles: ['service'] }] },
    },
    routes: [{ name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'] }],
  };
}

const httpsPort = (gw: TestGateway): number => Number(new URL(gw.httpsUrl ?? '').port);

/** The handshake-level records whose detail mentions `text`, once everything before is on disk. */
async function refusals(gw: TestGateway, reason: string, text: string): Promise<AuditRecord[]> {
  await gw.auditBarrier();
  return (await gw.audit()).filter((r) => r.stage === 'listener' && r.reason === reason && (r.detail ?? '').includes(text));
}

/** How many connection-level records (`stage: listener`) are on disk. */
async function listenerRecords(gw: TestGateway): Promise<number> {
  await gw.auditBarrier();
  return (await gw.audit()).filter((r) => r.stage === 'listener').length;
}

/** A connection closed without any response: what a client whose certificate does not verify sees. */
function assertClosedWithoutResponse(result: Attempt, label: string): void {
  assert.equal(result.status, null, `${label}: no response may be sent (${JSON.stringify(result)})`);
  assert.equal(result.body, '', label);
}

describe('clientAuth.mode require: the handshake matrix', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(config(), { beforeStart: (dir) => writeClientPki(dir, pki) });
  });
  after(async () => {
    await gw.close();
  });

  it('admits a valid certificate and asserts its identity upstream', async () => {
    const result = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.payments), '/svc/valid');
    assert.equal(result.status, 200, JSON.stringify(result));
    const seen = upstream.received.find((r) => r.url === '/svc/valid');
    assert.equal(seen?.headers['x-user-id'], 'spiffe://example.org/ns/payments/sa/api');
    assert.equal(seen?.headers['x-auth-method'], 'mtls');
    assert.equal(seen?.headers['x-tenant-id'], 'payments');
    assert.equal(seen?.headers['x-roles'], 'service');
    const fingerprint = pki.payments.fingerprint256.replace(/:/g, '').toLowerCase();
    assert.equal(seen?.headers['x-client-cert-fingerprint'], fingerprint);
    assert.equal(seen?.headers['x-client-cert-subject'], 'CN=payments');
    assert.equal(seen?.headers['x-client-cert-san'], 'URI:spiffe://example.org/ns/payments/sa/api');
    const [record] = await gw.auditWhere((r) => r.path === '/svc/valid');
    assert.deepEqual(record?.identity, { subject: 'spiffe://example.org/ns/payments/sa/api', authMethod: 'mtls', keyId: fingerprint });
  });

  it('admits a certificate issued by an intermediate the client sends (3 certificates, within maxChainDepth)', async () => {
    const result = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.viaInter, [pki.inter]), '/svc/inter');
    assert.equal(result.status, 200, JSON.stringify(result));
  });

  it('ends a handshake without a certificate with the TLS alert (1.3: certificate_required, 1.2: handshake_failure), recorded once', async () => {
    const before = await listenerRecords(gw);
    const tls13 = await attempt(httpsPort(gw), pki.server.ca.cert, {}, '/svc/none');
    assert.equal(tls13.error, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', JSON.stringify(tls13));
    assertClosedWithoutResponse(tls13, 'TLS 1.3');
    const tls12 = await attempt(httpsPort(gw), pki.server.ca.cert, { maxVersion: 'TLSv1.2' }, '/svc/none');
    assert.equal(tls12.error, 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', JSON.stringify(tls12));
    assert.equal(tls12.handshook, false);
    const records = await refusals(gw, 'client_certificate_missing', 'no certificate');
    assert.equal(records.length, 2);
    assert.equal(await listenerRecords(gw), before + 2, 'one record per refused connection, nothing else');
    assert.equal(records[0]?.status, 496);
    assert.equal(records[0]?.decision, 'deny');
  });

  const refused: readonly (readonly [string, () => ConnectionOptions, string])[] = [
    ['a certificate from an unknown CA', () => presenting(pki.unknownCa), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['an expired certificate', () => presenting(pki.expired), 'CERT_HAS_EXPIRED'],
    ['a certificate not yet valid', () => presenting(pki.notYetValid), 'CERT_NOT_YET_VALID'],
    ['a certificate revoked in the CRL', () => presenting(pki.revoked), 'CERT_REVOKED'],
    ['a certificate whose extended key usage is serverAuth only (OpenSSL checks the purpose)', () => presenting(pki.serverEku), 'INVALID_PURPOSE'],
  ];
  for (const [label, options, code] of refused) {
    it(`closes the connection of ${label} before any request, and records ${code}`, async () => {
      const before = upstream.received.length;
      const recordsBefore = await listenerRecords(gw);
      for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
        const result = await attempt(httpsPort(gw), pki.server.ca.cert, { ...options(), maxVersion }, '/svc/refused');
        assertClosedWithoutResponse(result, `${label} over ${maxVersion}`);
      }
      const records = await refusals(gw, 'client_certificate_invalid', code);
      assert.equal(records.length, 2, `${code}: ${JSON.stringify(records)}`);
      assert.equal(records[0]?.status, 495);
      assert.equal(await listenerRecords(gw), recordsBefore + 2, 'one record per refused connection, nothing else');
      assert.equal(upstream.received.length, before, 'nothing forwarded');
    });
  }

  it('closes a connection whose verified chain is longer than maxChainDepth right after the handshake', async () => {
    await gw.auditBarrier();
    const recordsBefore = (await gw.audit()).length;
    const result = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.deep, [pki.inter2, pki.inter]), '/svc/deep');
    assert.ok(result.handshook);
    assertClosedWithoutResponse(result, 'chain of 4');
    const records = await refusals(gw, 'client_certificate_chain_too_deep', 'maxChainDepth');
    assert.equal(records.length, 1);
    assert.equal((await gw.audit()).length, recordsBefore + 1, 'the request the client sent with its handshake is never read');
    assert.ok(!upstream.received.some((r) => r.url === '/svc/deep'));
  });

  it('refuses a valid certificate that maps to no identity with 403 client_certificate_unmapped', async () => {
    const result = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.unmapped), '/svc/unmapped');
    assert.equal(result.status, 403, JSON.stringify(result));
    assert.match(result.headers['content-type'] ?? '', /application\/problem\+json/);
    assert.match(result.body, /client_certificate_unmapped/);
    const records = await gw.auditWhere((r) => r.path === '/svc/unmapped');
    assert.equal(records.length, 1);
    assert.match(records[0]?.detail ?? '', /spiffe:\/\/elsewhere\.org/);
  });

  it('records no client certificate refusal for a handshake that failed for another reason (TLS 1.1)', async () => {
    await gw.auditBarrier();
    const certificateRecords = (records: readonly AuditRecord[]): number => records.filter((r) => r.reason?.startsWith('client_certificate') === true).length;
    const before = certificateRecords(await gw.audit());
    const result = await attempt(httpsPort(gw), pki.server.ca.cert, { ...presenting(pki.payments), minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, '/svc/old');
    assert.equal(result.status, null);
    assert.equal(result.handshook, false);
    await gw.auditBarrier();
    assert.equal(certificateRecords(await gw.audit()), before);
  });

  it('counts each refusal in portcullis_client_certificate_refusals_total by reason', async () => {
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const count = (reason: string): number => Number(/ (\d+)$/.exec(metrics.split('\n').find((l) => l.startsWith(`portcullis_client_certificate_refusals_total{reason="${reason}"}`)) ?? '')?.[1] ?? 0);
    assert.ok(count('client_certificate_missing') >= 2, metrics);
    assert.ok(count('client_certificate_invalid') >= 10);
    assert.ok(count('client_certificate_chain_too_deep') >= 1);
  });

  it('curl as a real client: admitted with its certificate, refused in the handshake without one', async (t) => {
    if (skipWithout(t, 'curl', 'curl as a real mTLS client')) return;
    const tls = join(gw.dir, 'tls');
    await writeFile(join(tls, 'curl.crt'), pki.orders.cert);
    await writeFile(join(tls, 'curl.key'), pki.payments.key);
    await writeFile(join(tls, 'payments.crt'), pki.payments.cert);
    await writeFile(join(tls, 'server-ca.crt'), pki.server.ca.cert);
    const curl = (args: readonly string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('curl', ['-sS', '--max-time', '10', '--cacert', join(tls, 'server-ca.crt'), '-o', '/dev/null', '-w', '%{http_code}', ...args, `https://localhost:${httpsPort(gw)}/svc/curl`],
        (err, stdout, stderr) => resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr }));
    });
    const admitted = await curl(['--cert', join(tls, 'payments.crt'), '--key', join(gw.dir, 'tls', 'curl.key'), '--resolve', `localhost:${httpsPort(gw)}:127.0.0.1`]);
    assert.equal(admitted.stdout, '200', admitted.stderr);
    const missing = async (): Promise<number> => {
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return Number(/ (\d+)$/.exec(metrics.split('\n').find((l) => l.startsWith('portcullis_client_certificate_refusals_total{reason="client_certificate_missing"}')) ?? '')?.[1] ?? 0);
    };
    const before = await missing();
    const refused = await curl(['--resolve', `localhost:${httpsPort(gw)}:127.0.0.1`]);
    // In TLS 1.3 the refusal (alert certificate_required) follows the client's finished handshake:
    // curl reports either the alert or the closed connection it meets first (35, 55 or 56).
    assert.notEqual(refused.code, 0, refused.stderr);
    assert.equal(refused.stdout, '000', 'no HTTP answer at all');
    assert.equal(await missing(), before + 1, 'refused by the gateway for the missing certificate');
    const mismatched = await curl(['--cert', join(tls, 'curl.crt'), '--key', join(tls, 'curl.key'), '--resolve', `localhost:${httpsPort(gw)}:127.0.0.1`]);
    assert.notEqual(mismatched.code, 0, 'a certificate with the wrong key never gets a handshake');
  });

  it('abstains on the plain HTTP listener: no certificate there, so the route answers 401 unauthenticated', async () => {
    const res = await fetch(`${gw.url}/svc/plain`);
    assert.equal(res.status, 401);
    assert.match(await res.text(), /unauthenticated/);
  });
});


/** One request on a kept-alive connection of `agent`, presenting `cert`. */
function keptAlive(gw: TestGateway, agent: Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${gw.httpsUrl}${path}`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('clientAuth reload', () => {
  it('revoking a certificate in the CRL and reloading refuses its next handshake; an open connection finishes on its own', async () => {
    const gw = await startGateway(config(), { beforeStart: (dir) => writeClientPki(dir, pki, []) });
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.server.ca.cert, servername: 'localhost', ...presenting(pki.orders) });
    try {
      const admitted = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.payments), '/svc/before-revoke');
      assert.equal(admitted.status, 200);
      // Orders maps to no identity here (403), which is enough to keep a verified connection open.
      assert.equal(await keptAlive(gw, agent, '/svc/kept'), 403);
      await writeCrls(gw.dir, pki, [pki.payments]);
      const reloaded = await gw.gateway.reload();
      assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
      const refused = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.payments), '/svc/after-revoke');
      assertClosedWithoutResponse(refused, 'revoked after reload');
      assert.equal((await refusals(gw, 'client_certificate_invalid', 'CERT_REVOKED')).length, 1);
      assert.equal(await keptAlive(gw, agent, '/svc/kept-again'), 403, 'the connection made before the reload still serves');
    } finally {
      agent.destroy();
      await gw.close();
    }
  });

  it('a reload with a new CA bundle trusts the added CA for new handshakes', async () => {
    const gw = await startGateway(config(), { beforeStart: (dir) => writeClientPki(dir, pki, []) });
    try {
      const before = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.unknownCa), '/svc/new-ca');
      assertClosedWithoutResponse(before, 'unknown CA before the reload');
      await writeFile(join(gw.dir, 'tls', 'clients-ca.crt'), pki.root.cert + pki.other.cert);
      const crls = await Promise.all([pki.root, pki.inter, pki.inter2, pki.other].map((ca: IssuedCertificate) => issueCrl(ca, [])));
      await writeFile(join(gw.dir, 'tls', 'clients.crl'), crls.join(''));
      const reloaded = await gw.gateway.reload();
      assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
      const result = await attempt(httpsPort(gw), pki.server.ca.cert, presenting(pki.unknownCa), '/svc/new-ca');
      assert.equal(result.status, 200, JSON.stringify(result));
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      const clientCas = metrics.split('\n').filter((l) => l.startsWith('portcullis_certificate_expiry_timestamp_seconds{') && l.includes('use="client-ca"'));
      assert.equal(clientCas.length, 2, clientCas.join('\n'));
      assert.ok(clientCas.every((l) => l.includes('name="listen.https.clientAuth.ca"')));
    } finally {
      await gw.close();
    }
  });

  it('switching clientAuth.mode by reload applies to new handshakes', async () => {
    const gw = await startGateway(config(), { beforeStart: (dir) => writeClientPki(dir, pki, []) });
    try {
      const none = await attempt(httpsPort(gw), pki.server.ca.cert, {}, '/svc/mode');
      assert.equal(none.status, null);
      await gw.writeConfig(config({ mode: 'request' }));
      assert.equal((await gw.gateway.reload()).ok, true);
      const requested = await attempt(httpsPort(gw), pki.server.ca.cert, {}, '/svc/mode');
      assert.equal(requested.status, 401, JSON.stringify(requested));
      assert.match(requested.body, /unauthenticated/);
    } finally {
      await gw.close();
    }
  });
});
