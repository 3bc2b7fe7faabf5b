import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { makeDirectory } from '../lib/make-directory.js';
import { OperatorError } from '../lib/operator-error.js';
import { serialiseRecord, type AuditRecord } from './audit-record.js';
import { EMPTY_HEAD, linkObject, linkText, type ChainHead } from './chain.js';

export type { AuditRecord } from './audit-record.js';

/** The start-time failure to open the trail at `path`, as one line for the operator. */
function openFailure(path: string, err: unknown): OperatorError {
  return new OperatorError(`dataDir, audit.file: the audit trail ${shownPath(path)} cannot be opened ${fsFailure(err)}; point dataDir (or audit.file) at a place the gateway can write`, { cause: err });
}

/** Written in place of records dropped because the queue was full, so the trail shows the gap. */
export interface AuditGapRecord {
  readonly time: string;
  readonly event: 'records_dropped';
  readonly droppedRecords: number;
  readonly firstDroppedAt: string;
  readonly lastDroppedAt: string;
}

/** Why the trail is not taking records, for readiness and logs. */
export type AuditState = 'ok' | 'failing' | 'backlogged' | 'closed';

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
 * The audit trail: JSON lines appended to a file. The request path only serialises its record
 * (bounded and escaped, see serialiseRecord) into a queue; the queue goes to the file as one
 * append, at the end of the event-loop turn, and under load at most once per
 * MIN_WRITE_SPACING_MS.
 *
 * Fail closed, then recover: when a write fails (disk full, file-size limit, I/O error), `healthy`
 * turns false and the gateway answers 503 `audit_unavailable` instead of serving unaudited. The
 * records not yet written stay queued, including those of the refused requests, up to
 * `maxQueueBytes`. Every `retryIntervalMs` the file is reopened by path (so a file moved away to
 * free space is replaced by a new one) and the queue is written again, resuming a line cut short
 * by a partial write when the file is the same one; on the first success `healthy` is true again.
 * Requests are refused once the queue is three quarters full; records that find it full are
 * counted and replaced by one `records_dropped` line. The retry timer and the times the trail
 * writes itself (the gap line, the outage's duration) come from the injected clock.
 */
export class AuditLog {
  private handle: FileHandle | null = null;
  /** Device and inode of the open file, to know whether a retry reopened the same file. */
  private fileId = '';
  /** Serialised lines waiting to be written, oldest first. */
  private queue: Buffer[] = [];
  /** Bytes in the queue and in the batch not yet written. */
  private queuedBytes = 0;
  /** Bytes of queue[0] already written (a partial write before a failure). */
  private headWritten = 0;
  private batch = '';
  /** A flush is due: on the next turn, or when `flushTimer` fires. */
  private scheduled = false;
  private flushTimer: NodeJS.Timeout | null = null;
  /** When the last write started (performance.now()), for the spacing. */
  private lastWriteAt = -Infinity;
  private writing: Promise<void> | null = null;
  /** Set by a failed write; cleared only by a write that succeeds. */
  private outage: { readonly since: number; error: Error } | null = null;
  /** True between a failure and the next retry: nothing is written meanwhile. */
  private waiting = false;
  private retryTimer: Timer | null = null;
  /** The retry under way (reopening the file), for `flushed`. */
  private retrying: Promise<void> | null = null;
  private closed = false;
  private dropped = 0;
  private gap: { count: number; first: string; last: string } | null = null;
  /** The chain's head: the last record queued. */
  private head: ChainHead = EMPTY_HEAD;

  constructor(
    readonly path: string,
    private readonly maxQueueBytes: number,
    private readonly retryIntervalMs: number,
    private readonly logger: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Opens (creating it and its directory) the file; throws an OperatorError naming the path and
   * what would be right when it cannot be opened at start.
   */
  async open(): Promise<void> {
    try {
      makeDirectory(dirname(this.path), 0o750);
      await this.openFile();
    } catch (err) {
      throw openFailure(this.path, err);
    }
  }

  /** Opens the file by path; true when it is the file that was open before. */
  private async openFile(): Promise<boolean> {
    const handle = await open(this.path, 'a', 0o640);
    let fileId: string;
    try {
      const stat = await handle.stat();
      fileId = `${stat.dev}:${stat.ino}`;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    const same = fileId === this.fileId;
    this.handle = handle;
    this.fileId = fileId;
    return same;
  }

  /** False when the trail cannot take more records; requests are then refused. */
  get healthy(): boolean {
    return this.state === 'ok';
  }

  /** `failing` from a failed write until a retry writes successfully; `backlogged` while the queue is three quarters full. */
  get state(): AuditState {
    if (this.outage !== null) return 'failing';
    if (this.closed || this.handle === null) return 'closed';
    // Records were dropped and the line saying so is not queued yet: serve nothing meanwhile.
    if (this.gap !== null) return 'backlogged';
    // Requests are refused at three quarters of the queue, so the records of the refused requests
    // still fit in the last quarter rather than being dropped.
    return this.queuedBytes * 4 >= this.maxQueueBytes * 3 ? 'backlogged' : 'ok';
  }

  /** Records that could not be written at all (the queue was full, or the trail closed). */
  get droppedRecords(): number {
    return this.dropped;
  }

  /** Queues one record; false when it was dropped (queue full, or the trail closed), which the next gap line counts. */
  write(record: AuditRecord): boolean {
    if (this.closed) { this.dropped++; return false; }
    const linked = linkText(serialiseRecord(record), this.head);
    const line = linked.line;
    const bytes = Buffer.byteLength(line);
    if (!this.queueGap(bytes) || this.queuedBytes + bytes > this.maxQueueBytes) {
      this.dropped++;
      if (this.gap === null) this.gap = { count: 1, first: record.time, last: record.time };
      else { this.gap.count++; this.gap.last = record.time; }
      return false;
    }
    this.head = linked;
    this.enqueue(line, bytes);
    return true;
  }

  private enqueue(line: string, bytes: number): void {
    this.batch += line;
    this.queuedBytes += bytes;
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

  /**
   * Queues the `records_dropped` line of a gap once it fits together with the `following` bytes of
   * the record that comes next; false while they do not (then no later record may be queued before
   * it, and the trail stays unhealthy). Closing a gap only when the next record fits too keeps one
   * outage one gap line: a gap line squeezed into the last free bytes would be followed at once by
   * a new gap.
   */
  private queueGap(following = 0): boolean {
    const open = this.gap;
    if (open === null) return true;
    const gap: AuditGapRecord = { time: new Date(this.clock.now()).toISOString(), event: 'records_dropped', droppedRecords: open.count, firstDroppedAt: open.first, lastDroppedAt: open.last };
    const linked = linkObject({ kind: 'gap', ...gap }, this.head);
    const text = linked.line;
    const bytes = Buffer.byteLength(text);
    if (this.queuedBytes + bytes + following > this.maxQueueBytes) return false;
    this.head = linked;
    this.logger.error({ dropped: gap.droppedRecords, from: gap.firstDroppedAt, to: gap.lastDroppedAt }, 'audit records dropped: the queue was full');
    this.gap = null;
    this.enqueue(text, bytes);
    return true;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.flushTimer !== null) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    if (this.batch !== '') {
      this.queue.push(Buffer.from(this.batch, 'utf8'));
      this.batch = '';
    }
    this.pump();
  };

  /** Starts writing the queue unless a write is running or the trail waits for its next retry. */
  private pump(): void {
    const handle = this.handle;
    if (this.writing !== null || this.waiting || handle === null || this.queue.length === 0) return;
    this.writing = this.drain(handle).finally(() => {
      this.writing = null;
      this.pump();
    });
  }

  /** Writes the queue until it is empty; a failure closes the file and schedules a retry. */
  private async drain(handle: FileHandle): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const chunk = this.nextChunk();
        let offset = 0;
        while (offset < chunk.length) {
          this.lastWriteAt = performance.now();
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
          this.consume(bytesWritten);
        }
      }
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.recovered();
    // The queue is empty: the gap line is written now, not when the next request comes.
    this.queueGap();
  }

  /** Up to MAX_WRITE_BYTES of the queue as one buffer, starting after what was already written. */
  private nextChunk(): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    for (let i = 0; i < this.queue.length && size < MAX_WRITE_BYTES; i++) {
      const part = this.queue[i] ?? Buffer.alloc(0);
      const slice = i === 0 ? part.subarray(this.headWritten) : part;
      parts.push(slice);
      size += slice.length;
    }
    return Buffer.concat(parts, size);
  }

  /** Marks `bytes` of the queue as written. */
  private consume(bytes: number): void {
    let left = bytes;
    this.queuedBytes -= bytes;
    while (left > 0) {
      const head = this.queue[0];
      if (head === undefined) break;
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
      this.logger.error({ err: error, path: this.path, retryIntervalMs: this.retryIntervalMs, queuedBytes: this.queuedBytes },
        'audit trail write failed; refusing requests and retrying');
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
      }, this.retryIntervalMs);
    }
  }

  private recovered(): void {
    const outage = this.outage;
    if (outage === null) return;
    this.outage = null;
    this.logger.warn({ path: this.path, failedForMs: this.clock.now() - outage.since, lastError: outage.error.message, dropped: this.dropped },
      'audit trail writable again; serving requests');
  }

  /** Reopens the file by path and writes the queue through pump; its first success ends the outage. */
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
    if (!same && this.headWritten > 0) { this.queuedBytes += this.headWritten; this.headWritten = 0; }
    this.waiting = false;
    // close() began while the file was reopening: it writes the queue through this handle, once.
    if (this.closed) return;
    if (this.queue.length === 0) this.recovered();
    else this.pump();
  }

  /**
   * Resolves once every record written before the call is on disk, or the trail has stopped
   * trying for now (failing and waiting for its next retry, or closed). A retry under way counts
   * as trying: a test that moves the clock past the retry interval waits here for its outcome.
   */
  async flushed(): Promise<void> {
    for (;;) {
      const busy = this.writing ?? this.retrying;
      if (busy !== null) await busy;
      else if (this.scheduled) this.flush(); // records waiting for the spacing are written now
      else return;
    }
  }

  /** Flushes queued records (one last attempt if the trail is failing) and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) { this.retryTimer.cancel(); this.retryTimer = null; }
    // A retry under way reopens the file; wait for it rather than write the queue twice.
    await this.retrying;
    // Writing the queue may queue the gap line of an earlier outage: write until nothing is left.
    for (let attempt = 0; attempt < 3 && (this.batch !== '' || this.queue.length > 0); attempt++) {
      this.flush();
      await this.writing;
      if (this.outage === null || this.queue.length === 0) continue;
      // Failing: one last attempt, on the file as it is now.
      try {
        if (!(await this.openFile()) && this.headWritten > 0) { this.queuedBytes += this.headWritten; this.headWritten = 0; }
        this.waiting = false;
        const handle = this.handle;
        if (handle !== null) await this.drain(handle);
      } catch { /* reported below */ }
      if (this.outage !== null) break;
    }
    if (this.flushTimer !== null) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    this.scheduled = false;
    if (this.queue.length > 0 || this.batch !== '') {
      this.logger.error({ path: this.path, unwrittenBytes: this.queuedBytes }, 'audit records not written at shutdown');
    }
    const handle = this.handle;
    this.handle = null;
    if (handle !== null) await handle.close().catch(() => undefined);
  }
}
