// The brute-force guard and embedded quotas across the workers of one host: two real worker
// processes (node:cluster) count through their primary (this process), so failures add up, a
// block one worker starts refuses the address on the other, a worker started later learns the
// blocks in force before it decides anything, and a quota admits its limit once. The primary's own
// record of blocks is also tested on its own, with messages no worker of ours would send.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger } from '../src/observability/logger.js';
import { GuardCountTable } from '../src/ratelimit/brute-force-guard.js';
import { MAX_BLOCK_CHANNELS, HostState, type WorkerChannel } from '../src/workers/host-state.js';
import { MAX_BLOCK_SOURCE_LENGTH, STATE_TAG, type PrimaryMessage, type WireBlock } from '../src/workers/host-state-protocol.js';
import { REPLY_TIMEOUT_MS } from '../src/workers/host-state-client.js';
import { forkWorkers, tally, type TestWorker } from './fixtures/host-state-workers.js';
import { toYaml } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';

const MAX_FAILURES = 4;

/** A config whose guard blocks an address after `maxFailures` failures within a minute, for 15 minutes. */
const guardConfig = (maxFailures: number): string => toYaml({
  upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
  rateLimiting: { bruteForce: { maxFailures, within: '1m', blockFor: '15m', by: ['ip'] } },
  authenticators: { users: { type: 'jwt', issuer: 'https://issuer.example', audience: 'api', secret: 'a-secret-of-at-least-thirty-two-bytes!!', algorithms: ['HS256'] } },
  routes: [{ name: 'r', match: { path: '/' }, upstream: 'app', authenticate: ['users'] }],
});

const gate = async (w: TestWorker, from: string): Promise<string> => (await w.command<{ code: string }>({ op: 'gate', from })).code;
const blocking = (outcomes: readonly { reason: string }[], from: string): number => outcomes.filter((o) => o.reason.includes(`ip ${from} blocked`)).length;

describe('the brute-force guard on two workers', () => {
  // The primary's clock stands at the epoch: every block the workers start (on the machine's clock)
  // is in force for it, and no window of its counts ends inside a test.
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock(0) });
  let workers: TestWorker[] = [];
  let running = guardConfig(MAX_FAILURES);

  before(async () => {
    workers = await forkWorkers(2, host);
    await Promise.all(workers.map((w) => w.load(running)));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(host)));
    await host.close();
  });

  it('failures on both workers add up to one count, and the block started on one refuses the address on the other', async () => {
    const [w0, w1] = workers as [TestWorker, TestWorker];
    const from = '198.51.100.7';
    assert.deepEqual(tally(await w0.command({ op: 'fail', n: MAX_FAILURES / 2, from })), { invalid_credential: 2 });
    assert.equal(await gate(w0, from), 'pass', 'not blocked yet');
    const crossing = await w1.command<{ code: string; reason: string }[]>({ op: 'fail', n: MAX_FAILURES / 2, from });
    assert.equal(blocking(crossing, from), 1, 'the failure that reaches the threshold starts the block, on the other worker than the first failures');
    // The block reached w0 through the primary before w1's answer did: the channel keeps order.
    for (const w of workers) assert.equal(await gate(w, from), 'too_many_failures');
    assert.equal(await gate(w0, '198.51.100.8'), 'pass', 'other addresses are untouched');
  });

  it('failures sent from both workers at once are each counted once, as in one process', async () => {
    const from = '198.51.100.9';
    const results = await Promise.all(workers.map((w) => w.command<{ code: string; reason: string }[]>({ op: 'fail', n: 3, from })));
    // Six failures, one count: the first three pass under the threshold, the fourth starts the block
    // and the fifth and sixth renew it. Counted per worker, three each would block nothing.
    assert.equal(results.flat().filter((o) => o.reason.includes('blocked for')).length, 6 - MAX_FAILURES + 1);
    for (const w of workers) assert.equal(await gate(w, from), 'too_many_failures');
  });

  it('a reload that changes the guard\'s settings on every worker keeps the blocks in force and the counts the primary holds', async () => {
    const [w0, w1] = workers as [TestWorker, TestWorker];
    const blocked = '198.51.100.20';
    const counting = '198.51.100.21';
    await w0.command({ op: 'fail', n: MAX_FAILURES, from: blocked });
    await w1.command({ op: 'fail', n: 2, from: counting });

    running = guardConfig(MAX_FAILURES + 2);
    await Promise.all(workers.map((w) => w.load(running)));
    for (const w of workers) assert.equal(await gate(w, blocked), 'too_many_failures', 'the block outlives the guard it was started by');
    assert.deepEqual(host.storeKeys.filter((k) => k.includes('bruteForce')), [GuardCountTable.keyFor('ip', 100_000), GuardCountTable.keyFor('credential', 100_000)],
      'one table per source kind, named as in one process, not after the guard\'s settings');
    assert.equal(blocking(await w0.command({ op: 'fail', n: 3, from: counting }), counting), 0, 'five failures of six');
    assert.equal(blocking(await w1.command({ op: 'fail', n: 1, from: counting }), counting), 1, 'the sixth, counting the two before the reload, blocks');
    for (const w of workers) assert.equal(await gate(w, counting), 'too_many_failures');
  });

  it('a worker started after a block began refuses the address on its first check: the primary tells it the blocks in force before its guard decides', async () => {
    const [late] = await forkWorkers(1, host) as [TestWorker];
    try {
      await late.load(running);
      for (const from of ['198.51.100.7', '198.51.100.9', '198.51.100.20', '198.51.100.21']) assert.equal(await gate(late, from), 'too_many_failures', from);
      assert.equal(await gate(late, '198.51.100.8'), 'pass');
      // And it takes part like the others: a block it starts reaches them.
      await late.command({ op: 'fail', n: MAX_FAILURES + 2, from: '198.51.100.30' });
      for (const w of workers) assert.equal(await gate(w, '198.51.100.30'), 'too_many_failures');
    } finally {
      await late.stop(host);
    }
  });
});

describe('a worker whose primary does not answer about the blocks in force', () => {
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock(0) });
  let worker: TestWorker;

  before(async () => {
    [worker] = await forkWorkers(1, host) as [TestWorker];
    host.detach(worker.worker); // still connected, never answered
  });
  after(async () => {
    await worker.stop(host);
    await host.close();
  });

  it(`starts its guard within ${REPLY_TIMEOUT_MS} ms and counts in its own memory (failing to learn the blocks refuses nobody)`, async () => {
    const started = performance.now();
    await worker.load(guardConfig(2));
    assert.ok(performance.now() - started < REPLY_TIMEOUT_MS + 5000, 'bounded by the reply timeout');
    assert.equal(await gate(worker, '192.0.2.1'), 'pass');
    assert.equal(blocking(await worker.command({ op: 'fail', n: 2, from: '192.0.2.1' }), '192.0.2.1'), 1);
    assert.equal(await gate(worker, '192.0.2.1'), 'too_many_failures');
  });
});

/** One end of a worker's channel as the primary sees it, driven by the test: what it receives, and what it "sends". */
class FakeWorker extends EventEmitter implements WorkerChannel {
  readonly received: PrimaryMessage[] = [];

  send(message: PrimaryMessage, _handle: undefined, callback: (error: Error | null) => void): boolean {
    this.received.push(message);
    callback(null);
    return true;
  }

  tell(message: Record<string, unknown>): void {
    this.emit('message', { t: STATE_TAG, ...message });
  }

  /** The blocks in force the primary answers with to a question `id`, or undefined when it did not answer. */
  ask(id: number, guard = 'bruteForce', maxEntries: unknown = 100): readonly WireBlock[] | undefined {
    this.tell({ op: 'blocks-in-force', id, guard, maxEntries });
    const answer = this.received.find((m) => m.op === 'blocks-in-force' && m.id === id);
    return answer?.op === 'blocks-in-force' ? answer.blocks : undefined;
  }

  get notices(): number {
    return this.received.filter((m) => m.op === 'block').length;
  }
}

describe('the blocks the primary keeps for workers that start later', () => {
  const NOW = 1_000_000_000;
  const fresh = (): { host: HostState; clock: ManualClock; a: FakeWorker; b: FakeWorker } => {
    const clock = new ManualClock(NOW);
    const host = new HostState({ logger: createLogger('silent'), clock });
    const a = new FakeWorker();
    const b = new FakeWorker();
    host.attach(a);
    host.attach(b);
    return { host, clock, a, b };
  };
  const block = (source: string | null, untilMs = NOW + 60_000, extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ op: 'block', guard: 'bruteForce', kind: 'ip', source, untilMs, maxEntries: 100, ...extra });

  it('passes a block on to the other workers and answers a later worker with every block in force, until each ends', async () => {
    const { host, clock, a, b } = fresh();
    a.tell(block('192.0.2.1'));
    a.tell(block('192.0.2.2', NOW + 10_000));
    a.tell(block(null, NOW + 30_000, { kind: 'credential' }));
    assert.equal(b.notices, 3);
    assert.equal(a.notices, 0, 'not back to the worker that started it');
    const late = new FakeWorker();
    host.attach(late);
    assert.deepEqual(late.ask(1), [['ip', '192.0.2.1', NOW + 60_000], ['ip', '192.0.2.2', NOW + 10_000], ['credential', null, NOW + 30_000]]);
    clock.advance(30_000);
    assert.deepEqual(late.ask(2), [['ip', '192.0.2.1', NOW + 60_000]], 'ended blocks are not told');
    assert.deepEqual(late.ask(3, 'another channel'), [], 'blocks are kept per channel');
    await host.close();
  });

  it('drops block notices and questions no guard sends, and keeps the others', async () => {
    const { host, a, b } = fresh();
    const malformed: Record<string, unknown>[] = [
      block('192.0.2.1', NOW + 60_000, { kind: 'other' }),
      block('192.0.2.1', NOW + 60_000, { kind: undefined }),
      { ...block('192.0.2.1'), source: 5 },
      block(''),
      block('x'.repeat(MAX_BLOCK_SOURCE_LENGTH + 1)),
      block('192.0.2.1', Number.NaN),
      { ...block('192.0.2.1'), untilMs: '9999999999999' },
      { ...block('192.0.2.1'), guard: undefined },
      { ...block('192.0.2.1'), guard: 'g'.repeat(1000) },
      { ...block('192.0.2.1'), guard: '' },
    ];
    for (const m of malformed) a.tell(m);
    assert.equal(b.notices, 0, 'none passed on');
    for (const [id, maxEntries] of [[1, -1], [2, 0], [3, 1e12], [4, 'many'], [5, 1.5]] as const) assert.equal(a.ask(id, 'bruteForce', maxEntries), undefined, `room ${maxEntries}: not answered`);
    a.tell({ op: 'blocks-in-force', id: 'x', guard: 'bruteForce', maxEntries: 100 });
    assert.equal(a.received.length, 0);
    // A well-formed block whose room is not a count is kept, with the default room.
    a.tell(block('192.0.2.9', NOW + 60_000, { maxEntries: 'lots' }));
    assert.equal(b.notices, 1);
    assert.deepEqual(a.ask(6), [['ip', '192.0.2.9', NOW + 60_000]]);
    await host.close();
  });

  it('is bounded: room for the most any worker asked per kind, then the overflow block; at most MAX_BLOCK_CHANNELS channels', async () => {
    const { host, a, b } = fresh();
    assert.deepEqual(a.ask(1, 'bruteForce', 100), []);
    for (let i = 0; i < 150; i++) a.tell(block(`10.0.0.${i}`, NOW + 60_000 + i, { maxEntries: 100 }));
    let kept = a.ask(2) ?? [];
    assert.equal(kept.filter((k) => k[1] !== null).length, 100, 'room for 100');
    assert.deepEqual(kept.filter((k) => k[1] === null), [['ip', null, NOW + 60_000 + 149]], 'the others are the overflow block: fail closed');
    // A guard with more room asks: the blocks in force are kept, and there is room for more.
    assert.equal(a.ask(3, 'bruteForce', 1000)?.length, 101);
    for (let i = 0; i < 150; i++) a.tell(block(`10.0.1.${i}`, NOW + 70_000, { maxEntries: 1000 }));
    kept = a.ask(4) ?? [];
    assert.equal(kept.filter((k) => k[1] !== null).length, 250);

    for (let i = 0; i < MAX_BLOCK_CHANNELS + 3; i++) a.tell({ ...block('192.0.2.1'), guard: `channel-${i}` });
    assert.equal(b.notices, 300 + MAX_BLOCK_CHANNELS + 3, 'every well-formed block is passed on');
    assert.deepEqual(a.ask(5, `channel-${MAX_BLOCK_CHANNELS + 2}`), [], 'past the bound, a channel\'s blocks are not kept');
    assert.equal(a.ask(6, 'channel-0')?.length, 1);
    await host.close();
  });
});

describe('an embedded quota on two workers', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-host-quota-'));
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock() });
  let workers: TestWorker[] = [];

  before(async () => { workers = await forkWorkers(2, host); });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(host)));
    await host.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('admits exactly its limit across both, counted by one store in the primary that writes the count when the workers are gone', async () => {
    const yaml = toYaml({
      dataDir,
      upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
      quotas: { daily: { limit: 10, period: 'day', by: ['ip'] } },
      routes: [{ name: 'q', match: { path: '/' }, upstream: 'app', public: true, quota: 'daily' }],
    });
    await Promise.all(workers.map((w) => w.load(yaml)));
    const results = await Promise.all(workers.map((w) => w.run('q', 15)));
    assert.deepEqual(tally(results.flat()), { pass: 10, quota_exceeded: 20 });
    assert.equal(host.storeKeys.length, 1, 'one store for the quota');
    await Promise.all(workers.map((w) => w.stop(host)));
    assert.deepEqual(host.storeKeys, [], 'stopped (and written) once no worker uses it');
    const db = new Database(join(dataDir, 'quotas', 'quotas.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT used FROM quota_usage').all(), [{ used: 10 }]);
    } finally {
      db.close();
    }
  });
});
