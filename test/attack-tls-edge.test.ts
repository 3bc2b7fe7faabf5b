// Hostile input at the TLS edge: what a client with no credential at all can make the HTTPS
// listener spend, and what it can make the gateway write.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { attempt, clientPki, presenting, writeClientPki, type ClientPki } from './harness/mtls.js';
import type { AuditRecord } from '../src/audit/audit-record.js';

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('clientAuth.mode require: who was refused', () => {
  let pki: ClientPki;
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    pki = await clientPki();
    upstream = await startEchoUpstream();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', handshakeTimeoutMs: 200, clientAuth: { mode: 'require', ca: 'tls/clients-ca.crt', crl: 'tls/clients.crl' } } },
      upstreams: { echo: { targets: [upstream.url] } },
      authenticators: { services: { type: 'mtls', identities: [{ match: { spiffe: 'spiffe://example.org/ns/payments/**' } }] } },
      routes: [{ name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'] }],
    }, { beforeStart: (dir) => writeClientPki(dir, pki) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('records the client address of a handshake the listener timed out', async () => {
    const socket = connect(Number(new URL(gw.httpsUrl ?? '').port), '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'close');
    const records = await gw.auditWhere((r) => r.reason === 'tls_handshake_failed' && String(r.detail).includes('timeout'));
    assert.equal(records.length, 1, JSON.stringify(records));
    assert.equal(records[0]?.clientIp, '127.0.0.1');
  });

  it('records the client address of every refused handshake, a certificate that did not verify included', async () => {
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      await attempt(port, pki.server.ca.cert, { maxVersion }, '/svc/who');
      await attempt(port, pki.server.ca.cert, { ...presenting(pki.unknownCa), maxVersion }, '/svc/who');
      await attempt(port, pki.server.ca.cert, { ...presenting(pki.revoked), maxVersion }, '/svc/who');
    }
    await gw.auditBarrier();
    const records = (await gw.audit()).filter((r) => r.stage === 'listener' && String(r.reason).startsWith('client_certificate_'));
    assert.equal(records.length, 6, JSON.stringify(records));
    for (const r of records) assert.equal(r.clientIp, '127.0.0.1', `${String(r.reason)}: ${String(r.detail)} has no client address`);
  });
});

describe('clientAuth.mode require: a flood of refused client certificate handshakes', () => {
  let pki: ClientPki;
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    pki = await clientPki();
    upstream = await startEchoUpstream();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'require', ca: 'tls/clients-ca.crt', crl: 'tls/clients.crl' } } },
      upstreams: { echo: { targets: [upstream.url] } },
      authenticators: { services: { type: 'mtls', identities: [{ match: { spiffe: 'spiffe://example.org/ns/payments/**' } }] } },
      routes: [{ name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'] }],
    }, { beforeStart: (dir) => writeClientPki(dir, pki) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const port = (): number => Number(new URL(gw.httpsUrl ?? '').port);
  const refusalRecords = async (): Promise<readonly AuditRecord[]> => {
    await gw.auditBarrier();
    return (await gw.audit()).filter((r) => r.stage === 'listener' && String(r.reason).startsWith('client_certificate_'));
  };

  it('counts every refusal, records at most a burst of 50 and 10 a second, and summarises the rest in the next record', async () => {
    const flood = 120;
    const started = Date.now();
    // Half without a certificate, half with one from a CA the listener does not trust: no credential either way.
    await Promise.all(Array.from({ length: flood }, (_, i) => attempt(port(), pki.server.ca.cert, i % 2 === 0 ? {} : presenting(pki.unknownCa), '/svc/flood', [], 10_000)));
    // Then one refusal at a time until one is recorded again: that record accounts for the ones before it.
    const afterFlood = (await refusalRecords()).length;
    let extra = 0;
    while (extra < 200) {
      await attempt(port(), pki.server.ca.cert, {}, '/svc/flood');
      extra++;
      if ((await refusalRecords()).length > afterFlood) break;
    }
    const elapsedMs = Date.now() - started;
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const counted = metricValue(metrics, 'portcullis_client_certificate_refusals_total', 'reason="client_certificate_missing"') +
      metricValue(metrics, 'portcullis_client_certificate_refusals_total', 'reason="client_certificate_invalid"');
    assert.equal(counted, flood + extra, 'every refusal is counted');
    const records = await refusalRecords();
    const budget = 50 + Math.ceil((elapsedMs / 1000) * 10);
    assert.ok(records.length <= budget, `${records.length} records for ${flood + extra} refusals in ${elapsedMs} ms: the trail is flooded`);
    const accounted = records.reduce((n, r) => n + 1 + Number(/and (\d+) more/.exec(String(r.detail))?.[1] ?? 0), 0);
    assert.equal(accounted, flood + extra, 'every refusal is a record or counted in the next record\'s summary');
    assert.equal(upstream.received.length, 0, 'nothing forwarded');
  });
});
