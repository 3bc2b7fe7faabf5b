// One contract for every API key store: the same tests run against SQLite and against a real
// PostgreSQL (a fresh database per run, dropped afterwards).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { hashKey, newKey, newKeyId } from '../src/authn/api-key/key-format.js';
import { PostgresKeyStore } from '../src/authn/api-key/postgres-store.js';
import { SqliteKeyStore } from '../src/authn/api-key/sqlite-store.js';
import { KeyConflictError, StoreUnavailableError, type ApiKeyStore, type NewApiKey } from '../src/authn/api-key/store.js';
import { CuttableRelay, freshDatabase, POSTGRES_TARGET, relayedUrl, type TestDatabase } from './harness/postgres.js';

interface Backend {
  /** A new store on the shared database (as another gateway process would open it). */
  open(): ApiKeyStore;
  /** Every byte the backend holds, for "the plaintext is never stored". */
  dump(): Promise<string>;
  /** A store whose backend is unreachable. */
  unreachable(): Promise<ApiKeyStore>;
  cleanup(): Promise<void>;
}

function newRecord(overrides: Partial<NewApiKey> = {}): { key: string; record: NewApiKey } {
  const id = newKeyId();
  const key = newKey('live', id);
  const record: NewApiKey = {
    id, name: 'billing-service', environment: 'live', hash: hashKey(key), tenant: 'acme', roles: ['reader', 'writer'], scopes: ['orders:read'],
    allowedCidrs: ['10.0.0.0/8', '::1/128'], rateLimitTier: 'gold', metadata: { team: 'payments', ticket: 'OPS-1' },
    createdAt: 1_700_000_000_000, expiresAt: 1_800_000_000_000, replaces: null, ...overrides,
  };
  return { key, record };
}

function contract(kind: string, setup: () => Promise<Backend | string>): void {
  describe(`API key store contract: ${kind}`, () => {
    let backend: Backend | null = null;
    let store: ApiKeyStore;
    let skip = '';

    before(async () => {
      const b = await setup();
      if (typeof b === 'string') { skip = b; console.log(`skipping the ${kind} store contract: ${b}`); return; }
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
      await store.insert(record);
      const got = await store.get(record.id);
      assert.deepEqual(got, { ...record, revokedAt: null, replacedBy: null, graceUntil: null, useCount: 0, lastUsedAt: null, lastUsedIp: null });
      const minimal = newRecord({ tenant: null, roles: [], scopes: [], allowedCidrs: [], rateLimitTier: null, metadata: {}, expiresAt: null });
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
      const a = newRecord({ createdAt: 1_900_000_000_000 });
      const b = newRecord({ createdAt: 1_900_000_000_001 });
      await store.insert(a.record);
      await store.insert(b.record);
      const ids = (await store.list()).map((k) => k.id);
      assert.deepEqual(ids.slice(0, 2), [b.record.id, a.record.id]);
    });

    test('revokes once: a second revoke keeps the first time; unknown ids give null', async () => {
      const { record } = newRecord();
      await store.insert(record);
      assert.equal((await store.revoke(record.id, 1_750_000_000_000))?.revokedAt, 1_750_000_000_000);
      assert.equal((await store.revoke(record.id, 1_760_000_000_000))?.revokedAt, 1_750_000_000_000);
      assert.equal((await store.get(record.id))?.revokedAt, 1_750_000_000_000);
      assert.equal(await store.revoke(newKeyId(), 1), null);
    });

    test('rotates in one transaction, and only keys that may be rotated', async () => {
      const old = newRecord();
      await store.insert(old.record);
      const next = newRecord({ replaces: old.record.id });
      const now = 1_750_000_000_000;
      await store.rotate(old.record.id, next.record, now + 3_600_000, now);
      const o = await store.get(old.record.id);
      assert.equal(o?.replacedBy, next.record.id);
      assert.equal(o?.graceUntil, now + 3_600_000);
      assert.equal((await store.get(next.record.id))?.replaces, old.record.id);

      const again = newRecord({ replaces: old.record.id });
      await assert.rejects(store.rotate(old.record.id, again.record, now + 1, now), KeyConflictError);
      assert.equal(await store.get(again.record.id), null, 'a refused rotation inserts nothing');

      const revoked = newRecord();
      await store.insert(revoked.record);
      await store.revoke(revoked.record.id, now);
      await assert.rejects(store.rotate(revoked.record.id, newRecord().record, now + 1, now), /revoked/);
      const expired = newRecord({ expiresAt: now - 1 });
      await store.insert(expired.record);
      await assert.rejects(store.rotate(expired.record.id, newRecord().record, now + 1, now), /expired/);
      await assert.rejects(store.rotate(newKeyId(), newRecord().record, now + 1, now), KeyConflictError);
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
      await store.rotate(a.record.id, b.record, 1_750_000_000_000, 1_700_000_000_000);
      await store.revoke(b.record.id, 1);
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
        const deadline = Date.now() + 2000;
        while (notified === 0 && Date.now() < deadline) await delay(5);
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
