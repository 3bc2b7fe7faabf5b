import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { fsFailure, isLastingFsFailure, shownPath } from '../lib/fs-failure.js';
import { makeDirectory } from '../lib/make-directory.js';
import { OperatorError } from '../lib/operator-error.js';
import type { Resource, ResourceContext } from '../lifecycle/resources.js';
import type { Period } from './calendar.js';
import { LimitStoreUnavailableError } from './store.js';

/** The count of one caller in one period after a request. */
export interface QuotaUse {
  readonly allowed: boolean;
  readonly used: number;
}

/**
 * Where quota counts live; they survive gateway restarts. `consume` counts one use of `key` in
 * `period` when fewer than `limit` are counted, atomically. Every implementation passes the
 * contract suite in test/quota-store.test.ts.
 */
export interface QuotaStore {
  readonly kind: 'sqlite' | 'redis';
  consume(key: string, period: Period, limit: number): QuotaUse | Promise<QuotaUse>;
  close(): Promise<void>;
}

export interface SqliteQuotaSettings {
  /** The database file. */
  readonly file: string;
  /** How often counted uses are written, in one transaction (ms). */
  readonly flushMs: number;
  /** Most callers whose counts are held in memory; unwritten ones are never dropped. */
  readonly maxEntries: number;
}

/**
 * How long a statement on the request path or the flush timer may wait for another connection's
 * lock (ms). Waiting blocks the event loop, so it stays a few milliseconds: a busy database
 * delays the write to the next flush instead.
 */
export const BUSY_TIMEOUT_MS = 5;
/** At shutdown the last counts are worth waiting for. */
const CLOSE_BUSY_TIMEOUT_MS = 2000;
/** WAL pages after which a commit checkpoints (PASSIVE: never waits). 64 pages of 4 KiB = 256 KiB. */
const WAL_AUTOCHECKPOINT_PAGES = 64;
/** A checkpointed WAL is truncated back to at most this size, so disk use stays bounded. */
const JOURNAL_SIZE_LIMIT_BYTES = 512 * 1024;
/** How often periods that have ended are deleted. */
const PRUNE_INTERVAL_MS = 3_600_000;
/**
 * Counts written per transaction: about 10 ms of work on the event loop. More wait for the next
 * batch, one event-loop turn later, so a large flush never holds up requests for long.
 */
const FLUSH_BATCH = 1000;
/** A flush that keeps failing is reported at most this often. */
const FAILURE_REPORT_INTERVAL_MS = 10_000;
/** Cached counts examined for a written one to drop when the cache is full. */
const SCAN = 64;

interface Count {
  readonly key: string;
  readonly periodId: string;
  readonly endsAt: number;
  /** Uses counted so far: the stored count when read, plus what this process counted since. */
  used: number;
  /** Uses counted here and not yet written. */
  pending: number;
}

interface Statements {
  readonly read: Database.Statement;
  readonly add: Database.Statement;
  readonly prune: Database.Statement;
}

/** Reports a flush that could not write (the counts stay in memory and are retried). */
export type FlushFailure = (detail: string) => void;

/**
 * Quota counts in a SQLite file in the data directory (the embedded default), counted in memory
 * and written in batches, so no request waits on the disk or on another connection's lock.
 *
 * - A caller's count is read from the file once (a WAL read, which no writer blocks), then counted
 *   here: exact for one gateway process, which is the only writer that decides.
 * - Every `flushMs` the uses counted since the last flush are added to the file in one transaction
 *   (`used = used + n`, so several processes sharing one file add up; between flushes each of them
 *   decides on its own copy, and each learns the others' uses at its next flush). A lock held by
 *   another connection delays the write by at most `BUSY_TIMEOUT_MS` on the event loop and then
 *   to the next flush; nothing is lost while it waits.
 * - A crash loses at most the uses of the last `flushMs` (those callers get that many requests
 *   again); a clean stop writes everything.
 * - Disk stays bounded: one commit per flush instead of one per request, the WAL is checkpointed
 *   every `WAL_AUTOCHECKPOINT_PAGES` pages and truncated to `JOURNAL_SIZE_LIMIT_BYTES`, and the
 *   counts of ended periods are deleted hourly.
 * - Memory stays bounded: at most `maxEntries` counts are cached; written ones make room, and when
 *   every cached count is still unwritten (the file has been locked for a while) a new caller is
 *   refused as "store unavailable" (the quota's onStoreError applies) rather than forgotten.
 *
 * A resource: constructing it opens nothing. `start` opens the file and arms the flush and prune
 * timers on the clock; `stop` writes every count and closes the file. (A store used before it is
 * started, as in unit tests, opens the file on first use and is flushed by hand.)
 */
export class SqliteQuotaStore implements QuotaStore, Resource {
  readonly kind = 'sqlite';
  readonly key: string;
  private db: Database.Database | null = null;
  private statements: Statements | null = null;
  /** Cached counts by key and period, in order of last use. */
  private readonly counts = new Map<string, Count>();
  private readonly unwritten = new Set<Count>();
  private flushTimer: Timer | null = null;
  private pruneTimer: Timer | null = null;
  private closed = false;
  private nextFailureReportAt = 0;

  /** `name`: the quota whose counts this store holds (each quota has its own cache and connection). */
  constructor(
    private readonly settings: SqliteQuotaSettings,
    private readonly clock: Clock = systemClock,
    private onFlushFailure: FlushFailure | null = null,
    readonly name = '',
  ) {
    this.key = SqliteQuotaStore.keyOf(settings, name);
  }

  /** The resource key of quota `name`'s store in `settings.file`. */
  static keyOf(settings: SqliteQuotaSettings, name: string): string {
    return `sqlite quota store ${JSON.stringify([settings, name])}`;
  }

  /**
   * Opens the file and arms the timers. A path that cannot be a database (a part of it a file, no
   * permission) fails the start with an OperatorError; a passing failure (a lock) is retried on
   * first use, the quota's onStoreError applying meanwhile.
   */
  start(context: ResourceContext): Promise<void> {
    this.onFlushFailure ??= (detail) => context.logger.warn({ file: this.settings.file, detail }, 'quota store: counts not written yet; retrying');
    try {
      this.open();
    } catch (err) {
      if (isLastingFsFailure(err)) {
        return Promise.reject(new OperatorError(`rateLimiting.quotaFile: the quota store ${shownPath(this.settings.file)} cannot be opened ${fsFailure(err)}; point dataDir (or rateLimiting.quotaFile) at a place the gateway can write`, { cause: err }));
      }
      context.logger.warn({ file: this.settings.file, err }, 'quota store: cannot open the file yet; retried on first use');
    }
    this.armFlush();
    this.armPrune();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return this.close();
  }

  private armFlush(): void {
    this.flushTimer = this.clock.setTimer(() => { this.flushAll(); if (!this.closed) this.armFlush(); }, this.settings.flushMs);
  }

  private armPrune(): void {
    this.pruneTimer = this.clock.setTimer(() => { this.prune(); if (!this.closed) this.armPrune(); }, PRUNE_INTERVAL_MS);
  }

  private now(): number {
    return this.clock.now();
  }

  /** Counts held in memory (written or not). */
  get size(): number {
    return this.counts.size;
  }

  /** Counts waiting to be written. */
  get pending(): number {
    return this.unwritten.size;
  }

  private open(): Statements {
    if (this.statements !== null) return this.statements;
    if (this.closed) throw new LimitStoreUnavailableError(`${this.settings.file} is closed`);
    let db: Database.Database | null = null;
    try {
      makeDirectory(dirname(this.settings.file), 0o700);
      db = new Database(this.settings.file, { timeout: BUSY_TIMEOUT_MS });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
      db.exec(`CREATE TABLE IF NOT EXISTS quota_usage (
        key TEXT NOT NULL, period TEXT NOT NULL, used INTEGER NOT NULL, ends_at INTEGER NOT NULL,
        PRIMARY KEY (key, period)) WITHOUT ROWID`);
      this.statements = {
        read: db.prepare('SELECT used FROM quota_usage WHERE key = ? AND period = ?'),
        add: db.prepare(`INSERT INTO quota_usage (key, period, used, ends_at) VALUES (?, ?, ?, ?)
          ON CONFLICT (key, period) DO UPDATE SET used = used + excluded.used RETURNING used`),
        prune: db.prepare('DELETE FROM quota_usage WHERE ends_at <= ?'),
      };
      this.db = db;
    } catch (err) {
      db?.close();
      throw new LimitStoreUnavailableError(`cannot open ${this.settings.file}: ${(err as Error).message}`, { cause: err });
    }
    return this.statements;
  }

  consume(key: string, period: Period, limit: number): QuotaUse {
    const id = `${key}\0${period.id}`;
    let count = this.counts.get(id);
    if (count === undefined) {
      count = this.load(key, period);
      this.makeRoom();
    } else {
      this.counts.delete(id);
    }
    this.counts.set(id, count);
    if (count.used >= limit) return { allowed: false, used: count.used };
    count.used++;
    count.pending++;
    this.unwritten.add(count);
    return { allowed: true, used: count.used };
  }

  /** The stored count of a caller not cached. */
  private load(key: string, period: Period): Count {
    try {
      const row = this.open().read.get(key, period.id) as { used: number } | undefined;
      return { key, periodId: period.id, endsAt: period.endMs, used: row?.used ?? 0, pending: 0 };
    } catch (err) {
      if (err instanceof LimitStoreUnavailableError) throw err;
      throw new LimitStoreUnavailableError(`sqlite: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Drops a written count when the cache is full; writes first if none is written (waiting at
   * most `BUSY_TIMEOUT_MS`); refuses the new caller when the file stays locked.
   */
  private makeRoom(): void {
    if (this.counts.size < this.settings.maxEntries) return;
    if (this.dropWritten(SCAN)) return;
    if (this.flush() && this.dropWritten(Infinity)) return;
    throw new LimitStoreUnavailableError(`${this.settings.file}: ${this.unwritten.size} callers' counts are waiting to be written (the database is locked); no room for another caller`);
  }

  /** Drops the least recently used written count among the first `scan`; false when there is none. */
  private dropWritten(scan: number): boolean {
    let examined = 0;
    for (const [id, count] of this.counts) {
      if (count.pending === 0) { this.counts.delete(id); return true; }
      if (++examined >= scan) break;
    }
    return false;
  }

  /** The timer's flush: batch after batch, each in its own event-loop turn, until all is written or the file is busy. */
  private readonly flushAll = (): void => {
    if (this.closed || !this.flush() || this.unwritten.size === 0) return;
    setImmediate(this.flushAll).unref();
  };

  /**
   * Adds the uses counted since the last flush (at most `maxBatch` callers' worth) to the file in
   * one transaction and learns the totals (other processes' uses included). Returns false,
   * keeping every count, when the file is locked or cannot be written.
   */
  flush(busyTimeoutMs = BUSY_TIMEOUT_MS, maxBatch = FLUSH_BATCH): boolean {
    if (this.unwritten.size === 0) return true;
    const db = this.db;
    const s = this.statements;
    if (db === null || s === null) return false;
    const batch: Count[] = [];
    for (const count of this.unwritten) {
      if (batch.length >= maxBatch) break;
      batch.push(count);
    }
    try {
      if (busyTimeoutMs !== BUSY_TIMEOUT_MS) db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      const totals = db.transaction(() => batch.map((c) => (s.add.all(c.key, c.periodId, c.pending, c.endsAt) as { used: number }[])[0]?.used ?? 0)).immediate();
      batch.forEach((c, i) => {
        c.used = Math.max(c.used, totals[i] ?? 0);
        c.pending = 0;
        this.unwritten.delete(c);
      });
      return true;
    } catch (err) {
      const now = this.now();
      if (now >= this.nextFailureReportAt) {
        this.nextFailureReportAt = now + FAILURE_REPORT_INTERVAL_MS;
        this.onFlushFailure?.(`${this.unwritten.size} callers' counts: ${(err as Error).message}`);
      }
      return false;
    } finally {
      if (busyTimeoutMs !== BUSY_TIMEOUT_MS) { try { db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`); } catch { /* closing anyway */ } }
    }
  }

  /** Deletes the counts of periods that have ended, on disk and in memory (written ones only). */
  prune(): void {
    const now = this.now();
    for (const [id, count] of this.counts) if (count.endsAt <= now && count.pending === 0) this.counts.delete(id);
    try { this.open().prune.run(now); } catch { /* retried at the next prune; the rows are only stale */ }
  }

  /** Writes every count (waiting up to 2 s for a lock: shutdown may wait) and closes the file. */
  close(): Promise<void> {
    this.flushTimer?.cancel();
    this.pruneTimer?.cancel();
    this.flushTimer = null;
    this.pruneTimer = null;
    while (this.unwritten.size > 0 && this.flush(CLOSE_BUSY_TIMEOUT_MS, Infinity));
    this.closed = true;
    try { this.db?.pragma('wal_checkpoint(TRUNCATE)'); } catch { /* another connection reads; the WAL stays */ }
    this.db?.close();
    this.db = null;
    this.statements = null;
    this.counts.clear();
    this.unwritten.clear();
    return Promise.resolve();
  }
}
