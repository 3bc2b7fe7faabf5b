// In-process limits across the workers of one host: two real worker processes (node:cluster) each
// compile the config with their primary's state client and send requests through the compiled
// rate-limit stages at once; this process is the primary and holds the stores (HostState). The
// primary's clock stands still, so no window edge or refill falls inside a test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ALGORITHMS } from '../src/ratelimit/algorithms.js';
import { MemoryLimitStore } from '../src/ratelimit/memory-store.js';
import { createLogger } from '../src/observability/logger.js';
import { HostState } from '../src/workers/host-state.js';
import { MAX_PENDING_CALLS, REPLY_TIMEOUT_MS } from '../src/workers/host-state-client.js';
import type { Outcome } from './fixtures/host-state-worker.js';
import { forkWorkers, tally, type TestWorker } from './fixtures/host-state-workers.js';
import { toYaml } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';

const LIMIT = 20;
const PER_WORKER = 30;

type Limits = Record<string, Record<string, unknown>>;

/** A config whose route `<name>` is public and counts against the limit `<name>`. */
function config(dataDir: string, limits: Limits, rateLimiting: Record<string, unknown> = {}): string {
  return toYaml({
    dataDir,
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    rateLimiting,
    rateLimits: limits,
    routes: Object.keys(limits).map((name) => ({ name, match: { path: `/${name}` }, upstream: 'app', public: true, rateLimit: name })),
  });
}

const limit = (algorithm: string, n = LIMIT): Record<string, unknown> => ({
  algorithm, limit: n, per: '1h', by: ['ip'], ...(algorithm === 'token-bucket' || algorithm === 'gcra' ? { burst: n } : {}),
});

/** Both workers send `n` requests each, at once. */
async function together(workers: readonly TestWorker[], route: string, n: number, from?: string): Promise<Record<string, number>> {
  const results = await Promise.all(workers.map((w) => w.run(route, n, from)));
  return tally(results.flat());
}

describe('memory limits on two workers: exact, batched, and held while used', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-host-state-'));
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock() });
  let workers: TestWorker[] = [];

  before(async () => {
    workers = await forkWorkers(2, host);
    const yaml = config(dataDir, { ...Object.fromEntries(ALGORITHMS.map((a) => [a, limit(a)])), wide: limit('fixed-window', 100_000) });
    await Promise.all(workers.map((w) => w.load(yaml)));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(host)));
    await host.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: exactly ${LIMIT} of ${2 * PER_WORKER} concurrent requests from two workers are admitted`, async () => {
      assert.deepEqual(await together(workers, algorithm, PER_WORKER), { pass: LIMIT, rate_limited: 2 * PER_WORKER - LIMIT });
    });
  }

  it('the primary holds one table per limit, under the key one process would give it', () => {
    for (const algorithm of ALGORITHMS) assert.ok(host.storeKeys.includes(MemoryLimitStore.keyOf(`limit:${algorithm}`, 100_000)), algorithm);
  });

  it('every hit of one turn travels in one message, answered by one message', async () => {
    const [worker] = workers as [TestWorker];
    const batchesBefore = worker.batches.length;
    const repliesBefore = await worker.command<number>({ op: 'replies' });
    const outcomes = await worker.run('wide', 500);
    assert.deepEqual(tally(outcomes), { pass: 500 });
    assert.deepEqual(worker.batches.slice(batchesBefore), [500], 'one batch of 500 calls');
    assert.equal(await worker.command<number>({ op: 'replies' }), repliesBefore + 1, 'one reply');
  });

  it('hits from separate callbacks of one event-loop phase (requests on different connections) share a batch', async () => {
    const [worker] = workers as [TestWorker];
    const batchesBefore = worker.batches.length;
    const outcomes = await worker.command<Outcome[]>({ op: 'run', route: 'wide', stage: 'rate-limit', n: 50, from: '192.0.2.2', spread: true });
    assert.deepEqual(tally(outcomes), { pass: 50 });
    assert.deepEqual(worker.batches.slice(batchesBefore), [50]);
  });

  it('with Redis unreachable, a failOpen limit admits its limit on the host, not on each worker: its stand-in is in the primary too', async () => {
    const port = await closedPort();
    const yaml = config(dataDir, { open: { ...limit('fixed-window', 5), store: 'redis', onStoreError: 'failOpen' } }, {
      redis: { url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 200 },
    });
    await Promise.all(workers.map((w) => w.load(yaml)));
    assert.deepEqual(await together(workers, 'open', 8), { pass: 5, rate_limited: 11 });
    assert.ok(host.storeKeys.includes(MemoryLimitStore.keyOf('fallback:open', 100_000)));
  });

  const kept = config(dataDir, { a: limit('fixed-window', 10) });
  const key = MemoryLimitStore.keyOf('limit:a', 100_000);

  it('a reload that keeps a limit keeps its counts; a store no worker uses is stopped; using it again starts afresh', async () => {
    const [w0, w1] = workers as [TestWorker, TestWorker];
    await Promise.all(workers.map((w) => w.load(kept)));
    assert.deepEqual(await together(workers, 'a', 3), { pass: 6 });

    await w0.load(config(dataDir, { a: limit('fixed-window', 10), b: limit('fixed-window', 10) }));
    assert.deepEqual(tally(await w0.run('a', 5)), { pass: 4, rate_limited: 1 }, 'the reloaded worker continues the shared count');
    assert.deepEqual(tally(await w1.run('a', 1)), { rate_limited: 1 });

    const without = config(dataDir, { b: limit('fixed-window', 10) });
    await w0.load(without);
    assert.ok(host.storeKeys.includes(key), 'still used by the other worker');
    await w1.load(without);
    assert.ok(!host.storeKeys.includes(key), 'stopped once no worker uses it');

    await w0.load(kept);
    assert.deepEqual(tally(await w0.run('a', 11)), { pass: 10, rate_limited: 1 }, 'a new table');
  });

  it('a worker that exits releases its stores', async () => {
    const [w0, w1] = workers as [TestWorker, TestWorker];
    await w1.load(config(dataDir, { b: limit('fixed-window', 10) }));
    assert.ok(host.storeKeys.includes(key));
    await w0.stop(host);
    assert.ok(!host.storeKeys.includes(key));
    assert.ok(host.storeKeys.includes(MemoryLimitStore.keyOf('limit:b', 100_000)), 'the other worker\'s stores stay');
  });
});

describe('a worker whose primary does not answer fails closed within the bound', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-host-state-'));
  const host = new HostState({ logger: createLogger('silent'), clock: new ManualClock() });
  let worker: TestWorker;

  before(async () => {
    [worker] = await forkWorkers(1, host) as [TestWorker];
    const port = await closedPort();
    await worker.load(config(dataDir, { a: limit('fixed-window', 10), open: { ...limit('fixed-window', 5), store: 'redis', onStoreError: 'failOpen' } }, {
      redis: { url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 200 },
    }));
    host.detach(worker.worker); // still connected, never answered
  });
  after(async () => {
    await worker.stop(host);
    await host.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`the primary silent: hits fail as unavailable after ${REPLY_TIMEOUT_MS} ms, and past ${MAX_PENDING_CALLS} waiting at once`, async () => {
    const outcomes = await worker.run('a', MAX_PENDING_CALLS + 5);
    assert.deepEqual(tally(outcomes), { rate_limit_unavailable: MAX_PENDING_CALLS + 5 }, 'fail closed: 503');
    assert.deepEqual(tally(outcomes, (o) => o.reason.replace(/\d+/g, 'N')), {
      'a: the primary did not answer within N ms (fail closed)': MAX_PENDING_CALLS,
      'a: the primary has N decisions unanswered (fail closed)': 5,
    });
  });

  it('the channel closed: waiting hits and later ones fail at once (a failOpen stand-in too), and the worker lives on to exit cleanly', async () => {
    assert.equal(await worker.command({ op: 'orphan', routes: ['a', 'open'], stage: 'rate-limit', n: 3, from: '192.0.2.1' }), 'sent');
    const exited = worker.exited();
    worker.worker.disconnect();
    assert.equal(await exited, 0, `exit code (stderr: ${worker.stderr})`);
    const printed = JSON.parse(worker.stdout) as { during: Outcome[]; after: Outcome[] };
    // Redis down and the stand-in unreachable: the limit fails closed, naming Redis's failure.
    const open = (o: Outcome): string => (o.code === 'rate_limit_unavailable' && /^open: redis .* \(fail closed\)$/.test(o.reason) ? 'open: redis … (fail closed)' : o.reason);
    const expected = { 'a: the primary is gone (IPC channel closed) (fail closed)': 3, 'open: redis … (fail closed)': 3 };
    assert.deepEqual(tally(printed.during, open), expected);
    assert.deepEqual(tally(printed.after, open), expected);
    assert.ok([...printed.during, ...printed.after].every((o) => o.code === 'rate_limit_unavailable'));
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
