// `start --workers N`: each worker writes its own chain, named by a slot its replacement keeps.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainFiles } from '../src/audit/trail-files.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream } from './harness/echo.js';
import { startGatewayProcess } from './harness/gateway.js';
import { chainPaths, checkChain, publicKeys } from './harness/trail.js';

/** One GET on a fresh connection, so the primary spreads requests over the workers. */
function fresh(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', () => resolve(0));
    req.end();
  });
}

describe('audit chains under --workers', () => {
  it('each worker slot has its own chain file; a replaced worker resumes its slot\'s chain; the primary writes main', async (t) => {
    const echo = await startEchoUpstream();
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-wchain-'));
    t.after(async () => { await echo.close(); await rm(dataDir, { recursive: true, force: true }); });
    const proc = await startGatewayProcess({
      dataDir, audit: { instance: 'fleet' },
      upstreams: { echo: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { methods: ['GET'], path: '/open/**' }, upstream: 'echo', public: true }],
    }, { args: ['--workers', '2'] });
    t.after(() => proc.stop('SIGKILL').then(() => undefined));
    const pids = (): number[] => proc.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true')).map((l) => (JSON.parse(l) as { pid: number }).pid);
    for (let i = 0; i < 20; i++) assert.equal(await fresh(`${proc.url}/open/${i}`), 200);
    // Every record of the first requests is on disk before a worker is killed.
    const onDisk = async (): Promise<number> => {
      let n = 0;
      for (const w of ['w1', 'w2']) n += ((await readFile(chainFiles(join(dataDir, 'audit', 'audit.log'), w).active, 'utf8').catch(() => '')).match(/"kind":"request"/g) ?? []).length;
      return n;
    };
    await waitUntil('the first records are on disk', async () => (await onDisk()) === 20);
    const victim = pids()[0];
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await waitUntil('a replacement worker listens', () => pids().length === 3, 20_000);
    await waitUntil('the host is ready again', async () => (await fetch(`${proc.adminUrl}/readyz`)).status === 200, 20_000);
    for (let i = 0; i < 20; i++) assert.equal(await fresh(`${proc.url}/open/after-${i}`), 200);
    assert.equal((await fetch(`${proc.adminUrl}/readyz`)).status, 200);
    assert.equal(await proc.stop('SIGTERM'), 0);

    const keys = publicKeys(join(dataDir, 'audit', 'keys'));
    assert.equal(keys.size, 1, 'one signing key for the host');
    assert.ok(!existsSync(join(dataDir, 'audit', 'audit.w3.log')), 'the replacement took the dead worker\'s slot');
    let requests = 0;
    for (const process of ['main', 'w1', 'w2']) {
      const files = chainFiles(join(dataDir, 'audit', 'audit.log'), process);
      const check = checkChain(chainPaths(files), keys);
      const starts = check.records.filter((r) => r.kind === 'start');
      const torn = starts.find((s) => s.torn !== undefined);
      // The killed worker may have died in the middle of a write: that line is the one loss, reported.
      assert.deepEqual(check.problems.filter((p) => !/not JSON/.test(p)), [], `${process}: ${check.problems.join('\n')}`);
      assert.equal(check.problems.length, torn === undefined ? 0 : 1);
      assert.ok(check.records.every((r) => r.chain === undefined || r.chain === `fleet/${process}`), `${process}: every record names its chain`);
      if (process !== 'main') {
        requests += check.records.filter((r) => r.kind === 'request').length;
        assert.equal(check.records.at(-1)?.kind, 'checkpoint', `${process} ends in its shutdown checkpoint`);
      }
      if (starts.length > 1) assert.deepEqual(starts.slice(1).map((s) => s.resumed), starts.slice(1).map(() => true));
    }
    const restarted = ['w1', 'w2'].filter((p) => checkChain(chainPaths(chainFiles(join(dataDir, 'audit', 'audit.log'), p)), keys).records.filter((r) => r.kind === 'start').length === 2);
    assert.equal(restarted.length, 1, 'the killed worker\'s slot was resumed by its replacement');
    assert.equal(requests, 40, 'one record per request over the workers\' chains');
  });
});
