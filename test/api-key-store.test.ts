// One contract for every API key store: the same tests run against SQLite and against a real
// PostgreSQL (a fresh database per run, dropped afterwards).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { hashKey, newKey, newKeyId } from '../src/authn/api-key/key-format.js';
import { PostgresKeyStore } from '../src/authn/api-key/postgres-store.js';
import { SqliteKeyStore } from '../src/authn/api-key/sqlite-store.js';
import { KeyConflictError, keyStatus, StoreUnavailableError, type ApiKeyStore, type NewApiKey } from '../src/authn/api-key/store.js';
import { waitUntil } from './harness/assertions.js';
import { CuttableRelay, freshDatabase, POSTGRES_TARGET, relayedUrl, type TestDatabase } from './harness/postgres.js';

interface Backend {
  /** A new store on the shared database (as another gateway process would open it). */
  open(): ApiKeyStore;
  /** Every byte the backend holds, for "the plaintext is never stored". */
  dump(): Promise<string>;
  /** A store whose backend is unreachable. */
  unreachable(): Promise<ApiKeyStore>;
  /** Writes a revocation instant directly, as an older version did from a client's clock. */
  setRevokedAt(id: string, at: number): Promise<void>;
  cleanup(): Promise<void>;
}

function newRecord(overrides: Partial<NewApiKey> = {}): { key: string; record: NewApiKey } {
  const id = newKeyId();
  const key = newKey('live', id);
  const record: NewApiKey = {
    id, name: 'billing-service', environment: 'live', hash: hashKey(key), tenant: 'acme', roles: ['reader', 'writer'], scopes: ['orders:read'],
    allowedCidrs: ['10.0.0.0/8', '::1/128'], rateLimitTier: 'gold', metadata: { team: 'payments', ticket: 'OPS-1' },
    lifetimeMs: 30 * 86_400_000, replaces: null, ...overrides,
  };
  return { key, record };
}

/** Runs `fn` with this process's clock `skewMs` off, as on a machine whose clock is wrong. */
async function withSkewedClock<T>(skewMs: number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + skewMs;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

const HOUR = 3_600_000;

function contract(kind: string, setup: () => Promise<Backend | string>): void {
  describe(`API key store contract: ${kind}`, () => {
    let backend: Backend | null = null;
    let store: ApiKeyStore;
    let skip = '';

    before(async () => {
      const b = await setup();
      // Each test then skips, saying why.
      if (typeof b === 'string') { skip = b; return; }
      backend = b;
      store = b.open();
      await store.migrate();
    });
    after(async () => {
      await store?.close();
      await backend?.cleanup();
    });
    const test = (name: string, fn: () => Promise<void>): void => { it(name, async (t) => { if (skip !== '') { t.skip(skip); return; } await fn(); }); };
    const shared = (): Backend => { assert.ok(backend !== null); return backend; };

    test('migrates idempotently, and concurrently from several instances', async () => {
      const others = [shared().open(), shared().open(), shared().open()];
      await Promise.all(others.map((s) => s.migrate()));
      await store.migrate();
      const { record } = newRecord();
      await (others[0] as ApiKeyStore).insert(record);
      assert.equal((await store.get(record.id))?.id, record.id);
      await Promise.all(others.map((s) => s.close()));
    });

    test('stores and returns every field; the plaintext key is never stored', async () => {
      const { key, record } = newRecord();
      const before = await store.clock();
      await store.insert(record);
      const after = await store.clock();
      const got = await store.get(record.id);
      assert.ok(got !== null);
      const { lifetimeMs, ...rest } = record;
      assert.deepEqual({ ...got, createdAt: 0, expiresAt: 0 }, { ...rest, createdAt: 0, expiresAt: 0, revokedAt: null, replacedBy: null, graceUntil: null, useCount: 0, lastUsedAt: null, lastUsedIp: null });
      assert.ok(got.createdAt >= before - 1 && got.createdAt <= after + 1, 'created at the store\'s clock');
      assert.ok(Math.abs((got.expiresAt ?? 0) - got.createdAt - (lifetimeMs ?? 0)) <= 1, 'expires its lifetime after creation');
      const minimal = newRecord({ tenant: null, roles: [], scopes: [], allowedCidrs: [], rateLimitTier: null, metadata: {}, lifetimeMs: null });
      await store.insert(minimal.record);
      assert.deepEqual((await store.get(minimal.record.id))?.roles, []);
      assert.equal((await store.get(minimal.record.id))?.expiresAt, null);
      assert.equal(await store.get(newKeyId()), null);
      const dump = await shared().dump();
      assert.ok(dump.includes(record.id), 'the dump does contain the key id (the check can see stored text)');
      for (const secret of [key, key.split('_')[3] ?? '', minimal.key.split('_')[3] ?? '']) assert.ok(!dump.includes(secret), 'no secret in the store');
    });

    test('refuses a second key with the same id', async () => {
      const { record } = newRecord();
      await store.insert(record);
      await assert.rejects(store.insert({ ...record, name: 'other' }));
      assert.equal((await store.get(record.id))?.name, 'billing-service');
    });

    test('lists newest first', async () => {
      const a = newRecord();
      const b = newRecord();
      await store.insert(a.record);
      await store.insert(b.record);
      const ids = (await store.list()).map((k) => k.id);
      assert.deepEqual(ids.slice(0, 2), [b.record.id, a.record.id]);
    });

    test('revokes once: a second revoke keeps the first time and records no change; unknown ids give null', async () => {
      const { record } = newRecord();
      await store.insert(record);
      const first = await store.revoke(record.id);
      assert.ok(first?.revokedAt !== null && first?.revokedAt !== undefined);
      const seq = (await store.changesSince(0)).seq;
      let last = seq;
      for (;;) { const b = await store.changesSince(last); if (b.ids.length === 0) break; last = b.seq; }
      assert.equal((await store.revoke(record.id))?.revokedAt, first.revokedAt);
      assert.equal((await store.get(record.id))?.revokedAt, first.revokedAt);
      assert.deepEqual((await store.changesSince(last)).ids, [], 'revoking again is not a change');
      assert.equal(await store.revoke(newKeyId()), null);
    });

    test('treats a revocation stamped in the future (by an older version) as revoked now, and brings it back to now on revoking again', async () => {
      const { record } = newRecord();
      await store.insert(record);
      const future = (await store.clock()) + 24 * HOUR;
      await shared().setRevokedAt(record.id, future);
      const stored = await store.get(record.id);
      assert.ok(stored !== null);
      assert.equal(keyStatus(stored, await store.clock(), 0), 'revoked', 'revoked by state, not when the stamped instant arrives');
      let seq = 0;
      for (;;) { const b = await store.changesSince(seq); if (b.ids.length === 0) break; seq = b.seq; }
      const again = await store.revoke(record.id);
      assert.ok(again?.revokedAt !== null && again?.revokedAt !== undefined && again.revokedAt < future - HOUR, 'brought back to the store\'s now');
      assert.deepEqual((await store.changesSince(seq)).ids, [record.id], 'recorded as a change');
    });

    test('stamps creation, revocation and grace with the store\'s clock, whatever the caller\'s clock says', async () => {
      for (const skewMs of [HOUR, -HOUR]) {
        const { record } = newRecord({ lifetimeMs: 2 * HOUR });
        const next = newRecord({ replaces: record.id });
        const revoked = newRecord();
        const before = await store.clock();
        await withSkewedClock(skewMs, async () => {
          await store.insert(record);
          await store.insert(revoked.record);
          await store.rotate(record.id, next.record, 60_000);
          await store.revoke(revoked.record.id);
        });
        const after = await store.clock();
        const created = await store.get(record.id);
        const gone = await store.get(revoked.record.id);
        assert.ok(created !== null && gone !== null);
        const within = (t: number | null, label: string) => assert.ok(t !== null && t >= before - 1 && t <= after + 1, `${label} ${t} within the store's [${before}, ${after}] (caller skewed ${skewMs} ms)`);
        within(created.createdAt, 'createdAt');
        within(gone.revokedAt, 'revokedAt');
        within((created.graceUntil ?? 0) - 60_000, 'graceUntil - grace');
        within((created.expiresAt ?? 0) - 2 * HOUR, 'expiresAt - lifetime');
        // A revoked key is revoked by state: no clock, however far behind, sees it active.
        assert.equal(keyStatus(gone, gone.revokedAt ?? 0, 0), 'revoked');
        assert.equal(keyStatus(gone, (gone.revokedAt ?? 0) - 365 * 24 * HOUR, 0), 'revoked');
      }
    });

    test('rotates in one transaction, and only keys that may be rotated (judged by the store\'s clock)', async () => {
      const old = newRecord();
      await store.insert(old.record);
      const next = newRecord({ replaces: old.record.id });
      const before = await store.clock();
      await store.rotate(old.record.id, next.record, HOUR);
      const after = await store.clock();
      const o = await store.get(old.record.id);
      assert.equal(o?.replacedBy, next.record.id);
      assert.ok((o?.graceUntil ?? 0) >= before + HOUR - 1 && (o?.graceUntil ?? 0) <= after + HOUR + 1);
      assert.equal((await store.get(next.record.id))?.replaces, old.record.id);

      const again = newRecord({ replaces: old.record.id });
      await assert.rejects(store.rotate(old.record.id, again.record, 1), KeyConflictError);
      assert.equal(await store.get(again.record.id), null, 'a refused rotation inserts nothing');

      const revoked = newRecord();
      await store.insert(revoked.record);
      await store.revoke(revoked.record.id);
      await assert.rejects(store.rotate(revoked.record.id, newRecord().record, 1), /revoked/);
      const expired = newRecord({ lifetimeMs: 0 });
      await store.insert(expired.record);
      // A caller whose clock is far behind cannot rotate a key the store's clock says has expired.
      await assert.rejects(withSkewedClock(-24 * HOUR, () => store.rotate(expired.record.id, newRecord().record, 1)), /expired/);
      await assert.rejects(store.rotate(newKeyId(), newRecord().record, 1), KeyConflictError);
    });

    test('adds usage in batches; last use only moves forward', async () => {
      const { record } = newRecord();
      await store.insert(record);
      await store.recordUsage([]);
      await store.recordUsage([{ id: record.id, count: 5, lastUsedAt: 2000, lastUsedIp: '10.0.0.1' }, { id: newKeyId(), count: 1, lastUsedAt: 1, lastUsedIp: 'x' }]);
      await store.recordUsage([{ id: record.id, count: 7, lastUsedAt: 1000, lastUsedIp: '10.0.0.2' }]);
      let got = await store.get(record.id);
      assert.equal(got?.useCount, 12);
      assert.equal(got?.lastUsedAt, 2000);
      assert.equal(got?.lastUsedIp, '10.0.0.1', 'an older batch does not overwrite the last use');
      await store.recordUsage([{ id: record.id, count: 1, lastUsedAt: 3000, lastUsedIp: '::1' }]);
      got = await store.get(record.id);
      assert.deepEqual([got?.useCount, got?.lastUsedAt, got?.lastUsedIp], [13, 3000, '::1']);
    });

    test('records every change in order, visible to other instances; usage is not a change', async () => {
      const start = (await store.changesSince(0)).seq;
      let seq = start;
      for (;;) { const b = await store.changesSince(seq); if (b.ids.length === 0) break; seq = b.seq; }
      const other = shared().open();
      const a = newRecord();
      const b = newRecord({ replaces: a.record.id });
      await store.insert(a.record);
      await store.recordUsage([{ id: a.record.id, count: 1, lastUsedAt: 1, lastUsedIp: '::1' }]);
      await store.rotate(a.record.id, b.record, HOUR);
      await store.revoke(b.record.id);
      const batch = await other.changesSince(seq);
      assert.ok(batch.seq > seq);
      assert.deepEqual(batch.ids.filter((id) => id === a.record.id || id === b.record.id).sort(), [a.record.id, a.record.id, b.record.id, b.record.id].sort());
      assert.equal(batch.ids[0], a.record.id, 'the insert comes first');
      assert.equal(batch.ids.at(-1), b.record.id, 'the revocation comes last');
      assert.deepEqual((await other.changesSince(batch.seq)).ids, []);
      await other.close();
    });

    test('notifies other instances of changes where the backend supports it', async () => {
      const listener = shared().open();
      let notified = 0;
      const supported = await listener.watch(() => { notified++; }, () => undefined);
      if (kind === 'sqlite') assert.equal(supported, false, 'sqlite is polled');
      else {
        assert.equal(supported, true);
        const { record } = newRecord();
        await store.insert(record);
        await waitUntil('a NOTIFY arrives', () => notified > 0, 2000);
        assert.ok(notified > 0, 'a NOTIFY arrived');
      }
      await listener.close();
    });

    test('reports an unreachable backend as StoreUnavailableError', async () => {
      const down = await shared().unreachable();
      await assert.rejects(down.migrate(), StoreUnavailableError);
      await assert.rejects(down.get(newKeyId()), StoreUnavailableError);
      await assert.rejects(down.recordUsage([{ id: newKeyId(), count: 1, lastUsedAt: 1, lastUsedIp: '::1' }]), StoreUnavailableError);
      await down.close();
    });
  });
}

contract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-keys-'));
  const file = join(dir, 'keys', 'api-keys.db');
  const opened: ApiKeyStore[] = [];
  return {
    open() { const s = new SqliteKeyStore(file); opened.push(s); return s; },
    async dump() {
      // WAL mode: recent writes are in the -wal file until a checkpoint.
      const parts = await Promise.all([file, `${file}-wal`].map((f) => readFile(f).catch(() => Buffer.alloc(0))));
      return Buffer.concat(parts).toString('latin1');
    },
    setRevokedAt(id, at) {
      // Through the public API there is no way to write a future instant: open the file directly.
      const db = new Database(file);
      db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(at, id);
      db.close();
      return Promise.resolve();
    },
    async unreachable() {
      await writeFile(join(dir, 'not-a-dir'), '');
      return new SqliteKeyStore(join(dir, 'not-a-dir', 'keys.db'));
    },
    async cleanup() {
      await Promise.all(opened.map((s) => s.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
});

contract('postgres', async () => {
  const db: TestDatabase | string = await freshDatabase();
  if (typeof db === 'string') return db;
  const opened: ApiKeyStore[] = [];
  const relay = new CuttableRelay(POSTGRES_TARGET.host, POSTGRES_TARGET.port);
  return {
    open() { const s = new PostgresKeyStore({ url: db.url, poolSize: 3, timeoutMs: 2000 }); opened.push(s); return s; },
    async dump() {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query<{ t: string }>('SELECT k::text AS t FROM portcullis_api_keys k');
      await c.end();
      return rows.map((r) => r.t).join('\n');
    },
    async setRevokedAt(id, at) {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      await c.query('UPDATE portcullis_api_keys SET revoked_at = to_timestamp($1::float8 / 1000) WHERE id = $2', [at, id]);
      await c.end();
    },
    async unreachable() {
      await relay.start();
      const url = relayedUrl(db, relay);
      await relay.cut();
      return new PostgresKeyStore({ url, poolSize: 1, timeoutMs: 500 });
    },
    async cleanup() {
      await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
      await relay.cut();
      await db.drop();
    },
  };
});
