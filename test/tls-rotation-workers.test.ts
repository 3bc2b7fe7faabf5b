// Under `start --workers`, the primary watches the files and reloads every worker: each worker's
// HTTPS listener serves the replaced certificate, without a restart.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCertificate } from '../src/tls/issue-certificates.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcess, type GatewayProcess } from './harness/gateway.js';
import { freePort } from './harness/free-port.js';
import { presentedCertificate, testPki, type TestPki } from './harness/tls.js';


describe('rotation without restart under --workers', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let certs: string;
  let port: number;
  let gw: GatewayProcess;
  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    certs = await mkdtemp(join(tmpdir(), 'portcullis-certs-'));
    await writeFile(join(certs, 'server.crt'), pki.server.cert);
    await writeFile(join(certs, 'server.key'), pki.server.key, { mode: 0o600 });
    port = await freePort();
    gw = await startGatewayProcess({
      listen: { https: { port, cert: join(certs, 'server.crt'), key: join(certs, 'server.key') } },
      reload: { watchIntervalMs: 50 },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { args: ['--workers', '2'] });
  });
  after(async () => {
    await gw.stop();
    await upstream.close();
    await rm(gw.dir, { recursive: true, force: true });
    await rm(certs, { recursive: true, force: true });
  });

  it('reloads every worker when the primary sees the certificate replaced', async () => {
    assert.equal(await presentedCertificate(port, pki.ca.cert, 'localhost'), pki.server.fingerprint256);
    const renewed = await issueCertificate({ commonName: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
    for (const [name, text] of [['server.key', renewed.key], ['server.crt', renewed.cert]] as const) {
      await writeFile(join(certs, `${name}.tmp`), text, { mode: 0o600 });
      await rename(join(certs, `${name}.tmp`), join(certs, name));
    }
    assert.ok(await gw.logged('files the config uses changed; reloading', 15_000), gw.stdout.join('\n'));
    assert.ok(await gw.logged('config reloaded on every worker', 15_000), gw.stdout.join('\n'));
    // Connections are spread over the workers: every one of these handshakes sees the new certificate.
    for (let i = 0; i < 8; i++) assert.equal(await presentedCertificate(port, pki.ca.cert, 'localhost'), renewed.fingerprint256, `handshake ${i}`);
    const lines = gw.stdout.filter((l) => l.includes('files the config uses changed'));
    assert.ok(lines.every((l) => l.includes('"primary":true')), 'only the primary watches');
  });
});
