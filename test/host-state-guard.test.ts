// The brute-force guard and embedded quotas across the workers of one host: two real worker
// processes (node:cluster) count through their primary (this process), so failures add up, a
// block one worker starts refuses the address on the other, and a quota admits its limit once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger } from '../src/observability/logger.js';
import { HostState } from '../src/workers/host-state.js';
import { forkWorkers, tally, type TestWorker } from './fixtures/host-state-workers.js';
import { toYaml } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';

const MAX_FAILURES = 4;

describe('the brute-force guard on two workers', () => {
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock() });
  let workers: TestWorker[] = [];

  before(async () => {
    workers = await forkWorkers(2, host);
    const yaml = toYaml({
      upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
      rateLimiting: { bruteForce: { maxFailures: MAX_FAILURES, within: '1m', blockFor: '15m', by: ['ip'] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.example', audience: 'api', secret: 'a-secret-of-at-least-thirty-two-bytes!!', algorithms: ['HS256'] } },
      routes: [{ name: 'r', match: { path: '/' }, upstream: 'app', authenticate: ['users'] }],
    });
    await Promise.all(workers.map((w) => w.load(yaml)));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(host)));
    await host.close();
  });

  it('failures on both workers add up to one count, and the block started on one refuses the address on the other', async () => {
    const [w0, w1] = workers as [TestWorker, TestWorker];
    const from = '198.51.100.7';
    assert.deepEqual(tally(await w0.command({ op: 'fail', n: MAX_FAILURES / 2, from })), { invalid_credential: 2 });
    assert.equal((await w0.command<{ code: string }>({ op: 'gate', from })).code, 'pass', 'not blocked yet');
    const crossing = await w1.command<{ code: string; reason: string }[]>({ op: 'fail', n: MAX_FAILURES / 2, from });
    assert.equal(crossing.filter((o) => o.reason.includes(`ip ${from} blocked`)).length, 1, 'the failure that reaches the threshold starts the block, on the other worker than the first failures');
    // The block reached w0 through the primary before w1's answer did: the channel keeps order.
    for (const w of workers) assert.equal((await w.command<{ code: string }>({ op: 'gate', from })).code, 'too_many_failures');
    assert.equal((await w0.command<{ code: string }>({ op: 'gate', from: '198.51.100.8' })).code, 'pass', 'other addresses are untouched');
  });

  it('failures sent from both workers at once are each counted once, as in one process', async () => {
    const from = '198.51.100.9';
    const results = await Promise.all(workers.map((w) => w.command<{ code: string; reason: string }[]>({ op: 'fail', n: 3, from })));
    // Six failures, one count: the first three pass under the threshold, the fourth starts the block
    // and the fifth and sixth renew it. Counted per worker, three each would block nothing.
    assert.equal(results.flat().filter((o) => o.reason.includes('blocked for')).length, 6 - MAX_FAILURES + 1);
    for (const w of workers) assert.equal((await w.command<{ code: string }>({ op: 'gate', from })).code, 'too_many_failures');
  });
});

describe('an embedded quota on two workers', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-host-quota-'));
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock() });
  let workers: TestWorker[] = [];

  before(async () => { workers = await forkWorkers(2, host); });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(host)));
    await host.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('admits exactly its limit across both, counted by one store in the primary that writes the count when the workers are gone', async () => {
    const yaml = toYaml({
      dataDir,
      upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
      quotas: { daily: { limit: 10, period: 'day', by: ['ip'] } },
      routes: [{ name: 'q', match: { path: '/' }, upstream: 'app', public: true, quota: 'daily' }],
    });
    await Promise.all(workers.map((w) => w.load(yaml)));
    const results = await Promise.all(workers.map((w) => w.run('q', 15)));
    assert.deepEqual(tally(results.flat()), { pass: 10, quota_exceeded: 20 });
    assert.equal(host.storeKeys.length, 1, 'one store for the quota');
    await Promise.all(workers.map((w) => w.stop(host)));
    assert.deepEqual(host.storeKeys, [], 'stopped (and written) once no worker uses it');
    const db = new Database(join(dataDir, 'quotas', 'quotas.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT used FROM quota_usage').all(), [{ used: 10 }]);
    } finally {
      db.close();
    }
  });
});
