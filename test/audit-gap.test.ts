import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { serialiseRecord } from '../src/audit/audit-record.js';
import { EMPTY_HEAD, linkText } from '../src/audit/chain.js';
import { auditRecord } from '../src/audit/record-builder.js';
import { ManualClock } from './harness/manual-clock.js';
import { checkChain, publicKeys, testTrail } from './harness/trail.js';

describe('one outage, one gap record', () => {
  it('a gap record is not squeezed into the last free bytes of a full queue, to be followed at once by a new gap', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-gap-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const clock = new ManualClock();
    const record = (i: number) => auditRecord({
      requestId: `r${i}`, path: '/a', stage: 'forward', status: 200, decision: 'allow', reason: null,
      clientIp: '192.0.2.1', userAgent: 'u'.repeat(256), detail: 'd'.repeat(512), configVersion: 'v',
    }, clock.now());
    const recordBytes = Buffer.byteLength(linkText(serialiseRecord(record(0)), EMPTY_HEAD).line);
    // Room for two records and a gap record (well under 400 bytes), never for a third record.
    const maxQueueBytes = 2 * recordBytes + 400;
    assert.ok(recordBytes > 400);
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    const { trail } = testTrail(dir, clock, { maxQueueBytes, logger: pino({ level: 'error' }, sink) });
    // Not opened yet: nothing is written, so the queue fills as it would during an outage.
    for (let i = 1; i <= 6; i++) trail.write(record(i));
    assert.equal(trail.droppedRecords, 4);
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(lines.filter((l) => l.includes('audit records dropped')).length, 0, 'the gap stays open while no record could follow it');
    await trail.open();
    await trail.close(); // writes everything queued, the gap record included
    const text = await readFile(join(dir, 'audit', 'audit.log'), 'utf8');
    const gaps = text.split('\n').filter((l) => l.includes('"kind":"gap"')).map((l) => JSON.parse(l) as { droppedRecords: number });
    assert.deepEqual(gaps.map((g) => g.droppedRecords), [4], 'one gap record counting every dropped record');
    assert.deepEqual(text.split('\n').filter((l) => l.includes('"requestId"')).map((l) => (JSON.parse(l) as { requestId: string }).requestId), ['r1', 'r2']);
    const check = checkChain([join(dir, 'audit', 'audit.log')], publicKeys(join(dir, 'audit', 'keys')));
    assert.deepEqual(check.problems, [], 'records dropped before linking leave no hole in the chain');
  });
});

describe('closing the trail during an outage', () => {
  const base = { path: '/a', stage: 'forward', status: 200, decision: 'allow', reason: null, clientIp: '192.0.2.1', configVersion: 'v' } as const;

  /** A trail whose file is a symlink to /dev/full (every write fails) until `heal` points it at a real file. */
  async function failingTrail(t: { after(fn: () => Promise<void>): void }, maxQueueBytes: number) {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-close-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const link = join(dir, 'audit.log');
    const real = join(dir, 'real.log');
    await symlink('/dev/full', link);
    const clock = new ManualClock();
    const { trail } = testTrail(dir, clock, { maxQueueBytes, path: link });
    await trail.open();
    return {
      trail, clock,
      async heal() { await writeFile(real, ''); await unlink(link); await symlink(real, link); },
      async lines() { return (await readFile(real, 'utf8')).split('\n').filter((l) => l !== ''); },
    };
  }

  it('a retry that is reopening the file when close() begins does not write the queue a second time', async (t) => {
    const f = await failingTrail(t, 1 << 20);
    for (let i = 0; i < 5; i++) f.trail.write(auditRecord({ ...base, requestId: `r${i}` }, f.clock.now()));
    await f.trail.flushed();
    assert.equal(f.trail.state, 'failing');
    await f.heal();
    f.clock.advance(1000); // the retry starts reopening the file
    await f.trail.close();
    const ids = (await f.lines()).map((l) => JSON.parse(l) as { requestId?: string }).flatMap((r) => (r.requestId === undefined ? [] : [r.requestId]));
    assert.deepEqual(ids, ['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('close() writes the gap record of the outage it ends', async (t) => {
    const f = await failingTrail(t, 65536);
    let i = 0;
    while (f.trail.write(auditRecord({ ...base, requestId: `r${i}`, detail: 'd'.repeat(400) }, f.clock.now()))) {
      i++;
      if (i % 20 === 0) await f.trail.flushed();
    }
    f.trail.write(auditRecord({ ...base, requestId: 'dropped-too' }, f.clock.now()));
    assert.equal(f.trail.droppedRecords, 2);
    await f.heal();
    await f.trail.close();
    const lines = await f.lines();
    assert.equal(lines.filter((l) => l.includes('"requestId"')).length, i);
    const gaps = lines.filter((l) => l.includes('"kind":"gap"')).map((l) => JSON.parse(l) as { droppedRecords: number });
    assert.deepEqual(gaps.map((g) => g.droppedRecords), [2]);
  });
});

describe('record times', () => {
  it('a time that cannot be formatted throws every time, and never leaves a wrong time behind', () => {
    const facts = { ...{ path: '/a', stage: null, status: 200, decision: 'allow', reason: null, clientIp: '192.0.2.1', configVersion: 'v' } as const, requestId: 'r' };
    assert.equal(auditRecord(facts, 1000).time, '1970-01-01T00:00:01.000Z');
    assert.throws(() => auditRecord(facts, 9e15), RangeError);
    assert.throws(() => auditRecord(facts, 9e15), RangeError);
    assert.equal(auditRecord(facts, 2000).time, '1970-01-01T00:00:02.000Z');
  });
});
