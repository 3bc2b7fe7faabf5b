import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainFiles } from '../src/audit/trail-files.js';
import { verifyTrail } from '../src/audit/verify.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { waitUntil } from './harness/assertions.js';
import { chainPaths, checkChain, publicKeys } from './harness/trail.js';

function config(echo: EchoUpstream, extra: ConfigObject = {}): ConfigObject {
  return {
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'a', match: { methods: ['GET'], path: '/a/**' }, upstream: 'echo', public: true }],
    ...extra,
  };
}

const RETRY_MS = 500;
const isRoot = process.getuid?.() === 0;

/** A small tmpfs at `path` (root only); unmounted by `t.after`. */
function mountTmpfs(t: { after(fn: () => void): void }, path: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', path]);
  t.after(() => { try { execFileSync('umount', ['-l', path]); } catch { /* already gone */ } });
}

/** Fills the file system holding `dir` with `filler` until a write fails (ENOSPC). */
async function fill(filler: string): Promise<void> {
  const handle = await open(filler, 'w');
  try {
    const block = Buffer.alloc(4096, 0x2e);
    for (;;) await handle.write(block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function metricValue(gw: TestGateway, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

async function eventually(gw: TestGateway, check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await gw.gateway.auditFlushed();
  }
}

describe('a full disk', { skip: isRoot ? false : 'mounting a small tmpfs needs root; test/audit-bounds.test.ts covers write failures with /dev/full and prlimit' }, () => {
  async function fullDiskGateway(t: { after(fn: () => Promise<void> | void): void }, echo: EchoUpstream, audit: ConfigObject, clock: ManualClock) {
    let auditDir = '';
    const gw = await startGateway(config(echo, { audit: { retryIntervalMs: RETRY_MS, fsyncIntervalMs: 0, ...audit } }), {
      clock,
      beforeStart: async (dir) => {
        auditDir = join(dir, 'data', 'audit');
        await mkdir(auditDir, { recursive: true });
        // The test says which way it made the disk full: a 512 KiB tmpfs under the audit directory.
        mountTmpfs(t, auditDir, 512 * 1024);
      },
    });
    return { gw, auditDir, filler: join(auditDir, 'filler') };
  }

  it('failClosed: answers 503 audit_unavailable and forwards nothing while the disk is full, and serves again once space returns', async (t) => {
    const echo = await startEchoUpstream();
    const clock = new ManualClock();
    const { gw, auditDir, filler } = await fullDiskGateway(t, echo, {}, clock);
    t.after(async () => { await gw.close(); await echo.close(); });
    const get = async (): Promise<{ status: number; id: string; code: string | null }> => {
      const res = await fetch(`${gw.url}/a/x`);
      const body = await res.text();
      return { status: res.status, id: res.headers.get('x-request-id') ?? '', code: res.status === 503 ? (JSON.parse(body) as { code?: string; type?: string }).type ?? null : null };
    };
    assert.equal((await get()).status, 200);
    await gw.gateway.auditFlushed();
    await fill(filler);
    const served: string[] = [];
    let refused = 0;
    for (let i = 0; i < 50 && refused < 3; i++) {
      const r = await get();
      if (r.status === 200) served.push(r.id);
      else { assert.equal(r.status, 503); assert.match(r.code ?? '', /audit_unavailable/); refused++; }
      await gw.gateway.auditFlushed();
    }
    assert.equal(refused, 3, 'requests are refused once a write fails on the full disk');
    const forwarded = echo.received.length;
    assert.equal((await get()).status, 503);
    assert.equal(echo.received.length, forwarded, 'nothing is forwarded while it cannot be audited');
    await rm(filler);
    clock.advance(RETRY_MS);
    await eventually(gw, async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200, 'ready again once space returns');
    assert.equal((await get()).status, 200);
    await gw.gateway.stop();
    const files = chainFiles(join(auditDir, 'audit.log'), 'main');
    const check = checkChain(chainPaths(files), publicKeys(join(auditDir, 'keys')));
    assert.deepEqual(check.problems, [], 'the chain is whole after the outage');
    for (const id of served) assert.equal(check.records.filter((r) => r.requestId === id).length, 1, `one record for served ${id}`);
  });

  it('failOpen: serves while the disk is full, counts the drops, marks them with one gap record and recovers', async (t) => {
    const echo = await startEchoUpstream();
    const clock = new ManualClock();
    const { gw, auditDir, filler } = await fullDiskGateway(t, echo, { onFailure: 'failOpen', maxQueueBytes: 65536 }, clock);
    t.after(async () => { await gw.close(); await echo.close(); });
    assert.equal((await fetch(`${gw.url}/a/first`)).status, 200);
    await gw.gateway.auditFlushed();
    await fill(filler);
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`${gw.url}/a/${'p'.repeat(200)}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, 'failOpen serves');
      if (i % 20 === 0) await gw.gateway.auditFlushed();
    }
    const dropped = await metricValue(gw, /portcullis_audit_dropped_total\{sink="file"\} (\d+)/);
    assert.ok(dropped > 0, 'records that found the queue full are counted');
    await rm(filler);
    clock.advance(RETRY_MS);
    await eventually(gw, () => Promise.resolve(gw.gateway.auditState() === 'ok'), 'the file takes records again');
    await gw.gateway.stop();
    const files = chainFiles(join(auditDir, 'audit.log'), 'main');
    const check = checkChain(chainPaths(files), publicKeys(join(auditDir, 'keys')));
    assert.deepEqual(check.problems, []);
    const gaps = check.records.filter((r) => r.kind === 'gap');
    assert.deepEqual(gaps.map((g) => g.droppedRecords), [dropped], 'one gap record for the outage, counting every drop');
  });
});

describe('readiness and metrics', () => {
  it('/readyz shows each sink\'s state; the records and checkpoints are counted', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(config(echo, { audit: { stdout: true } }));
    t.after(async () => { await gw.close(); await echo.close(); });
    const ready = gw.gateway.readiness();
    assert.deepEqual(ready.components.audit, { ready: true, state: 'ok', sinks: { file: 'ok', stdout: 'ok' } });
    for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/a/${i}`)).arrayBuffer();
    await gw.auditBarrier();
    const records = await metricValue(gw, /portcullis_audit_records_total (\d+)/);
    assert.ok(records >= 6, `${records}: file, start, three requests, the barrier`);
    assert.equal(await metricValue(gw, /portcullis_audit_checkpoints_total (\d+)/), 0, 'no checkpoint before the interval, the count or the stop');
  });
});

describe('an unwritable audit directory', () => {
  it('refuses to start, naming the path, when the audit directory cannot be made', async (t) => {
    const echo = await startEchoUpstream();
    t.after(() => echo.close());
    await assert.rejects(startGateway(config(echo), {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'data'), { recursive: true });
        await writeFile(join(dir, 'data', 'audit'), 'a file where the directory should be');
      },
    }), /audit/);
  });
});

describe('a gateway killed with SIGKILL under load', () => {
  it('leaves a trail whose every whole line verifies; the torn tail, if any, is the only loss and the next start reports it', async (t) => {
    const echo = await startEchoUpstream();
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-crash-'));
    t.after(async () => { await echo.close(); await rm(dataDir, { recursive: true, force: true }); });
    const cfg = config(echo, { dataDir, audit: { instance: 'crash', checkpoint: { everyRecords: 100 } } });
    let proc = await startGatewayProcess(cfg);
    t.after(() => proc.stop('SIGKILL').then(() => undefined));
    // Phase 1: records of finished requests, written (the barrier sees them on disk).
    const phase1: string[] = [];
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${proc.url}/a/one`);
      await res.arrayBuffer();
      phase1.push(res.headers.get('x-request-id') ?? '');
    }
    const active = join(dataDir, 'audit', 'audit.log');
    await waitUntil('phase 1 is on disk', async () => (await readFile(active, 'utf8')).includes(`"requestId":"${phase1.at(-1) ?? ''}"`));
    // Phase 2: concurrent load, killed part way through.
    let stop = false;
    let sent = 0;
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try { const res = await fetch(`${proc.url}/a/${'l'.repeat(100)}`); await res.arrayBuffer(); sent++; } catch { return; }
      }
    });
    while (sent < 300) await new Promise<void>((r) => setImmediate(r));
    proc.child.kill('SIGKILL');
    stop = true;
    await proc.exited;
    await Promise.all(loops);
    await rm(proc.dir, { recursive: true, force: true });
    // What `audit verify` says of the trail as the kill left it: intact, or only a truncated tail.
    const killed = await verifyTrail([join(dataDir, 'audit')]);
    assert.ok(killed.exitCode === 0 || killed.exitCode === 3, JSON.stringify(killed.chains.map((c) => c.problems)));
    if (killed.exitCode === 3) assert.deepEqual(killed.chains.flatMap((c) => c.problems.map((p) => p.kind)), ['truncated tail']);
    proc = await startGatewayProcess(cfg);
    const res = await fetch(`${proc.url}/a/after`);
    await res.arrayBuffer();
    await proc.stop('SIGTERM');

    const files = chainFiles(join(dataDir, 'audit', 'audit.log'), 'main');
    const check = checkChain(chainPaths(files), publicKeys(join(dataDir, 'audit', 'keys')));
    const text = await readFile(files.active, 'utf8');
    const starts = check.records.filter((r) => r.kind === 'start');
    assert.equal(starts.length, 2);
    const torn = starts[1]?.torn as { bytes: number } | undefined;
    if (torn === undefined) assert.deepEqual(check.problems, [], 'no torn tail: the chain is whole');
    else {
      assert.equal(check.problems.length, 1, check.problems.join('\n'));
      assert.match(check.problems[0] ?? '', new RegExp(`not JSON \\(${torn.bytes} bytes\\)`));
    }
    // No line is torn in the middle of the file: every line but the reported one is a whole record.
    const bad = text.split('\n').slice(0, -1).filter((l) => { try { JSON.parse(l); return false; } catch { return true; } });
    assert.equal(bad.length, torn === undefined ? 0 : 1);
    for (const id of phase1) assert.equal(check.records.filter((r) => r.requestId === id).length, 1, `phase 1 ${id} survived`);
    assert.equal(check.records.at(-1)?.kind, 'checkpoint', 'the graceful stop ends in a checkpoint');
    assert.equal(check.records.filter((r) => r.kind === 'start')[1]?.resumed, true);
    // After the restart, the torn line (if any) is a note, not a problem: the trail verifies.
    const after = await verifyTrail([join(dataDir, 'audit')]);
    assert.equal(after.exitCode, 0, JSON.stringify(after.chains.map((c) => c.problems)));
    assert.equal(after.chains[0]?.notes.some((n) => n.kind === 'torn'), torn !== undefined);
  });
});
