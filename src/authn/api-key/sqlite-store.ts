import { setTimeout as delay } from 'node:timers/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../../lib/clock.js';
import { makeDirectory } from '../../lib/make-directory.js';
import { KeyConflictError, StoreUnavailableError, rotationConflict, type ApiKeyRecord, type ApiKeyStore, type ChangeBatch, type NewApiKey, type UsageDelta } from './store.js';

/** SQLite's own reading of the host clock, in epoch milliseconds. */
const NOW_MS = "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

/**
 * The clock a store stamps and judges with: a Clock, or null for SQLite's own reading of the host
 * clock. Asked once per operation, so one operation is one instant.
 */
export type StoreClockSource = () => Clock | null;

/** Schema versions, applied in order inside one IMMEDIATE transaction each. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     environment TEXT NOT NULL,
     hash BLOB NOT NULL,
     tenant TEXT,
     roles TEXT NOT NULL,
     scopes TEXT NOT NULL,
     allowed_cidrs TEXT NOT NULL,
     rate_limit_tier TEXT,
     metadata TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     revoked_at INTEGER,
     replaces TEXT,
     replaced_by TEXT,
     grace_until INTEGER,
     use_count INTEGER NOT NULL DEFAULT 0,
     last_used_at INTEGER,
     last_used_ip TEXT
   );
   CREATE TABLE api_key_changes (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     key_id TEXT NOT NULL,
     changed_at INTEGER NOT NULL
   );`,
];

interface Row {
  id: string; name: string; environment: string; hash: Buffer; tenant: string | null;
  roles: string; scopes: string; allowed_cidrs: string; rate_limit_tier: string | null; metadata: string;
  created_at: number; expires_at: number | null; revoked_at: number | null; replaces: string | null; replaced_by: string | null;
  grace_until: number | null; use_count: number; last_used_at: number | null; last_used_ip: string | null;
}

function fromRow(r: Row): ApiKeyRecord {
  return {
    id: r.id, name: r.name, environment: r.environment, hash: r.hash, tenant: r.tenant,
    roles: JSON.parse(r.roles) as string[], scopes: JSON.parse(r.scopes) as string[], allowedCidrs: JSON.parse(r.allowed_cidrs) as string[],
    rateLimitTier: r.rate_limit_tier, metadata: JSON.parse(r.metadata) as Record<string, string>,
    createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at, replaces: r.replaces, replacedBy: r.replaced_by,
    graceUntil: r.grace_until, useCount: r.use_count, lastUsedAt: r.last_used_at, lastUsedIp: r.last_used_ip,
  };
}

/** Longest a call waits for another process's lock on the event loop. */
const BUSY_WAIT_MS = 5;
/** Pause between attempts at a locked database, and how long to keep trying before the store counts as unavailable. */
const BUSY_RETRY_EVERY_MS = 10;
const BUSY_RETRY_FOR_MS = 2000;

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

function storeFailure(err: unknown): Error {
  if (err instanceof KeyConflictError || err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`sqlite: ${(err as Error).message}`, { cause: err });
}

/**
 * The embedded store: one SQLite file in the data directory, in WAL mode so the gateway reads
 * while the `keys` CLI writes. Other processes' changes are found by polling the change log
 * (`watch` is unsupported). Calls are synchronous underneath and take microseconds.
 *
 * The store's clock is SQLite's `'now'`: the clock of the host, read below the program. Every
 * process sharing the file runs on that host (WAL needs shared memory, so never over a network
 * file system), so the gateway, the `keys` CLI and a backup job all read one clock. Each instant
 * is read once per operation and bound into the SQL, so `clockSource` can supply another clock: a
 * gateway running on an injected clock (tests moving time) stamps and judges with that one, so
 * its store's time moves with its own. Processes sharing a file with such a gateway see another
 * clock, so they must not judge expiry across it.
 */
export class SqliteKeyStore implements ApiKeyStore {
  readonly kind = 'sqlite';
  private db: Database.Database | null = null;
  private closed = false;

  constructor(private readonly file: string, private readonly clockSource: StoreClockSource = () => null) {}

  private open(): Database.Database {
    if (this.db !== null) return this.db;
    if (this.closed) throw new StoreUnavailableError(`${this.file} is closed`);
    try {
      makeDirectory(dirname(this.file), 0o700);
      const db = new Database(this.file);
      db.pragma('journal_mode = WAL');
      // Calls are synchronous: SQLite's own wait for another process's lock (the CLI, a backup)
      // would block the event loop, so it is a few milliseconds; longer waits happen between
      // retries, off the loop (see run).
      db.pragma(`busy_timeout = ${BUSY_WAIT_MS}`);
      db.pragma('foreign_keys = ON');
      this.db = db;
      return db;
    } catch (err) {
      throw new StoreUnavailableError(`cannot open ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Runs `fn` on the open database, turning SQLite failures into StoreUnavailableError. A call
   * that finds the database locked by another process is retried every BUSY_RETRY_EVERY_MS, the
   * event loop free in between, for up to BUSY_RETRY_FOR_MS.
   */
  private run<T>(fn: (db: Database.Database) => T): Promise<T> {
    try {
      return Promise.resolve(fn(this.open()));
    } catch (err) {
      return isBusy(err) ? this.retryBusy(fn, Date.now() + BUSY_RETRY_FOR_MS) : Promise.reject(storeFailure(err));
    }
  }

  private async retryBusy<T>(fn: (db: Database.Database) => T, deadline: number): Promise<T> {
    for (;;) {
      await delay(BUSY_RETRY_EVERY_MS);
      try {
        return fn(this.open());
      } catch (err) {
        if (!isBusy(err) || Date.now() >= deadline) throw storeFailure(err);
      }
    }
  }

  migrate(): Promise<void> {
    return this.run((db) => {
      db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      db.transaction(() => {
        const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
        const now = this.now(db);
        for (let v = row.v ?? 0; v < MIGRATIONS.length; v++) {
          db.exec(MIGRATIONS[v] as string);
          db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(v + 1, now);
        }
      }).immediate();
    });
  }

  insert(key: NewApiKey): Promise<void> {
    return this.run((db) => { db.transaction(() => this.insertRow(db, key, this.now(db))).immediate(); });
  }

  private insertRow(db: Database.Database, k: NewApiKey, now: number): void {
    db.prepare(`INSERT INTO api_keys (id, name, environment, hash, tenant, roles, scopes, allowed_cidrs, rate_limit_tier, metadata, created_at, expires_at, replaces)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      k.id, k.name, k.environment, k.hash, k.tenant, JSON.stringify(k.roles), JSON.stringify(k.scopes), JSON.stringify(k.allowedCidrs),
      k.rateLimitTier, JSON.stringify(k.metadata), now, k.lifetimeMs === null ? null : now + k.lifetimeMs, k.replaces);
    this.changed(db, k.id, now);
  }

  private changed(db: Database.Database, id: string, now: number): void {
    db.prepare('INSERT INTO api_key_changes (key_id, changed_at) VALUES (?, ?)').run(id, now);
  }

  /** The store's clock now (see the class comment), epoch ms. */
  private now(db: Database.Database): number {
    const clock = this.clockSource();
    if (clock !== null) return clock.now();
    return (db.prepare(`SELECT ${NOW_MS} AS now`).get() as { now: number }).now;
  }

  clock(): Promise<number> {
    return this.run((db) => this.now(db));
  }

  get(id: string): Promise<ApiKeyRecord | null> {
    return this.run((db) => {
      const row = db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
      return row === undefined ? null : fromRow(row);
    });
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.run((db) => (db.prepare('SELECT * FROM api_keys ORDER BY created_at DESC, rowid DESC').all() as Row[]).map(fromRow));
  }

  revoke(id: string): Promise<ApiKeyRecord | null> {
    return this.run((db) => db.transaction(() => {
      const row = db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
      if (row === undefined) return null;
      const now = this.now(db);
      if (row.revoked_at !== null && row.revoked_at <= now) return fromRow(row);
      db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(now, id);
      this.changed(db, id, now);
      return fromRow({ ...row, revoked_at: now });
    }).immediate());
  }

  rotate(id: string, successor: NewApiKey, graceMs: number): Promise<void> {
    return this.run((db) => {
      db.transaction(() => {
        const row = db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
        const now = this.now(db);
        rotationConflict(row === undefined ? null : fromRow(row), id, now);
        this.insertRow(db, successor, now);
        db.prepare('UPDATE api_keys SET replaced_by = ?, grace_until = ? WHERE id = ?').run(successor.id, now + graceMs, id);
        this.changed(db, id, now);
      }).immediate();
    });
  }

  recordUsage(deltas: readonly UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return Promise.resolve();
    return this.run((db) => {
      const update = db.prepare(`UPDATE api_keys SET use_count = use_count + ?,
        last_used_ip = CASE WHEN ? >= coalesce(last_used_at, 0) THEN ? ELSE last_used_ip END,
        last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?`);
      db.transaction(() => {
        for (const d of deltas) update.run(d.count, d.lastUsedAt, d.lastUsedIp, d.lastUsedAt, d.id);
      }).immediate();
    });
  }

  changesSince(seq: number): Promise<ChangeBatch> {
    return this.run((db) => {
      const rows = db.prepare('SELECT seq, key_id FROM api_key_changes WHERE seq > ? ORDER BY seq LIMIT 10000').all(seq) as { seq: number; key_id: string }[];
      return { seq: rows.length === 0 ? seq : (rows[rows.length - 1] as { seq: number }).seq, ids: rows.map((r) => r.key_id), now: this.now(db) };
    });
  }

  watch(): Promise<boolean> {
    return Promise.resolve(false);
  }

  close(): Promise<void> {
    this.closed = true;
    this.db?.close();
    this.db = null;
    return Promise.resolve();
  }
}
