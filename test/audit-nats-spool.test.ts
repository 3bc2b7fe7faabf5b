// The NATS sink's on-disk spool on its own: lines come back in order and only once committed; a
// torn tail, a garbage or stale position file and a line that is too long are survived without
// losing a whole record; the file never passes maxBytes, compacting its delivered head.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Spool } from '../src/audit/sinks/spool.js';

describe('audit spool', () => {
  const root = mkdtempSync(join(tmpdir(), 'portcullis-spool-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const path = (): string => join(root, `d${++n}`, 'gw-1', 'main.log');
  const lines = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => `{"seq":${from + i}}\n`);

  it('gives lines back in order, and again until they are committed', async () => {
    const s = new Spool(path(), 1 << 20);
    await s.open();
    await s.append(lines(1, 10));
    const first = await s.read(4);
    assert.deepEqual(first.lines, ['{"seq":1}', '{"seq":2}', '{"seq":3}', '{"seq":4}']);
    assert.deepEqual((await s.read(4)).lines, first.lines, 'not committed: read again');
    await s.commit(first.end);
    assert.deepEqual((await s.read(100)).lines.map((l) => (JSON.parse(l) as { seq: number }).seq), [5, 6, 7, 8, 9, 10]);
    await s.close();
  });

  it('resumes after a restart from the committed position, and empties the file once all is delivered', async () => {
    const p = path();
    const a = new Spool(p, 1 << 20);
    await a.open();
    await a.append(lines(1, 6));
    await a.commit((await a.read(2)).end);
    await a.close();
    const b = new Spool(p, 1 << 20);
    await b.open();
    const rest = await b.read(100);
    assert.deepEqual(rest.lines, ['{"seq":3}', '{"seq":4}', '{"seq":5}', '{"seq":6}']);
    await b.commit(rest.end);
    assert.equal(b.pendingBytes, 0);
    assert.equal(statSync(p).size, 0);
    await b.close();
  });

  it('cuts a torn last line left by a crash, keeping every whole line', async () => {
    const p = path();
    const a = new Spool(p, 1 << 20);
    await a.open();
    await a.append(lines(1, 3));
    await a.close();
    appendFileSync(p, '{"seq":4,"half');
    const b = new Spool(p, 1 << 20);
    await b.open();
    assert.deepEqual((await b.read(100)).lines, ['{"seq":1}', '{"seq":2}', '{"seq":3}']);
    assert.equal(b.skipped, 1);
    await b.close();
  });

  for (const [label, pos] of [['garbage', 'x9'], ['past the end', '999999'], ['inside a line', '3'], ['negative', '-4']] as const) {
    it(`re-delivers from the start when the position file is ${label}, never skipping a line`, async () => {
      const p = path();
      const a = new Spool(p, 1 << 20);
      await a.open();
      await a.append(lines(1, 3));
      await a.close();
      writeFileSync(`${p}.pos`, pos);
      const b = new Spool(p, 1 << 20);
      await b.open();
      assert.deepEqual((await b.read(100)).lines, ['{"seq":1}', '{"seq":2}', '{"seq":3}']);
      await b.close();
    });
  }

  it('skips a line longer than it reads at once, and goes on', async () => {
    const p = path();
    const a = new Spool(p, 8 << 20);
    await a.open();
    await a.append(['x'.repeat(1024 * 1024 + 10) + '\n', '{"seq":2}\n']);
    const got = await a.read(10);
    await a.commit(got.end);
    const next = await a.read(10);
    assert.deepEqual([...got.lines, ...next.lines].filter((l) => l.startsWith('{')), ['{"seq":2}']);
    assert.ok(a.skipped >= 1);
    await a.close();
  });

  it('stays within maxBytes: an append past it cuts off the delivered head first', async () => {
    const p = path();
    const line = `{"pad":"${'p'.repeat(90)}"}\n`;
    const max = line.length * 10;
    const s = new Spool(p, max);
    await s.open();
    await s.append(Array.from({ length: 10 }, () => line));
    assert.equal(s.hasRoom(line.length), false, 'full');
    await s.commit((await s.read(4)).end);
    assert.equal(s.hasRoom(line.length * 4), true);
    await s.append([line, line, line, line]);
    assert.ok(statSync(p).size <= max, `file is ${statSync(p).size} bytes`);
    assert.equal((await s.read(100)).lines.length, 10);
    assert.equal(readFileSync(`${p}.pos`, 'utf8'), '0');
    await s.close();
  });
});
