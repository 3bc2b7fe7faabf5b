// `portcullis audit verify` names the first tampering of each chain — the kind, file, line and
// seq — and exits with the code a script can act on. Trails are written by a small writer that
// follows docs/audit.md (file and start records, rotation, restarts, signed checkpoints), then
// tampered with as an attacker with write access to the files would.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../src/audit/canonical.js';
import { sha256Hex } from '../src/audit/chain.js';
import { at, fileLines, firstProblem, recordAt, runVerify, trailFiles, verifyJson, writeLines } from './harness/audit-verify-cli.js';
import { CLI } from './harness/gateway.js';
import { TrailWriter, newAuditKey, writeSampleTrail, type AuditKey } from './harness/trail-writer.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-verify-'));
after(() => rmSync(root, { recursive: true, force: true }));

let sample = '';
let key: AuditKey;
let n = 0;

/** A fresh copy of the sample trail to tamper with. */
function copy(): string {
  const dir = join(root, `case-${++n}`);
  cpSync(sample, dir, { recursive: true });
  return dir;
}

const FILE1 = 'audit.000000000001.log';

before(() => {
  sample = join(root, 'sample');
  key = newAuditKey(join(sample, 'keys'));
  writeSampleTrail(sample, key);
});

describe('audit verify: an untouched trail', () => {
  it('verifies across rotations and a restart, every chain, exit 0', async () => {
    assert.deepEqual(trailFiles(sample), ['audit.000000000001.log', 'audit.000000000031.log', 'audit.log', 'audit.w1.000000000001.log', 'audit.w1.000000000013.log', 'audit.w1.log']);
    const { code, report } = await verifyJson([sample]);
    assert.equal(code, 0, JSON.stringify(report, null, 2));
    assert.equal(report.ok, true);
    assert.deepEqual(report.chains.map((c) => c.chain), ['gw-1/main', 'gw-1/w1']);
    const main = report.chains[0];
    assert.ok(main !== undefined);
    assert.deepEqual(main.files.map((f) => f.slice(sample.length + 1)), ['audit.000000000001.log', 'audit.000000000031.log', 'audit.log']);
    assert.equal(main.firstSeq, 1);
    assert.equal(main.lastSeq, main.records);
    assert.deepEqual(main.problems, []);
    assert.deepEqual(main.notes, [], 'a clean shutdown leaves nothing un-checkpointed');
    assert.equal(main.head, recordAt(at(sample, 'audit.log'), fileLines(at(sample, 'audit.log')).length).hash);
    assert.equal(report.keys.source, 'default');
    assert.deepEqual(report.keys.keyIds, [key.keyId]);
  });

  it('verifies the files named one by one, in any order, and a chain whose first files retention removed (with a note)', async () => {
    const { code } = await verifyJson([at(sample, 'audit.log'), at(sample, FILE1), at(sample, 'audit.000000000031.log')]);
    assert.equal(code, 0);
    const dir = copy();
    unlinkSync(at(dir, FILE1));
    const trimmed = await verifyJson([dir]);
    assert.equal(trimmed.code, 0, JSON.stringify(trimmed.report.chains[0]?.problems));
    assert.deepEqual(trimmed.report.chains[0]?.notes.map((x) => x.kind), ['earlier files absent']);
  });

  it('prints one line per chain and where the keys came from; nothing on stderr', async () => {
    const run = await runVerify([sample]);
    assert.equal(run.code, 0);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, new RegExp(`^keys: 1 public key in ${join(sample, 'keys').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(the keys/ directory next to the trail`, 'm'));
    assert.match(run.stdout, /^gw-1\/main: ok: 85 records in 3 files \(seq 1–85\), 10 checkpoints, head [0-9a-f]{16}…$/m);
    assert.match(run.stdout, /^gw-1\/w1: ok: /m);
    assert.match(run.stdout, /^verified: 2 of 2 chains without problems$/m);
  });

  it('takes records not yet checkpointed (a crash before the next checkpoint) as a note, not a failure', async () => {
    const dir = join(root, 'uncheckpointed');
    const w = new TrailWriter({ dir, key: newAuditKey(join(dir, 'keys')), checkpointEvery: 10 });
    for (let i = 0; i < 13; i++) w.request();
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 0);
    assert.deepEqual(report.chains[0]?.notes.map((x) => x.kind), ['not yet checkpointed']);
    assert.match(report.chains[0]?.notes[0]?.message ?? '', /^3 records after the last checkpoint \(seq 14–16\) are not yet checkpointed/);
  });

  it('takes a torn line that the next start record reports as the one loss of a crash, and goes on', async () => {
    const dir = join(root, 'torn');
    const k = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: k, checkpointEvery: 4 });
    for (let i = 0; i < 6; i++) w.request();
    w.writeRaw('{"bytesIn":0,"bytesOut":42,"clientIp":"192.0.2.10","configVer');
    const crashed = await verifyJson([dir]);
    assert.equal(crashed.code, 3, 'only a truncated tail: what a crash leaves');
    assert.deepEqual(firstProblem(crashed.report), { kind: 'truncated tail', file: 'audit.log', line: 10 });
    const restarted = new TrailWriter({ dir, key: k, checkpointEvery: 4 });
    for (let i = 0; i < 3; i++) restarted.request();
    restarted.close();
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 0, JSON.stringify(report.chains[0]?.problems));
    assert.deepEqual(report.chains[0]?.notes.map((x) => [x.kind, x.file?.slice(dir.length + 1), x.line]), [['torn', 'audit.log', 10]]);
  });

  it('takes a torn line at the end of a sealed file when the restart began a new file with the start record after its file record', async () => {
    const dir = join(root, 'torn-rotated');
    const k = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: k, checkpointEvery: 2 });
    for (let i = 0; i < 3; i++) w.request();
    const partial = '{"bytesIn":0,"bytesOut":42,"clientIp":"192.0.2.10"';
    w.writeRaw(partial);
    // The restarted writer ends the torn line, seals the file and begins file 2.
    appendFileSync(at(dir, 'audit.log'), '\n');
    const sealed = at(dir, FILE1);
    cpSync(at(dir, 'audit.log'), sealed);
    unlinkSync(at(dir, 'audit.log'));
    const lines = fileLines(sealed);
    const last = recordAt(sealed, lines.length - 1);
    let head = { seq: last.seq as number, hash: last.hash as string };
    const next: string[] = [];
    for (const record of [
      { chain: 'gw-1/main', kind: 'file', file: 2, time: '2026-11-30T01:00:00.000Z' },
      { chain: 'gw-1/main', kind: 'start', resumed: true, torn: { bytes: Buffer.byteLength(partial) }, time: '2026-11-30T01:00:00.000Z' },
    ]) {
      const line = TrailWriter.lineAfter(head, record);
      const parsed = JSON.parse(line) as { seq: number; hash: string };
      head = { seq: parsed.seq, hash: parsed.hash };
      next.push(line.trimEnd());
    }
    writeLines(at(dir, 'audit.log'), next);
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 0, JSON.stringify(report.chains[0]?.problems));
    assert.deepEqual(report.chains[0]?.notes.map((x) => [x.kind, x.line]), [['torn', lines.length], ['not yet checkpointed', undefined]]);
  });

  it('verifies a trail whose audit key was rotated, with both public keys kept', async () => {
    const dir = join(root, 'rotated-key');
    const first = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: first, checkpointEvery: 5 });
    for (let i = 0; i < 7; i++) w.request();
    w.useKey(newAuditKey(join(dir, 'keys')));
    for (let i = 0; i < 7; i++) w.request();
    w.close();
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 0, JSON.stringify(report.chains[0]?.problems));
    assert.equal(report.keys.keyIds.length, 2);
  });
});

describe('audit verify: tampering is named by kind, file, line and seq; exit 1', () => {
  const expectProblem = async (dir: string, expected: ReturnType<typeof firstProblem>, code = 1, chain = 'gw-1/main'): Promise<void> => {
    const result = await verifyJson([dir]);
    assert.deepEqual(firstProblem(result.report, chain), expected, JSON.stringify(result.report.chains.find((c) => c.chain === chain)?.problems));
    assert.equal(result.code, code);
    assert.equal(result.report.ok, false);
  };

  it('one field edited: modified, at that record', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    assert.equal(recordAt(at(dir, FILE1), 5).seq, 5);
    lines[4] = (lines[4] ?? '').replace('"status":200', '"status":201');
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'modified', file: FILE1, line: 5, seq: 5 });
  });

  it('one field edited and its hash recomputed: modified, at that record (the next one no longer links to it)', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    const record = { ...recordAt(at(dir, FILE1), 5), decision: 'deny', hash: undefined };
    lines[4] = canonicalJson({ ...record, hash: sha256Hex(canonicalJson(record)) });
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'modified', file: FILE1, line: 5, seq: 5 });
  });

  it('a record deleted: deleted, at the record after the hole', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    lines.splice(5, 1);
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'deleted', file: FILE1, line: 6, seq: 7 });
  });

  it('several records deleted: deleted, naming the seq range', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    lines.splice(5, 3);
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'deleted', file: FILE1, line: 6, seq: 9 });
    const { report } = await verifyJson([dir]);
    assert.match(report.chains[0]?.problems[0]?.message ?? '', /3 records \(seq 6–8\) are missing/);
  });

  it('an earlier record replayed later: inserted, at the copy', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    lines.splice(8, 0, lines[3] ?? '');
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'inserted', file: FILE1, line: 9, seq: 4 });
  });

  it('a line duplicated: inserted, at the second copy', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    lines.splice(7, 0, lines[6] ?? '');
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'inserted', file: FILE1, line: 8, seq: 7 });
  });

  it('a forged record linked after a real one (right seq, right prev, valid hash): inserted, at the forgery', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    const before7 = recordAt(at(dir, FILE1), 7);
    const forged = TrailWriter.lineAfter({ seq: before7.seq as number, hash: before7.hash as string }, { kind: 'request', time: '2026-11-30T00:00:07.500Z', requestId: 'forged', method: 'DELETE', path: '/api/items', status: 204, decision: 'allow' });
    lines.splice(7, 0, forged.trimEnd());
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'inserted', file: FILE1, line: 8, seq: 8 });
  });

  it('two records swapped: reordered, at the first out of place', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    [lines[4], lines[5]] = [lines[5] ?? '', lines[4] ?? ''];
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'reordered', file: FILE1, line: 5, seq: 6 });
  });

  it('a record moved far ahead: reordered', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    const [moved] = lines.splice(3, 1);
    lines.splice(15, 0, moved ?? '');
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'reordered', file: FILE1, line: 4, seq: 5 });
  });

  it('the newest file cut mid-line: truncated tail, exit 3', async () => {
    const dir = copy();
    const path = at(dir, 'audit.log');
    const count = fileLines(path).length;
    truncateSync(path, statSync(path).size - 30);
    await expectProblem(dir, { kind: 'truncated tail', file: 'audit.log', line: count }, 3);
  });

  it('a sealed file cut mid-line: unparseable there, exit 1 (no crash leaves a sealed file torn)', async () => {
    const dir = copy();
    const path = at(dir, FILE1);
    const count = fileLines(path).length;
    truncateSync(path, statSync(path).size - 30);
    await expectProblem(dir, { kind: 'unparseable', file: FILE1, line: count });
  });

  it('a whole rotated file dropped: missing file, at the file after the gap', async () => {
    const dir = copy();
    unlinkSync(at(dir, 'audit.000000000031.log'));
    await expectProblem(dir, { kind: 'missing file', file: 'audit.log', line: 1, seq: 60 });
    const { report } = await verifyJson([dir]);
    assert.match(report.chains[0]?.problems[0]?.message ?? '', /^file 2 is missing \(seq 31–59\)/);
  });

  it('a checkpoint signature replaced (hash left as it was): bad signature', async () => {
    const dir = copy();
    const lines = fileLines(at(dir, FILE1));
    const index = lines.findIndex((l) => l.includes('"kind":"checkpoint"'));
    const other = lines.findLastIndex((l) => l.includes('"kind":"checkpoint"'));
    assert.ok(index >= 0 && other > index);
    const signature = (s: string): string => /"signature":"([^"]+)"/.exec(s)?.[1] ?? '';
    lines[index] = (lines[index] ?? '').replace(signature(lines[index] ?? ''), signature(lines[other] ?? ''));
    writeLines(at(dir, FILE1), lines);
    await expectProblem(dir, { kind: 'bad signature', file: FILE1, line: index + 1, seq: index + 1 });
  });

  it('the last checkpoint re-signed by a key not among the public keys, its hash recomputed: unknown key', async () => {
    const dir = copy();
    const path = at(dir, 'audit.log');
    const lines = fileLines(path);
    const last = recordAt(path, lines.length);
    const previous = recordAt(path, lines.length - 1);
    const stranger = newAuditKey();
    const w = { seq: previous.seq as number, hash: previous.hash as string };
    const { checkpointRecord } = await import('../src/audit/chain.js');
    lines[lines.length - 1] = TrailWriter.lineAfter(w, checkpointRecord({ chain: 'gw-1/main', count: w.seq, head: w.hash, keyId: stranger.keyId, time: last.time as string }, stranger.privateKey)).trimEnd();
    writeLines(path, lines);
    await expectProblem(dir, { kind: 'unknown key', file: 'audit.log', line: lines.length, seq: last.seq as number });
  });

  it('a trail signed by a key whose public key is not kept: unknown key; with --keys naming a directory that has it: verified', async () => {
    const dir = join(root, 'unknown-key');
    const kept = newAuditKey(join(dir, 'keys'));
    const elsewhere = join(root, 'elsewhere-keys');
    const lost = newAuditKey(elsewhere);
    const w = new TrailWriter({ dir, key: kept, checkpointEvery: 5 });
    for (let i = 0; i < 6; i++) w.request();
    w.useKey(lost);
    for (let i = 0; i < 10; i++) w.request();
    w.close();
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1);
    assert.deepEqual(firstProblem(report), { kind: 'unknown key', file: 'audit.log', line: 14, seq: 14 });
    assert.match(report.chains[0]?.problems[0]?.message ?? '', /and 2 later checkpoints likewise/);
    cpSync(join(dir, 'keys'), elsewhere, { recursive: true });
    const given = await verifyJson([dir], ['--keys', elsewhere]);
    assert.equal(given.code, 0);
    assert.equal(given.report.keys.source, 'given');
  });

  it('a file of another chain spliced onto one: spliced, where the other file begins; the other chain still verifies', async () => {
    const dir = copy();
    const count = fileLines(at(dir, FILE1)).length;
    appendFileSync(at(dir, FILE1), readFileSync(at(dir, 'audit.w1.000000000013.log')));
    await expectProblem(dir, { kind: 'spliced', file: FILE1, line: count + 1, seq: 13 });
    const { report } = await verifyJson([dir]);
    assert.deepEqual(report.chains.find((c) => c.chain === 'gw-1/w1')?.problems, []);
  });

  it('an older file of the same chain spliced onto the newest: spliced', async () => {
    const dir = copy();
    const count = fileLines(at(dir, 'audit.log')).length;
    appendFileSync(at(dir, 'audit.log'), readFileSync(at(dir, FILE1)));
    await expectProblem(dir, { kind: 'spliced', file: 'audit.log', line: count + 1, seq: 1 });
  });

  it('a sealed file replaced by another chain\'s file renamed and relabelled in place: spliced at its first line', async () => {
    const dir = copy();
    const w1 = fileLines(at(dir, 'audit.w1.000000000013.log'));
    // The attacker rewrites the file record to claim this chain and file 2, with a fresh hash.
    const record = { ...(JSON.parse(w1[0] ?? '') as Record<string, unknown>), chain: 'gw-1/main', file: 2, hash: undefined };
    w1[0] = canonicalJson({ ...record, hash: sha256Hex(canonicalJson(record)) });
    unlinkSync(at(dir, 'audit.000000000031.log'));
    writeLines(at(dir, 'audit.000000000031.log'), w1);
    await expectProblem(dir, { kind: 'spliced', file: 'audit.000000000031.log', line: 1, seq: 13 });
  });
});

describe('audit verify: hostile and malformed input', () => {
  const expectLine5 = async (mutate: (line: string) => string | Buffer, kind: string): Promise<void> => {
    const dir = copy();
    const path = at(dir, FILE1);
    const lines = fileLines(path);
    const changed = mutate(lines[4] ?? '');
    const parts = lines.map((l, i) => (i === 4 ? Buffer.concat([Buffer.isBuffer(changed) ? changed : Buffer.from(changed), Buffer.from('\n')]) : Buffer.from(`${l}\n`)));
    writeFileSync(path, Buffer.concat(parts));
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1);
    const p = firstProblem(report);
    assert.equal(p?.kind, kind, JSON.stringify(report.chains[0]?.problems));
    assert.equal(p?.file, FILE1);
    assert.equal(p?.line, 5);
  };

  it('a line that is valid JSON but not canonical (a space, reordered members, a repeated member, 1.0): not canonical', async () => {
    await expectLine5((l) => l.replace('"status":200', '"status": 200'), 'not canonical');
    await expectLine5((l) => l.replace('"status":200', '"status":200.0'), 'not canonical');
    await expectLine5((l) => `{"status":200,${l.slice(1)}`, 'not canonical');
    await expectLine5((l) => l.replace(/^\{"bytesIn":0,"bytesOut":42,/, '{"bytesOut":42,"bytesIn":0,'), 'not canonical');
    await expectLine5((l) => `${l}\r`, 'not canonical');
  });

  it('garbage, a JSON array, invalid UTF-8 and a line over 1 MiB: unparseable, and the verifier does not hold the long line', async () => {
    await expectLine5(() => 'garbage', 'unparseable');
    await expectLine5(() => '[1,2,3]', 'unparseable');
    await expectLine5(() => Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'unparseable');
    await expectLine5(() => 'x'.repeat(1024 * 1024 + 10), 'unparseable');
    await expectLine5(() => '{"hash":"x","kind":"request"}', 'unparseable');
  });
});

describe('audit verify: what the trail says cannot drive the terminal', () => {
  it('escapes control characters and bidirectional overrides from chain names, values and file names in its text; --json keeps them exact', async () => {
    const dir = join(root, 'escapes');
    const chain = 'gw\u001b]0;owned\u0007\u009b2J\u202e/main';
    const w = new TrailWriter({ dir, key: newAuditKey(join(dir, 'keys')), instance: 'gw\u001b]0;owned\u0007\u009b2J\u202e', checkpointEvery: 2 });
    w.request();
    w.append({ kind: 'start', chain: 'other\u001b[31m', time: '2026-11-30T00:00:00.000Z', resumed: true });
    w.close();
    cpSync(join(dir, 'audit.log'), join(dir, 'audit.\u001b[2J.log'));
    const run = await runVerify([dir]);
    assert.equal(run.code, 1);
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(run.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, 'no raw control character reaches the terminal');
    assert.match(run.stdout, /gw\\u001b\]0;owned\\u0007\\u009b2J\\u202e\/main: FAILED/);
    const { report } = await verifyJson([dir]);
    assert.ok(report.chains.some((c) => c.chain === chain));
  });

  it('a FIFO named like a trail file is skipped in a directory and refused by name, never opened', async () => {
    const dir = copy();
    const fifo = join(dir, 'audit.fifo.log');
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status !== 0) return;
    assert.equal((await verifyJson([dir])).code, 0);
    const named = await verifyJson([fifo]);
    assert.equal(named.code, 4);
    assert.deepEqual(named.report.unreadable, [{ path: fifo, error: 'not a regular file or a directory' }]);
  });
});

describe('audit verify: records of any shape', () => {
  it('verifies records whose hash member comes first, nested members named hash, keys that hold an escaped quote, non-ASCII text and gap records', async () => {
    const dir = join(root, 'shapes');
    const k = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: k, checkpointEvery: 3 });
    w.append({ kind: 'alert', time: '2026-11-30T00:00:00.000Z' });
    w.request({ detail: { hash: 'f'.repeat(64), list: [{ hash: 'x' }] }, 'a"hash': 'y' });
    w.request({ path: '/caf\u00e9/\u2028/😀', userAgent: 'ümlaut "quoted" \\ back' });
    w.append({ kind: 'gap', droppedRecords: 12, firstDroppedAt: '2026-11-30T00:00:01.000Z', lastDroppedAt: '2026-11-30T00:00:02.000Z', time: '2026-11-30T00:00:03.000Z' });
    w.close();
    assert.ok(fileLines(at(dir, 'audit.log')).some((l) => l.startsWith('{"hash":')), 'one record begins with its hash');
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 0, JSON.stringify(report.chains[0]?.problems));
    assert.deepEqual(report.chains[0]?.notes.map((x) => x.message), ['1 gap record: 12 records a sink could not hold were dropped']);
  });

  it('a trail over 5 MiB: a progress bar on a terminal\'s stderr, nothing on stderr otherwise, and the same answer', async (t) => {
    const dir = join(root, 'large');
    const k = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: k, checkpointEvery: 500, rotateEvery: 1500 });
    for (let i = 0; i < 3200; i++) w.request({ userAgent: 'x'.repeat(2000) });
    w.close();
    const { code } = await verifyJson([dir]);
    assert.equal(code, 0);
    const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (script.status !== 0) {
      t.skip('no script(1) to give the verifier a terminal');
      return;
    }
    const out = join(root, 'large.out');
    const tty = spawnSync('script', ['-qc', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} audit verify ${JSON.stringify(dir)} > ${JSON.stringify(out)}`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, /verifying \[#+ *\] 100% /);
    assert.match(readFileSync(out, 'utf8'), /^verified: 1 of 1 chain without problems$/m);
  });
});

describe('audit verify: arguments and paths', () => {
  it('no PATH is a usage error, exit 2', async () => {
    const run = await runVerify([]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^portcullis audit verify: missing PATH\n/);
  });

  it('a path that cannot be read, a directory without trail files, a --keys directory that does not exist: exit 4', async () => {
    const missing = await verifyJson([join(root, 'no-such-dir')]);
    assert.equal(missing.code, 4);
    assert.deepEqual(missing.report.unreadable.map((u) => u.error), ['no such file or directory']);
    const empty = mkdtempSync(join(root, 'empty-'));
    assert.equal((await verifyJson([empty])).code, 4);
    assert.equal((await verifyJson([sample], ['--keys', join(root, 'no-keys')])).code, 4);
    // A readable chain and an unreadable path: still 4, the good chain still reported.
    const both = await verifyJson([sample, join(root, 'no-such-file.log')]);
    assert.equal(both.code, 4);
    assert.equal(both.report.chains.length, 2);
  });

  it('tampering outranks an unreadable path: exit 1', async () => {
    const dir = copy();
    unlinkSync(at(dir, 'audit.000000000031.log'));
    assert.equal((await verifyJson([dir, join(root, 'nothing-here.log')])).code, 1);
  });
});
