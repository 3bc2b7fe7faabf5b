import { readdir } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { OperatorError } from '../lib/operator-error.js';
import { shownPath } from '../lib/fs-failure.js';
import { EMPTY_HEAD, type ChainHead } from './chain.js';
import { openRegular } from './regular-file.js';

/**
 * The files of one chain (docs/audit.md, "Files"): the active file (`audit.log`, or `audit.w1.log`
 * for worker slot 1) and its sealed predecessors, named by the `seq` of their first record in 12
 * digits (`audit.000000000001.log`).
 */
export interface ChainFiles {
  readonly active: string;
  readonly dir: string;
  /** The sealed name of the file whose first record has `firstSeq`. */
  sealed(firstSeq: number): string;
  /** The `seq` a sealed file's name gives, or null for a name that is not one of this chain's sealed files. */
  sealedSeq(name: string): number | null;
}

/** The files of chain `process` (`main`, `w1`, …) for `audit.file` = `path`. */
export function chainFiles(path: string, process: string): ChainFiles {
  const ext = extname(path);
  const stem = ext === '' ? path : path.slice(0, -ext.length);
  const own = process === 'main' ? stem : `${stem}.${process}`;
  const prefix = `${basename(own)}.`;
  return {
    active: process === 'main' ? path : `${own}${ext}`,
    dir: dirname(path),
    sealed: (firstSeq) => `${own}.${String(firstSeq).padStart(12, '0')}${ext}`,
    sealedSeq(name) {
      if (!name.startsWith(prefix) || !name.endsWith(ext)) return null;
      const digits = name.slice(prefix.length, name.length - ext.length);
      return /^[0-9]{12}$/.test(digits) ? Number(digits) : null;
    },
  };
}

/** The sealed files of a chain, oldest (lowest first seq) first. */
export async function sealedFiles(files: ChainFiles): Promise<{ readonly path: string; readonly firstSeq: number }[]> {
  let names: string[];
  try {
    names = await readdir(files.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.flatMap((name) => {
    const seq = files.sealedSeq(name);
    return seq === null ? [] : [{ path: join(files.dir, name), firstSeq: seq }];
  }).sort((a, b) => a.firstSeq - b.firstSeq);
}

/** The most bytes read from the end of a file to find its last record: far more than the largest record. */
const TAIL_BYTES = 1024 * 1024;
/** The most bytes read from the start of a file to find its first record. */
const HEAD_BYTES = 256 * 1024;

/** What a chain record line says about itself, when it is one. */
interface LineFacts {
  readonly seq: number;
  readonly hash: string;
  readonly kind: unknown;
  readonly time: unknown;
  readonly file: unknown;
}

function parseLine(line: string): LineFacts | null {
  try {
    const value = JSON.parse(line) as Record<string, unknown> | null;
    if (value === null || typeof value !== 'object') return null;
    const { seq, hash } = value;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return null;
    return { seq, hash, kind: value.kind, time: value.time, file: value.file };
  } catch {
    return null;
  }
}

/** The end of a file: the last complete record (null when none is in the last TAIL_BYTES) and the bytes after the last newline. */
export async function readTail(path: string): Promise<{ head: ChainHead | null; torn: number; size: number }> {
  const handle = await openRegular(path, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await handle.read(buffer, read, length - read, size - length + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    const chunk = buffer.subarray(0, read);
    const lastNewline = chunk.lastIndexOf(0x0a);
    const torn = chunk.length - (lastNewline + 1);
    if (lastNewline < 0) return { head: null, torn, size };
    const lines = chunk.subarray(0, lastNewline).toString('utf8').split('\n');
    // A read that began inside the file begins inside a line: that piece is not a record.
    if (length < size) lines.shift();
    for (let i = lines.length - 1; i >= 0; i--) {
      const facts = parseLine(lines[i] ?? '');
      if (facts !== null) return { head: { seq: facts.seq, hash: facts.hash }, torn, size };
    }
    return { head: null, torn, size };
  } finally {
    await handle.close();
  }
}

/** The first record of a file: its `seq`, its time and, for a `file` record, the file's number; null when the first line is not a record. */
export async function readFirst(path: string): Promise<{ seq: number; time: number | null; file: number | null } | null> {
  const handle = await openRegular(path, 'r');
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    const chunk = buffer.subarray(0, bytesRead);
    const end = chunk.indexOf(0x0a);
    if (end < 0) return null;
    const facts = parseLine(chunk.subarray(0, end).toString('utf8'));
    if (facts === null) return null;
    const time = typeof facts.time === 'string' ? Date.parse(facts.time) : NaN;
    return {
      seq: facts.seq,
      time: Number.isFinite(time) ? time : null,
      file: facts.kind === 'file' && typeof facts.file === 'number' && Number.isSafeInteger(facts.file) && facts.file > 0 ? facts.file : null,
    };
  } finally {
    await handle.close();
  }
}

/** Where a chain stands when its writer opens it. */
export interface ChainResume {
  readonly head: ChainHead;
  /** Bytes of an incomplete last line of the active file (0: none). */
  readonly torn: number;
  /** The active file goes on (its `file` record is there), or null: a new file begins with number `nextFile`. */
  readonly current: { readonly number: number; readonly firstSeq: number; readonly startedAt: number | null; readonly bytes: number } | null;
  readonly nextFile: number;
}

function unreadable(path: string, what: string): OperatorError {
  return new OperatorError(`audit.file: ${shownPath(path)} ${what}, so the chain cannot be resumed; move the file out of the audit directory (keep it: it is part of the trail) and start again`);
}

/**
 * Finds the head of a chain from its files: the last complete record of the active file or, when
 * the active file is missing or empty, of the newest sealed file (a new active file then links to
 * it). Reads at most TAIL_BYTES from the end and HEAD_BYTES from the start of each.
 */
export async function resumeChain(files: ChainFiles): Promise<ChainResume> {
  const sealed = await sealedFiles(files);
  const newest = sealed.at(-1);
  let fromSealed: { head: ChainHead; nextFile: number } = { head: EMPTY_HEAD, nextFile: 1 };
  if (newest !== undefined) {
    const tail = await readTail(newest.path);
    if (tail.head === null) throw unreadable(newest.path, 'ends in no complete record');
    const first = await readFirst(newest.path);
    fromSealed = { head: tail.head, nextFile: (first?.file ?? sealed.length) + 1 };
  }
  let tail: Awaited<ReturnType<typeof readTail>>;
  try {
    tail = await readTail(files.active);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...fromSealed, torn: 0, current: null };
    throw err;
  }
  if (tail.size === 0) return { ...fromSealed, torn: 0, current: null };
  if (tail.head === null) {
    // Only an incomplete line (killed during its first write): the file begins again after it.
    if (tail.size === tail.torn) return { ...fromSealed, torn: tail.torn, current: null };
    throw unreadable(files.active, 'ends in no record of the chain (a line without seq and hash)');
  }
  const first = await readFirst(files.active);
  return {
    head: tail.head,
    torn: tail.torn,
    current: { number: first?.file ?? fromSealed.nextFile, firstSeq: first?.seq ?? tail.head.seq, startedAt: first?.time ?? null, bytes: tail.size + (tail.torn > 0 ? 1 : 0) },
    nextFile: (first?.file ?? fromSealed.nextFile) + 1,
  };
}
