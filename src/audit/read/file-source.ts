// The trail as files: one file, or a directory of chains (docs/audit.md, "Files"). Each chain is
// read in order — its sealed files by the `seq` in their names, then its active file — and the
// chains are merged by `time`. Following keeps reading the active files as they grow and follows
// rotation: the old file is read to its end through the descriptor already open (a rename does not
// move it), then any file sealed since, then the new active file. Reading streams in fixed chunks,
// so memory stays bounded on a trail of any size; a line that does not parse, or is longer than any
// record can be, is counted and skipped.
import { watch, type FSWatcher } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import type { ReadOptions, RecordSource, SourceRecord } from './source.js';

/** Read options a file source understands beyond ReadOptions. */
export interface FileReadOptions extends ReadOptions {
  /**
   * Called once, when following, after every record present at the start has been yielded and
   * before the first new one: where `tail --follow` stops holding the last N and starts printing.
   */
  readonly onCaughtUp?: () => void;
}

export interface FileSourceOptions {
  /** Timer for polling while following (fs.watch events arrive sooner when the platform has them). */
  readonly clock?: Clock;
  /** How often a followed trail is checked when no watch event came. Default 1000. */
  readonly pollIntervalMs?: number;
  /** Longer lines are counted as malformed and skipped. Default 1 MiB (a record is under 10 KiB). */
  readonly maxLineBytes?: number;
  /** In a directory, only files of this trail: the configured file's name without extension (`audit`), default any. */
  readonly base?: string;
  /** In a directory, the trail files' extension. Default `.log`. */
  readonly extension?: string;
  /** Use file system events (fs.watch) as well as polling. Default true; false polls alone. */
  readonly watch?: boolean;
}

/** The trail cannot be read: the path is missing or unreadable, or a read failed. */
export class TrailReadError extends Error {
  override readonly name = 'TrailReadError';
}

const CHUNK_BYTES = 64 * 1024;
const SEQ_DIGITS = 12;

/** A trail file's name split: `audit.w1.000000004001.log` → base `audit`, worker `w1`, seq 4001. */
interface TrailName {
  readonly chainKey: string;
  readonly base: string;
  readonly seq: number | null;
}

/** Splits a trail file name, or null when `name` is not one (`extension` includes the dot). */
export function parseTrailName(name: string, extension: string): TrailName | null {
  if (!name.endsWith(extension) || name.length === extension.length) return null;
  const parts = name.slice(0, -extension.length).split('.');
  let seq: number | null = null;
  const last = parts[parts.length - 1] ?? '';
  if (parts.length > 1 && last.length === SEQ_DIGITS && /^[0-9]+$/.test(last)) { seq = Number(last); parts.pop(); }
  let worker = '';
  const w = parts[parts.length - 1] ?? '';
  if (parts.length > 1 && /^w[1-9][0-9]{0,5}$/.test(w)) { worker = w; parts.pop(); }
  const base = parts.join('.');
  return { chainKey: worker === '' ? base : `${base}.${worker}`, base, seq };
}

/** The files of one chain in a directory: sealed ones by seq, and the active one's path (which may not exist yet). */
interface ChainFiles {
  readonly key: string;
  readonly sealed: readonly string[];
  readonly active: string;
}

/** One open file being read line by line from `offset`. */
class LineFile {
  offset = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private skipping = false;

  constructor(readonly path: string, readonly handle: FileHandle, readonly ino: number, private readonly reader: TrailReader) {}

  /** Complete lines from `offset` to the end as it is now, a chunk's worth at a time. The incomplete tail waits for more. */
  async *lines(): AsyncGenerator<string[]> {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(buf, 0, CHUNK_BYTES, this.offset));
      } catch (err) {
        throw new TrailReadError(`cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
      }
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      const lines: string[] = [];
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0 || nl >= bytesRead) break;
        const line = this.take(buf.subarray(start, nl));
        start = nl + 1;
        if (line !== null) lines.push(line);
      }
      if (start < bytesRead) this.keep(buf.subarray(start, bytesRead));
      if (lines.length > 0) yield lines;
    }
  }

  /** The incomplete last line, if any: at the end of a file that will not grow. */
  rest(): string | null {
    if (this.skipping) { this.skipping = false; return null; }
    if (this.partialBytes === 0) return null;
    const text = Buffer.concat(this.partial).toString('utf8');
    this.partial = [];
    this.partialBytes = 0;
    return text;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  /** The line ending at a newline: the kept partial line and `piece`; null while skipping a long one. */
  private take(piece: Buffer): string | null {
    if (this.skipping) { this.skipping = false; return null; }
    if (this.partialBytes + piece.length > this.reader.maxLineBytes) {
      this.partial = [];
      this.partialBytes = 0;
      this.reader.malformed++;
      return null;
    }
    if (this.partialBytes === 0) return piece.toString('utf8');
    const text = Buffer.concat([...this.partial, piece]).toString('utf8');
    this.partial = [];
    this.partialBytes = 0;
    return text;
  }

  private keep(piece: Buffer): void {
    if (this.skipping) return;
    if (this.partialBytes + piece.length > this.reader.maxLineBytes) {
      // Longer than any record: counted once, and skipped up to its newline.
      this.partial = [];
      this.partialBytes = 0;
      this.skipping = true;
      this.reader.malformed++;
      return;
    }
    this.partial.push(Buffer.from(piece));
    this.partialBytes += piece.length;
  }
}

/** What the reader knows of one chain while reading it. */
interface ChainCursor {
  readonly key: string;
  /** The active file's path: followed across rotation. */
  readonly active: string;
  /** The chain's name from its records (`file`, `start`, `checkpoint` carry `chain`); the file's name until one is read. */
  name: string;
  current: LineFile | null;
}

/** Shared state of one records() call: counts and the open files to close. */
class TrailReader {
  malformed = 0;
  readonly open = new Set<LineFile>();

  constructor(readonly maxLineBytes: number) {}

  async openFile(path: string): Promise<LineFile | null> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      // A sealed file removed by retention between listing and opening, or an active file not yet created.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new TrailReadError(`cannot open ${path}: ${(err as Error).message}`, { cause: err });
    }
    const file = new LineFile(path, handle, (await handle.stat()).ino, this);
    this.open.add(file);
    return file;
  }

  async closeFile(file: LineFile): Promise<void> {
    this.open.delete(file);
    await file.close();
  }

  /** A line as a record, or null (counted) when it is not a JSON object. */
  parse(line: string, cursor: ChainCursor): SourceRecord | null {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.malformed++;
      return null;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) { this.malformed++; return null; }
    const record = value as Record<string, unknown>;
    if (typeof record.chain === 'string') cursor.name = record.chain;
    return { chain: cursor.name, line, record };
  }
}

/** The `time` of a file's first line, read alone (for skipping files before `since`); null when it has none. */
async function firstTimeMs(path: string, maxBytes: number): Promise<number | null> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.allocUnsafe(Math.min(maxBytes, CHUNK_BYTES));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl < 0) return null;
    const record = JSON.parse(buf.subarray(0, nl).toString('utf8')) as { time?: unknown };
    const ms = typeof record.time === 'string' ? Date.parse(record.time) : Number.NaN;
    return Number.isFinite(ms) ? ms : null;
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** Wakes a follower on a watch event or at the poll interval, whichever comes first; never spins. */
class Waker {
  private dirty = false;
  private wake: (() => void) | null = null;
  private watcher: FSWatcher | null = null;
  private timer: Timer | null = null;

  constructor(dir: string, useWatch: boolean, private readonly clock: Clock, private readonly pollMs: number, private readonly signal: AbortSignal | undefined) {
    if (useWatch) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.poke());
        // A watch that fails later (the directory removed, the platform's limit reached) leaves polling.
        watcher.on('error', () => { watcher.close(); this.watcher = null; });
        this.watcher = watcher;
      } catch {
        this.watcher = null; // no watching here (some network file systems): polling alone
      }
    }
    signal?.addEventListener('abort', this.poke, { once: true });
  }

  /** Resolves after the next event, poll or abort (at once if one came since the last wait). */
  wait(): Promise<void> {
    if (this.dirty || this.signal?.aborted === true) { this.dirty = false; return Promise.resolve(); }
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.clock.setTimer(this.poke, this.pollMs);
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    this.timer?.cancel();
    this.signal?.removeEventListener('abort', this.poke);
    this.poke();
  }

  private readonly poke = (): void => {
    const wake = this.wake;
    if (wake === null) { this.dirty = true; return; }
    this.wake = null;
    this.timer?.cancel();
    this.timer = null;
    this.dirty = false;
    wake();
  };
}

/** Records in the order of one chain, a batch at a time (a batch per chunk read): fewer awaits per record. */
type Batches = AsyncGenerator<SourceRecord[]>;

/** Records in batches of at most this many out of the merge. */
const MERGED_BATCH = 1024;

function timeOf(r: SourceRecord): number {
  const t = r.record.time;
  const ms = typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : Number.NEGATIVE_INFINITY;
}

/**
 * The chains' records merged by time: each step takes, among the chains' next records, the one
 * with the earliest time (a record without one goes first; each chain keeps its own order).
 */
async function* mergeByTime(streams: readonly Batches[]): Batches {
  if (streams.length === 1 && streams[0] !== undefined) { yield* streams[0]; return; }
  const buffers = streams.map(() => ({ batch: [] as SourceRecord[], at: 0, ms: 0, done: false }));
  const fill = async (i: number): Promise<void> => {
    const b = buffers[i];
    const s = streams[i];
    if (b === undefined || s === undefined) return;
    while (!b.done && b.at >= b.batch.length) {
      const next = await s.next();
      if (next.done === true) { b.done = true; b.batch = []; } else { b.batch = next.value; b.at = 0; }
    }
    const head = b.batch[b.at];
    if (head !== undefined) b.ms = timeOf(head);
  };
  for (let i = 0; i < streams.length; i++) await fill(i);
  let out: SourceRecord[] = [];
  for (;;) {
    let best = -1;
    let bestMs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < buffers.length; i++) {
      const b = buffers[i];
      if (b === undefined || b.done) continue;
      if (best < 0 || b.ms < bestMs) { best = i; bestMs = b.ms; }
    }
    const b = buffers[best];
    if (b === undefined) break;
    const record = b.batch[b.at];
    if (record !== undefined) out.push(record);
    b.at++;
    if (b.at >= b.batch.length) {
      if (out.length > 0) { yield out; out = []; }
      await fill(best);
    } else {
      const head = b.batch[b.at];
      if (head !== undefined) b.ms = timeOf(head);
    }
    if (out.length >= MERGED_BATCH) { yield out; out = []; }
  }
  if (out.length > 0) yield out;
}

/**
 * The trail at `path` — a file, or a directory of chains — as a RecordSource. `malformed` counts
 * the lines of the last records() call that did not parse.
 */
export class FileSource implements RecordSource {
  readonly name: string;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly maxLineBytes: number;
  private readonly extension: string;
  private readonly base: string | undefined;
  private readonly useWatch: boolean;
  private readonly readers = new Set<TrailReader>();
  private readonly wakers = new Set<Waker>();
  private counted = 0;

  constructor(readonly path: string, options: FileSourceOptions = {}) {
    this.name = path;
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollIntervalMs ?? 1000;
    this.maxLineBytes = options.maxLineBytes ?? 1024 * 1024;
    this.extension = options.extension ?? '.log';
    this.base = options.base;
    this.useWatch = options.watch ?? true;
    if (!(this.pollMs > 0) || !(this.maxLineBytes >= 1024)) throw new RangeError('pollIntervalMs must be positive and maxLineBytes at least 1024');
  }

  /** Lines that did not parse as a JSON object, or were too long, in the reads so far. */
  get malformed(): number {
    let n = this.counted;
    for (const r of this.readers) n += r.malformed;
    return n;
  }

  async *records(options: FileReadOptions): AsyncGenerator<SourceRecord> {
    const reader = new TrailReader(this.maxLineBytes);
    this.readers.add(reader);
    const { isDirectory, dir } = await this.kind();
    const cursors = new Map<string, ChainCursor>();
    let waker: Waker | null = null;
    try {
      // Start watching before the first read, so a write during it still wakes the follower.
      if (options.follow) { waker = new Waker(dir, this.useWatch, this.clock, this.pollMs, options.signal); this.wakers.add(waker); }
      const chains = isDirectory ? await this.scan(dir) : [{ key: parseTrailName(basename(this.path), extname(this.path))?.chainKey ?? basename(this.path), sealed: [], active: this.path }];
      const backlogs = chains.map((c) => {
        const cursor: ChainCursor = { key: c.key, active: c.active, name: defaultChainName(c.key), current: null };
        cursors.set(c.key, cursor);
        return this.backlog(reader, cursor, c.sealed, options);
      });
      for await (const batch of mergeByTime(backlogs)) yield* batch;
      if (!options.follow || waker === null) {
        for (const cursor of cursors.values()) yield* await this.finish(reader, cursor);
        return;
      }
      options.onCaughtUp?.();
      const aborted = (): boolean => options.signal?.aborted === true;
      let lastScan = this.clock.now();
      while (!aborted()) {
        await waker.wait();
        if (aborted()) break;
        // New chains are looked for at most once a poll interval: a listing per write would cost
        // more than the write on a directory of many sealed files.
        if (isDirectory && this.clock.now() - lastScan >= this.pollMs) {
          lastScan = this.clock.now();
          for (const c of await this.scan(dir)) {
            if (cursors.has(c.key)) continue;
            // A chain that began while we followed (a new worker slot): all of it is new.
            const cursor: ChainCursor = { key: c.key, active: c.active, name: defaultChainName(c.key), current: null };
            cursors.set(c.key, cursor);
            for await (const batch of this.backlog(reader, cursor, c.sealed, { follow: true })) yield* batch;
          }
        }
        for (const cursor of cursors.values()) for await (const batch of this.advance(reader, cursor, dir, isDirectory)) yield* batch;
      }
    } finally {
      if (waker !== null) { waker.close(); this.wakers.delete(waker); }
      for (const f of [...reader.open]) await reader.closeFile(f);
      this.readers.delete(reader);
      this.counted += reader.malformed;
    }
  }

  async close(): Promise<void> {
    for (const w of this.wakers) w.close();
    this.wakers.clear();
    for (const r of this.readers) for (const f of [...r.open]) await r.closeFile(f);
  }

  private async kind(): Promise<{ isDirectory: boolean; dir: string }> {
    try {
      const s = await stat(this.path);
      if (s.isDirectory()) return { isDirectory: true, dir: this.path };
      if (s.isFile()) return { isDirectory: false, dir: dirname(this.path) };
      throw new TrailReadError(`${this.path} is neither a file nor a directory`);
    } catch (err) {
      if (err instanceof TrailReadError) throw err;
      throw new TrailReadError(`cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The chains in `dir`, each with its sealed files in order. */
  private async scan(dir: string): Promise<ChainFiles[]> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      throw new TrailReadError(`cannot list ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const chains = new Map<string, { active: string; sealed: { seq: number; path: string }[] }>();
    for (const name of names) {
      const parsed = parseTrailName(name, this.extension);
      if (parsed === null || (this.base !== undefined && parsed.base !== this.base)) continue;
      let chain = chains.get(parsed.chainKey);
      if (chain === undefined) {
        chain = { active: join(dir, `${parsed.chainKey}${this.extension}`), sealed: [] };
        chains.set(parsed.chainKey, chain);
      }
      if (parsed.seq !== null) chain.sealed.push({ seq: parsed.seq, path: join(dir, name) });
    }
    return [...chains].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, c]) => ({ key, active: c.active, sealed: c.sealed.sort((a, b) => a.seq - b.seq).map((s) => s.path) }));
  }

  /** A chain's records present now: its sealed files (those that can hold records at or after `since`), then its active file, left open. */
  private async *backlog(reader: TrailReader, cursor: ChainCursor, sealed: readonly string[], options: ReadOptions): Batches {
    let files = sealed;
    if (options.since !== undefined && files.length > 0) {
      // A sealed file can be skipped when the next file of the chain starts before `since`.
      const firsts = await Promise.all([...files.slice(1), cursor.active].map((p) => firstTimeMs(p, this.maxLineBytes)));
      let skip = 0;
      while (skip < files.length && (firsts[skip] ?? null) !== null && (firsts[skip] as number) < options.since) skip++;
      files = files.slice(skip);
    }
    for (const path of files) {
      const file = await reader.openFile(path);
      if (file === null) continue;
      try {
        yield* this.drain(reader, cursor, file, true);
      } finally {
        await reader.closeFile(file);
      }
    }
    cursor.current = await reader.openFile(cursor.active);
    if (cursor.current !== null) yield* this.drain(reader, cursor, cursor.current, false);
  }

  /** The records of `file` from where it was left; with `complete`, its unfinished last line too (the file will not grow). */
  private async *drain(reader: TrailReader, cursor: ChainCursor, file: LineFile, complete: boolean): Batches {
    for await (const lines of file.lines()) {
      const batch: SourceRecord[] = [];
      for (const line of lines) {
        const r = reader.parse(line, cursor);
        if (r !== null) batch.push(r);
      }
      if (batch.length > 0) yield batch;
    }
    if (complete) {
      const rest = file.rest();
      if (rest !== null) {
        const r = reader.parse(rest, cursor);
        if (r !== null) yield [r];
      }
    }
  }

  /** When not following: the active file's unfinished last line, then close. */
  private async finish(reader: TrailReader, cursor: ChainCursor): Promise<SourceRecord[]> {
    const file = cursor.current;
    if (file === null) return [];
    const rest = file.rest();
    const r = rest === null ? null : reader.parse(rest, cursor);
    cursor.current = null;
    await reader.closeFile(file);
    return r === null ? [] : [r];
  }

  /** Following: new lines of the chain's active file, and across a rotation the rest of the old file, any sealed since and the new one. */
  private async *advance(reader: TrailReader, cursor: ChainCursor, dir: string, isDirectory: boolean): Batches {
    const file = cursor.current;
    if (file !== null) {
      // Truncated in place (not our writer's way, but a copy-and-truncate rotation): start again.
      const size = await file.handle.stat().then((s) => s.size, () => file.offset);
      if (size < file.offset) file.offset = 0;
      yield* this.drain(reader, cursor, file, false);
    }
    let ino: number | null;
    try {
      ino = (await stat(cursor.active)).ino;
    } catch {
      ino = null; // renamed, its successor not yet created: wait for it
    }
    if (ino === null || (file !== null && ino === file.ino)) return;
    // Rotated (or created). Open the new active file first: whatever it is by now, every file sealed
    // between the old one and it is already in the directory under its sealed name.
    const next = await reader.openFile(cursor.active);
    // Gone again between the look and the open (a rotation under way): look again at the next wake.
    if (next === null) return;
    if (file !== null) {
      // The old file is complete now that a successor exists.
      yield* this.drain(reader, cursor, file, true);
      const between = isDirectory ? await this.sealedBetween(dir, cursor.key, file.ino, next.ino) : [];
      cursor.current = null;
      await reader.closeFile(file);
      for (const path of between) {
        const sealed = await reader.openFile(path);
        if (sealed === null) continue;
        try {
          yield* this.drain(reader, cursor, sealed, true);
        } finally {
          await reader.closeFile(sealed);
        }
      }
    }
    cursor.current = next;
    yield* this.drain(reader, cursor, next, false);
  }

  /**
   * The chain's sealed files after inode `from` (the file just read to its end) and before inode
   * `to` (the active file now open, which may itself have been sealed since): those sealed when
   * rotation ran more than once between looks.
   */
  private async sealedBetween(dir: string, key: string, from: number, to: number): Promise<string[]> {
    const chain = (await this.scan(dir)).find((c) => c.key === key);
    if (chain === undefined) return [];
    const inodes = await Promise.all(chain.sealed.map((p) => stat(p).then((s) => s.ino, () => -1)));
    const at = inodes.indexOf(from);
    if (at < 0) return [];
    const end = inodes.indexOf(to, at + 1);
    return chain.sealed.slice(at + 1, end < 0 ? undefined : end);
  }
}

/** A chain's name before any of its records names it: `main`, or the worker slot (`w1`). */
function defaultChainName(key: string): string {
  const ext = extname(key);
  return /^\.w[1-9][0-9]*$/.test(ext) ? ext.slice(1) : 'main';
}

export function fileSource(path: string, options: FileSourceOptions = {}): FileSource {
  return new FileSource(path, options);
}
