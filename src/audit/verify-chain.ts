import type { KeyObject } from 'node:crypto';
import { basename } from 'node:path';
import { canonicalJson } from './canonical.js';
import { GENESIS, checkpointSignatureValid, expectedHash, sha256Hex } from './chain.js';
import type { ChainReport, Problem, ProblemKind } from './verify.js';
import type { RawLine } from './verify-lines.js';

/**
 * The checks of one chain for `audit verify` (verify.ts): fed its files in order, line by line, it
 * keeps only the last record, a bounded look-ahead after a broken link and the chain's counts.
 */

/** How many records after a broken link are read to tell a deletion from a reordering or an insertion. */
const LOOKAHEAD_RECORDS = 4096;
const HEX64 = /^[0-9a-f]{64}$/;
/** An Ed25519 signature (64 bytes) in base64url without padding; the last character carries 2 bits and 4 zeros. */
const SIGNATURE = /^[A-Za-z0-9_-]{85}[AQgw]$/;

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type Parsed = Record<string, unknown>;

function decode(raw: RawLine): string | null {
  if (raw.bytes === null) return null;
  try {
    return UTF8.decode(raw.bytes);
  } catch {
    return null;
  }
}

/** The line as a JSON object, or null. */
export function parseLine(raw: RawLine): Parsed | null {
  const text = decode(raw);
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Parsed) : null;
  } catch {
    return null;
  }
}

export function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

// ---------------------------------------------------------------------------------------------
// One chain

/** A record's place and links: what the look-ahead keeps. */
export interface Seen {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly kind: string;
  readonly file: string;
  readonly line: number;
}

interface Torn { readonly file: string; readonly line: number; readonly length: number; readonly terminated: boolean }

/** The checks of one chain, fed its files in order, line by line. */
export class ChainCheck {
  private readonly report: ChainReport;
  private file = '';
  private lastFile = false;
  private lineNo = 0;
  private fileIndex = -1;
  private fileNo: number | null = null;
  /** The last record that verified, or the anchor the first present file gives. */
  private anchor: { seq: number; hash: string } | null = null;
  private last: Seen | null = null;
  /** A link problem found; the records after it are counted, not checked. */
  private broken = false;
  /** A broken link waiting for the records after it, to say what happened. */
  private pending: { readonly anchor: { seq: number; hash: string }; readonly last: Seen | null; readonly first: Seen; readonly next: Seen[] } | null = null;
  /** An unparseable line, waiting for a `start` record that acknowledges it as torn. */
  private torn: Torn | null = null;
  private lastCheckpointSeq = 0;
  private keyProblem: { problem: Problem; more: number } | null = null;
  private gaps = { count: 0, dropped: 0 };

  constructor(chain: string, files: string[], private readonly keys: ReadonlyMap<string, KeyObject>, private readonly maxLineBytes: number) {
    this.report = { chain, files, records: 0, checkpoints: 0, firstSeq: null, lastSeq: null, head: null, problems: [], notes: [] };
  }

  beginFile(path: string, lastFile: boolean): void {
    this.fileDone();
    this.file = path;
    this.lastFile = lastFile;
    this.lineNo = 0;
    this.fileIndex += 1;
  }

  line(raw: RawLine): void {
    this.lineNo += 1;
    const record = raw.terminated ? parseLine(raw) : null;
    if (record === null) {
      this.unparsed(raw);
      return;
    }
    this.report.records += 1;
    const seq = isSeq(record.seq) ? record.seq : null;
    const hash = typeof record.hash === 'string' ? record.hash : null;
    if (seq !== null && hash !== null) {
      this.report.firstSeq ??= seq;
      this.report.lastSeq = seq;
      this.report.head = hash;
    }
    if (record.kind === 'checkpoint') this.report.checkpoints += 1;
    if (this.broken) return;
    const text = decode(raw) ?? '';
    if (this.torn !== null && !this.acknowledges(record)) {
      this.fail('unparseable', this.torn.file, this.torn.line, undefined, this.torn.terminated ? 'the line is not a JSON object' : 'the line is incomplete (no newline) and no later start record reports it as torn');
      return;
    }
    let canonical: string | null;
    try {
      canonical = canonicalJson(record);
    } catch {
      canonical = null;
    }
    if (canonical !== text) {
      this.fail('not canonical', this.file, this.lineNo, seq ?? undefined, canonical === null
        ? 'the line has no RFC 8785 canonical form (a lone surrogate, or nested too deeply)'
        : 'the line is not the RFC 8785 canonical form of its JSON (member order, spacing, number or string form, or a repeated member)');
      return;
    }
    if (seq === null || hash === null || !HEX64.test(hash) || typeof record.prev !== 'string' || !HEX64.test(record.prev)) {
      this.fail('unparseable', this.file, this.lineNo, seq ?? undefined, 'not a chain record: it lacks a valid seq, prev or hash');
      return;
    }
    const seen: Seen = { seq, prev: record.prev, hash, kind: typeof record.kind === 'string' ? record.kind : '', file: this.file, line: this.lineNo };
    const hashOk = hashOf(text, record, hash) === hash;
    if (record.kind === 'checkpoint' && !hashOk && this.signatureBad(record) === true) {
      this.fail('bad signature', this.file, this.lineNo, seq, 'the checkpoint\'s signature does not verify (and the record\'s hash does not match its content)');
      return;
    }
    if (this.pending !== null) {
      this.pending.next.push(seen);
      if (this.pending.next.length >= LOOKAHEAD_RECORDS) this.classifyPending();
      return;
    }
    if (!hashOk) {
      this.fail('modified', this.file, this.lineNo, seq, 'the record\'s hash does not match its content');
      return;
    }
    if (this.torn !== null) this.acknowledgeTorn(record);
    if (typeof record.chain === 'string' && record.chain !== this.report.chain) {
      this.fail('spliced', this.file, this.lineNo, seq, `a record of chain ${clip(record.chain)} in a file of chain ${clip(this.report.chain)}`);
      return;
    }
    if (this.lineNo === 1 && !this.fileRecord(record, seen)) return;
    if (this.lineNo !== 1 && record.kind === 'file') {
      this.fail('spliced', this.file, this.lineNo, seq, `a file record (file ${clip(record.file)}, seq ${seq}) in the middle of a file: another file's records were spliced in after seq ${this.anchor?.seq ?? 0}`);
      return;
    }
    const anchor = this.anchor ?? { seq: 0, hash: GENESIS };
    if (seq !== anchor.seq + 1 || seen.prev !== anchor.hash) {
      if (this.lineNo === 1 && this.fileIndex > 0 && (seq <= anchor.seq || seq === anchor.seq + 1)) {
        this.fail('spliced', this.file, 1, seq, `this file does not follow the one before it: its file record (seq ${seq}) does not link to seq ${anchor.seq}, the last record of the previous file`);
        return;
      }
      this.pending = { anchor, last: this.last, first: seen, next: [] };
      return;
    }
    if (record.kind === 'checkpoint') this.checkpoint(record, seen, anchor);
    if (this.broken) return;
    if (record.kind === 'gap') {
      this.gaps.count += 1;
      if (typeof record.droppedRecords === 'number') this.gaps.dropped += record.droppedRecords;
    }
    this.anchor = { seq, hash };
    this.last = seen;
  }

  end(): ChainReport {
    this.fileDone();
    if (this.pending !== null) this.classifyPending();
    if (this.torn !== null && !this.broken) {
      const t = this.torn;
      if (!t.terminated && this.lastFile && t.file === this.file) {
        this.fail('truncated tail', t.file, t.line, undefined, `the newest file ends in an incomplete line (${t.length} bytes, no newline): the record being written when the writer stopped`);
      } else {
        this.fail('unparseable', t.file, t.line, undefined, t.terminated ? 'the line is not a JSON object' : 'the line is incomplete (no newline) and no later start record reports it as torn');
      }
    }
    if (this.keyProblem !== null) {
      const { problem, more } = this.keyProblem;
      this.report.problems.push(more === 0 ? problem : { ...problem, message: `${problem.message} (and ${more} later checkpoint${more === 1 ? '' : 's'} likewise)` });
      this.report.problems.sort((a, b) => this.report.files.indexOf(a.file) - this.report.files.indexOf(b.file) || a.line - b.line);
    }
    if (!this.broken && this.anchor !== null && this.anchor.seq > this.lastCheckpointSeq) {
      const from = Math.max(this.lastCheckpointSeq + 1, this.report.firstSeq ?? 1);
      const count = this.anchor.seq - from + 1;
      if (count > 0) this.report.notes.push({ kind: 'not yet checkpointed', message: `${count} record${count === 1 ? '' : 's'} after the last checkpoint (seq ${from}–${this.anchor.seq}) ${count === 1 ? 'is' : 'are'} not yet checkpointed: no signature covers ${count === 1 ? 'it' : 'them'}` });
    }
    if (this.gaps.count > 0) this.report.notes.push({ kind: 'gap', message: `${this.gaps.count} gap record${this.gaps.count === 1 ? '' : 's'}: ${this.gaps.dropped} record${this.gaps.dropped === 1 ? '' : 's'} a sink could not hold were dropped` });
    return this.report;
  }

  /**
   * The end of a file: one without a single line is a problem, since every trail file begins with a
   * `file` record. The newest file of the chain emptied is its truncated tail (a writer stopped
   * between creating the file and its first write, or the file was cut to nothing); an older one
   * had its records removed.
   */
  private fileDone(): void {
    if (this.fileIndex < 0 || this.lineNo > 0 || this.broken) return;
    if (this.pending !== null) this.classifyPending();
    if (this.broken) return;
    if (this.lastFile) this.fail('truncated tail', this.file, 1, undefined, 'the file is empty: every trail file begins with a file record, so it was cut short before its first record (or cut to nothing)');
    else this.fail('deleted', this.file, 1, undefined, 'the file is empty: every trail file begins with a file record, so its records were removed');
  }

  private fail(kind: ProblemKind, file: string, line: number, seq: number | undefined, message: string): void {
    this.broken = true;
    this.pending = null;
    this.torn = null;
    this.report.problems.push({ kind, file, line, ...(seq === undefined ? {} : { seq }), message });
  }

  private unparsed(raw: RawLine): void {
    if (this.broken) return;
    if (raw.bytes === null) {
      this.fail('unparseable', this.file, this.lineNo, undefined, `the line is ${raw.length} bytes long, over the limit of ${this.maxLineBytes}`);
      return;
    }
    if (this.pending !== null) {
      this.classifyPending();
      return;
    }
    if (this.torn !== null) {
      this.fail('unparseable', this.torn.file, this.torn.line, undefined, 'the line is not a JSON object, and no start record reports it as torn');
      return;
    }
    this.torn = { file: this.file, line: this.lineNo, length: raw.length, terminated: raw.terminated };
  }

  /** Whether `record` may follow a torn line: the `start` record that reports it, or the `file` record of a new file before that start. */
  private acknowledges(record: Parsed): boolean {
    return (record.kind === 'start' && typeof record.torn === 'object' && record.torn !== null) || (record.kind === 'file' && this.lineNo === 1);
  }

  private acknowledgeTorn(record: Parsed): void {
    const t = this.torn;
    if (t === null || record.kind !== 'start') return;
    const bytes = (record.torn as { bytes?: unknown }).bytes;
    const told = bytes === t.length ? '' : ` (the start record says ${clip(bytes)} bytes, the line has ${t.length})`;
    this.report.notes.push({ kind: 'torn', file: t.file, line: t.line, message: `an incomplete line of ${t.length} bytes, reported as torn by the start record at ${basename(this.file)} line ${this.lineNo}${told}: the one record lost when the writer stopped mid-write` });
    this.torn = null;
  }

  /** The checks of a file's first line; false when it failed. */
  private fileRecord(record: Parsed, seen: Seen): boolean {
    if (record.kind !== 'file' || !isSeq(record.file)) {
      this.fail('deleted', this.file, 1, seen.seq, 'the file does not begin with a file record: its first line was removed');
      return false;
    }
    const number = record.file;
    if (this.fileIndex === 0) {
      this.fileNo = number;
      if (number > 1) {
        this.report.notes.push({ kind: 'earlier files absent', file: this.file, line: 1, message: `the chain's files 1–${number - 1} (seq 1–${seen.seq - 1}) are not here (removed by retention?): verification starts at seq ${seen.seq}, whose prev it takes on trust` });
        this.anchor = { seq: seen.seq - 1, hash: seen.prev };
      }
      return true;
    }
    const expected = (this.fileNo ?? 0) + 1;
    const anchor = this.anchor ?? { seq: 0, hash: GENESIS };
    if (number > expected) {
      const range = seen.seq > anchor.seq + 1 ? ` (seq ${anchor.seq + 1}–${seen.seq - 1})` : '';
      this.fail('missing file', this.file, 1, seen.seq, `file${number - expected === 1 ? ` ${expected} is` : `s ${expected}–${number - 1} are`} missing${range}: this is file ${number}, after file ${expected - 1}`);
      return false;
    }
    if (number < expected) {
      this.fail('spliced', this.file, 1, seen.seq, `this file says it is file ${number} of the chain, but follows file ${expected - 1}`);
      return false;
    }
    this.fileNo = number;
    return true;
  }

  /** Checks a linked checkpoint: what it claims, and its signature. */
  private checkpoint(record: Parsed, seen: Seen, anchor: { seq: number; hash: string }): void {
    if (record.count === anchor.seq && seen.prev === anchor.hash && record.head !== anchor.hash && this.signatureBad(record) === false) {
      // A checkpoint that links in place and whose signature verifies, but whose signed head is not
      // the hash of the record before it: that record, or one after the last checkpoint, was changed
      // and the hashes from it on recomputed. The signature is the evidence, so the records are named.
      const from = Math.max(this.lastCheckpointSeq + 1, this.report.firstSeq ?? 1);
      this.fail('modified', this.file, this.lineNo, seen.seq, `a record of seq ${from}–${anchor.seq} was changed and the hashes from it on recomputed: this checkpoint, whose signature by key ${clip(record.keyId)} verifies, says seq ${anchor.seq} had hash ${clip(record.head)}, not ${anchor.hash}`);
      return;
    }
    if (record.count !== anchor.seq || record.head !== anchor.hash || seen.prev !== record.head) {
      this.fail('bad checkpoint', this.file, this.lineNo, seen.seq, `the checkpoint's count and head (${clip(record.count)}, ${clip(record.head)}) are not those of the record before it (seq ${anchor.seq})`);
      return;
    }
    this.lastCheckpointSeq = seen.seq;
    const bad = this.signatureBad(record);
    if (bad === false) return;
    const problem: Problem = bad === 'unknown'
      ? { kind: 'unknown key', file: this.file, line: this.lineNo, seq: seen.seq, message: `signed by key ${clip(record.keyId)}, which is not among the public keys` }
      : { kind: 'bad signature', file: this.file, line: this.lineNo, seq: seen.seq, message: `the signature does not verify with key ${clip(record.keyId)}` };
    if (this.keyProblem === null) this.keyProblem = { problem, more: 0 };
    else this.keyProblem.more += 1;
  }

  /** true: the signature is wrong; 'unknown': no key to check it with; false: it verifies. */
  private signatureBad(record: Parsed): boolean | 'unknown' {
    const { chain, count, head, keyId, time, signature } = record;
    if (typeof keyId !== 'string') return true;
    const key = this.keys.get(keyId);
    if (key === undefined) return 'unknown';
    // Exactly the 86 characters of 64 bytes in base64url without padding: Buffer.from skips
    // characters outside the alphabet, so a looser test would let one signature have many texts.
    if (typeof chain !== 'string' || typeof count !== 'number' || typeof head !== 'string' || typeof time !== 'string' || typeof signature !== 'string' || !SIGNATURE.test(signature)) return true;
    return !checkpointSignatureValid({ chain, count, head, keyId, time }, signature, key);
  }

  private classifyPending(): void {
    const p = this.pending;
    if (p === null) return;
    const { kind, at, message } = classify(p.anchor, p.last, p.first, p.next);
    this.fail(kind, at.file, at.line, at.seq, message);
  }
}

/**
 * The hash `record` should carry. `text` is its canonical form, so the canonical form without `hash`
 * is `text` less that one member: cut it out when it occurs once (a nested member with the same
 * name and value would make two), else canonicalise again.
 */
function hashOf(text: string, record: Parsed, hash: string): string | null {
  const member = `"hash":"${hash}"`;
  const at = text.indexOf(member);
  if (at > 0 && text.indexOf(member, at + 1) < 0) {
    const end = at + member.length;
    if (text[at - 1] === ',') return sha256Hex(text.slice(0, at - 1) + text.slice(end));
    if (text[at - 1] === '{' && text[end] === ',') return sha256Hex(text.slice(0, at) + text.slice(end + 1));
  }
  try {
    return expectedHash(record);
  } catch {
    return null;
  }
}

/**
 * What a broken link means, from the records around it. `anchor` is the last record that verified
 * (`last`, null when it is the anchor of a chain whose first files are absent), `first` the record
 * that does not link to it, `next` the records after it. A seq that jumps is a deletion, unless the
 * missing seqs turn up later (a reordering); a seq that repeats or goes back is an insertion when the
 * chain then carries on from before it; a right seq with the wrong prev is an insertion when the
 * next record links past it, else a modification whose hash was recomputed.
 */
export function classify(anchor: { seq: number; hash: string }, last: Seen | null, first: Seen, next: readonly Seen[]): { kind: ProblemKind; at: Seen; message: string } {
  const expected = anchor.seq + 1;
  const after = next[0];
  const where = (s: Seen): string => `${basename(s.file)} line ${s.line}`;
  if (first.seq > expected) {
    const back = next.find((s) => s.seq >= expected && s.seq < first.seq);
    if (back !== undefined) return { kind: 'reordered', at: first, message: `seq ${first.seq} comes before seq ${back.seq} (${where(back)}): records were moved` };
    const n = first.seq - expected;
    return { kind: 'deleted', at: first, message: `${n === 1 ? `the record with seq ${expected} is` : `${n} records (seq ${expected}–${first.seq - 1}) are`} missing before this one, which follows seq ${anchor.seq}` };
  }
  if (first.seq === expected) {
    if (after !== undefined && after.seq === expected && after.prev === anchor.hash) return { kind: 'inserted', at: first, message: `an extra record: the record after it (${where(after)}) has the same seq and links to seq ${anchor.seq} instead` };
    if (last !== null && after !== undefined && after.prev === first.hash) return { kind: 'modified', at: last, message: `the record was changed and its hash recomputed: the record after it (${where(first)}) links to a different hash` };
    return { kind: 'modified', at: first, message: `the record's prev does not link to the record before it (seq ${anchor.seq}): it was changed and its hash recomputed` };
  }
  if (first.seq === anchor.seq && first.hash === anchor.hash) return { kind: 'inserted', at: first, message: `a second copy of the record before it (seq ${first.seq})` };
  if (first.seq === anchor.seq && last !== null && first.prev === last.prev) {
    // Two records claim the same place; the one the chain goes on from is the original.
    if (after !== undefined && after.prev === first.hash) return { kind: 'inserted', at: last, message: `an extra record: the record after it (${where(first)}) has the same seq and prev, and the chain goes on from that one` };
    return { kind: 'inserted', at: first, message: `an extra record with the same seq and prev as the record before it (seq ${first.seq})` };
  }
  if (after === undefined || (after.seq === expected && after.prev === anchor.hash)) return { kind: 'inserted', at: first, message: `a record with seq ${first.seq} inserted after seq ${anchor.seq}; the chain goes on after it as if it were not there` };
  return { kind: 'reordered', at: first, message: `seq goes back from ${anchor.seq} to ${first.seq}: records were moved` };
}

const CLIP_CHARS = 80;

/** A value from the trail, as a message quotes it: JSON, at most CLIP_CHARS characters. */
function clip(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = '[nested too deeply to show]';
  }
  return text.length > CLIP_CHARS ? `${text.slice(0, CLIP_CHARS)}…` : text;
}
