// The audit read side against a hostile trail: an active file emptied or removed must not leave a
// trail that verifies, and a record nested deeper than JSON.stringify reaches must not end the
// command that shows it.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseTime } from '../src/audit/read/filter.js';
import { renderRecord, terminalJson, terminalText } from '../src/audit/read/format.js';
import { printable } from '../src/cli/audit-verify.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { sha256Hex } from '../src/audit/chain.js';
import { at, fileLines, firstProblem, verifyJson, writeLines } from './harness/audit-verify-cli.js';
import { seenKey } from '../src/cli/audit-watch.js';
import { newAuditKey, writeSampleTrail } from './harness/trail-writer.js';
import { runCli, type CliRun } from './harness/cli.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-read-hostile-'));
after(() => rmSync(root, { recursive: true, force: true }));

let sample = '';
let n = 0;
function copy(): string {
  const dir = join(root, `case-${++n}`);
  cpSync(sample, dir, { recursive: true });
  return dir;
}

before(() => {
  sample = join(root, 'sample');
  writeSampleTrail(sample, newAuditKey(join(sample, 'keys')));
});

describe('audit verify: the active file', () => {
  it('an emptied active file is its chain\'s truncated tail (exit 3), not a chain of its own that verifies', async () => {
    const dir = copy();
    truncateSync(at(dir, 'audit.log'), 0);
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 3, JSON.stringify(report, null, 2));
    assert.deepEqual(report.chains.map((c) => c.chain), ['gw-1/main', 'gw-1/w1']);
    assert.deepEqual(firstProblem(report), { kind: 'truncated tail', file: 'audit.log', line: 1 });
  });

  it('a sealed file emptied in the middle of a chain is a missing file of that chain', async () => {
    const dir = copy();
    truncateSync(at(dir, 'audit.w1.000000000013.log'), 0);
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1, JSON.stringify(report, null, 2));
    assert.deepEqual(firstProblem(report, 'gw-1/w1'), { kind: 'missing file', file: 'audit.w1.log', line: 1, seq: 24 });
    assert.equal(report.chains.find((c) => c.chain === '(unknown)')?.problems[0]?.kind, 'truncated tail', 'the empty file is reported too');
  });

  it('a directory whose chain ends in a sealed file without its active file names the active file missing (exit 1)', async () => {
    const dir = copy();
    unlinkSync(at(dir, 'audit.log'));
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1, JSON.stringify(report, null, 2));
    assert.deepEqual(firstProblem(report), { kind: 'missing file', file: 'audit.log', line: 1 });
    assert.deepEqual(report.chains.find((c) => c.chain === 'gw-1/w1')?.problems, [], 'the other chain is untouched');
  });

  it('sealed files named one by one (from an archive) still verify without the active file', async () => {
    const dir = copy();
    unlinkSync(at(dir, 'audit.log'));
    const { code, report } = await verifyJson([at(dir, 'audit.000000000001.log'), at(dir, 'audit.000000000031.log')]);
    assert.equal(code, 0, JSON.stringify(report, null, 2));
  });
});

describe('audit verify: a record changed and every hash after it recomputed', () => {
  it('is named modified at the next checkpoint whose signature verifies, with the seqs it may be among (not a bad checkpoint)', async () => {
    const dir = copy();
    const path = at(dir, 'audit.log');
    // Line 5 is seq 64; the checkpoint before it is the last record of the previous file (seq 59).
    const records = fileLines(path).map((l) => JSON.parse(l) as Record<string, unknown>);
    let prev = records[3]?.hash;
    const rewritten = records.map((r, i) => {
      if (i < 4) return canonicalJson(r);
      const body: Record<string, unknown> = { ...r, prev, hash: undefined, ...(i === 4 ? { status: 299 } : {}) };
      const hash = sha256Hex(canonicalJson(body));
      prev = hash;
      return canonicalJson({ ...body, hash });
    });
    writeLines(path, rewritten);
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1);
    assert.deepEqual(firstProblem(report), { kind: 'modified', file: 'audit.log', line: 12, seq: 71 });
    assert.match(report.chains[0]?.problems[0]?.message ?? '', /seq 60–70 was changed/);
  });
});

function run(args: readonly string[]): Promise<CliRun> {
  return runCli(args, { NO_COLOR: '' });
}

describe('audit tail and stats: a record nested too deeply to print', () => {
  // Under 1 MiB, so it is read as a record: JSON.parse takes it, JSON.stringify overflows its stack.
  const depth = 120_000;
  const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const line = `{"decision":"deny","identity":{"subject":${deep}},"kind":"request","method":"GET","path":"/x","route":${deep},"status":401,"time":"2026-11-30T00:00:00.000Z"}`;

  it('is shown with a placeholder, not a crash: tail on a terminal, tail as JSON, stats', async () => {
    const dir = join(root, 'deep');
    mkdirSync(dir);
    writeFileSync(join(dir, 'audit.log'), `${line}\n{"kind":"request","method":"GET","path":"/after","status":200,"time":"2026-11-30T00:00:01.000Z"}\n`);
    const human = await run(['audit', 'tail', '--from', dir, '--color', 'always']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /\[nested too deeply to show\]/);
    assert.match(human.stdout, /\/after/, 'the records after it are shown');
    const json = await run(['audit', 'tail', '--from', dir, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout.split('\n')[0], line, 'not a terminal: the stored line, byte for byte');
    const stats = await run(['audit', 'stats', '--from', dir]);
    assert.equal(stats.code, 0, stats.stderr);
  });

  it('the terminal functions never throw on it', () => {
    const record = JSON.parse(line) as Record<string, unknown>;
    assert.equal(terminalText(record.route), '[nested too deeply to show]');
    assert.match(renderRecord(record, { color: true }), /\[nested too deeply to show\]/);
    const withLine = `{\t${line.slice(1, -1)},"x":"\u202e"\r}`;
    assert.equal(terminalJson(JSON.parse(withLine), undefined, withLine), withLine.replace('\t', ' ').replace('\r', ' ').replace('\u202e', '\\u202e'), 'the stored line, escaped, stands in');
    assert.equal(terminalJson(record), '"[nested too deeply to show]"');
  });
});

describe('audit watch: the de-duplication of a hostile stream', () => {
  it('keeps each record\'s key to a few hundred characters, whatever its hash and chain hold', () => {
    const hash = 'a'.repeat(64);
    assert.equal(seenKey('gw-1/main', hash), `gw-1/main ${hash}`);
    assert.equal(seenKey('gw-1/main', 'b'.repeat(1024 * 1024)), null, 'a 1 MiB "hash" is not kept');
    assert.equal(seenKey('gw-1/main', hash.toUpperCase()), null);
    assert.equal(seenKey('gw-1/main', { length: 64 }), null);
    const long = seenKey('c'.repeat(1024 * 1024), hash);
    assert.ok(long !== null && long.length <= 200, `a 1 MiB chain name is kept as its digest (${long?.length ?? 0} characters)`);
    assert.notEqual(seenKey('c'.repeat(200), hash), seenKey('c'.repeat(201), hash), 'distinct chains stay distinct');
  });
});

describe('audit verify: one signature, one text', () => {
  it('a checkpoint signature with a character outside base64url (which decoding skips) is a bad signature', async () => {
    const dir = copy();
    const path = at(dir, 'audit.log');
    const lines = fileLines(path);
    // The last record is the shutdown checkpoint: nothing after it links to its hash.
    const last = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
    assert.equal(last.kind, 'checkpoint');
    const body: Record<string, unknown> = { ...last, hash: undefined, signature: `${String(last.signature).slice(0, 40)}!${String(last.signature).slice(40)}` };
    lines[lines.length - 1] = canonicalJson({ ...body, hash: sha256Hex(canonicalJson(body)) });
    writeLines(path, lines);
    const { code, report } = await verifyJson([dir]);
    assert.equal(code, 1, JSON.stringify(report.chains[0]?.problems));
    assert.equal(firstProblem(report)?.kind, 'bad signature');
  });
});

describe('command line values and printed text', () => {
  it('--since and --until refuse a day that does not exist', () => {
    assert.equal(parseTime('2026-02-30', 0), null);
    assert.equal(parseTime('2026-04-31T10:00Z', 0), null);
    assert.equal(parseTime('2024-02-29', 0), Date.UTC(2024, 1, 29));
  });

  it('verify\'s human output escapes the Arabic letter mark and lone surrogates as well', () => {
    assert.equal(printable('a\u061cb\ud800c\udc00d\u202e'), 'a\\u061cb\\ud800c\\udc00d\\u202e');
    assert.equal(printable('\ud83d\ude00'), '\ud83d\ude00', 'a pair is a character');
  });
});
