// What a host's primary does once for its workers (HostSync) and the workers' side of it
// (HostSyncClient), joined by in-process channels that carry messages as IPC does (JSON, a turn
// later): the change log of a real SQLite key store read once and pushed to every worker's
// directory, JWK Sets fetched once per host, and a primary that outlives whatever a worker sends.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { ApiKeySettings } from '../src/authn/api-key/backend.js';
import { DirectoryStaleError, KeyDirectory } from '../src/authn/api-key/key-directory.js';
import { hashKey, newKey, newKeyId } from '../src/authn/api-key/key-format.js';
import { SqliteKeyStore } from '../src/authn/api-key/sqlite-store.js';
import type { ApiKeyRecord, NewApiKey } from '../src/authn/api-key/store.js';
import { KeysUnavailableError } from '../src/authn/jwt/key-source.js';
import { RemoteJwks, type RemoteJwksOptions } from '../src/authn/jwt/remote-jwks.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { HostSyncClient, type SyncPrimaryChannel } from '../src/workers/host-sync-client.js';
import { SYNC_TAG, type SyncPush, type SyncRequest } from '../src/workers/host-sync-protocol.js';
import { HostJwks, HostSync, MAX_JWKS_ASKS_PER_WORKER, type SyncChannel } from '../src/workers/host-sync.js';
import { waitUntil } from './harness/assertions.js';
import { ManualClock } from './harness/manual-clock.js';
import { testKey, type TestKey } from './harness/jwt.js';

/** Both ends of one worker's IPC channel, in this process: each message is delivered as JSON a turn later. */
class Pipe {
  readonly toPrimary = new EventEmitter();
  readonly toWorker = new EventEmitter();
  /** Messages the primary sent. */
  readonly pushed: SyncPush[] = [];
  connected = true;

  readonly primary: SyncChannel = {
    send: (message, _handle, callback) => {
      this.pushed.push(message);
      const copy = JSON.parse(JSON.stringify(message)) as unknown;
      setImmediate(() => { if (this.connected) this.toWorker.emit('message', copy); callback(null); });
      return true;
    },
    on: (_event, listener) => this.toPrimary.on('message', listener),
    off: (_event, listener) => this.toPrimary.off('message', listener),
  };

  readonly worker: SyncPrimaryChannel = {
    send: (message: SyncRequest, _handle: undefined, _options: undefined, callback: (error: Error | null) => void) => {
      this.raw(message);
      callback(null);
      return true;
    },
    get connected() { return true; },
    on: (event: string, listener: (message: unknown) => void) => this.toWorker.on(event, listener),
    off: (event: string, listener: (message: unknown) => void) => this.toWorker.off(event, listener),
  };

  /** Sends anything at all to the primary, as a misbehaving worker could. */
  raw(message: unknown): void {
    const copy = message === undefined ? undefined : JSON.parse(JSON.stringify(message)) as unknown;
    setImmediate(() => this.toPrimary.emit('message', copy));
  }
}

function logged(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const sink = new PassThrough();
  const lines: string[] = [];
  sink.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter((l) => l !== '')));
  return { logger: createLogger('warn', sink), lines };
}

function record(): NewApiKey {
  const id = newKeyId();
  return {
    id, name: `svc-${id}`, environment: 'live', hash: hashKey(newKey('live', id)), tenant: null, roles: [], scopes: [],
    allowedCidrs: [], rateLimitTier: null, metadata: {}, lifetimeMs: 86_400_000, replaces: null,
  };
}

// A worker's IPC channel keeps its event loop alive, and the client's timers are unref'd; here a timer does.
const keepAlive = setInterval(() => undefined, 60_000);
after(() => clearInterval(keepAlive));

const JWKS_OPTIONS: RemoteJwksOptions = { uri: 'http://127.0.0.1:9/jwks.json', algorithms: ['ES256'], timeoutMs: 1000, maxBytes: 65_536, refreshMs: 60_000, cooldownMs: 10_000 };

describe('host sync: the API key change log, read once for the host', () => {
  let dir: string;
  let writer: SqliteKeyStore;
  let settings: ApiKeySettings;
  const quiet = { logger: createLogger('error', new PassThrough()) };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-host-sync-'));
    writer = new SqliteKeyStore(join(dir, 'keys.db'));
    await writer.migrate();
    settings = {
      environment: 'live', maxLifetimeMs: 86_400_000 * 90, expiryWarningMs: 86_400_000,
      store: { type: 'sqlite', file: join(dir, 'keys.db') },
      cacheTtlMs: 60_000, negativeCacheTtlMs: 5000, cacheMaxEntries: 100, negativeCacheMaxEntries: 100, maxConcurrentLookups: 8,
      maxStalenessMs: 400, pollIntervalMs: 50, usageFlushMs: 60_000,
    };
  });
  after(async () => {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  });

  function directory(client: HostSyncClient): { d: KeyDirectory<ApiKeyRecord>; start: Promise<void> } {
    const d = new KeyDirectory(new SqliteKeyStore(settings.store.type === 'sqlite' ? settings.store.file : ''), {
      ttlMs: settings.cacheTtlMs, negativeTtlMs: settings.negativeCacheTtlMs, maxEntries: settings.cacheMaxEntries,
      negativeMaxEntries: settings.negativeCacheMaxEntries, maxConcurrentLookups: settings.maxConcurrentLookups,
      maxStalenessMs: settings.maxStalenessMs, pollIntervalMs: settings.pollIntervalMs, listen: false,
    }, (r) => r, systemClock);
    return { d, start: d.start(quiet, client.apiKeyChanges(settings)) };
  }

  it('pushes each change to every worker\'s directory, tells a later worker the current state, and workers go stale (fail closed) when the reads stop', async () => {
    const metrics = new Metrics(false);
    const primary = new HostSync({ logger: quiet.logger, metrics });
    const existing = record();
    await writer.insert(existing);
    const pipes = [new Pipe(), new Pipe()];
    for (const p of pipes) primary.attach(p.primary);
    const [a, b] = pipes.map((p) => HostSyncClient.connect(p.worker)) as [HostSyncClient, HostSyncClient];
    const first = directory(a);
    await first.start;
    assert.equal(first.d.sizes.known, 1, 'the key the log names is known to exist before any look-up');
    const used = await first.d.lookup(existing.id);
    assert.equal(used?.revokedAt, null);

    await writer.revoke(existing.id);
    await waitUntil('the first worker drops the revoked key and reloads it', async () => (await first.d.lookup(existing.id))?.revokedAt !== null, 2000);

    // A worker started later (a replacement) hears the ids and the age of the last read at once.
    const later = directory(b);
    await later.start;
    assert.ok(!later.d.isStale);
    assert.equal(later.d.sizes.known, 1);
    assert.equal(primary.followedStores.length, 1, 'one reader of the log for both workers');
    const polls = (await metrics.apiKeyStorePolls.get()).values.reduce((sum, v) => sum + v.value, 0);
    assert.ok(polls >= 1);

    // The primary stops reading (here: it closes): no read is reported any more, so after
    // maxStalenessMs every worker refuses keys, as one process whose store is down would.
    await primary.close();
    await waitUntil('the workers distrust their caches', () => first.d.isStale && later.d.isStale, 2000);
    assert.throws(() => first.d.lookup(existing.id), DirectoryStaleError);
    await Promise.all([first.d.stop(), later.d.stop()]);
    a.close();
    b.close();
  });

  it('stops reading a store once no worker follows it', async () => {
    const primary = new HostSync({ logger: quiet.logger });
    const pipe = new Pipe();
    primary.attach(pipe.primary);
    const client = HostSyncClient.connect(pipe.worker) as HostSyncClient;
    const { d, start } = directory(client);
    await start;
    assert.equal(primary.followedStores.length, 1);
    await d.stop();
    await waitUntil('the primary stops following', () => primary.followedStores.length === 0, 2000);
    // A worker that exits without unfollowing is detached by the supervisor: the same.
    const again = directory(client);
    await again.start;
    assert.equal(primary.followedStores.length, 1);
    primary.detach(pipe.primary);
    assert.equal(primary.followedStores.length, 0);
    await again.d.stop();
    client.close();
    await primary.close();
  });
});

describe('host sync: JWK Sets fetched once for the host', () => {
  let signer: TestKey;
  let body: string;
  before(async () => {
    signer = await testKey('ES256', 'k1');
    body = JSON.stringify({ keys: [signer.jwk] });
  });

  function counting(answer: () => Promise<{ text: string; maxAgeMs: number | null }>): { download: () => Promise<{ text: string; maxAgeMs: number | null }>; count: () => number } {
    let n = 0;
    return { download: () => { n++; return answer(); }, count: () => n };
  }

  it('collapses concurrent asks into one fetch, answers from memory until the refresh is due, and refetches for unknown kids once per cooldown', async () => {
    const clock = new ManualClock();
    const { download, count } = counting(() => Promise.resolve({ text: body, maxAgeMs: null }));
    const host = new HostJwks({ logger: createLogger('error', new PassThrough()), clock, metrics: new Metrics(false), download });
    const answers = await Promise.all([host.ask(JWKS_OPTIONS, 'load'), host.ask(JWKS_OPTIONS, 'load'), host.ask(JWKS_OPTIONS, 'load')]);
    assert.equal(count(), 1, 'three asks, one fetch');
    assert.ok(answers.every((a) => a.ok));
    // Unknown-kid asks arriving together share one refetch; the host's cooldown runs from it.
    const kids = await Promise.all([host.ask(JWKS_OPTIONS, 'kid'), host.ask(JWKS_OPTIONS, 'kid'), host.ask(JWKS_OPTIONS, 'kid')]);
    assert.equal(count(), 2);
    assert.deepEqual(kids.map((k) => k.ok && k.deferredMs === null), [true, false, false], 'the asks that joined find the cooldown running');
    clock.advance(5000);
    const cached = await host.ask(JWKS_OPTIONS, 'load');
    assert.equal(count(), 2);
    assert.deepEqual(cached.ok && cached.ageMs, 5000, 'the age lets a worker schedule its refresh when the host\'s set falls due');
    const kid = await host.ask(JWKS_OPTIONS, 'kid');
    assert.ok(kid.ok && kid.deferredMs === 5000, 'during the cooldown the current set is handed over, marked deferred');
    const afterKids = count();
    for (let i = 0; i < 50; i++) await host.ask(JWKS_OPTIONS, 'kid');
    assert.equal(count(), afterKids, 'a flood of unknown kids fetches nothing more during the cooldown');
    clock.advance(JWKS_OPTIONS.cooldownMs);
    await host.ask(JWKS_OPTIONS, 'kid');
    assert.equal(count(), afterKids + 1);
    clock.advance(JWKS_OPTIONS.refreshMs);
    await host.ask(JWKS_OPTIONS, 'load');
    assert.equal(count(), afterKids + 2, 'a set past its refresh period is fetched again');
  });

  it('retries a failing endpoint at most once per cooldown for the host and hands over the last good set meanwhile', async () => {
    const clock = new ManualClock();
    let up = true;
    const { download, count } = counting(() => (up ? Promise.resolve({ text: body, maxAgeMs: null }) : Promise.reject(new Error('HTTP 500'))));
    const host = new HostJwks({ logger: createLogger('error', new PassThrough()), clock, metrics: new Metrics(false), download });
    assert.ok((await host.ask(JWKS_OPTIONS, 'load')).ok);
    up = false;
    clock.advance(JWKS_OPTIONS.refreshMs);
    const stale = await host.ask(JWKS_OPTIONS, 'load');
    assert.ok(stale.ok, 'the last good set, for a worker that starts while the endpoint is down');
    assert.equal(count(), 2);
    for (let i = 0; i < 20; i++) await host.ask(JWKS_OPTIONS, 'load');
    assert.equal(count(), 2, 'no second attempt within the cooldown');
    const kid = await host.ask(JWKS_OPTIONS, 'kid');
    assert.equal(kid.ok, false, 'a refetch made for an unknown kid that failed says so: the worker answers 503');
    // Garbage does not replace the good set either.
    up = true;
    const garbage = counting(() => Promise.resolve({ text: '{"keys": [ nope', maxAgeMs: null }));
    const host2 = new HostJwks({ logger: createLogger('error', new PassThrough()), clock, metrics: new Metrics(false), download: garbage.download });
    assert.equal((await host2.ask(JWKS_OPTIONS, 'load')).ok, false);
  });

  it('a worker whose ask the primary never answers treats it as a failed fetch, within the fetch timeout', async () => {
    const pipe = new Pipe();
    // No primary attached: asks go nowhere.
    const client = HostSyncClient.connect(pipe.worker) as HostSyncClient;
    const set = new RemoteJwks({ ...JWKS_OPTIONS, timeoutMs: 50 });
    const { logger, lines } = logged();
    const started = performance.now();
    await set.start({ logger, clock: systemClock, metrics: new Metrics(false), host: client });
    assert.ok(performance.now() - started < 50 + 1000 + 500);
    assert.ok(lines.some((l) => l.includes('JWKS fetch failed') && l.includes('did not answer')));
    assert.throws(() => set.keysFor('ES256', 'k1'), KeysUnavailableError);
    await set.stop();
    client.close();
  });

  it('a worker refuses a set larger than its maxBytes from the primary', async () => {
    const pipe = new Pipe();
    const primary = new HostSync({ logger: createLogger('error', new PassThrough()), download: () => Promise.resolve({ text: body, maxAgeMs: null }) });
    primary.attach(pipe.primary);
    const client = HostSyncClient.connect(pipe.worker) as HostSyncClient;
    const { logger, lines } = logged();
    // The primary fetched for a worker whose limit is larger; this set allows fewer bytes than the body.
    const fetched = await client.jwks.fetch({ ...JWKS_OPTIONS, maxBytes: 1 << 20 }, 'load');
    assert.equal(fetched.text, body);
    const small = new RemoteJwks({ ...JWKS_OPTIONS, maxBytes: 64 });
    const forged: HostSyncClient = Object.assign(Object.create(client) as HostSyncClient, { jwks: { fetch: () => Promise.resolve(fetched) } });
    await small.start({ logger, clock: systemClock, metrics: new Metrics(false), host: forged });
    assert.ok(!small.loaded);
    assert.ok(lines.some((l) => l.includes('more than 64 bytes')));
    await small.stop();
    client.close();
    await primary.close();
  });
});

describe('host sync: a misbehaving worker', () => {
  it('drops malformed and oversized messages without throwing, and keeps answering', async () => {
    const { logger, lines } = logged();
    const primary = new HostSync({ logger, download: () => Promise.resolve({ text: '{"keys":[]}', maxAgeMs: null }) });
    const pipe = new Pipe();
    primary.attach(pipe.primary);
    const junk: unknown[] = [
      { t: SYNC_TAG },
      { t: SYNC_TAG, op: 'nope' },
      { t: SYNC_TAG, op: 'follow', handle: -1, settings: {} },
      { t: SYNC_TAG, op: 'follow', handle: 1, settings: null },
      { t: SYNC_TAG, op: 'follow', handle: 1, settings: { store: { type: 'sqlite', file: 'x'.repeat(100_000) }, pollIntervalMs: 500, maxEntries: 10, maxStalenessMs: 5000 } },
      { t: SYNC_TAG, op: 'follow', handle: 1, settings: { store: { type: 'postgres', url: 'postgres://x' }, pollIntervalMs: 500, maxEntries: 10, maxStalenessMs: 5000 } },
      { t: SYNC_TAG, op: 'follow', handle: 1, settings: { store: { type: 'sqlite', file: '/tmp/k.db' }, pollIntervalMs: 0, maxEntries: 10, maxStalenessMs: 5000 } },
      { t: SYNC_TAG, op: 'unfollow', handle: 'everything' },
      { t: SYNC_TAG, op: 'jwks', id: 'one', options: JWKS_OPTIONS, reason: 'load' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: { ...JWKS_OPTIONS, uri: 'file:///etc/passwd' }, reason: 'load' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: { ...JWKS_OPTIONS, uri: `http://127.0.0.1/${'a'.repeat(5000)}` }, reason: 'load' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: { ...JWKS_OPTIONS, algorithms: ['none'] }, reason: 'load' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: { ...JWKS_OPTIONS, maxBytes: 2 ** 40 }, reason: 'load' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: JWKS_OPTIONS, reason: 'please' },
      { t: SYNC_TAG, op: 'jwks', id: 1, options: { ...JWKS_OPTIONS, algorithms: Array(10_000).fill('ES256') }, reason: 'load' },
      { t: SYNC_TAG, op: { toString: null } },
    ];
    for (const m of junk) pipe.raw(m);
    pipe.raw({ t: SYNC_TAG, op: 'jwks', id: 7, options: JWKS_OPTIONS, reason: 'load' });
    await waitUntil('the well-formed ask is answered', () => pipe.pushed.some((m) => m.op === 'jwks' && m.id === 7), 2000);
    assert.equal(pipe.pushed.length, 1, 'nothing but the well-formed ask was answered');
    assert.equal(lines.filter((l) => l.includes('malformed worker message')).length, junk.length);
    assert.equal(primary.followedStores.length, 0);
    await primary.close();
  });

  it('answers a worker\'s asks past its bound at once, as failed', async () => {
    const pending: (() => void)[] = [];
    const primary = new HostSync({
      logger: createLogger('error', new PassThrough()),
      download: () => new Promise((resolve) => { pending.push(() => resolve({ text: '{"keys":[]}', maxAgeMs: null })); }),
    });
    const pipe = new Pipe();
    primary.attach(pipe.primary);
    for (let id = 1; id <= MAX_JWKS_ASKS_PER_WORKER + 10; id++) pipe.raw({ t: SYNC_TAG, op: 'jwks', id, options: JWKS_OPTIONS, reason: 'load' });
    await waitUntil('the asks past the bound are answered', () => pipe.pushed.length === 10, 2000);
    assert.ok(pipe.pushed.every((m) => m.op === 'jwks' && !m.ok && m.id > MAX_JWKS_ASKS_PER_WORKER));
    assert.equal(pending.length, 1, 'the asks within the bound share one fetch');
    for (const release of pending) release();
    await waitUntil('every ask is answered', () => pipe.pushed.length === MAX_JWKS_ASKS_PER_WORKER + 10, 2000);
    await primary.close();
  });
});
