// The format doc is enough to verify a trail: a second verifier written from docs/audit.md alone
// (test/fixtures/independent-verifier.mjs: its own RFC 8785 canonicaliser, SHA-256 and Ed25519 over
// node:crypto, nothing from src/) agrees with `portcullis audit verify` on an untouched trail and on
// each kind of tampering — whether the trail verifies, and which line breaks it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../src/audit/canonical.js';
import { checkpointRecord, sha256Hex } from '../src/audit/chain.js';
import { at, fileLines, recordAt, verifyJson, writeLines } from './harness/audit-verify-cli.js';
import { TrailWriter, newAuditKey, writeSampleTrail, type AuditKey } from './harness/trail-writer.js';

const INDEPENDENT = fileURLToPath(new URL('../../test/fixtures/independent-verifier.mjs', import.meta.url));

interface Independent { ok: boolean; chains: Record<string, { records: number; problem: { file: string; line: number; what: string } | null }> }

function independent(dir: string): Promise<{ code: number | null; result: Independent }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [INDEPENDENT, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, result: JSON.parse(stdout) as Independent }));
  });
}

const root = mkdtempSync(join(tmpdir(), 'portcullis-verify2-'));
after(() => rmSync(root, { recursive: true, force: true }));
let sample = '';
let key: AuditKey;
let n = 0;
const FILE1 = 'audit.000000000001.log';

before(() => {
  sample = join(root, 'sample');
  key = newAuditKey(join(sample, 'keys'));
  writeSampleTrail(sample, key);
});

function copy(): string {
  const dir = join(root, `case-${++n}`);
  cpSync(sample, dir, { recursive: true });
  return dir;
}

function editLines(path: string, edit: (lines: string[]) => void): void {
  const lines = fileLines(path);
  edit(lines);
  writeLines(path, lines);
}

/** Both verifiers over `dir`: the same verdict and, unless `sameLine` is false, the same first broken line per chain. */
async function agree(dir: string, sameLine = true): Promise<{ ours: Awaited<ReturnType<typeof verifyJson>>; theirs: Independent }> {
  const ours = await verifyJson([dir]);
  const { code, result: theirs } = await independent(dir);
  assert.equal(ours.report.ok, theirs.ok, `verdicts differ: ${JSON.stringify(theirs)} / ${JSON.stringify(ours.report.chains.map((c) => c.problems))}`);
  assert.equal(code === 0, theirs.ok);
  for (const chain of ours.report.chains) {
    const their = theirs.chains[chain.chain];
    assert.ok(their !== undefined, `the independent verifier found chain ${chain.chain}`);
    const mine = chain.problems[0];
    assert.equal(mine === undefined, their.problem === null, `${chain.chain}: ${JSON.stringify(mine)} / ${JSON.stringify(their.problem)}`);
    if (sameLine && mine !== undefined && their.problem !== null) {
      assert.deepEqual([basename(mine.file), mine.line], [their.problem.file, their.problem.line], `${chain.chain}: ${mine.kind} / ${their.problem.what}`);
    }
  }
  return { ours, theirs };
}

describe('a verifier written from docs/audit.md alone agrees with audit verify', () => {
  it('on the untouched sample trail: both verify every chain and count the same records', async () => {
    const { ours, theirs } = await agree(sample);
    assert.equal(ours.report.ok, true);
    for (const chain of ours.report.chains) assert.equal(theirs.chains[chain.chain]?.records, chain.records);
  });

  it('on a crash and restart (a torn line reported by start) and on a chain whose first file is gone', async () => {
    const dir = join(root, 'torn');
    const k = newAuditKey(join(dir, 'keys'));
    const w = new TrailWriter({ dir, key: k, checkpointEvery: 4, rotateEvery: 5 });
    for (let i = 0; i < 7; i++) w.request();
    w.writeRaw('{"bytesIn":0,"bytesOut":42,"cli');
    await agree(dir);
    const restarted = new TrailWriter({ dir, key: k, checkpointEvery: 4, rotateEvery: 5 });
    for (let i = 0; i < 7; i++) restarted.request();
    restarted.close();
    assert.equal((await agree(dir)).ours.report.ok, true);
    const trimmed = copy();
    unlinkSync(at(trimmed, FILE1));
    assert.equal((await agree(trimmed)).ours.report.ok, true);
  });

  const cases: [string, (dir: string) => void, boolean?][] = [
    ['one field edited', (dir) => editLines(at(dir, FILE1), (l) => { l[4] = (l[4] ?? '').replace('"status":200', '"status":500'); })],
    ['a record deleted', (dir) => editLines(at(dir, FILE1), (l) => { l.splice(5, 1); })],
    ['a record replayed', (dir) => editLines(at(dir, FILE1), (l) => { l.splice(8, 0, l[3] ?? ''); })],
    ['two records swapped', (dir) => editLines(at(dir, FILE1), (l) => { [l[4], l[5]] = [l[5] ?? '', l[4] ?? '']; })],
    ['a rotated file dropped', (dir) => unlinkSync(at(dir, 'audit.000000000031.log'))],
    ['a checkpoint signature replaced', (dir) => editLines(at(dir, FILE1), (l) => {
      const i = l.findIndex((x) => x.includes('"kind":"checkpoint"'));
      l[i] = (l[i] ?? '').replace(/"signature":"[^"]+"/, `"signature":"${Buffer.alloc(64, 7).toString('base64url')}"`);
    })],
    ['the last checkpoint signed by an unknown key, hash recomputed', (dir) => editLines(at(dir, 'audit.log'), (l) => {
      const prev = recordAt(at(dir, 'audit.log'), l.length - 1);
      const stranger = newAuditKey();
      const head = { seq: prev.seq as number, hash: prev.hash as string };
      l[l.length - 1] = TrailWriter.lineAfter(head, checkpointRecord({ chain: 'gw-1/main', count: head.seq, head: head.hash, keyId: stranger.keyId, time: '2026-11-30T01:00:00.000Z' }, stranger.privateKey)).trimEnd();
    })],
    ['a file of another chain spliced in', (dir) => appendFileSync(at(dir, FILE1), readFileSync(at(dir, 'audit.w1.000000000013.log')))],
    ['the newest file cut mid-line', (dir) => truncateSync(at(dir, 'audit.log'), statSync(at(dir, 'audit.log')).size - 20)],
    ['a line not canonical', (dir) => editLines(at(dir, FILE1), (l) => { l[6] = (l[6] ?? '').replace(',', ', '); })],
    // A record changed and re-hashed: the independent verifier stops where the link breaks (the next
    // line); audit verify names the changed record itself. Both fail the trail.
    ['a record changed and re-hashed', (dir) => editLines(at(dir, FILE1), (l) => {
      const record = { ...(JSON.parse(l[4] ?? '') as Record<string, unknown>), status: 204, hash: undefined };
      l[4] = canonicalJson({ ...record, hash: sha256Hex(canonicalJson(record)) });
    }), false],
  ];
  for (const [name, tamper, sameLine] of cases) {
    it(`on ${name}: both fail it, at the same line`, async () => {
      const dir = copy();
      tamper(dir);
      const { ours } = await agree(dir, sameLine ?? true);
      assert.equal(ours.report.ok, false);
    });
  }
});
