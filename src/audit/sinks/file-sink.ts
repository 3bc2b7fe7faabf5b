import { rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import { fsFailure, shownPath } from '../../lib/fs-failure.js';
import { makeDirectory } from '../../lib/make-directory.js';
import { OperatorError } from '../../lib/operator-error.js';
import { openRegular } from '../regular-file.js';
import type { AuditSink, LinkedEntry, SinkFailureMode, SinkState } from './sink.js';

/** The largest single write; a longer backlog is written in several. */
const MAX_WRITE_BYTES = 1024 * 1024;

/**
 * Writes start at most this often. A write to the file goes through libuv's thread pool and costs
 * tens of microseconds of CPU (a hand-off to a pool thread and back), whatever its size; one write
 * per event-loop turn cost a loaded gateway more than everything else its audit trail does. Records
 * wait at most this long in memory; an idle trail writes a record at once.
 */
export const MIN_WRITE_SPACING_MS = 10;

/** A batch this long (characters) is written without waiting for the spacing. */
const EAGER_BATCH_CHARS = 256 * 1024;

/**
 * Room above `maxQueueBytes` for the records the writer adds itself (checkpoints, gap, file and
 * start records): the trail admits request records only below `maxQueueBytes`, so these are
 * never dropped for want of room.
 */
export const CONTROL_RESERVE_BYTES = 256 * 1024;

/** In the queue: the point where the active file is sealed (renamed to `sealed`) and a new one begins. */
interface Seal {
  readonly sealed: string;
}

type Item = Buffer | Seal;

export interface FileSinkOptions {
  readonly path: string;
  readonly maxQueueBytes: number;
  readonly retryIntervalMs: number;
  /** 0: fsync after every write; otherwise at most this long after a write. */
  readonly fsyncIntervalMs: number;
  readonly onFailure: SinkFailureMode;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Bytes of an incomplete last line to end with a newline when the file opens (see resumeChain), read at start. */
  readonly torn?: () => number;
  /** Called after a file was sealed, with its new path. */
  readonly onSealed?: (path: string) => void;
}

/**
 * The file sink: linked lines appended to the active file of a chain, sealed by rename when the
 * trail rotates it. The request path only queues; the queue goes to the file as one append at the
 * end of the event-loop turn, and under load at most once per MIN_WRITE_SPACING_MS.
 *
 * When a write fails (disk full, file-size limit, I/O error) the state turns `failing`; the lines
 * not yet written stay queued up to the bound. Every `retryIntervalMs` the file is reopened by path
 * (so a file moved away to free space is replaced by a new one) and the queue written again,
 * resuming a line cut short by a partial write when the file is the same one; the first success
 * ends the outage. The retry timer and the fsync timer come from the injected clock.
 */
export class FileSink implements AuditSink {
  readonly name = 'file';
  readonly onFailure: SinkFailureMode;
  readonly path: string;
  private handle: FileHandle | null = null;
  /** Device and inode of the open file, to know whether a retry reopened the same file. */
  private fileId = '';
  private queue: Item[] = [];
  /** Bytes in the queue and in the batch not yet written. */
  private queued = 0;
  /** Bytes of queue[0] already written (a partial write before a failure). */
  private headWritten = 0;
  private batch = '';
  private scheduled = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private lastWriteAt = -Infinity;
  private writing: Promise<void> | null = null;
  private outage: { readonly since: number; error: Error } | null = null;
  private waiting = false;
  private retryTimer: Timer | null = null;
  private retrying: Promise<void> | null = null;
  private closed = false;
  private droppedCount = 0;
  /** Written since the last fsync. */
  private dirty = false;
  private syncDue = false;
  /**
   * The fsync under way, if any. With an interval it runs beside the writes, never in front of
   * them: an fsync can take seconds on a busy disk, and records waiting behind it would fill the
   * queue and turn the gateway away (503) for nothing.
   */
  private syncing: Promise<void> | null = null;
  /** Between closing the active file and opening the next one, when sealing: no file is open, and that is not an outage. */
  private sealing = false;
  private syncTimer: Timer | null = null;
  private readonly clock: Clock;
  private readonly hardLimit: number;

  /** Called when a drain emptied the queue (the trail writes a waiting gap record then). */
  whenIdle: (() => void) | null = null;

  constructor(private readonly options: FileSinkOptions) {
    this.path = options.path;
    this.onFailure = options.onFailure;
    this.clock = options.clock ?? systemClock;
    this.hardLimit = options.maxQueueBytes + CONTROL_RESERVE_BYTES;
  }

  /** Opens (creating it and its directory) the file and ends a torn last line; throws an OperatorError naming the path. */
  async start(): Promise<void> {
    try {
      makeDirectory(dirname(this.path), 0o750);
      await this.openFile();
      if ((this.options.torn?.() ?? 0) > 0 && this.handle !== null) {
        // The line a killed writer left incomplete is ended here, so the next record starts a line of its own.
        await this.handle.write('\n');
      }
    } catch (err) {
      throw new OperatorError(`dataDir, audit.file: the audit trail ${shownPath(this.path)} cannot be opened ${fsFailure(err)}; point dataDir (or audit.file) at a place the gateway can write`, { cause: err });
    }
  }

  private async openFile(): Promise<boolean> {
    const handle = await openRegular(this.path, 'a', 0o640);
    let fileId: string;
    try {
      const s = await handle.stat();
      fileId = `${s.dev}:${s.ino}`;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    const same = fileId === this.fileId;
    this.handle = handle;
    this.fileId = fileId;
    return same;
  }

  get state(): SinkState {
    if (this.outage !== null) return 'failing';
    if (this.closed || (this.handle === null && !this.sealing)) return 'closed';
    return this.queued * 4 >= this.options.maxQueueBytes * 3 ? 'backlogged' : 'ok';
  }

  get dropped(): number {
    return this.droppedCount;
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.queued;
  }

  accept(entry: LinkedEntry): boolean {
    const bytes = Buffer.byteLength(entry.line);
    if (this.closed || this.queued + bytes > this.hardLimit) { this.droppedCount++; return false; }
    this.batch += entry.line;
    this.queued += bytes;
    this.schedule();
    return true;
  }

  /** Seals the active file after everything accepted so far: it is renamed to `sealed` and a new active file begins. */
  seal(sealed: string): void {
    this.moveBatch();
    this.queue.push({ sealed });
    this.schedule();
  }

  private schedule(): void {
    const eager = this.batch.length >= EAGER_BATCH_CHARS;
    if (this.scheduled) {
      if (eager && this.flushTimer !== null) { clearTimeout(this.flushTimer); this.flushTimer = null; setImmediate(this.flush); }
      return;
    }
    this.scheduled = true;
    const wait = this.lastWriteAt + MIN_WRITE_SPACING_MS - performance.now();
    if (wait <= 0 || eager) setImmediate(this.flush);
    else this.flushTimer = setTimeout(this.flush, wait);
  }

  private moveBatch(): void {
    if (this.batch === '') return;
    this.queue.push(Buffer.from(this.batch, 'utf8'));
    this.batch = '';
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.flushTimer !== null) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    this.moveBatch();
    this.pump();
  };

  private pump(): void {
    const handle = this.handle;
    // An fsync that is due waits for the one under way: its end pumps again.
    if (this.writing !== null || this.waiting || handle === null || (this.queue.length === 0 && !(this.syncDue && this.syncing === null))) return;
    this.writing = this.drain(handle).finally(() => {
      this.writing = null;
      this.pump();
    });
  }

  private async drain(first: FileHandle): Promise<void> {
    let handle = first;
    try {
      while (this.queue.length > 0) {
        const item = this.queue[0];
        if (item !== undefined && 'sealed' in item) {
          handle = await this.sealActive(handle, item);
          this.queue.shift();
          continue;
        }
        const chunk = this.nextChunk();
        let offset = 0;
        while (offset < chunk.length) {
          this.lastWriteAt = performance.now();
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
          this.consume(bytesWritten);
        }
        this.dirty = true;
        if (this.options.fsyncIntervalMs === 0) await this.sync(handle);
        else this.armSync();
      }
      if (this.syncDue) this.syncBeside(handle);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.recovered();
    if (this.queue.length === 0 && this.batch === '') this.whenIdle?.();
  }

  private async sync(handle: FileHandle): Promise<void> {
    this.syncDue = false;
    if (!this.dirty) return;
    this.dirty = false;
    await handle.datasync();
  }

  /** Starts an fsync of what was written so far without holding up the writes that follow; at most one at a time. */
  private syncBeside(handle: FileHandle): void {
    if (this.syncing !== null) return; // syncDue stays set: another one starts when this one ends
    this.syncDue = false;
    if (!this.dirty) return;
    this.dirty = false;
    this.syncing = handle.datasync().then(() => undefined, (err: unknown) => {
      // Written but perhaps not on disk: fail closed as for a failed write, and write again after the retry.
      this.dirty = true;
      if (!this.closed && this.handle === handle) this.fail(err as Error);
    }).finally(() => {
      this.syncing = null;
      if (this.syncDue) this.pump();
    });
  }

  private armSync(): void {
    if (this.syncTimer !== null || this.closed) return;
    this.syncTimer = this.clock.setTimer(() => {
      this.syncTimer = null;
      this.syncDue = true;
      this.pump();
    }, this.options.fsyncIntervalMs);
  }

  /**
   * Forces the active file to disk, closes it, renames it to its sealed name and opens a new
   * active file. After a failure part way the retry comes back here: a sealed name that exists
   * already means the rename was done.
   */
  private async sealActive(handle: FileHandle, seal: Seal): Promise<FileHandle> {
    await this.syncing;
    await handle.datasync();
    this.dirty = false;
    this.sealing = true;
    try {
      await handle.close();
      this.handle = null;
      const done = await stat(seal.sealed).then(() => true, (err: unknown) => { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; throw err; });
      if (!done) await rename(this.path, seal.sealed);
      this.fileId = '';
      await this.openFile();
    } finally {
      this.sealing = false;
    }
    const next = this.handle as FileHandle | null;
    if (next === null) throw new Error('the new audit file did not open');
    this.options.onSealed?.(seal.sealed);
    return next;
  }

  /** Up to MAX_WRITE_BYTES of the queue's leading buffers as one, starting after what was already written. */
  private nextChunk(): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    for (let i = 0; i < this.queue.length && size < MAX_WRITE_BYTES; i++) {
      const part = this.queue[i];
      if (!(part instanceof Buffer)) break;
      const slice = i === 0 ? part.subarray(this.headWritten) : part;
      parts.push(slice);
      size += slice.length;
    }
    return Buffer.concat(parts, size);
  }

  private consume(bytes: number): void {
    let left = bytes;
    this.queued -= bytes;
    while (left > 0) {
      const head = this.queue[0];
      if (!(head instanceof Buffer)) break;
      const rest = head.length - this.headWritten;
      if (left < rest) { this.headWritten += left; return; }
      left -= rest;
      this.queue.shift();
      this.headWritten = 0;
    }
  }

  private fail(error: Error): void {
    if (this.outage === null) {
      this.outage = { since: this.clock.now(), error };
      this.options.logger.error({ err: error, path: this.path, retryIntervalMs: this.options.retryIntervalMs, queuedBytes: this.queued, onFailure: this.onFailure },
        this.onFailure === 'failClosed' ? 'audit trail write failed; refusing requests and retrying' : 'audit trail write failed; serving (audit.onFailure: failOpen) and retrying');
    } else this.outage.error = error;
    const handle = this.handle;
    this.handle = null;
    if (handle !== null) handle.close().catch(() => undefined);
    this.waiting = true;
    if (!this.closed && this.retryTimer === null) {
      this.retryTimer = this.clock.setTimer(() => {
        this.retryTimer = null;
        const retrying = this.retry().finally(() => { if (this.retrying === retrying) this.retrying = null; });
        this.retrying = retrying;
      }, this.options.retryIntervalMs);
    }
  }

  private recovered(): void {
    const outage = this.outage;
    if (outage === null) return;
    this.outage = null;
    this.options.logger.warn({ path: this.path, failedForMs: this.clock.now() - outage.since, lastError: outage.error.message },
      'audit trail writable again');
  }

  private async retry(): Promise<void> {
    if (this.closed) return;
    let same: boolean;
    try {
      same = await this.openFile();
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    // A line cut short in another file cannot be finished in this one: it is written again whole.
    if (!same && this.headWritten > 0) { this.queued += this.headWritten; this.headWritten = 0; }
    this.waiting = false;
    if (this.closed) return;
    if (this.queue.length === 0) this.recovered();
    else this.pump();
  }

  async flushed(): Promise<void> {
    for (;;) {
      const busy = this.writing ?? this.retrying;
      if (busy !== null) await busy;
      else if (this.scheduled) this.flush();
      else return;
    }
  }

  /** Writes what is queued (one last attempt if failing), forces it to disk and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) { this.retryTimer.cancel(); this.retryTimer = null; }
    if (this.syncTimer !== null) { this.syncTimer.cancel(); this.syncTimer = null; }
    await this.retrying;
    this.flush();
    await this.writing;
    if (this.outage !== null && this.queue.length > 0) {
      try {
        if (!(await this.openFile()) && this.headWritten > 0) { this.queued += this.headWritten; this.headWritten = 0; }
        this.waiting = false;
        const handle = this.handle;
        if (handle !== null) await this.drain(handle);
      } catch { /* reported below */ }
    }
    if (this.flushTimer !== null) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    this.scheduled = false;
    if (this.queue.length > 0 || this.batch !== '') {
      this.options.logger.error({ path: this.path, unwrittenBytes: this.queued }, 'audit records not written at shutdown');
    }
    const handle = this.handle;
    this.handle = null;
    await this.syncing;
    if (handle !== null) {
      if (this.dirty) await handle.datasync().catch(() => undefined);
      await handle.close().catch(() => undefined);
    }
  }
}
