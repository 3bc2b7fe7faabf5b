// `portcullis audit verify PATH…`: checks the chains and checkpoint signatures of audit trail files
// and names the first thing wrong in each chain; the exit code says what kind of wrong.
import { basename } from 'node:path';
import { verifyTrail, type ChainReport, type VerifyReport } from '../audit/verify.js';
import type { Invocation } from './command.js';

/** Below this many bytes a terminal gets no progress bar: the answer comes before it would help. */
const PROGRESS_FROM_BYTES = 5 * 1024 * 1024;
const PROGRESS_EVERY_MS = 200;

export async function auditVerifyCommand({ values, positionals }: Invocation): Promise<number> {
  const keysDir = typeof values.keys === 'string' ? values.keys : undefined;
  const progress = process.stderr.isTTY ? progressBar() : undefined;
  const report = await verifyTrail(positionals, { ...(keysDir === undefined ? {} : { keysDir }), ...(progress === undefined ? {} : { onProgress: progress.update }) });
  progress?.clear();
  process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : humanText(report));
  return report.exitCode;
}

/** The report as a person reads it: where the keys came from, one line per chain and what is wrong or worth knowing. */
export function humanText(report: VerifyReport): string {
  const lines: string[] = [];
  const { keys } = report;
  const from = keys.source === 'given' ? `--keys ${keys.dirs.join(', ')}` : keys.dirs.length === 0 ? 'no keys/ directory (no trail path could be read; --keys DIR to name one)' : `${keys.dirs.join(', ')} (the keys/ directory next to the trail; --keys DIR to use another)`;
  lines.push(`keys: ${keys.keyIds.length === 0 ? 'none found' : `${keys.keyIds.length} public key${keys.keyIds.length === 1 ? '' : 's'}`} in ${from}`);
  for (const problem of keys.problems) lines.push(`  key file: ${problem}`);
  for (const { path, error } of report.unreadable) lines.push(`cannot read ${path}: ${error}`);
  for (const chain of report.chains) lines.push(...chainText(chain));
  const bad = report.chains.filter((c) => c.problems.length > 0).length;
  const verdict = report.exitCode === 0 ? 'verified' : report.exitCode === 3 ? 'verified up to a truncated tail' : report.exitCode === 4 && bad === 0 ? 'not every path could be read' : 'FAILED';
  lines.push(`${verdict}: ${report.chains.length - bad} of ${report.chains.length} chain${report.chains.length === 1 ? '' : 's'} without problems`);
  return lines.map(printable).join('\n') + '\n';
}

/**
 * A line safe to print on a terminal: chain names, file names and quoted values come from the trail
 * and the file system, which an attacker may have written; control characters (C0, C1), line
 * separators and bidirectional overrides are shown escaped, never interpreted.
 */
export function printable(line: string): string {
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return line.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function chainText(chain: ChainReport): string[] {
  const seqs = chain.firstSeq === null ? 'no chained records' : `seq ${chain.firstSeq}–${chain.lastSeq ?? chain.firstSeq}`;
  const summary = `${plural(chain.records, 'record')} in ${plural(chain.files.length, 'file')} (${seqs}), ${plural(chain.checkpoints, 'checkpoint')}, head ${chain.head === null ? '-' : `${chain.head.slice(0, 16)}…`}`;
  const state = chain.problems.length === 0 ? 'ok' : chain.problems.every((p) => p.kind === 'truncated tail') ? 'truncated tail' : 'FAILED';
  const lines = [`${chain.chain}: ${state}: ${summary}`];
  for (const p of chain.problems) lines.push(`  ${p.kind}: ${basename(p.file)} line ${p.line}${p.seq === undefined ? '' : ` (seq ${p.seq})`}: ${p.message}`);
  for (const n of chain.notes) lines.push(`  note: ${n.message}`);
  return lines;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A one-line bar on stderr for large trails, redrawn at most every PROGRESS_EVERY_MS. */
function progressBar(): { update: (done: number, total: number) => void; clear: () => void } {
  let drawnAt = 0;
  let drawn = false;
  return {
    update: (done, total) => {
      if (total < PROGRESS_FROM_BYTES) return;
      const now = performance.now();
      if (now - drawnAt < PROGRESS_EVERY_MS && done < total) return;
      drawnAt = now;
      drawn = true;
      const share = total === 0 ? 1 : done / total;
      const width = 30;
      const filled = Math.round(share * width);
      process.stderr.write(`\rverifying [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.floor(share * 100)}% ${mib(done)}/${mib(total)} MiB`);
    },
    clear: () => { if (drawn) process.stderr.write('\r\x1b[2K'); },
  };
}

const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1);
