// Rotation without restart: the files a running config read are polled and a stable change
// reloads it (a certificate and its key replaced one after the other reload once); under load no
// request fails while the server certificate and the client CA bundle are replaced by rename; a bad replacement is refused and the old
// keeps serving; `audit rotate-key` is taken by the running gateway and the whole trail verifies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdir, mkdtemp, readdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../src/observability/logger.js';
import { FileWatch } from '../src/server/file-watch.js';
import { rotateSigningKey } from '../src/audit/signing-key.js';
import { issueCertificate, issueCertificateAuthority, type IssuedCertificate } from '../src/tls/issue-certificates.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { httpsGet, presentedCertificate, testPki, type TestPki } from './harness/tls.js';
import { ManualClock } from './harness/manual-clock.js';
import { verifyJson } from './harness/audit-verify-cli.js';

interface LoadResult { readonly errors: number; readonly timeouts: number; readonly non2xx: number; readonly '2xx': number }
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<LoadResult>;

const quiet = () => createLogger('error', new PassThrough());

/** Resolves once `check` holds, trying every `everyMs`; fails after `timeoutMs` (a bound, not a wait). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Writes `text` to `path` by a rename, as certificate managers do. */
async function replace(path: string, text: string): Promise<void> {
  const tmp = `${path}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}


describe('file watch: a stable change reloads once', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-watch-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('waits until a certificate and its key are both replaced and stable, then reloads once', async () => {
    const [cert, key] = [join(dir, 'a.crt'), join(dir, 'a.key')];
    await writeFile(cert, 'one');
    await writeFile(key, 'one');
    const reloads: (readonly string[])[] = [];
    const watch = new FileWatch(new ManualClock(), quiet(), (changed) => { reloads.push(changed); return Promise.resolve(); });
    watch.configure({ enabled: true, intervalMs: 50, files: [key, cert] });
    await watch.poll();
    assert.equal(reloads.length, 0, 'nothing changed');
    await replace(cert, 'two');
    await watch.poll();
    assert.equal(reloads.length, 0, 'a change is first seen, not taken');
    await replace(key, 'two');
    await watch.poll();
    assert.equal(reloads.length, 0, 'the key changed since the last poll: not stable yet');
    await watch.poll();
    assert.deepEqual(reloads, [[cert, key]], 'stable for one interval: one reload for both files');
    await watch.poll();
    assert.equal(reloads.length, 1, 'taken once');
    watch.stop();
  });

  it('follows a Kubernetes-style symlink swap, a file that disappears, and one that appears', async () => {
    const v1 = join(dir, 'v1');
    const v2 = join(dir, 'v2');
    await mkdir(v1);
    await mkdir(v2);
    await writeFile(join(v1, 'tls.crt'), 'same size');
    await writeFile(join(v2, 'tls.crt'), 'same size');
    await symlink('v1', join(dir, '..data'));
    await symlink(join('..data', 'tls.crt'), join(dir, 'tls.crt'));
    const file = join(dir, 'tls.crt');
    let reloads = 0;
    const watch = new FileWatch(new ManualClock(), quiet(), () => { reloads++; return Promise.resolve(); });
    watch.configure({ enabled: true, intervalMs: 50, files: [file] });
    // The swap: a new link renamed over ..data, as the kubelet does.
    await symlink('v2', join(dir, '..data.tmp'));
    await rename(join(dir, '..data.tmp'), join(dir, '..data'));
    await watch.poll();
    await watch.poll();
    assert.equal(reloads, 1, 'a new inode behind the same path and the same size');
    await unlink(join(v2, 'tls.crt'));
    await watch.poll();
    await watch.poll();
    assert.equal(reloads, 2, 'a file gone is a change (the reload then names it)');
    await writeFile(join(v2, 'tls.crt'), 'back');
    await watch.poll();
    await watch.poll();
    assert.equal(reloads, 3, 'and so is one that appears');
    watch.stop();
  });

  it('survives a reload that throws, and takes the next change', async () => {
    const file = join(dir, 'c.pem');
    await writeFile(file, '1');
    let calls = 0;
    const watch = new FileWatch(new ManualClock(), quiet(), () => { calls++; return Promise.reject(new Error('boom')); });
    watch.configure({ enabled: true, intervalMs: 50, files: [file] });
    await replace(file, '2');
    await watch.poll();
    await watch.poll();
    await replace(file, '3');
    await watch.poll();
    await watch.poll();
    assert.equal(calls, 2);
    watch.stop();
  });

  it('polls on the clock it is given, and not at all when watchFiles is off', async () => {
    const file = join(dir, 'd.pem');
    await writeFile(file, '1');
    const clock = new ManualClock();
    let calls = 0;
    const watch = new FileWatch(clock, quiet(), () => { calls++; return Promise.resolve(); });
    watch.configure({ enabled: false, intervalMs: 50, files: [file] });
    await replace(file, '2');
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 0);
    watch.configure({ enabled: true, intervalMs: 50, files: [file] });
    await replace(file, '3');
    for (let i = 0; i < 3 && calls === 0; i++) {
      clock.advance(50);
      // Each poll stats and settles on the event loop before the next is scheduled.
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(calls, 1);
    watch.stop();
  });
});

describe('rotation without restart, under load', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  let port: number;
  let tls: string;
  const cert = (issued: IssuedCertificate): Promise<void> => replace(join(tls, 'server.crt'), issued.cert);
  const key = (issued: IssuedCertificate): Promise<void> => replace(join(tls, 'server.key'), issued.key);
  const fresh = (): Promise<IssuedCertificate> => issueCertificate({ commonName: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, pki.ca);
  // Client certificates: the bundle trusts clientCaA at start; clientCaB is added under load.
  let clientCaA: IssuedCertificate;
  let clientCaB: IssuedCertificate;
  let clientB: IssuedCertificate;

  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    clientCaA = await issueCertificateAuthority('Clients CA A');
    clientCaB = await issueCertificateAuthority('Clients CA B');
    clientB = await issueCertificate({ commonName: 'rotated-service', extendedKeyUsage: ['clientAuth'] }, clientCaB);
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'request', ca: 'tls/clients-ca.crt' } } },
      reload: { watchIntervalMs: 50 },
      upstreams: { echo: { targets: [upstream.url] } },
      authenticators: { services: { type: 'mtls', subjectFrom: 'cn', identities: [{ match: { cn: 'rotated-service' }, roles: ['service'] }] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true },
        { name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'] },
      ],
    }, {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'tls'));
        await writeFile(join(dir, 'tls', 'server.crt'), pki.server.cert);
        await writeFile(join(dir, 'tls', 'server.key'), pki.server.key);
        await writeFile(join(dir, 'tls', 'clients-ca.crt'), clientCaA.cert);
      },
    });
    port = Number(new URL(gw.httpsUrl ?? '').port);
    tls = join(gw.dir, 'tls');
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('swaps certificates and a CA bundle replaced by rename while requests flow: none fails, new handshakes see each new certificate and CA, a bad key is refused', async () => {
    const amount = 1500;
    // Bounded by count (and a timeout per request); connections are re-made every 10 requests so
    // handshakes keep happening across each swap.
    const load = autocannon({ url: `${gw.httpsUrl}/open/load`, connections: 4, amount, reconnectRate: 10, timeout: 10 });

    const second = await fresh();
    await key(second);
    await cert(second);
    await until('the second certificate', async () => (await presentedCertificate(port, pki.ca.cert, 'localhost')) === second.fingerprint256);

    // A key that is not the certificate's: the reload is refused, the running certificate stays.
    const stray = await fresh();
    const rejectedBefore = gw.logs.filter((l) => l.includes('config reload rejected')).length;
    await key(stray);
    await until('the refusal', () => gw.logs.filter((l) => l.includes('config reload rejected')).length > rejectedBefore);
    const refusal = gw.logs.filter((l) => l.includes('config reload rejected')).at(-1) ?? '';
    assert.match(refusal, /listen\.https\.key.*not the private key/);
    assert.equal(await presentedCertificate(port, pki.ca.cert, 'localhost'), second.fingerprint256, 'the old material keeps serving');

    // The matching certificate arrives: taken.
    await cert(stray);
    await until('the third certificate', async () => (await presentedCertificate(port, pki.ca.cert, 'localhost')) === stray.fingerprint256);

    // The client CA bundle gains a CA: its clients are refused before, admitted once the watch took it.
    const asB = { ca: pki.ca.cert, servername: 'localhost', cert: clientB.cert, key: clientB.key };
    assert.equal((await httpsGet(`${gw.httpsUrl}/svc/before`, pki.ca.cert, asB)).status, 401);
    await replace(join(tls, 'clients-ca.crt'), clientCaA.cert + clientCaB.cert);
    await until('the new client CA', async () => (await httpsGet(`${gw.httpsUrl}/svc/after`, pki.ca.cert, asB)).status === 200);

    const result = await load;
    assert.equal(result.errors, 0);
    assert.equal(result.timeouts, 0);
    assert.equal(result.non2xx, 0);
    // autocannon leaves the response it reconnects after out of its own count, so the requests are
    // counted where they arrive: every one made was forwarded and answered 200.
    await upstream.settled('/open/load');
    assert.equal(upstream.received.filter((r) => r.url === '/open/load').length, amount);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const served = metrics.split('\n').filter((l) => l.startsWith('portcullis_requests_total{') && l.includes('route="open"'));
    assert.deepEqual(served.map((l) => l.replace(/^.*status="(\d+)".* (\d+)$/, '$1 $2')), [`200 ${amount}`]);
  });
});

describe('audit rotate-key without restart', () => {
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    gw = await startGateway({
      reload: { watchIntervalMs: 50 },
      audit: { checkpoint: { everyRecords: 2 } },
      log: { level: 'info' },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    });
  });
  after(async () => {
    await upstream.close();
    await rm(gw.dir, { recursive: true, force: true });
  });

  it('signs new checkpoints with the rotated key once the watch sees it, and the whole trail verifies', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${gw.url}/open/before-${i}`)).status, 200);
    const { previous, current } = rotateSigningKey(gw.gateway.config.dataDir, null);
    assert.notEqual(previous, null);
    await until('the new key', () => gw.logs.some((l) => l.includes('audit signing key changed')));
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${gw.url}/open/after-${i}`)).status, 200);
    await gw.gateway.stop();
    const auditDir = join(gw.gateway.config.dataDir, 'audit');
    const logs = (await readdir(auditDir)).filter((f) => f.endsWith('.log')).map((f) => join(auditDir, f));
    const { code, report } = await verifyJson(logs);
    assert.equal(code, 0, JSON.stringify(report));
    const text = (await Promise.all(logs.map((f) => import('node:fs/promises').then((fs) => fs.readFile(f, 'utf8'))))).join('');
    const keyIds = new Set([...text.matchAll(/"keyId":"([^"]+)"/g)].map((m) => m[1]));
    assert.ok(keyIds.has(previous ?? '') && keyIds.has(current), `checkpoints signed with both keys: ${[...keyIds].join(', ')}`);
  });
});
