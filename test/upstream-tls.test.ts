// Encrypted upstreams: https:// targets are verified against the configured CAs, the name and the
// pins; the gateway presents its client certificate to mTLS upstreams. Every TLS failure is a 502
// with a precise code and an audit record that says why, and the upstream never receives the
// request. Real https servers on loopback, certificates issued per run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { issueCertificate, issueCertificateAuthority, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

const DAY_MS = 86_400_000;

/** A real https upstream on 127.0.0.1 that counts the requests it receives and answers with the client certificate's CN. */
interface TlsUpstream {
  readonly server: Server;
  readonly url: string;
  requests: number;
}

async function tlsUpstream(options: { cert: string; key: string; ca?: string; requireClientCert?: boolean; maxVersion?: 'TLSv1.2' }): Promise<TlsUpstream> {
  const upstream: { server: Server | null; requests: number } = { server: null, requests: 0 };
  const server = createServer({
    cert: options.cert, key: options.key,
    ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
    ...(options.requireClientCert === true ? { ca: options.ca, requestCert: true, rejectUnauthorized: true } : {}),
  }, (req, res) => {
    upstream.requests++;
    const peer = req.socket instanceof TLSSocket ? req.socket.getPeerCertificate() : null;
    res.writeHead(200, { 'content-type': 'application/json' });
    const sni = req.socket instanceof TLSSocket ? req.socket.servername : null;
    res.end(JSON.stringify({ path: req.url, clientSubject: peer?.subject?.CN ?? null, sni: typeof sni === 'string' ? sni : null, host: req.headers.host }));
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(upstream, { server, url });
}

async function closeUpstream(u: TlsUpstream): Promise<void> {
  u.server.closeAllConnections();
  await new Promise<void>((done) => u.server.close(() => done()));
}

/** `sha256/<base64>` of a certificate's SubjectPublicKeyInfo, as curl --pinnedpubkey takes it. */
function pinOf(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256/${createHash('sha256').update(spki).digest('base64')}`;
}

const get = (gw: TestGateway, path: string) => rawRequest(gw.port, requestHead('GET', path), { settleMs: 0 });

const route = (name: string, upstream = name): ConfigObject => ({ name, match: { path: `/${name}/**` }, upstream, public: true });

let ca: IssuedCertificate;
let otherCa: IssuedCertificate;
let clientCa: IssuedCertificate;
let server: IssuedCertificate;
let expired: IssuedCertificate;
let client: IssuedCertificate;
let good: TlsUpstream;
let stale: TlsUpstream;
let mutual: TlsUpstream;
let legacy: TlsUpstream;
let gw: TestGateway;

before(async () => {
  [ca, otherCa, clientCa] = await Promise.all([
    issueCertificateAuthority('Upstream Test CA'), issueCertificateAuthority('Other CA'), issueCertificateAuthority('Client CA'),
  ]);
  const now = Date.now();
  [server, expired, client] = await Promise.all([
    issueCertificate({ commonName: 'orders.internal', dns: ['orders.internal'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, ca),
    issueCertificate({ commonName: 'stale.internal', dns: ['stale.internal'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'],
      notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) }, ca),
    issueCertificate({ commonName: 'portcullis-gateway', extendedKeyUsage: ['clientAuth'] }, clientCa),
  ]);
  [good, stale, mutual, legacy] = await Promise.all([
    tlsUpstream(server),
    tlsUpstream(expired),
    tlsUpstream({ ...server, ca: clientCa.cert, requireClientCert: true }),
    tlsUpstream({ ...server, maxVersion: 'TLSv1.2' }),
  ]);
  const tls = (extra: Record<string, unknown>) => ({ ca: 'ca.pem', ...extra });
  gw = await startGateway({
    upstreams: {
      trusted: { targets: [good.url], tls: tls({}) },
      byname: { targets: [good.url], tls: tls({ servername: 'orders.internal' }) },
      wrongca: { targets: [good.url], tls: { ca: ['other-ca.pem'] } },
      defaultroots: { targets: [good.url] },
      expired: { targets: [stale.url], tls: tls({}) },
      mismatch: { targets: [good.url], tls: tls({ servername: 'payments.internal' }) },
      pinned: { targets: [good.url], tls: tls({ pins: [pinOf(otherCa.cert), pinOf(server.cert)] }) },
      wrongpin: { targets: [good.url], tls: tls({ pins: [pinOf(otherCa.cert)] }) },
      mtls: { targets: [mutual.url], tls: tls({ cert: 'client.pem', key: 'client.key' }) },
      nocert: { targets: [mutual.url], tls: tls({}) },
      tls12: { targets: [legacy.url], tls: tls({}) },
      tls13: { targets: [legacy.url], tls: tls({ minVersion: 'TLSv1.3' }) },
      insecure: { targets: [stale.url], tls: { insecureSkipVerify: true } },
      preserve: { targets: [good.url], preserveHost: true, tls: tls({}) },
      preservenamed: { targets: [good.url], preserveHost: true, tls: tls({ servername: 'orders.internal' }) },
    },
    routes: ['trusted', 'byname', 'wrongca', 'defaultroots', 'expired', 'mismatch', 'pinned', 'wrongpin', 'mtls', 'nocert', 'tls12', 'tls13', 'insecure', 'preserve', 'preservenamed'].map((n) => route(n)),
  }, {
    beforeStart: async (dir) => {
      await Promise.all([
        writeFile(join(dir, 'ca.pem'), ca.cert),
        writeFile(join(dir, 'other-ca.pem'), otherCa.cert),
        writeFile(join(dir, 'client.pem'), client.cert),
        writeFile(join(dir, 'client.key'), client.key),
      ]);
    },
  });
});

after(async () => {
  await gw.close();
  await Promise.all([good, stale, mutual, legacy].map(closeUpstream));
});

void describe('https upstreams: trust, names, pins, client certificates', () => {
  void test('a chain from the configured CA, verified against the IP SAN of an IP target, is forwarded (200)', async () => {
    const before = good.requests;
    const res = await get(gw, '/trusted/a');
    assert.equal(res.status, 200, res.body);
    assert.equal(good.requests, before + 1);
  });

  void test('tls.servername is sent in SNI and verified: a name the certificate holds is forwarded', async () => {
    assert.equal((await get(gw, '/byname/a')).status, 200);
  });

  void test('an SPKI pin that matches the leaf key is forwarded', async () => {
    assert.equal((await get(gw, '/pinned/a')).status, 200);
  });

  void test('an mTLS upstream accepts the gateway client certificate and sees its subject', async () => {
    const res = await get(gw, '/mtls/a');
    assert.equal(res.status, 200, res.body);
    assert.equal((JSON.parse(res.body) as { clientSubject: string }).clientSubject, 'portcullis-gateway');
  });

  const refusals: readonly { path: string; code: string; detail: RegExp; upstream: () => TlsUpstream }[] = [
    { path: '/wrongca/a', code: 'upstream_tls_untrusted', detail: /unknown CA|UNABLE_TO_VERIFY_LEAF_SIGNATURE/, upstream: () => good },
    { path: '/defaultroots/a', code: 'upstream_tls_untrusted', detail: /unknown CA/, upstream: () => good },
    { path: '/expired/a', code: 'upstream_tls_untrusted', detail: /expired.*CERT_HAS_EXPIRED/, upstream: () => stale },
    { path: '/mismatch/a', code: 'upstream_tls_untrusted', detail: /name mismatch.*payments\.internal/, upstream: () => good },
    { path: '/wrongpin/a', code: 'upstream_tls_pin_mismatch', detail: /matches no pin.*sha256\//, upstream: () => good },
    { path: '/nocert/a', code: 'upstream_tls_handshake', detail: /client certificate/, upstream: () => mutual },
  ];
  for (const r of refusals) {
    void test(`${r.path}: 502 ${r.code}, one audit record saying why, nothing received upstream`, async () => {
      const before = r.upstream().requests;
      const res = await get(gw, r.path);
      const doc = assertProblem(res, 502, r.code);
      assert.doesNotMatch(doc.detail, /CERT|ERR_|sha256|127\.0\.0\.1/, 'the client sees no TLS internals');
      const record = await oneAuditRecordFor(gw, r.path);
      assert.equal(record.reason, r.code);
      assert.match(record.detail ?? '', r.detail);
      assert.equal(r.upstream().requests, before, 'the upstream received no request');
    });
  }

  void test('minVersion: a TLS 1.2 upstream is accepted by default and refused under minVersion TLSv1.3', async () => {
    assert.equal((await get(gw, '/tls12/a')).status, 200);
    const before = legacy.requests;
    assertProblem(await get(gw, '/tls13/a'), 502, 'upstream_tls_handshake');
    assert.match((await oneAuditRecordFor(gw, '/tls13/a')).detail ?? '', /no TLS version both sides accept/);
    assert.equal(legacy.requests, before);
  });

  void test('preserveHost never lets the client\'s Host choose the TLS name verified', async () => {
    const seen = async (path: string, host: string): Promise<{ sni: string | null; host: string }> => {
      const res = await rawRequest(gw.port, [`GET ${path} HTTP/1.1`, `Host: ${host}`, '', ''].join('\r\n'), { settleMs: 0 });
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body) as { sni: string | null; host: string };
      return { sni: body.sni, host: body.host };
    };
    // An IP target: no SNI, the IP SAN verified, whatever Host the client sends (one the certificate does not hold).
    for (const host of ['gw.test', 'payments.internal', 'orders.internal']) {
      assert.deepEqual(await seen('/preserve/a', host), { sni: null, host });
    }
    // A configured name: always that name in SNI, while the upstream gets the client's Host.
    for (const host of ['gw.test', 'payments.internal']) {
      assert.deepEqual(await seen('/preservenamed/a', host), { sni: 'orders.internal', host });
    }
  });

  void test('insecureSkipVerify accepts an expired certificate, and is logged and shown in /readyz', async () => {
    const before = stale.requests;
    assert.equal((await get(gw, '/insecure/a')).status, 200);
    assert.equal(stale.requests, before + 1);
    assert.ok(gw.logs.some((l) => l.includes('"upstream":"insecure"') && l.includes('insecureSkipVerify')), 'warning logged at start');
    const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { components: { gateway: { ready: boolean; insecureUpstreams?: string[] } } };
    assert.deepEqual(ready.components.gateway.insecureUpstreams, ['insecure']);
    assert.equal(ready.components.gateway.ready, true);
  });

  void test('the expiry of every configured CA and client certificate is a metric', async () => {
    const { text } = await gw.gateway.metricsText();
    const seconds = (pem: string): number => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
    const value = (kind: string, name: string, subject: string): string | undefined => {
      const prefix = `portcullis_certificate_expiry_timestamp_seconds{use="${kind}",name="${name}",subject="${subject}",`;
      return text.split('\n').find((l) => l.startsWith(prefix))?.replace(/^.*\} /, '');
    };
    assert.equal(value('upstream-ca', 'trusted', 'CN=Upstream Test CA'), String(seconds(ca.cert)));
    assert.equal(value('upstream-ca', 'wrongca', 'CN=Other CA'), String(seconds(otherCa.cert)));
    assert.equal(value('upstream-client', 'mtls', 'CN=portcullis-gateway'), String(seconds(client.cert)));
    assert.ok(!text.includes('name="defaultroots"'), 'the default trust store is not listed');
  });
});
