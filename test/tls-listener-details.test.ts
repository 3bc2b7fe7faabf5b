// The HTTPS listener's details: certificates chosen by SNI (swapped on reload), the TLS profile as
// real clients see it (openssl s_client, curl), OCSP stapling, and handshake failures counted and
// recorded without an HTTP answer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { configProblems } from './harness/config.js';
import { handshake, presentedCertificate, testPki, withServerCertificate, writeCertificate, type TestPki } from './harness/tls.js';
import { openssl, sClient } from './harness/openssl.js';
import { issueCertificate, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import type { AuditRecord } from '../src/audit/audit-record.js';
import { skipWithout } from './harness/commands.js';

const tlsDir = async (dir: string): Promise<string> => { const d = join(dir, 'tls'); await mkdir(d, { recursive: true }); return d; };


function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('HTTPS listener: SNI, profile, OCSP stapling, handshake failures', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let a: IssuedCertificate;
  let wild: IssuedCertificate;
  let gw: TestGateway;
  let port: number;
  const config = (): ConfigObject => ({
    listen: {
      https: {
        cert: 'tls/server.crt', key: 'tls/server.key', ocspStaple: 'tls/server.ocsp', handshakeTimeoutMs: 300,
        certificates: [{ cert: 'tls/a.crt', key: 'tls/a.key' }, { cert: 'tls/wild.crt', key: 'tls/wild.key', names: ['*.wild.example.test'] }],
      },
    },
    upstreams: { echo: { targets: [upstream.url] } },
    routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
  });

  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    a = await issueCertificate({ commonName: 'a', dns: ['a.example.test', 'A2.example.test'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
    wild = await issueCertificate({ commonName: 'wild', dns: ['*.wild.example.test'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
    gw = await startGateway(config(), {
      beforeStart: async (dir) => {
        const d = await tlsDir(dir);
        await writeCertificate(d, 'server', pki.server);
        await writeCertificate(d, 'a', a);
        await writeCertificate(d, 'wild', wild);
        await writeFile(join(d, 'server.ocsp'), await ocspResponse(d, pki, pki.server));
      },
    });
    port = Number(new URL(gw.httpsUrl ?? '').port);
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('chooses the certificate by SNI: exact names, one-label wildcards, the default otherwise', async () => {
    const ca = pki.ca.cert;
    assert.equal(await presentedCertificate(port, ca, 'a.example.test'), a.fingerprint256);
    assert.equal(await presentedCertificate(port, ca, 'A.EXAMPLE.TEST'), a.fingerprint256, 'names compare lower-cased');
    assert.equal(await presentedCertificate(port, ca, 'a2.example.test'), a.fingerprint256, 'every DNS SAN by default');
    assert.equal(await presentedCertificate(port, ca, 'x.wild.example.test'), wild.fingerprint256);
    assert.equal(await presentedCertificate(port, ca, 'wild.example.test'), pki.server.fingerprint256, 'a wildcard never covers its apex');
    assert.equal(await presentedCertificate(port, ca, 'y.x.wild.example.test'), pki.server.fingerprint256, 'a wildcard covers one label only');
    assert.equal(await presentedCertificate(port, ca, 'unknown.test'), pki.server.fingerprint256);
    assert.equal(await presentedCertificate(port, ca), pki.server.fingerprint256, 'no SNI: the default certificate');
  });

  it('lists every certificate in the expiry metric', async () => {
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    for (const [name, cert] of [['listen.https', pki.server], ['listen.https.certificates[0]', a], ['listen.https.certificates[1]', wild]] as const) {
      assert.ok(metrics.includes(`name="${name}"`) && metrics.includes(`fingerprint="${cert.fingerprint256}"`), name);
    }
  });

  it('swaps the SNI certificates on reload: the next handshake gets the new one', async () => {
    const renewed = await issueCertificate({ commonName: 'a', dns: ['a.example.test'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
    await writeCertificate(join(gw.dir, 'tls'), 'a', renewed);
    const reloaded = await gw.gateway.reload();
    assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
    assert.equal(await presentedCertificate(port, pki.ca.cert, 'a.example.test'), renewed.fingerprint256);
    assert.equal(await presentedCertificate(port, pki.ca.cert, 'a2.example.test'), pki.server.fingerprint256, 'a name the renewed certificate no longer has');
  });

  it('staples the OCSP response when a client asks for the status (openssl s_client -status)', async () => {
    const status = (servername: string) => openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-status']);
    const run = await status('localhost');
    assert.match(run.output, /OCSP Response Status: successful/, run.output);
    assert.match(run.output, /Cert Status: good/);
    const none = await status('a.example.test');
    assert.match(none.output, /OCSP response: no response sent/, 'no staple configured for that certificate');

    // A new response in the file is stapled after the reload.
    await writeFile(join(gw.dir, 'tls', 'server.ocsp'), await ocspResponse(join(gw.dir, 'tls'), pki, pki.server, true));
    const reloaded = await gw.gateway.reload();
    assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
    assert.match((await status('localhost')).output, /Cert Status: revoked/);
  });

  it('refuses TLS 1.1, weak ciphers and plain RSA key exchange (openssl s_client), accepts an ECDHE AEAD suite', async () => {
    const tls11 = await sClient(port, ['-servername', 'localhost', '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    assert.notEqual(tls11.code, 0, tls11.output);
    assert.match(tls11.output, /protocol version|unsupported protocol|no protocols available/i);
    for (const cipher of ['AES128-SHA', 'DES-CBC3-SHA@SECLEVEL=0', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-SHA256']) {
      const weak = await sClient(port, ['-servername', 'localhost', '-tls1_2', '-cipher', cipher]);
      assert.notEqual(weak.code, 0, `${cipher}: ${weak.output}`);
    }
    const good = await sClient(port, ['-servername', 'localhost', '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']);
    assert.equal(good.code, 0, good.output);
    assert.match(good.output, /Protocol version: TLSv1\.2/);
  });

  it('serves curl over TLS 1.3 with --cacert and --resolve', async (t) => {
    if (skipWithout(t, 'curl', 'curl as a real client of the HTTPS listener')) return;
    const caFile = join(gw.dir, 'tls', 'ca.pem');
    await writeFile(caFile, pki.ca.cert);
    const out = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['-sS', '--max-time', '10', '--tlsv1.3', '--cacert', caFile, '--resolve', `localhost:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}', `https://localhost:${port}/open/curl`],
        { timeout: 15_000 }, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`))));
    });
    assert.equal(out, '200 0');
  });

  it('counts and records handshake failures by reason, never answering in plain HTTP', async () => {
    const metric = async (reason: string): Promise<number> => metricValue(await (await fetch(`${gw.adminUrl}/metrics`)).text(), 'portcullis_tls_handshake_failures_total', `reason="${reason}"`);
    const [http0, timeout0, version0] = [await metric('http_request'), await metric('timeout'), await metric('protocol_version')];

    // Plain HTTP sent to the TLS port: the connection closes without an HTTP answer.
    const plain = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    plain.on('data', (c: Buffer) => received.push(c));
    plain.on('error', () => undefined);
    plain.write('GET /open/x HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await once(plain, 'close');
    assert.ok(!Buffer.concat(received).toString('latin1').startsWith('HTTP/'), 'no plain HTTP answer');

    // A client that never sends its hello: closed after handshakeTimeoutMs.
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => undefined);
    await once(silent, 'close');

    const old = await handshake(port, { ca: pki.ca.cert, servername: 'localhost', minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.equal(old.ok, false);

    assert.equal(await metric('http_request'), http0 + 1);
    assert.equal(await metric('timeout'), timeout0 + 1);
    assert.equal(await metric('protocol_version'), version0 + 1);
    const records = await gw.auditWhere((r) => r.reason === 'tls_handshake_failed' && typeof r.detail === 'string' && /http_request|timeout/.test(r.detail));
    assert.ok(records.length >= 2, JSON.stringify(records));
    const http = records.find((r) => String(r.detail).includes('http_request'));
    assert.equal(http?.clientIp, '127.0.0.1');
    assert.equal(http?.stage, 'listener');
    assert.equal(http?.decision, 'deny');
    assert.match(String(http?.detail), /^handshake failed: http_request \(ERR_SSL_HTTP_REQUEST\); sni none$/);
    assert.equal(upstream.received.filter((r) => r.url === '/open/x').length, 0, 'nothing forwarded');
  });
});

describe('HTTPS listener: a handshake flood', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: withServerCertificate(pki) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  /** Sends plain HTTP to the TLS port and resolves when the listener has closed the connection. */
  const plainHttp = async (port: number): Promise<void> => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'close');
  };

  it('counts every failure, records at most the budget, and summarises the rest in the next record', async () => {
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    const flood = 60;
    const started = Date.now();
    await Promise.all(Array.from({ length: flood }, () => plainHttp(port)));
    const elapsedMs = Date.now() - started;
    // Then one failure at a time until one is recorded again (a token comes back every 100 ms): that
    // record accounts for every failure before it.
    const recorded = async (): Promise<readonly AuditRecord[]> => { await gw.auditBarrier(); return gw.auditWhere((r) => r.reason === 'tls_handshake_failed', 50).catch(() => []); };
    const afterFlood = (await recorded()).length;
    let extra = 0;
    while (extra < 200) {
      await plainHttp(port);
      extra++;
      if ((await recorded()).length > afterFlood) break;
    }
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.equal(metricValue(metrics, 'portcullis_tls_handshake_failures_total', 'reason="http_request"'), flood + extra);
    const records = await gw.auditWhere((r) => r.reason === 'tls_handshake_failed');
    const budget = 10 + Math.ceil(((Date.now() - started) / 1000) * 10);
    assert.ok(records.length <= budget, `${records.length} records for ${flood + extra} failures in ${elapsedMs} ms and the tail`);
    assert.ok(records.length < flood + extra, 'fewer records than failures');
    // The last failure was recorded: every failure is one record or counted in the next one's summary.
    const accounted = records.reduce((n, r) => n + 1 + Number(/and (\d+) more/.exec(String(r.detail))?.[1] ?? 0), 0);
    assert.equal(accounted, flood + extra);
    const summary = records.map((r) => String(r.detail)).find((d) => d.includes('more since'));
    assert.match(summary ?? '', /^handshake failed: http_request \(ERR_SSL_HTTP_REQUEST\); sni none … and \d+ more since \d{4}-\d\d-\d\dT/);
  });
});

describe('HTTPS listener: the modern profile', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', profile: 'modern' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: withServerCertificate(pki) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('accepts TLS 1.3 only', async () => {
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    const tls12 = await sClient(port, ['-servername', 'localhost', '-tls1_2']);
    assert.notEqual(tls12.code, 0, tls12.output);
    assert.match(tls12.output, /protocol version/i);
    const tls13 = await sClient(port, ['-servername', 'localhost', '-tls1_3']);
    assert.equal(tls13.code, 0, tls13.output);
    assert.match(tls13.output, /Protocol version: TLSv1\.3/);
  });

  it('takes a profile change on reload, for new handshakes', async () => {
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    await gw.writeConfig({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', profile: 'intermediate' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    });
    const reloaded = await gw.gateway.reload();
    assert.equal(reloaded.ok && reloaded.restartRequired.length, 0, JSON.stringify(reloaded));
    const tls12 = await sClient(port, ['-servername', 'localhost', '-tls1_2']);
    assert.equal(tls12.code, 0, tls12.output);
  });
});

describe('HTTPS listener config: SNI certificates, staples, modes', () => {
  let dir: string;
  let pki: TestPki;
  const base = 'upstreams: { u: { targets: [http://127.0.0.1:1] } }\nroutes: [{ name: r, match: { path: /a }, upstream: u, public: true }]\n';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-sni-config-'));
    pki = await testPki();
    await writeCertificate(dir, 'server', pki.server);
    await writeCertificate(dir, 'one', await issueCertificate({ commonName: 'one', dns: ['api.example.test', '*.example.test'] }, pki.ca));
    await writeCertificate(dir, 'two', await issueCertificate({ commonName: 'two', dns: ['api.example.test'] }, pki.ca));
    await writeCertificate(dir, 'cn', await issueCertificate({ commonName: 'cn.example.test' }, pki.ca));
    await writeFile(join(dir, 'text.ocsp'), 'not DER\n');
  });
  after(async () => { await rm(dir, { recursive: true, force: true }); });
  const problems = (listen: string): string[] => configProblems(`listen:\n${listen}\n${base}`, {}, join(dir, 'gateway.yaml'));

  it('refuses a server name two certificates claim, naming both', () => {
    const found = problems('  https:\n    cert: server.crt\n    key: server.key\n    certificates:\n      - { cert: one.crt, key: one.key }\n      - { cert: two.crt, key: two.key }');
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0] ?? '', /gateway\.yaml:7:\d+: listen\.https\.certificates\[1\]\.cert: "api\.example\.test" is served by listen\.https\.certificates\[0\] already/);
  });

  it('refuses a listed name that is no server name, and a wildcard of a top-level domain', () => {
    const found = problems('  https:\n    cert: server.crt\n    key: server.key\n    certificates:\n      - { cert: two.crt, key: two.key, names: [ok.example.test, "a b", "*.test"] }').join('\n');
    assert.match(found, /listen\.https\.certificates\[0\]\.names\[1\]: "a b" is not a server name/);
    assert.match(found, /listen\.https\.certificates\[0\]\.names\[2\]: "\*\.test" is not a server name/);
    assert.doesNotMatch(found, /names\[0\]/);
  });

  it('takes the CN when a certificate has no DNS name', () => {
    assert.deepEqual(problems('  https:\n    cert: server.crt\n    key: server.key\n    certificates: [{ cert: cn.crt, key: cn.key }]'), []);
  });

  it('checks every SNI certificate like the default one', () => {
    const found = problems('  https:\n    cert: server.crt\n    key: server.key\n    certificates: [{ cert: one.crt, key: two.key }]').join('\n');
    assert.match(found, /listen\.https\.certificates\[0\]\.key: two\.key is not the private key of the certificate in one\.crt/);
  });

  it('refuses an OCSP staple that is not a DER response, or missing', () => {
    assert.match(problems('  https: { cert: server.crt, key: server.key, ocspStaple: text.ocsp }').join('\n'), /listen\.https\.ocspStaple: text\.ocsp is not a DER OCSP response/);
    assert.match(problems('  https: { cert: server.crt, key: server.key, ocspStaple: none.ocsp }').join('\n'), /listen\.https\.ocspStaple: cannot read none\.ocsp: ENOENT/);
  });

  it('refuses mode redirect or off without an HTTPS listener', () => {
    for (const mode of ['redirect', 'off']) {
      const found = problems(`  http: { mode: ${mode} }`);
      assert.equal(found.length, 1);
      assert.match(found[0] ?? '', new RegExp(`gateway\\.yaml:2:\\d+: listen\\.http\\.mode: ${mode} needs an HTTPS listener`));
    }
    assert.match(problems('  http: { mode: tunnel }').join('\n'), /listen\.http\.mode/);
  });
});

/**
 * A DER OCSP response saying `cert` is good, signed by the CA itself (RFC 6960 §4.2.2.2 allows the
 * issuer to sign), made with `openssl ocsp` from an index file in `dir`.
 */
async function ocspResponse(dir: string, pki: TestPki, cert: IssuedCertificate, revoked = false): Promise<Buffer> {
  const work = await mkdtemp(join(dir, 'ocsp-'));
  try {
    const x = new X509Certificate(cert.cert);
    const expiry = new Date(x.validTo).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    const revokedAt = new Date(Date.now() - 3_600_000).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    await writeFile(join(work, 'index.txt'), `${revoked ? 'R' : 'V'}\t${expiry}\t${revoked ? revokedAt : ''}\t${x.serialNumber}\tunknown\t/CN=localhost\n`);
    await writeFile(join(work, 'ca.crt'), pki.ca.cert);
    await writeFile(join(work, 'ca.key'), pki.ca.key);
    await writeFile(join(work, 'cert.crt'), cert.cert);
    const req = await openssl(['ocsp', '-issuer', join(work, 'ca.crt'), '-cert', join(work, 'cert.crt'), '-no_nonce', '-reqout', join(work, 'req.der')]);
    assert.equal(req.code, 0, req.output);
    const res = await openssl(['ocsp', '-index', join(work, 'index.txt'), '-rsigner', join(work, 'ca.crt'), '-rkey', join(work, 'ca.key'), '-CA', join(work, 'ca.crt'),
      '-reqin', join(work, 'req.der'), '-respout', join(work, 'resp.der'), '-ndays', '1']);
    assert.equal(res.code, 0, res.output);
    return await readFile(join(work, 'resp.der'));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
