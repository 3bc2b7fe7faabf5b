import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { AuditLog } from '../src/audit/audit-log.js';
import { serialiseRecord } from '../src/audit/audit-record.js';
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
    const recordBytes = Buffer.byteLength(serialiseRecord(record(0)));
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
