// `portcullis audit tail --follow` against a trail the test writes while it runs: appended records,
// a rotation (the last records of the old file are not lost), two rotations in a row, a chain that
// begins while following, and a line written in two pieces. Each step waits on the command's output.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { serialiseRecord } from '../src/audit/audit-record.js';
import { linkText } from '../src/audit/chain.js';
import { waitUntil } from './harness/assertions.js';
import { CLI } from './harness/gateway.js';
import { ChainWriter, at, requestRecord } from './harness/query-trail.js';

interface Follower {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

function follow(args: readonly string[]): Follower {
  const child = spawn(process.execPath, [CLI, 'audit', 'tail', '--follow', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const f: Follower = { child, stdout: '', stderr: '', exit: new Promise((resolve) => child.on('close', (code) => resolve(code))) };
  child.stdout?.on('data', (c: Buffer) => { f.stdout += c.toString('utf8'); });
  child.stderr?.on('data', (c: Buffer) => { f.stderr += c.toString('utf8'); });
  return f;
}

const ids = (f: Follower): string[] => f.stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { requestId?: string; kind: string }).requestId ?? `<${(JSON.parse(l) as { kind: string }).kind}>`);

describe('audit tail --follow', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-follow-'));
  let follower: Follower | null = null;
  after(async () => {
    if (follower !== null && follower.child.exitCode === null) { follower.child.kill('SIGKILL'); await follower.exit; }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the last N, then appended records, across rotations and new chains, each once and in order; exits 0 on SIGTERM', async () => {
    const main = new ChainWriter(dir).begin(at(0));
    main.request({ time: at(1), requestId: 'r1' });
    main.request({ time: at(2), requestId: 'r2' });
    const f = follow(['--from', dir, '-n', '1']);
    follower = f;
    const seen = async (expected: string[], what: string): Promise<void> => {
      await waitUntil(`${what}: ${expected.join(', ')} (saw ${ids(f).join(", ")}; stderr ${f.stderr}; exit ${String(f.child.exitCode)})`, () => ids(f).length >= expected.length);
      assert.deepEqual(ids(f), expected, what);
    };
    await seen(['r2'], 'the last record present at the start');

    main.request({ time: at(3), requestId: 'r3' });
    await seen(['r2', 'r3'], 'an appended record');

    // The last record of a file and the rotation, written at once: the old file is read to its end.
    main.request({ time: at(4), requestId: 'r4' });
    main.rotate(at(5));
    main.request({ time: at(6), requestId: 'r5' });
    await seen(['r2', 'r3', 'r4', 'r5'], 'across a rotation');

    // Two rotations before the follower can look: the file sealed in between is read too.
    main.request({ time: at(7), requestId: 'r6' });
    main.rotate(at(8));
    main.request({ time: at(9), requestId: 'r7' });
    main.rotate(at(10));
    main.request({ time: at(11), requestId: 'r8' });
    await seen(['r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8'], 'across two rotations');

    // A worker's chain begins while following.
    const w1 = new ChainWriter(dir, 'w1').begin(at(12));
    w1.request({ time: at(12), requestId: 'w1-a' });
    await seen(['r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'w1-a'], 'a new chain');

    // A line written in two pieces is printed once, whole.
    const linked = linkText(serialiseRecord(requestRecord({ time: at(13), requestId: 'split' })), main.head);
    main.head = { seq: linked.seq, hash: linked.hash };
    appendFileSync(main.activePath, linked.line.slice(0, 100));
    appendFileSync(main.activePath, linked.line.slice(100));
    main.object({ kind: 'alert', time: at(14), detector: 'tenantFanOut', severity: 'medium', subject: 'bob', summary: '6 tenants in 5m', evidence: {} });
    await seen(['r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'w1-a', 'split', '<alert>'], 'a line in two writes');

    f.child.kill('SIGTERM');
    assert.equal(await f.exit, 0);
    assert.equal(f.stderr, '');
  });

  it('filters apply to followed records too', async () => {
    const sub = mkdtempSync(join(tmpdir(), 'portcullis-follow-filter-'));
    const f = follow(['--from', sub, '--decision', 'deny', '-n', '5']);
    try {
      const chain = new ChainWriter(sub).begin(at(0));
      chain.request({ time: at(1), requestId: 'allowed' });
      chain.request({ time: at(2), requestId: 'denied', decision: 'deny', status: 403, reason: 'forbidden' });
      await waitUntil(`the denial (saw ${f.stdout})`, () => ids(f).length >= 1);
      chain.request({ time: at(3), requestId: 'denied-2', decision: 'deny', status: 401, reason: 'unauthenticated' });
      await waitUntil(`the second denial (saw ${f.stdout})`, () => ids(f).length >= 2);
      assert.deepEqual(ids(f), ['denied', 'denied-2']);
    } finally {
      f.child.kill('SIGTERM');
      await f.exit;
      rmSync(sub, { recursive: true, force: true });
    }
  });
});
