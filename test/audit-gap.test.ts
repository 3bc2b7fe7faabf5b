import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { AuditLog } from '../src/audit/audit-log.js';
import { serialiseRecord } from '../src/audit/audit-record.js';
import { EMPTY_HEAD, linkText } from '../src/audit/chain.js';
import { auditRecord } from '../src/audit/record-builder.js';
import { ManualClock } from './harness/manual-clock.js';

describe('one outage, one records_dropped line', () => {
  it('a gap line is not squeezed into the last free bytes of a full queue, to be followed at once by a new gap', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-gap-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const clock = new ManualClock();
    const record = (i: number) => auditRecord({
      requestId: `r${i}`, path: '/a', stage: 'forward', status: 200, decision: 'allow', reason: null,
      clientIp: '192.0.2.1', userAgent: 'u'.repeat(256), detail: 'd'.repeat(512), configVersion: 'v',
    }, clock.now());
    const recordBytes = Buffer.byteLength(linkText(serialiseRecord(record(0)), EMPTY_HEAD).line);
    // Room for two records and a gap line (well under 350 bytes), never for a third record.
    const maxQueueBytes = 2 * recordBytes + 350;
    assert.ok(recordBytes > 350);
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    const log = new AuditLog(join(dir, 'audit.log'), maxQueueBytes, 1000, pino({ level: 'error' }, sink), clock);
    // Not opened yet: nothing is written, so the queue fills as it would during an outage.
    for (let i = 1; i <= 6; i++) log.write(record(i));
    assert.equal(log.droppedRecords, 4);
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(lines.filter((l) => l.includes('audit records dropped')).length, 0, 'the gap stays open while no record could follow its line');
    await log.open();
    await log.close(); // writes everything queued, the gap line included
    const text = await readFile(join(dir, 'audit.log'), 'utf8');
    const gaps = text.split('\n').filter((l) => l.includes('"event":"records_dropped"')).map((l) => JSON.parse(l) as { droppedRecords: number });
    assert.deepEqual(gaps.map((g) => g.droppedRecords), [4], 'one gap line counting every dropped record');
    assert.deepEqual(text.split('\n').filter((l) => l.includes('"requestId"')).map((l) => (JSON.parse(l) as { requestId: string }).requestId), ['r1', 'r2']);
  });
});

describe('closing the trail during an outage', () => {
  const base = { path: '/a', stage: 'forward', status: 200, decision: 'allow', reason: null, clientIp: '192.0.2.1', configVersion: 'v' } as const;

  /** A trail whose file is a symlink to /dev/full (every write fails) until `heal` points it at a real file. */
  async function failingTrail(t: { after(fn: () => Promise<void>): void }, maxQueueBytes: number): Promise<{ log: AuditLog; clock: ManualClock; heal(): Promise<void>; lines(): Promise<string[]> }> {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-close-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const link = join(dir, 'audit.log');
    const real = join(dir, 'real.log');
    await symlink('/dev/full', link);
    const clock = new ManualClock();
    const log = new AuditLog(link, maxQueueBytes, 1000, pino({ level: 'silent' }), clock);
    await log.open();
    return {
      log, clock,
      async heal() { await writeFile(real, ''); await unlink(link); await symlink(real, link); },
      async lines() { return (await readFile(real, 'utf8')).split('\n').filter((l) => l !== ''); },
    };
  }

  it('a retry that is reopening the file when close() begins does not write the queue a second time', async (t) => {
    const trail = await failingTrail(t, 1 << 20);
    for (let i = 0; i < 5; i++) trail.log.write(auditRecord({ ...base, requestId: `r${i}` }, trail.clock.now()));
    await trail.log.flushed();
    assert.equal(trail.log.state, 'failing');
    await trail.heal();
    trail.clock.advance(1000); // the retry starts reopening the file
    await trail.log.close();
    const ids = (await trail.lines()).map((l) => (JSON.parse(l) as { requestId: string }).requestId);
    assert.deepEqual(ids, ['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('close() writes the records_dropped line of the outage it ends', async (t) => {
    const trail = await failingTrail(t, 4096);
    let i = 0;
    while (trail.log.write(auditRecord({ ...base, requestId: `r${i}`, detail: 'd'.repeat(200) }, trail.clock.now()))) i++;
    trail.log.write(auditRecord({ ...base, requestId: 'dropped-too' }, trail.clock.now()));
    assert.equal(trail.log.droppedRecords, 2);
    await trail.heal();
    await trail.log.close();
    const lines = await trail.lines();
    assert.equal(lines.filter((l) => l.includes('"requestId"')).length, i);
    const gaps = lines.filter((l) => l.includes('"event":"records_dropped"')).map((l) => JSON.parse(l) as { droppedRecords: number });
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
