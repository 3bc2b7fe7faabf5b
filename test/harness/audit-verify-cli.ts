// Runs `portcullis audit verify` as a child process and reads its answer, and edits trail files
// line by line for the tampering tests.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Problem, VerifyReport } from '../../src/audit/verify.js';
import { runCli } from './cli.js';

export interface VerifyRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runVerify(args: readonly string[]): Promise<VerifyRun> {
  return runCli(['audit', 'verify', ...args]);
}

/** `audit verify --json` over `paths`: the exit code and the report; nothing may reach stderr. */
export async function verifyJson(paths: readonly string[], extra: readonly string[] = []): Promise<{ code: number | null; report: VerifyReport }> {
  const run = await runVerify([...paths, ...extra, '--json']);
  assert.equal(run.stderr, '', 'nothing on stderr');
  return { code: run.code, report: JSON.parse(run.stdout) as VerifyReport };
}

/** The first problem of `chain`, with the file as its base name. */
export function firstProblem(report: VerifyReport, chain = 'gw-1/main'): Omit<Problem, 'message'> | undefined {
  const c = report.chains.find((x) => x.chain === chain);
  assert.ok(c !== undefined, `chain ${chain} reported`);
  const p = c.problems[0];
  return p === undefined ? undefined : { kind: p.kind, file: basename(p.file), line: p.line, ...(p.seq === undefined ? {} : { seq: p.seq }) };
}

/** The trail files of `dir` (`*.log`), sorted by name. */
export function trailFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.log')).sort();
}

/** The lines of a file, without newlines (a last line without one is kept as it is). */
export function fileLines(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function writeLines(path: string, lines: readonly string[]): void {
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
}

/** The parsed record on 1-based line `n` of `path`. */
export function recordAt(path: string, n: number): Record<string, unknown> {
  const line = fileLines(path)[n - 1];
  assert.ok(line !== undefined, `${basename(path)} has a line ${n}`);
  return JSON.parse(line) as Record<string, unknown>;
}

export const at = (dir: string, name: string): string => join(dir, name);
