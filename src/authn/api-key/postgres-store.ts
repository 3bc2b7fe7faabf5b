import pg from 'pg';
import { KeyConflictError, StoreUnavailableError, rotationConflict, type ApiKeyRecord, type ApiKeyStore, type ChangeBatch, type NewApiKey, type UsageDelta } from './store.js';

/** The NOTIFY channel every mutation signals on; the payload is the key id. */
export const CHANGE_CHANNEL = 'portcullis_api_keys';
/** Serialises schema migrations across gateways starting at once (pg_advisory_xact_lock). */
const MIGRATION_LOCK = 0x706b6d31;
/**
 * Serialises writers of the change log, so sequence numbers become visible in order: a reader that
 * has seen sequence N can never later find a committed change below N.
 */
const CHANGE_LOCK = 0x706b6331;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE portcullis_api_keys (
     id text PRIMARY KEY,
     name text NOT NULL,
     environment text NOT NULL,
     hash bytea NOT NULL,
     tenant text,
     roles text[] NOT NULL,
     scopes text[] NOT NULL,
     allowed_cidrs text[] NOT NULL,
     rate_limit_tier text,
     metadata jsonb NOT NULL,
     created_at timestamptz NOT NULL,
     expires_at timestamptz,
     revoked_at timestamptz,
     replaces text,
     replaced_by text,
     grace_until timestamptz,
     use_count bigint NOT NULL DEFAULT 0,
     last_used_at timestamptz,
     last_used_ip text
   );
   CREATE TABLE portcullis_api_key_changes (
     seq bigserial PRIMARY KEY,
     key_id text NOT NULL,
     changed_at timestamptz NOT NULL DEFAULT now()
   );`,
];

/** The server's clock in epoch milliseconds, as a float8 (a JS number). */
const NOW_MS = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::float8';
/** `now()` (the transaction's start on the server) in epoch milliseconds. */
const TX_NOW_MS = 'floor(extract(epoch FROM now()) * 1000)::float8';

export interface PostgresStoreOptions {
  readonly url: string;
  readonly poolSize: number;
  /** Bound on connecting and on each statement; past it the store counts as down. */
  readonly timeoutMs: number;
}

interface Row {
  id: string; name: string; environment: string; hash: Buffer; tenant: string | null;
  roles: string[]; scopes: string[]; allowed_cidrs: string[]; rate_limit_tier: string | null; metadata: Record<string, string>;
  created_at: Date; expires_at: Date | null; revoked_at: Date | null; replaces: string | null; replaced_by: string | null;
  grace_until: Date | null; use_count: string; last_used_at: Date | null; last_used_ip: string | null;
}

const ms = (d: Date | null): number | null => (d === null ? null : d.getTime());

function fromRow(r: Row): ApiKeyRecord {
  return {
    id: r.id, name: r.name, environment: r.environment, hash: r.hash, tenant: r.tenant,
    roles: r.roles, scopes: r.scopes, allowedCidrs: r.allowed_cidrs, rateLimitTier: r.rate_limit_tier, metadata: r.metadata,
    createdAt: r.created_at.getTime(), expiresAt: ms(r.expires_at), revokedAt: ms(r.revoked_at), replaces: r.replaces, replacedBy: r.replaced_by,
    graceUntil: ms(r.grace_until), useCount: Number(r.use_count), lastUsedAt: ms(r.last_used_at), lastUsedIp: r.last_used_ip,
  };
}

/**
 * The scale-out store: PostgreSQL shared by any number of gateways. Every mutation writes the
 * change log and NOTIFYs in the same transaction, so other gateways drop their cached copy as
 * soon as it commits; the change log lets a gateway that missed notifications catch up.
 *
 * Three kinds of connection, so a flood of look-ups cannot starve revocation: the look-up and
 * lifecycle pool (`poolSize`), one connection of its own for reading the change log, and one for
 * LISTEN.
 */
export class PostgresKeyStore implements ApiKeyStore {
  readonly kind = 'postgres';
  /** Opened on first use, so constructing the store (compiling a config, `check`) connects nothing. */
  private pools: { readonly main: pg.Pool; readonly sync: pg.Pool } | null = null;
  private listener: pg.Client | null = null;
  private closed = false;

  constructor(private readonly options: PostgresStoreOptions) {}

  private open(): { readonly main: pg.Pool; readonly sync: pg.Pool } {
    if (this.pools !== null) return this.pools;
    if (this.closed) throw new StoreUnavailableError('postgres: the store is closed');
    const { options } = this;
    const common = {
      connectionString: options.url,
      connectionTimeoutMillis: options.timeoutMs,
      query_timeout: options.timeoutMs,
      idleTimeoutMillis: 30_000,
    };
    const main = new pg.Pool({ ...common, max: options.poolSize, application_name: 'portcullis' });
    const sync = new pg.Pool({ ...common, max: 1, application_name: 'portcullis-sync' });
    // An idle connection dropped by the server must not crash the process; the next query reconnects.
    main.on('error', () => undefined);
    sync.on('error', () => undefined);
    this.pools = { main, sync };
    return this.pools;
  }

  private get pool(): pg.Pool {
    return this.open().main;
  }

  /** The change-log reader's own connection: never waits behind look-ups. */
  private get syncPool(): pg.Pool {
    return this.open().sync;
  }

  /** Runs `fn`, turning connection and server failures into StoreUnavailableError. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KeyConflictError || err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(`postgres: ${(err as Error).message}`, { cause: err });
    }
  }

  private transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.run(async () => {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    });
  }

  migrate(): Promise<void> {
    return this.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS portcullis_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const { rows } = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM portcullis_schema_migrations');
      for (let v = rows[0]?.v ?? 0; v < MIGRATIONS.length; v++) {
        await c.query(MIGRATIONS[v] as string);
        await c.query('INSERT INTO portcullis_schema_migrations (version) VALUES ($1)', [v + 1]);
      }
    });
  }

  /**
   * Takes the change-log lock, records the changes and notifies (delivered on commit). Called
   * after any row locks, so every writer takes locks in the same order.
   */
  private async changed(c: pg.PoolClient, ...ids: string[]): Promise<void> {
    await c.query('SELECT pg_advisory_xact_lock($1)', [CHANGE_LOCK]);
    for (const id of ids) {
      const { rows } = await c.query<{ seq: string }>('INSERT INTO portcullis_api_key_changes (key_id) VALUES ($1) RETURNING seq', [id]);
      // `<seq> <id>`: a reader that has already applied this change from the log can ignore it.
      await c.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, `${rows[0]?.seq ?? ''} ${id}`]);
    }
  }

  private async insertRow(c: pg.PoolClient, k: NewApiKey): Promise<void> {
    // created_at and expires_at come from the server's clock (the transaction's now()), never the caller's.
    await c.query(`INSERT INTO portcullis_api_keys (id, name, environment, hash, tenant, roles, scopes, allowed_cidrs, rate_limit_tier, metadata, created_at, expires_at, replaces)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now() + make_interval(secs => $11::float8 / 1000), $12)`, [
      k.id, k.name, k.environment, k.hash, k.tenant, k.roles, k.scopes, k.allowedCidrs, k.rateLimitTier, JSON.stringify(k.metadata),
      k.lifetimeMs, k.replaces,
    ]);
  }

  insert(key: NewApiKey): Promise<void> {
    return this.transaction(async (c) => {
      await this.insertRow(c, key);
      await this.changed(c, key.id);
    });
  }

  get(id: string): Promise<ApiKeyRecord | null> {
    return this.run(async () => {
      const { rows } = await this.pool.query<Row>('SELECT * FROM portcullis_api_keys WHERE id = $1', [id]);
      return rows[0] === undefined ? null : fromRow(rows[0]);
    });
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.run(async () => (await this.pool.query<Row>('SELECT * FROM portcullis_api_keys ORDER BY created_at DESC, id')).rows.map(fromRow));
  }

  revoke(id: string): Promise<ApiKeyRecord | null> {
    return this.transaction(async (c) => {
      const { rows } = await c.query<Row & { future: boolean }>('SELECT *, revoked_at > now() AS future FROM portcullis_api_keys WHERE id = $1 FOR UPDATE', [id]);
      const row = rows[0];
      if (row === undefined) return null;
      if (row.revoked_at !== null && !row.future) return fromRow(row);
      const updated = await c.query<Row>('UPDATE portcullis_api_keys SET revoked_at = now() WHERE id = $1 RETURNING *', [id]);
      await this.changed(c, id);
      return fromRow(updated.rows[0] as Row);
    });
  }

  rotate(id: string, successor: NewApiKey, graceMs: number): Promise<void> {
    return this.transaction(async (c) => {
      const { rows } = await c.query<Row & { store_now: number }>(`SELECT *, ${TX_NOW_MS} AS store_now FROM portcullis_api_keys WHERE id = $1 FOR UPDATE`, [id]);
      const row = rows[0];
      rotationConflict(row === undefined ? null : fromRow(row), id, row?.store_now ?? 0);
      await this.insertRow(c, successor);
      await c.query('UPDATE portcullis_api_keys SET replaced_by = $2, grace_until = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1', [id, successor.id, graceMs]);
      await this.changed(c, id, successor.id);
    });
  }

  clock(): Promise<number> {
    return this.run(async () => (await this.pool.query<{ now: number }>(`SELECT ${NOW_MS} AS now`)).rows[0]?.now ?? Number.NaN);
  }

  recordUsage(deltas: readonly UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return Promise.resolve();
    // One statement for the whole batch: the deltas arrive as parallel arrays.
    return this.run(async () => {
      await this.pool.query(`UPDATE portcullis_api_keys k SET use_count = k.use_count + d.n,
          last_used_ip = CASE WHEN d.at >= coalesce(k.last_used_at, 'epoch') THEN d.ip ELSE k.last_used_ip END,
          last_used_at = greatest(k.last_used_at, d.at)
        FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[]) AS d(id, n, at, ip)
        WHERE k.id = d.id`, [
        deltas.map((d) => d.id), deltas.map((d) => d.count), deltas.map((d) => new Date(d.lastUsedAt)), deltas.map((d) => d.lastUsedIp),
      ]);
    });
  }

  /** Reads on the change-log connection, never the look-up pool. */
  changesSince(seq: number): Promise<ChangeBatch> {
    return this.run(async () => {
      const { rows } = await this.syncPool.query<{ seq: string; key_id: string; now: number }>(
        `SELECT seq, key_id, ${NOW_MS} AS now FROM portcullis_api_key_changes WHERE seq > $1 ORDER BY seq LIMIT 10000`, [seq]);
      const last = rows[rows.length - 1];
      if (last !== undefined) return { seq: Number(last.seq), ids: rows.map((r) => r.key_id), now: last.now };
      const clock = await this.syncPool.query<{ now: number }>(`SELECT ${NOW_MS} AS now`);
      return { seq, ids: [], now: clock.rows[0]?.now ?? Number.NaN };
    });
  }

  /** LISTENs on a dedicated connection; `onError` fires once when that connection is lost. */
  async watch(onChange: (id: string, seq: number | null) => void, onError: (err: Error) => void): Promise<boolean> {
    await this.unwatch();
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: this.options.timeoutMs, application_name: 'portcullis-listen' });
    let failed = false;
    const fail = (err: Error): void => {
      if (failed || this.listener !== client) return;
      failed = true;
      this.listener = null;
      client.end().catch(() => undefined);
      onError(err);
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error('listen connection closed')));
    client.on('notification', (msg) => {
      if (msg.channel !== CHANGE_CHANNEL) return;
      const [first = '', second] = (msg.payload ?? '').split(' ', 2);
      // Older writers sent the id alone.
      if (second === undefined) onChange(first, null);
      else onChange(second, /^\d{1,15}$/.test(first) ? Number(first) : null);
    });
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      this.listener = null;
      await client.end().catch(() => undefined);
      throw new StoreUnavailableError(`postgres listen: ${(err as Error).message}`, { cause: err });
    }
    return true;
  }

  private async unwatch(): Promise<void> {
    const client = this.listener;
    this.listener = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.unwatch();
    const pools = this.pools;
    this.pools = null;
    if (pools !== null) await Promise.all([pools.main.end(), pools.sync.end()]);
  }
}
