import { createPublicKey, type KeyObject } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { auditKeyId } from './chain.js';
import { ChainCheck, isSeq, parseLine } from './verify-chain.js';
import { readLines } from './verify-lines.js';

/**
 * `portcullis audit verify`: checks audit trail files against docs/audit.md, "Chain and checkpoint
 * format", and names the first thing wrong in each chain. Files are streamed line by line: memory
 * stays bounded however large the trail (one line, one read chunk, a bounded look-ahead window).
 */

/** What can be wrong with a chain; docs/audit.md, "Verifying", says what each means. */
export type ProblemKind =
  | 'modified' | 'deleted' | 'inserted' | 'reordered' | 'missing file' | 'spliced'
  | 'truncated tail' | 'unparseable' | 'not canonical'
  | 'bad checkpoint' | 'unknown key' | 'bad signature';

/** Something a verifier reports without calling the chain bad. */
export type NoteKind = 'torn' | 'not yet checkpointed' | 'earlier files absent' | 'gap';

export interface Problem {
  readonly kind: ProblemKind;
  /** The file and 1-based line where it shows. */
  readonly file: string;
  readonly line: number;
  /** The `seq` of the record on that line, when it has one. */
  readonly seq?: number;
  readonly message: string;
}

export interface Note {
  readonly kind: NoteKind;
  readonly message: string;
  readonly file?: string;
  readonly line?: number;
}

export interface ChainReport {
  readonly chain: string;
  /** Its files, in chain order. */
  readonly files: string[];
  /** Records read (lines that parse). */
  records: number;
  /** Checkpoint records read. */
  checkpoints: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** The `hash` of the last record read. */
  head: string | null;
  readonly problems: Problem[];
  readonly notes: Note[];
}

export interface KeysReport {
  /** `--keys` (given) or `default` (the `keys/` directory next to each trail path). */
  readonly source: 'given' | 'default';
  /** The directories looked in. */
  readonly dirs: string[];
  /** The key ids found. */
  readonly keyIds: string[];
  /** Key files that could not be used, one line each. */
  readonly problems: string[];
}

export interface VerifyReport {
  /** True when every chain verified: no problem at all (a truncated tail is a problem). */
  ok: boolean;
  /** 0 verified, 1 tampering or a key or signature problem, 3 only a truncated tail, 4 a path cannot be read. */
  exitCode: number;
  readonly keys: KeysReport;
  readonly chains: ChainReport[];
  /** Paths that could not be read, with why. */
  readonly unreadable: { path: string; error: string }[];
}

export interface VerifyOptions {
  /** Where the public keys (`*.pub.pem`, SPKI) are; default: `keys/` next to each path. */
  readonly keysDir?: string;
  /** Longest line accepted, in bytes (default 1 MiB); a longer one is a problem, not held in memory. */
  readonly maxLineBytes?: number;
  /** Hears the bytes read so far of the total, for a progress bar. */
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
/** How many lines of a file are read to find its chain when its first line is not a `file` record. */
const HEADER_SCAN_LINES = 64;

/** Verifies the trail files at `paths` (files, or directories whose `*.log` files are read). */
export async function verifyTrail(paths: readonly string[], options: VerifyOptions = {}): Promise<VerifyReport> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const unreadable: { path: string; error: string }[] = [];
  const files: string[] = [];
  /** Files found by reading a directory (not named one by one): their chain must end in an active file. */
  const listed = new Set<string>();
  const keyDirs: string[] = [];
  for (const path of paths) {
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const names: string[] = [];
        for (const name of (await readdir(path)).filter((n) => n.endsWith('.log')).sort()) {
          // stat, not the directory entry: a trail file may be a symlink; a FIFO or socket is skipped, never opened.
          if ((await stat(join(path, name)).catch(() => null))?.isFile() === true) names.push(name);
        }
        if (names.length === 0) unreadable.push({ path, error: 'no trail files (*.log) in this directory' });
        for (const n of names) listed.add(join(path, n));
        files.push(...names.map((n) => join(path, n)));
        keyDirs.push(join(path, 'keys'));
      } else if (info.isFile()) {
        files.push(path);
        keyDirs.push(join(dirname(path), 'keys'));
      } else {
        unreadable.push({ path, error: 'not a regular file or a directory' });
      }
    } catch (err) {
      unreadable.push({ path, error: errorText(err) });
    }
  }
  const keys = await loadKeys(options.keysDir === undefined ? unique(keyDirs) : [options.keysDir], options.keysDir === undefined ? 'default' : 'given', unreadable);

  const headers: FileHeader[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    try {
      const real = await realpath(file);
      if (seen.has(real)) continue;
      seen.add(real);
      headers.push(await readHeader(file, maxLineBytes));
    } catch (err) {
      unreadable.push({ path: file, error: errorText(err) });
    }
  }
  const byChain = new Map<string, FileHeader[]>();
  for (const h of headers) {
    const list = byChain.get(h.chain) ?? [];
    list.push(h);
    byChain.set(h.chain, list);
  }
  const activeOf = new Map<string, string>();
  for (const [chain, list] of byChain) {
    list.sort(fileOrder);
    const active = activeFileOf(list[list.length - 1], listed);
    if (active === null) continue;
    activeOf.set(chain, active);
    // An empty active file has no record to name its chain: it is this chain's, cut short.
    const empty = byChain.get(UNKNOWN_CHAIN)?.find((h) => h.path === active && h.size === 0);
    if (empty !== undefined) {
      list.push(empty);
      const rest = (byChain.get(UNKNOWN_CHAIN) ?? []).filter((h) => h !== empty);
      if (rest.length === 0) byChain.delete(UNKNOWN_CHAIN);
      else byChain.set(UNKNOWN_CHAIN, rest);
    }
  }
  const totalBytes = headers.reduce((sum, h) => sum + h.size, 0);
  let doneBytes = 0;
  const onBytes = options.onProgress === undefined ? undefined : (n: number): void => {
    doneBytes += n;
    options.onProgress?.(doneBytes, totalBytes);
  };

  const chains: ChainReport[] = [];
  for (const [chain, list] of [...byChain].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const active = activeOf.get(chain);
    if (active === undefined || list[list.length - 1]?.path !== active) list.sort(fileOrder);
    const check = new ChainCheck(chain, list.map((h) => h.path), keys.map, maxLineBytes);
    for (const [index, header] of list.entries()) {
      check.beginFile(header.path, index === list.length - 1);
      try {
        for await (const raw of readLines(header.path, maxLineBytes, onBytes)) check.line(raw);
      } catch (err) {
        unreadable.push({ path: header.path, error: errorText(err) });
      }
    }
    const report = check.end();
    const last = list[list.length - 1];
    if (active !== undefined && last !== undefined && last.path !== active && report.problems.length === 0 && !listed.has(active)) {
      report.problems.push({
        kind: 'missing file', file: active, line: 1,
        message: `the chain's active file ${basename(active)} is missing: its newest file, ${basename(last.path)}, is sealed, and sealing a file always begins a new active file, so the records written after the seal (signed checkpoints among them) were removed`,
      });
    }
    chains.push(report);
  }
  const report: VerifyReport = { ok: false, exitCode: 0, keys: keys.report, chains, unreadable };
  report.exitCode = exitCodeOf(report);
  report.ok = report.exitCode === 0;
  return report;
}

/**
 * The exit code a report calls for: tampering (1) before an unreadable path (4) before an unknown
 * key (1: the unreadable path may be the keys) before a truncated tail (3).
 */
export function exitCodeOf(report: Pick<VerifyReport, 'chains' | 'unreadable'>): number {
  const kinds = report.chains.flatMap((c) => c.problems.map((p) => p.kind));
  if (kinds.some((k) => k !== 'truncated tail' && k !== 'unknown key')) return 1;
  if (report.unreadable.length > 0) return 4;
  if (kinds.includes('unknown key')) return 1;
  if (kinds.length > 0) return 3;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Keys

async function loadKeys(dirs: readonly string[], source: 'given' | 'default', unreadable: { path: string; error: string }[]): Promise<{ map: Map<string, KeyObject>; report: KeysReport }> {
  const map = new Map<string, KeyObject>();
  const problems: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.pub.pem')).sort();
    } catch (err) {
      // The default place may simply not exist; a directory the user named must.
      if (source === 'given') unreadable.push({ path: dir, error: errorText(err) });
      continue;
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        const key = createPublicKey(await readFile(path));
        if (key.asymmetricKeyType !== 'ed25519') {
          problems.push(`${path}: not an Ed25519 public key; ignored`);
          continue;
        }
        const id = auditKeyId(key);
        if (name !== `${id}.pub.pem`) problems.push(`${path}: the key's id is ${id}, not the file's name; used under its id`);
        map.set(id, key);
      } catch (err) {
        problems.push(`${path}: ${errorText(err)}; ignored`);
      }
    }
  }
  return { map, report: { source, dirs: [...dirs], keyIds: [...map.keys()].sort(), problems } };
}

// ---------------------------------------------------------------------------------------------
// Files

interface FileHeader {
  readonly path: string;
  readonly size: number;
  /** The chain of its `file` record, else of its first record that names one, else `(unknown)`. */
  readonly chain: string;
  readonly fileNo: number | null;
  readonly firstSeq: number | null;
}

async function readHeader(path: string, maxLineBytes: number): Promise<FileHeader> {
  const { size } = await stat(path);
  let chain: string | null = null;
  let fileNo: number | null = null;
  let firstSeq: number | null = null;
  let n = 0;
  for await (const raw of readLines(path, maxLineBytes)) {
    n += 1;
    const record = parseLine(raw);
    if (record !== null) {
      if (firstSeq === null && isSeq(record.seq)) firstSeq = record.seq;
      if (n === 1 && record.kind === 'file' && typeof record.chain === 'string' && isSeq(record.file)) {
        chain = record.chain;
        fileNo = record.file;
      } else if (chain === null && typeof record.chain === 'string') chain = record.chain;
    }
    if ((chain !== null && firstSeq !== null) || n >= HEADER_SCAN_LINES) break;
  }
  return { path, size, chain: chain ?? UNKNOWN_CHAIN, fileNo, firstSeq };
}

/** The chain of files that name none (empty, or no parseable record in their first lines). */
const UNKNOWN_CHAIN = '(unknown)';

/** A sealed file's name: the active file's name with the 12-digit `seq` of its first record before `.log`. */
const SEALED_NAME = /^(.+)\.([0-9]{12})\.log$/;

/**
 * The active file a chain must have when its newest file was found in a directory and is a sealed
 * file (named with its first record's `seq`): sealing always begins a new active file
 * (docs/audit.md, "Files"), so it cannot be absent. Null when the chain ends in another file, or its
 * files were named one by one (sealed files verified alone, from an archive).
 */
function activeFileOf(newest: FileHeader | undefined, listed: ReadonlySet<string>): string | null {
  if (newest === undefined || !listed.has(newest.path)) return null;
  const m = SEALED_NAME.exec(basename(newest.path));
  if (m === null || Number(m[2]) !== newest.firstSeq) return null;
  return join(dirname(newest.path), `${m[1]}.log`);
}

/** Chain order: by `file` number, then by first `seq`, then by name. */
function fileOrder(a: FileHeader, b: FileHeader): number {
  if (a.fileNo !== null && b.fileNo !== null && a.fileNo !== b.fileNo) return a.fileNo - b.fileNo;
  if (a.firstSeq !== null && b.firstSeq !== null && a.firstSeq !== b.firstSeq) return a.firstSeq - b.firstSeq;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function errorText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return err instanceof Error ? err.message : String(err);
}
