// The key directory's bounds, on a real SQLite store with an injected clock: existing keys and
// unknown ids are cached apart, look-ups of one id share one query, look-ups in flight are
// bounded, the cache is distrusted past maxStalenessMs, and the store's clock is followed.
// Also the usage buffer's bound.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirectoryStaleError, KeyDirectory, type DirectoryOptions } from '../src/authn/api-key/key-directory.js';
import { hashKey, newKey, newKeyId } from '../src/authn/api-key/key-format.js';
import { SqliteKeyStore } from '../src/authn/api-key/sqlite-store.js';
import { LookupLimitError, type ApiKeyRecord, type NewApiKey } from '../src/authn/api-key/store.js';
import { UsageTracker } from '../src/authn/api-key/usage.js';
import { PassThrough } from 'node:stream';
import { createLogger } from '../src/observability/logger.js';
import { ManualClock } from './harness/manual-clock.js';

const OPTIONS: DirectoryOptions = {
  ttlMs: 60_000, negativeTtlMs: 5000, maxEntries: 10, negativeMaxEntries: 100, maxConcurrentLookups: 4,
  maxStalenessMs: 5000, pollIntervalMs: 3_600_000, listen: false,
};

function record(): NewApiKey {
  const id = newKeyId();
  return {
    id, name: `svc-${id}`, environment: 'live', hash: hashKey(newKey('live', id)), tenant: null, roles: [], scopes: [],
    allowedCidrs: [], rateLimitTier: null, metadata: {}, lifetimeMs: 86_400_000, replaces: null,
  };
}

/** A clock the test moves by hand, starting at the real time (the store's clock is compared with it). */
function manualClock(): ManualClock {
  return new ManualClock(Date.now());
}

describe('API key directory bounds', () => {
  let dir: string;
  let store: SqliteKeyStore;
  let writer: SqliteKeyStore;
  const quiet = { logger: createLogger('error', new PassThrough()) };
  const directories: KeyDirectory<ApiKeyRecord>[] = [];

  async function open(options: Partial<DirectoryOptions> = {}, clock = manualClock()): Promise<KeyDirectory<ApiKeyRecord>> {
    const d = new KeyDirectory(new SqliteKeyStore(join(dir, 'keys.db')), { ...OPTIONS, ...options }, (r) => r, clock);
    directories.push(d);
    await d.start(quiet);
    return d;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-directory-'));
    store = new SqliteKeyStore(join(dir, 'keys.db'));
    writer = new SqliteKeyStore(join(dir, 'keys.db'));
    await store.migrate();
  });
  after(async () => {
    await Promise.all(directories.map((d) => d.stop()));
    await store.close();
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('never lets a flood of unknown ids evict or displace a cached key; both caches stay within their bounds', async () => {
    const d = await open();
    const valid = [record(), record(), record()];
    for (const r of valid) await writer.insert(r);
    await d.sync();
    for (const r of valid) assert.equal((await d.lookup(r.id))?.id, r.id);
    for (let i = 0; i < 2000; i++) {
      const ids = Array.from({ length: 4 }, () => newKeyId());
      assert.deepEqual(await Promise.all(ids.map(async (id) => d.lookup(id))), [null, null, null, null]);
    }
    assert.equal(d.sizes.unknown, OPTIONS.negativeMaxEntries, 'unknown ids: at most negativeMaxEntries');
    for (const r of valid) assert.equal(d.peek(r.id)?.id, r.id, 'each valid key is still cached');
    const more = Array.from({ length: 25 }, () => record());
    for (const r of more) await writer.insert(r);
    await d.sync();
    for (const r of more) await d.lookup(r.id);
    assert.ok(d.sizes.known <= OPTIONS.maxEntries, `existing keys: at most maxEntries (${d.sizes.known})`);
  });

  it('shares one store query among concurrent look-ups of one id, and bounds look-ups in flight per lane', async () => {
    const older = record();
    await writer.insert(older);
    const d = await open();
    let queries = 0;
    const get = d.store.get.bind(d.store);
    d.store.get = (id: string) => { queries++; return get(id); };
    const id = newKeyId();
    const same = Array.from({ length: 50 }, () => Promise.resolve(d.lookup(id)));
    assert.equal(d.sizes.loading, 1, 'one single-flight entry');
    assert.deepEqual(new Set(await Promise.all(same)), new Set([null]));
    assert.equal(queries, 1, 'fifty look-ups of one id, one query');

    const existing = record();
    await writer.insert(existing);
    await d.sync();
    const started: Promise<unknown>[] = [];
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      try { started.push(Promise.resolve(d.lookup(newKeyId()))); } catch (err) { assert.ok(err instanceof LookupLimitError); refused++; }
    }
    assert.equal(started.length, OPTIONS.maxConcurrentLookups, 'look-ups in flight: at most maxConcurrentLookups');
    assert.equal(refused, 20 - OPTIONS.maxConcurrentLookups, 'the rest refused at once, not queued');
    assert.ok(d.sizes.loading <= 2 * OPTIONS.maxConcurrentLookups);
    // Both asked while the unknown lane is still full (nothing has been awaited since it filled).
    const reloads = [Promise.resolve(d.lookup(existing.id)), Promise.resolve(d.lookup(older.id))];
    assert.equal(d.sizes.inFlight.unknown, OPTIONS.maxConcurrentLookups);
    const [created, preexisting] = await Promise.all(reloads);
    assert.equal(created?.id, existing.id, 'a key created since the start still loads while the unknown lane is full');
    assert.equal(preexisting?.id, older.id, 'so does a key that existed before the start');
    await Promise.all(started);
    assert.deepEqual(d.sizes.inFlight, { unknown: 0, known: 0 });
    assert.equal(d.sizes.loading, 0, 'nothing left in the single-flight map');
  });

  it('forgets an unknown id as soon as the change log shows it was created', async () => {
    const clock = manualClock();
    const d = await open({}, clock);
    const r = record();
    assert.equal(await d.lookup(r.id), null);
    await writer.insert(r);
    assert.equal(d.lookup(r.id), null, 'remembered as unknown until the change arrives');
    await d.sync();
    assert.equal((await d.lookup(r.id))?.id, r.id, 'found at once after the change, well within negativeCacheTtlMs');
    const gone = newKeyId();
    assert.equal(await d.lookup(gone), null);
    clock.advance(OPTIONS.negativeTtlMs);
    await d.sync();
    assert.ok(d.lookup(gone) instanceof Promise, 'asked again after negativeCacheTtlMs');
  });

  it('distrusts every cached answer once the change log has not been read for maxStalenessMs, until a read succeeds', async () => {
    const clock = manualClock();
    const d = await open({}, clock);
    const r = record();
    await writer.insert(r);
    await d.sync();
    assert.equal((await d.lookup(r.id))?.id, r.id);
    clock.advance(OPTIONS.maxStalenessMs);
    assert.equal(d.peek(r.id)?.id, r.id, 'at the bound: still trusted');
    clock.advance(1);
    assert.equal(d.peek(r.id), undefined);
    assert.throws(() => d.lookup(r.id), DirectoryStaleError);
    assert.throws(() => d.lookup(newKeyId()), DirectoryStaleError, 'unknown ids too: no store query while stale');
    await d.sync();
    assert.equal(d.lookup(r.id) instanceof Promise ? (await d.lookup(r.id))?.id : d.peek(r.id)?.id, r.id, 'trusted again after a successful read');
  });

  it('judges time by the store\'s clock, whatever this machine\'s clock says', async () => {
    for (const skewMs of [3_600_000, -3_600_000]) {
      const clock = manualClock();
      clock.advance(skewMs);
      const d = await open({}, clock);
      const storeNow = await store.clock();
      assert.ok(Math.abs(d.storeNow() - storeNow) < 1000, `estimated store clock ${d.storeNow()} vs ${storeNow} (local clock off by ${skewMs} ms)`);
    }
  });
});

describe('API key usage buffer bound', () => {
  it('holds at most maxKeys keys, counts the uses it could not hold as dropped, and logs them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-usage-'));
    const store = new SqliteKeyStore(join(dir, 'keys.db'));
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    const log = createLogger('warn', sink);
    try {
      await store.migrate();
      const usage = new UsageTracker(store, 3_600_000, 3);
      usage.start(log);
      for (let i = 0; i < 10; i++) usage.record(newKeyId(), '127.0.0.1', Date.now());
      assert.equal(usage.backlog, 3);
      assert.equal(usage.dropped, 7);
      const stopped = usage.stop();
      assert.equal(usage.backlog, 3, 'uses carried by the write under way are not written yet');
      await stopped;
      assert.equal(usage.backlog, 0);
      assert.ok(lines.some((l) => l.includes('usage buffer full')), 'the loss is logged');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
