// `portcullis start --workers N`: a primary and N worker processes on one port. Real processes,
// real signals, requests over fresh connections so the primary spreads them over the workers.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN_HASH, admin, createKey } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { CLI, startGatewayProcess, startGatewayProcesses, type ConfigObject, type GatewayProcess } from './harness/gateway.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';
import { startRedis } from './harness/redis.js';

interface Answer { readonly status: number; readonly body: string }

/** One request on a connection of its own (the primary hands each new connection to the next worker). */
function fresh(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // Bounded: a connection that nothing answers fails the request instead of stalling the test.
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

/** `count` requests from `loops` concurrent clients; the statuses, with 0 for a request that failed on the wire. */
async function load(url: string, loops: number, count: number, during?: (done: number) => void | Promise<void>): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: loops }, async () => {
    while (next < count) {
      const n = next++;
      await during?.(n);
      statuses.push(await fresh(url).then((a) => a.status, () => 0));
    }
  }));
  return statuses;
}

interface Readiness { status: string; configVersion: string; workers: { wanted: number; listening: number; versions: string[] } }

async function readiness(gw: GatewayProcess): Promise<Readiness> {
  return JSON.parse((await fresh(`${gw.adminUrl}/readyz`)).body) as Readiness;
}

/** Worker pids as the primary logged them when each started listening. */
function workerPids(gw: GatewayProcess): number[] {
  return gw.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true'))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
}

function metric(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** This process's limit of open files (which the gateway's processes inherit), where /proc says it. */
function maxOpenFiles(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/  +/)[1]);
    return Number.isFinite(soft) ? soft : null;
  } catch {
    return null;
  }
}

function configFor(echo: EchoUpstream, routes: string[] = ['open']): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { environment: 'live' },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    routes: [
      ...routes.map((name) => ({ name, match: { path: `/${name}/**` }, upstream: 'echo', public: true })),
      { name: 'keyed', match: { path: '/keyed/**' }, upstream: 'echo', authenticate: ['machines'] },
    ],
  };
}

const WORKERS = ['--workers', '2'];

describe('start --workers', () => {
  let echo: EchoUpstream;
  let gw: GatewayProcess;
  let launchedAt = 0;

  before(async () => {
    echo = await startEchoUpstream();
    launchedAt = Date.now();
    gw = await startGatewayProcess(configFor(echo), { args: WORKERS });
  });
  after(async () => {
    await gw.stop();
    await echo.close();
  });

  it('serves from every worker behind one admin listener, which reports one version and sums their metrics', async () => {
    const ready = await readiness(gw);
    assert.equal(ready.status, 'ready');
    assert.deepEqual(ready.workers, { wanted: 2, listening: 2, versions: [ready.configVersion] });
    assert.equal(workerPids(gw).length, 2);
    const statuses = await load(`${gw.url}/open/x`, 4, 40);
    assert.deepEqual(statuses.filter((s) => s !== 200), []);
    const text = (await fresh(`${gw.adminUrl}/metrics`)).body;
    assert.equal(metric(text, 'portcullis_requests_total{route="open"'), 40, 'each worker counted its share; the primary sums them');
    // A gauge that states a fact reads as one process would, not once per process.
    assert.equal(metric(text, `portcullis_config_info{version="${ready.configVersion}"}`), 1, 'the version runs: 1, not 3');
    assert.equal(metric(text, 'portcullis_config_info'), 1, 'and no other version');
    assert.equal(metric(text, 'portcullis_api_key_store_up'), 1, 'the key store answers every worker');
    assert.equal(metric(text, 'portcullis_nodejs_version_info'), 1);
    const startedAt = metric(text, 'portcullis_process_start_time_seconds');
    assert.ok(startedAt >= Math.floor(launchedAt / 1000) - 1 && startedAt <= Date.now() / 1000, `the host's start (the primary's), not a sum: ${startedAt}`);
    const files = maxOpenFiles();
    if (files !== null) assert.equal(metric(text, 'portcullis_process_max_fds'), files, 'the per-process limit');
  });

  it('a revocation through the admin API reaches every worker within a second', async () => {
    const key = await createKey(gw.adminUrl, { name: 'fleet' });
    // Both workers load the key into their caches.
    const before = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/keyed/x`, { 'x-api-key': key.key })));
    assert.deepEqual(before.map((a) => a.status), Array(8).fill(200));
    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${key.id}/revoke`)).status, 200);
    const revokedAt = performance.now();
    await waitUntil('every worker refuses the revoked key', async () => {
      const after = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/keyed/x`, { 'x-api-key': key.key })));
      return after.every((a) => a.status === 401);
    }, 1000);
    assert.ok(performance.now() - revokedAt < 1000);
  });

  it('a reload under load moves every worker to the new version with no failed request', async () => {
    const old = (await readiness(gw)).configVersion;
    let reloaded: { ok: boolean; version: string } | null = null;
    const statuses = await load(`${gw.url}/open/x`, 4, 120, async (n) => {
      if (n !== 30) return;
      await gw.writeConfig(configFor(echo, ['open', 'added']));
      reloaded = JSON.parse((await admin(gw.adminUrl, 'POST', '/admin/reload')).body) as { ok: boolean; version: string };
    });
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'no request failed across the reload');
    assert.ok(reloaded !== null);
    const { ok, version } = reloaded as { ok: boolean; version: string };
    assert.ok(ok);
    assert.notEqual(version, old);
    const ready = await readiness(gw);
    assert.deepEqual(ready.workers.versions, [version], 'every worker runs the new version');
    assert.equal(ready.configVersion, version);
    const added = await load(`${gw.url}/added/x`, 2, 10);
    assert.deepEqual(added.filter((s) => s !== 200), [], 'the new route is served by every worker');
  });

  it('an invalid config is refused by the primary; every worker keeps the running version', async () => {
    const running = (await readiness(gw)).configVersion;
    await gw.writeConfig({ ...configFor(echo), routes: [{ name: 'broken', match: { path: '/b' }, upstream: 'nowhere', public: true }] });
    const res = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.equal(res.status, 422, res.body);
    assert.match(res.body, /nowhere/);
    const ready = await readiness(gw);
    assert.deepEqual(ready.workers.versions, [running]);
    assert.equal((await fresh(`${gw.url}/open/x`)).status, 200);
    await gw.writeConfig(configFor(echo, ['open', 'added']));
  });

  it('SIGHUP to the primary reloads every worker', async () => {
    await gw.writeConfig(configFor(echo, ['open', 'hup']));
    gw.child.kill('SIGHUP');
    await waitUntil('the new route is served', async () => (await fresh(`${gw.url}/hup/x`)).status === 200, 10_000);
    const ready = await readiness(gw);
    assert.equal(ready.workers.versions.length, 1);
    assert.deepEqual((await load(`${gw.url}/hup/x`, 2, 10)).filter((s) => s !== 200), []);
  });

  it('a worker killed with SIGKILL is replaced while the other keeps serving', async () => {
    const [victim] = workerPids(gw);
    assert.ok(victim !== undefined);
    const statuses = await load(`${gw.url}/open/x`, 4, 200, (n) => { if (n === 50) process.kill(victim, 'SIGKILL'); });
    // Only a request in flight on the killed worker can fail: at most one per client.
    assert.ok(statuses.filter((s) => s !== 200).length <= 4, `failures: ${statuses.filter((s) => s !== 200).length}`);
    await waitUntil('a replacement worker listens', async () => workerPids(gw).length === 3 && (await readiness(gw)).status === 'ready', 15_000);
    assert.ok(!workerPids(gw).slice(2).includes(victim));
    assert.deepEqual((await load(`${gw.url}/open/x`, 4, 40)).filter((s) => s !== 200), []);
    assert.equal(metric((await fresh(`${gw.adminUrl}/metrics`)).body, 'portcullis_worker_restarts_total'), 1);
    assert.ok(await gw.logged('worker died; replacing it'));
  });
});

describe('start --workers: shutdown and options', () => {
  it('SIGTERM drains every worker: a request in flight completes, then the host exits 0', async () => {
    let arrived: () => void = () => undefined;
    const arrival = new Promise<void>((resolve) => { arrived = resolve; });
    const held: ServerResponse[] = [];
    const upstream = createServer((_req: IncomingMessage, res: ServerResponse) => { held.push(res); arrived(); });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const gw = await startGatewayProcess({
      shutdown: { drainTimeoutMs: 10_000 },
      upstreams: { slow: { targets: [url] } },
      routes: [{ name: 'slow', match: { path: '/slow' }, upstream: 'slow', public: true }],
    }, { args: WORKERS });
    try {
      const pending = fresh(`${gw.url}/slow`);
      await arrival;
      gw.child.kill('SIGTERM');
      assert.ok(await gw.logged('shutting down'));
      for (const res of held) res.end('slow done');
      const answer = await pending;
      assert.deepEqual(answer, { status: 200, body: 'slow done' });
      assert.equal(await gw.exited, 0);
    } finally {
      await gw.stop('SIGKILL');
      upstream.close();
    }
  });

  it('refuses a --workers value that is not a count or auto', () => {
    for (const value of ['0', '-1', 'two', '1.5', '1000']) {
      const run = spawnSync(process.execPath, [CLI, 'start', '-c', '/nonexistent.yaml', `--workers=${value}`], { encoding: 'utf8' });
      assert.equal(run.status, 2, value);
      assert.match(run.stderr, /--workers: expected a number of workers from 1 to 999, or auto/);
    }
  });
});

const ALGORITHMS = ['fixed-window', 'sliding-window', 'token-bucket', 'gcra'] as const;

/** One route per algorithm, each limited to 10 per hour by address (gcra: a burst of 10), plus a quota and the guard. */
function limitedConfig(echo: EchoUpstream, store: 'memory' | 'redis', redisUrl?: string): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { environment: 'live' },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    rateLimiting: {
      store,
      ...(redisUrl === undefined ? {} : { redis: { url: redisUrl, timeoutMs: 2000 } }),
      bruteForce: { maxFailures: 6, within: '1h', blockFor: '1h', ...(store === 'redis' ? { store: 'redis' } : {}) },
    },
    rateLimits: Object.fromEntries(ALGORITHMS.map((a) => [a, { algorithm: a, limit: 10, per: '1h', by: ['ip'], ...(a === 'gcra' ? { burst: 10 } : {}) }])),
    quotas: { daily: { limit: 10, period: 'day', by: ['ip'] } },
    routes: [
      ...ALGORITHMS.map((a) => ({ name: a, match: { path: `/${a}/**` }, upstream: 'echo', public: true, rateLimit: a })),
      { name: 'metered', match: { path: '/metered/**' }, upstream: 'echo', public: true, quota: 'daily' },
      { name: 'keyed', match: { path: '/keyed/**' }, upstream: 'echo', authenticate: ['machines'] },
    ],
  };
}

/** `count` requests spread over the hosts' workers (fresh connections, round robin over hosts); the statuses by kind. */
async function spread(hosts: readonly GatewayProcess[], path: string, count: number, headers: Record<string, string> = {}): Promise<Map<number, number>> {
  const answers = await Promise.all(Array.from({ length: count }, (_, i) => fresh(`${(hosts[i % hosts.length] as GatewayProcess).url}${path}`, headers)));
  const by = new Map<number, number>();
  for (const a of answers) by.set(a.status, (by.get(a.status) ?? 0) + 1);
  return by;
}

describe('start --workers: limits, quotas and the guard are exact across workers', () => {
  let echo: EchoUpstream;
  let gw: GatewayProcess;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGatewayProcess(limitedConfig(echo, 'memory'), { args: WORKERS });
  });
  after(async () => {
    await gw.stop();
    await echo.close();
  });

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: two workers admit exactly the limit, as one process would`, async () => {
      assert.deepEqual(await spread([gw], `/${algorithm}/x`, 30), new Map([[200, 10], [429, 20]]));
    });
  }

  it('a quota shared by two workers admits exactly its limit', async () => {
    assert.deepEqual(await spread([gw], '/metered/x', 30), new Map([[200, 10], [429, 20]]));
  });

  it('failed authentications on both workers add up, and the block holds on every worker', async () => {
    const bad = await spread([gw], '/keyed/x', 6, { 'x-api-key': 'pc_live_0000000000000000_not-a-real-key' });
    assert.equal(bad.get(401), 6, 'six failures, spread over both workers');
    const blocked = await spread([gw], '/keyed/x', 8);
    assert.deepEqual(blocked, new Map([[429, 8]]), 'the address is blocked on both workers');
  });

  it('a worker that replaces one killed after the block began refuses the address from its first request', async () => {
    const [victim] = workerPids(gw);
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await waitUntil('a replacement worker listens', async () => workerPids(gw).length === 3 && (await readiness(gw)).status === 'ready', 15_000);
    // Fresh connections alternate between the workers: half of these are the replacement's first.
    assert.deepEqual(await spread([gw], '/keyed/x', 8), new Map([[429, 8]]));
  });
});

describe('start --workers: two hosts of two workers sharing Redis', () => {
  let echo: EchoUpstream;
  let hosts: GatewayProcess[] = [];
  let stopRedis: () => Promise<void> = () => Promise.resolve();

  before(async () => {
    const redis = await startRedis();
    // Without redis-server (outside CI) each test below says so and skips.
    if (typeof redis === 'string') return;
    stopRedis = () => redis.stop();
    echo = await startEchoUpstream();
    hosts = await startGatewayProcesses([limitedConfig(echo, 'redis', redis.url), limitedConfig(echo, 'redis', redis.url)], { args: WORKERS });
  });
  after(async () => {
    await Promise.all(hosts.map((h) => h.stop()));
    await echo?.close();
    await stopRedis();
  });

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: four workers on two hosts admit exactly the limit`, async (t) => {
      if (hosts.length === 0) { t.skip('redis-server is not installed'); return; }
      assert.deepEqual(await spread(hosts, `/${algorithm}/x`, 30), new Map([[200, 10], [429, 20]]));
    });
  }

  it('each host reports the shared store up once, not once per worker', async (t) => {
    if (hosts.length === 0) { t.skip('redis-server is not installed'); return; }
    for (const host of hosts) assert.equal(metric((await fresh(`${host.adminUrl}/metrics`)).body, 'portcullis_rate_limit_store_up'), 1);
  });
});

/** Runs the CLI to its exit; its exit code and stderr. */
function runCli(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

const ISSUER = 'https://issuer.test/';

/** API keys, and two JWT issuers: one refreshed every second, one whose unknown-kid cooldown outlasts the test. */
function syncedConfig(echo: EchoUpstream, refreshing: JwksServer, flooded: JwksServer): ConfigObject {
  const jwt = (uri: string, jwks: Record<string, number>) => ({ type: 'jwt', issuer: ISSUER, jwksUri: uri, audience: 'orders-api', algorithms: ['ES256'], jwks });
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { environment: 'live' },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: {
      machines: { type: 'apiKey' },
      refreshing: jwt(refreshing.url, { refreshMs: 1000, cooldownMs: 1000 }),
      flooded: jwt(flooded.url, { cooldownMs: 600_000 }),
    },
    routes: [
      { name: 'keyed', match: { path: '/keyed/**' }, upstream: 'echo', authenticate: ['machines'] },
      { name: 'refreshing', match: { path: '/refreshing/**' }, upstream: 'echo', authenticate: ['refreshing'] },
      { name: 'flooded', match: { path: '/flooded/**' }, upstream: 'echo', authenticate: ['flooded'] },
    ],
  };
}

describe('start --workers: the primary reads the key store and fetches JWKS once for the host', () => {
  let echo: EchoUpstream;
  let refreshing: JwksServer;
  let flooded: JwksServer;
  let signer: TestKey;
  let gw: GatewayProcess;

  before(async () => {
    echo = await startEchoUpstream();
    signer = await testKey('ES256', 'current');
    refreshing = await JwksServer.start([signer]);
    flooded = await JwksServer.start([signer]);
    gw = await startGatewayProcess(syncedConfig(echo, refreshing, flooded), { args: WORKERS });
  });
  after(async () => {
    await gw.stop();
    await Promise.all([echo.close(), refreshing.close(), flooded.close()]);
  });

  it('fetches each JWK Set once for the host at start, and both workers verify with it', async () => {
    assert.equal(flooded.requests, 1, 'one fetch at start, not one per worker');
    const token = await mint(signer);
    const answers = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/flooded/x`, { authorization: `Bearer ${token}` })));
    assert.deepEqual(answers.map((a) => a.status), Array(8).fill(200));
  });

  it('a flood of unknown kids sent to both workers costs at most one fetch per cooldown for the host', async () => {
    const before = flooded.requests;
    const strangers = await Promise.all(Array.from({ length: 12 }, (_, i) => testKey('ES256', `stranger-${i}-${Math.random().toString(36).slice(2)}`)));
    const answers = await Promise.all(strangers.map(async (k) => fresh(`${gw.url}/flooded/x`, { authorization: `Bearer ${await mint(k)}` })));
    assert.deepEqual(answers.filter((a) => a.status !== 401 && a.status !== 503).map((a) => a.status), [], 'every unknown kid is refused');
    assert.ok(flooded.requests - before <= 1, `${flooded.requests - before} fetches for ${strangers.length} unknown kids on two workers`);
  });

  it('refreshes each JWK Set once per refresh period for the host, not once per worker', async () => {
    // The refresh timers run on the machine's clock in other processes, so the test waits for
    // fetches, not for time: from one refresh fetch, two more take two 1 s periods for the host;
    // two workers refreshing on their own would make them within one.
    const r0 = refreshing.requests;
    await waitUntil('a refresh fetch', () => refreshing.requests > r0, 5000);
    const t0 = performance.now();
    const r1 = refreshing.requests;
    await waitUntil('two more refresh fetches', () => refreshing.requests >= r1 + 2, 10_000);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 1500, `two refresh fetches ${elapsed.toFixed(0)} ms apart: more than one refresh per period`);
    const token = await mint(signer);
    const answers = await Promise.all(Array.from({ length: 6 }, () => fresh(`${gw.url}/refreshing/x`, { authorization: `Bearer ${token}` })));
    assert.deepEqual(answers.map((a) => a.status), Array(6).fill(200));
  });

  it('reads the key store change log once per host: the reads grow by about one per poll interval, not one per worker', async () => {
    const reads = async (): Promise<number> => metric((await fresh(`${gw.adminUrl}/metrics`)).body, 'portcullis_api_key_store_polls_total');
    // pollIntervalMs defaults to 500: from one read, four more take two seconds for the host;
    // two workers polling on their own would make them within one. The test waits for reads, not for time.
    const c0 = await reads();
    let c1 = c0;
    await waitUntil('a change-log read', async () => (c1 = await reads()) > c0, 5000);
    const t0 = performance.now();
    await waitUntil('four more change-log reads', async () => (await reads()) >= c1 + 4, 10_000);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 1500, `four reads in ${elapsed.toFixed(0)} ms: more than one read per poll interval`);
  });

  it('a revocation written to the key store by the CLI reaches both workers within a second', async () => {
    const key = await createKey(gw.adminUrl, { name: 'cli-revoked' });
    const warm = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/keyed/x`, { 'x-api-key': key.key })));
    assert.deepEqual(warm.map((a) => a.status), Array(8).fill(200), 'both workers hold the key');
    const revoked = await runCli(['keys', 'revoke', key.id, '-c', gw.configFile]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const revokedAt = performance.now();
    await waitUntil('every worker refuses the key revoked in the store', async () => {
      const after = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/keyed/x`, { 'x-api-key': key.key })));
      return after.every((a) => a.status === 401);
    }, 1000);
    assert.ok(performance.now() - revokedAt < 1000);
  });

  it('a replacement worker hears the current key state and JWK Set from the primary, fetching nothing', async () => {
    const key = await createKey(gw.adminUrl, { name: 'survivor' });
    const fetchesBefore = flooded.requests;
    const [victim] = workerPids(gw);
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await waitUntil('a replacement worker listens', async () => workerPids(gw).length === 3 && (await readiness(gw)).status === 'ready', 15_000);
    const token = await mint(signer);
    const keyed = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/keyed/x`, { 'x-api-key': key.key })));
    const jwt = await Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/flooded/x`, { authorization: `Bearer ${token}` })));
    assert.deepEqual([...keyed, ...jwt].map((a) => a.status), Array(16).fill(200));
    assert.equal(flooded.requests, fetchesBefore, 'the replacement took the set the primary holds');
  });
});
