import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
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

/** How often periods that have ended are deleted. */
const PRUNE_INTERVAL_MS = 3_600_000;

/**
 * Quota counts in a SQLite file in the data directory (the embedded default). One statement per
 * request, synchronous: WAL with synchronous=NORMAL makes a commit a page write without fsync, so
 * counts survive a gateway restart or crash (not a power loss of the last moments). Periods that
 * have ended are pruned hourly.
 */
export class SqliteQuotaStore implements QuotaStore {
  readonly kind = 'sqlite';
  private db: Database.Database | null = null;
  private statements: { consume: Database.Statement; read: Database.Statement; prune: Database.Statement } | null = null;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly file: string, private readonly now: () => number = Date.now) {
    this.timer = setInterval(() => this.prune(), PRUNE_INTERVAL_MS).unref();
  }

  private open(): NonNullable<SqliteQuotaStore['statements']> {
    if (this.statements !== null) return this.statements;
    if (this.closed) throw new LimitStoreUnavailableError(`${this.file} is closed`);
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const db = new Database(this.file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 1000');
      db.exec(`CREATE TABLE IF NOT EXISTS quota_usage (
        key TEXT NOT NULL, period TEXT NOT NULL, used INTEGER NOT NULL, ends_at INTEGER NOT NULL,
        PRIMARY KEY (key, period)) WITHOUT ROWID`);
      this.db = db;
      this.statements = {
        consume: db.prepare(`INSERT INTO quota_usage (key, period, used, ends_at) VALUES (?, ?, 1, ?)
          ON CONFLICT (key, period) DO UPDATE SET used = used + 1 WHERE used < ? RETURNING used`),
        read: db.prepare('SELECT used FROM quota_usage WHERE key = ? AND period = ?'),
        prune: db.prepare('DELETE FROM quota_usage WHERE ends_at <= ?'),
      };
      return this.statements;
    } catch (err) {
      throw new LimitStoreUnavailableError(`cannot open ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }

  consume(key: string, period: Period, limit: number): QuotaUse {
    try {
      const s = this.open();
      const row = s.consume.get(key, period.id, period.endMs, limit) as { used: number } | undefined;
      if (row !== undefined) return { allowed: true, used: row.used };
      const current = s.read.get(key, period.id) as { used: number } | undefined;
      return { allowed: false, used: current?.used ?? limit };
    } catch (err) {
      if (err instanceof LimitStoreUnavailableError) throw err;
      throw new LimitStoreUnavailableError(`sqlite: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Deletes the counts of periods that have ended. */
  prune(): void {
    try { this.open().prune.run(this.now()); } catch { /* the next consume reports the store */ }
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    this.db?.close();
    this.db = null;
    this.statements = null;
    return Promise.resolve();
  }
}
