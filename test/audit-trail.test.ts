import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { archivedMarker, Retention } from '../src/audit/retention.js';
import { loadSigningKey, rotateSigningKey } from '../src/audit/signing-key.js';
import { StdoutSink } from '../src/audit/sinks/stdout-sink.js';
import { chainFiles } from '../src/audit/trail-files.js';
import { ManualClock } from './harness/manual-clock.js';
import { waitUntil } from './harness/assertions.js';
import { chainPaths, checkChain, publicKeys, requestRecord, testTrail } from './harness/trail.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-trail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const keysOf = (dir: string) => publicKeys(join(dir, 'audit', 'keys'));

describe('chain files', () => {
  it('names the active and sealed files of each chain as the format says', () => {
    const main = chainFiles('/d/audit/audit.log', 'main');
    const w1 = chainFiles('/d/audit/audit.log', 'w1');
    assert.equal(main.active, '/d/audit/audit.log');
    assert.equal(main.sealed(1), '/d/audit/audit.000000000001.log');
    assert.equal(w1.active, '/d/audit/audit.w1.log');
    assert.equal(w1.sealed(4001), '/d/audit/audit.w1.000000004001.log');
    assert.equal(main.sealedSeq('audit.000000000001.log'), 1);
    assert.equal(main.sealedSeq('audit.w1.000000004001.log'), null, 'a worker\'s sealed file is not the main chain\'s');
    assert.equal(w1.sealedSeq('audit.w1.000000004001.log'), 4001);
    assert.equal(main.sealedSeq('audit.00000000001.log'), null);
    assert.equal(chainFiles('/d/trail', 'w2').sealed(7), '/d/trail.w2.000000000007');
  });
});

describe('chain continuity', () => {
  it('links records across size rotation, time rotation and restarts, with a signed checkpoint before every seal', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const options = { rotateMaxBytes: 65536, rotateIntervalMs: 3_600_000, checkpointEveryRecords: 50 } as const;
    let n = 0;
    const burst = async (trail: ReturnType<typeof testTrail>['trail'], count: number): Promise<void> => {
      for (let i = 0; i < count; i++) assert.ok(trail.write(requestRecord(`r${n++}`, clock.now(), { detail: 'x'.repeat(200) })));
      await trail.flushed();
    };
    let run = testTrail(dir, clock, options);
    await run.trail.open();
    await burst(run.trail, 400); // ~200 KiB: several size rotations
    await run.trail.close();
    run = testTrail(dir, clock, options);
    await run.trail.open();
    await burst(run.trail, 10);
    clock.advance(3_600_000); // time rotation
    await burst(run.trail, 10);
    await run.trail.close();
    run = testTrail(dir, clock, options);
    await run.trail.open();
    await burst(run.trail, 5);
    await run.trail.close();

    const paths = chainPaths(run.files);
    assert.ok(paths.length >= 5, `${paths.length} files`);
    const check = checkChain(paths, keysOf(dir));
    assert.deepEqual(check.problems, []);
    assert.deepEqual(check.fileNumbers, paths.map((_, i) => i + 1), 'files numbered from 1 without a gap');
    const requests = check.records.filter((r) => r.kind === 'request').map((r) => r.requestId);
    assert.deepEqual(requests, Array.from({ length: n }, (_, i) => `r${i}`), 'every record once, in order');
    const starts = check.records.filter((r) => r.kind === 'start');
    assert.deepEqual(starts.map((s) => s.resumed), [false, true, true]);
    // Each sealed file ends in a checkpoint of the record before it.
    for (const path of paths.slice(0, -1)) {
      const lines = (await readFile(path, 'utf8')).trim().split('\n');
      const last = JSON.parse(lines.at(-1) ?? '{}') as { kind: string; seq: number };
      assert.equal(last.kind, 'checkpoint', `${path} ends in a checkpoint`);
      assert.equal(path, run.files.sealed((JSON.parse(lines[0] ?? '{}') as { seq: number }).seq), 'named by the seq of its first record');
    }
    // A checkpoint at least every 50 records, and one at each shutdown.
    const seqs = check.checkpoints.map((c) => c.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.ok((seqs[i] ?? 0) - (seqs[i - 1] ?? 0) <= 51);
    assert.equal(check.records.at(-1)?.kind, 'checkpoint', 'the last record is the shutdown checkpoint');
    assert.equal(new Set(check.checkpoints.map((c) => c.chain)).size, 1);
  });

  it('checkpoints on the interval only when records were written since the last', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const { trail, files } = testTrail(dir, clock, { checkpointIntervalMs: 10_000 });
    await trail.open();
    trail.write(requestRecord('a', clock.now()));
    await trail.flushed();
    clock.advance(10_000);
    clock.advance(10_000);
    clock.advance(10_000);
    await trail.flushed();
    const check = checkChain(chainPaths(files), keysOf(dir));
    assert.deepEqual(check.problems, []);
    assert.equal(check.checkpoints.length, 1, 'one checkpoint: nothing was written after it');
    await trail.close();
  });

  it('a fresh active file after a sealed one links to the sealed file\'s last record', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    let run = testTrail(dir, clock, { rotateMaxBytes: 65536 });
    await run.trail.open();
    for (let i = 0; i < 300; i++) run.trail.write(requestRecord(`r${i}`, clock.now(), { detail: 'y'.repeat(200) }));
    await run.trail.close();
    // The active file is moved away (shipped elsewhere) and forgotten: the chain goes on from the newest sealed file.
    const paths = chainPaths(run.files);
    await rm(run.files.active);
    run = testTrail(dir, clock, { rotateMaxBytes: 65536 });
    await run.trail.open();
    await run.trail.close();
    const check = checkChain(chainPaths(run.files), keysOf(dir));
    // The new file continues from the last sealed record (what the removed file held is known only to
    // the copies shipped elsewhere: another sink, or checkpoints kept away from the trail).
    assert.deepEqual(check.problems, []);
    const sealedLast = checkChain(paths.slice(0, -1), keysOf(dir)).records.at(-1);
    const first = JSON.parse((await readFile(run.files.active, 'utf8')).split('\n')[0] ?? '{}') as { kind: string; file: number; prev: string };
    assert.equal(first.kind, 'file');
    assert.equal(first.prev, sealedLast?.hash);
    assert.equal(first.file, paths.length, 'the number after the newest sealed file\'s');
  });
});

describe('a torn tail', () => {
  it('is ended with a newline, reported in the next start record, and the chain resumes after the last whole record', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    let run = testTrail(dir, clock);
    await run.trail.open();
    for (let i = 0; i < 5; i++) run.trail.write(requestRecord(`r${i}`, clock.now()));
    await run.trail.close();
    // A process killed in the middle of a write leaves part of a line.
    const torn = '{"bytesIn":0,"bytesOut":0,"clientIp":"192.0';
    await appendFile(run.files.active, torn);
    run = testTrail(dir, clock);
    await run.trail.open();
    run.trail.write(requestRecord('after', clock.now()));
    await run.trail.close();
    const text = await readFile(run.files.active, 'utf8');
    const lines = text.split('\n');
    assert.ok(lines.includes(torn), 'the torn bytes stay, on a line of their own');
    const check = checkChain([run.files.active], keysOf(dir));
    assert.deepEqual(check.problems.map((p) => p.replace(/^.*:(\d+):/, '$1:')), [`${lines.indexOf(torn) + 1}: not JSON (${torn.length} bytes)`]);
    const start = check.records.filter((r) => r.kind === 'start').at(-1);
    assert.deepEqual(start?.torn, { bytes: torn.length });
    assert.deepEqual(check.records.filter((r) => r.kind === 'request').map((r) => r.requestId), ['r0', 'r1', 'r2', 'r3', 'r4', 'after']);
  });

  it('refuses to start on a file whose tail holds no record of a chain, naming it', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const run = testTrail(dir, clock);
    await run.trail.open();
    await run.trail.close();
    await writeFile(run.files.active, '{"not":"a record"}\n');
    await assert.rejects(testTrail(dir, clock).trail.open(), /audit\.file: .*audit\.log ends in no record of the chain/);
  });
});

describe('signing keys', () => {
  it('creates the key at first start (0600 in a 0700 directory) and keeps its public key beside it', async (t) => {
    const dir = await tempDir(t);
    const key = loadSigningKey(dir, null);
    const keys = join(dir, 'audit', 'keys');
    assert.equal((await stat(join(keys, 'signing.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(keys)).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(keys), [`${key.keyId}.pub.pem`, 'signing.pem'].sort());
    assert.equal(loadSigningKey(dir, null).keyId, key.keyId, 'the same key at the next start');
    assert.throws(() => loadSigningKey(dir, 'elsewhere.pem'), /audit\.signingKeyFile: .*elsewhere\.pem does not exist/);
  });

  it('after rotate-key the next start signs with the new key; the old public key is kept and old checkpoints verify', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    let run = testTrail(dir, clock);
    await run.trail.open();
    run.trail.write(requestRecord('before', clock.now()));
    await run.trail.close();
    const { previous, current } = rotateSigningKey(dir, null);
    assert.notEqual(previous, null);
    assert.notEqual(previous, current);
    run = testTrail(dir, clock);
    await run.trail.open();
    run.trail.write(requestRecord('after', clock.now()));
    await run.trail.close();
    const check = checkChain([run.files.active], keysOf(dir));
    assert.deepEqual(check.problems, []);
    assert.deepEqual(check.checkpoints.map((c) => c.keyId), [previous, current]);
    assert.ok(keysOf(dir).has(previous ?? ''));
    // Without the old public key, the old checkpoint cannot be verified.
    const onlyNew = new Map([...keysOf(dir)].filter(([id]) => id === current));
    assert.deepEqual(checkChain([run.files.active], onlyNew).problems.filter((p) => p.includes('unknown key')).length, 1);
  });
});

describe('failOpen', () => {
  it('serves while the file cannot be written, counts the drops and writes one gap record when it can again', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    // The file is a symlink to /dev/full (every write fails) until it is pointed at a real file.
    const link = join(dir, 'audit.log');
    const real = join(dir, 'real.log');
    await symlink('/dev/full', link);
    const { trail, file } = testTrail(dir, clock, { onFailure: 'failOpen', maxQueueBytes: 65536, path: link });
    await trail.open();
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      if (trail.write(requestRecord(`f${i}`, clock.now(), { detail: 'z'.repeat(300) }))) accepted++;
      assert.equal(trail.healthy, true, 'failOpen: the trail never refuses requests');
      if (i % 25 === 0) await trail.flushed();
    }
    await trail.flushed();
    assert.equal(file.state, 'failing');
    assert.ok(trail.droppedRecords > 0 && accepted < 400);
    await writeFile(real, '');
    await unlink(link);
    await symlink(real, link);
    clock.advance(1000); // the retry reopens the path
    await waitUntil('the file sink recovers', async () => { await trail.flushed(); return file.state === 'ok'; });
    await trail.close();
    const text = await readFile(real, 'utf8');
    const gaps = text.split('\n').filter((l) => l.includes('"kind":"gap"')).map((l) => JSON.parse(l) as { droppedRecords: number });
    assert.deepEqual(gaps.map((g) => g.droppedRecords), [trail.droppedRecords]);
    assert.equal(text.split('\n').filter((l) => l.includes('"requestId"')).length, accepted, 'every record accepted is written after the outage');
  });
});

describe('the stdout sink', () => {
  it('gets the same lines as the file, and its drops become a gap record naming it', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const out = new PassThrough({ highWaterMark: 16 });
    const sink = new StdoutSink(4096, 'failOpen', out);
    const { trail, files } = testTrail(dir, clock, { sinks: [sink] });
    await trail.open();
    for (let i = 0; i < 50; i++) trail.write(requestRecord(`s${i}`, clock.now()));
    await trail.flushed();
    assert.ok(sink.dropped > 0, 'nobody reads the pipe: the sink drops rather than grow');
    assert.equal(trail.healthy, true, 'stdout fails open');
    const got: string[] = [];
    out.on('data', (chunk: Buffer) => got.push(chunk.toString('utf8')));
    await waitUntil('the pipe drains', () => sink.state === 'ok');
    trail.write(requestRecord('last', clock.now()));
    await trail.flushed();
    await trail.close();
    const fileText = await readFile(files.active, 'utf8');
    const gap = fileText.split('\n').find((l) => l.includes('"kind":"gap"'));
    assert.ok(gap?.includes('"sink":"stdout"'), 'the gap record names the sink');
    for (const line of got.join('').split('\n').filter((l) => l !== '')) assert.ok(fileText.includes(line + '\n'), 'every stdout line is a line of the file');
  });
});

describe('retention and archiving', () => {
  it('archives each sealed file (the command receives its path) and deletes only archived sealed files past the limits', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock(Date.now());
    const log = join(dir, 'archived.txt');
    const fail = join(dir, 'fail');
    await writeFile(fail, '');
    // Fails while the file `fail` exists, else appends the path it was given.
    const command = ['sh', '-c', 'test -e "$1" && exit 3; printf "%s\\n" "$2" >> "$0"', log, fail, '{file}'];
    const files = chainFiles(join(dir, 'audit', 'audit.log'), 'main');
    const retention = new Retention({ files, maxAgeMs: 86_400_000, maxBytes: null, archiveCommand: command, archiveTimeoutMs: 10_000, logger: pino({ level: 'silent' }), clock });
    const { trail } = testTrail(dir, clock, { rotateMaxBytes: 65536, retention });
    await trail.open();
    for (let i = 0; i < 400; i++) trail.write(requestRecord(`r${i}`, clock.now(), { detail: 'q'.repeat(200) }));
    await trail.flushed();
    const sealed = chainPaths(files).slice(0, -1);
    assert.ok(sealed.length >= 2);
    // Every sealed file is old, but none is archived: none is deleted.
    for (const path of sealed) await utimes(path, new Date(clock.now() - 2 * 86_400_000), new Date(clock.now() - 2 * 86_400_000));
    await retention.sweep();
    for (const path of sealed) assert.ok((await stat(path)).isFile(), `${path} kept: its archive failed`);
    await rm(fail);
    await retention.sweep();
    const archived = (await readFile(log, 'utf8')).trim().split('\n');
    assert.deepEqual(archived, sealed, 'the command got each sealed path, once');
    for (const path of sealed) {
      await assert.rejects(stat(path), 'archived and older than maxAge: deleted');
      await assert.rejects(stat(archivedMarker(path)));
    }
    assert.ok((await stat(files.active)).isFile(), 'never the active file');
    await trail.close();
  });

  it('keeps the newest sealed files within maxBytes', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const files = chainFiles(join(dir, 'audit', 'audit.log'), 'main');
    const retention = new Retention({ files, maxAgeMs: null, maxBytes: 3 * 65536, archiveCommand: null, archiveTimeoutMs: 10_000, logger: pino({ level: 'silent' }), clock });
    const { trail } = testTrail(dir, clock, { rotateMaxBytes: 65536, retention });
    await trail.open();
    for (let i = 0; i < 1200; i++) trail.write(requestRecord(`r${i}`, clock.now(), { detail: 'q'.repeat(200) }));
    await trail.flushed();
    await retention.sweep();
    const paths = chainPaths(files);
    let total = 0;
    for (const p of paths) total += (await stat(p)).size;
    assert.ok(total <= 3 * 65536, `${total} bytes kept`);
    assert.ok(paths.length >= 2);
    // What is left still verifies from its first file on, apart from the link to the deleted files.
    const check = checkChain(paths, keysOf(dir));
    assert.equal(check.problems.length, 2, check.problems.join('\n'));
    await trail.close();
  });
});
