// The HTTP batch sink against a real collector on loopback: batches of batchRecords records of one
// chain, each a JSON array with X-Portcullis-Batch naming its chain and seq range; 503 with
// Retry-After waits as told (on the injected clock); back-off is bounded; a 400 drops the batch and
// says so; a collector down then up loses nothing; a slow collector never holds up accept().
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { HttpSink, parseRetryAfter, retryDelayMs } from '../src/audit/sinks/http-sink.js';
import type { LinkedEntry } from '../src/audit/sinks/sink.js';
import { HTTP_SINK_DEFAULTS, type HttpSinkOptions } from '../src/config/compile-audit-sinks.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { waitUntil } from './harness/assertions.js';
import { chainOf } from './harness/linked-records.js';
import { ManualClock } from './harness/manual-clock.js';

interface Received { headers: IncomingMessage['headers']; records: Record<string, unknown>[] }
type Answer = (req: Received, res: ServerResponse) => void;

/** A collector that records every POST and answers as `answer` says (200 by default). */
class Collector {
  readonly received: Received[] = [];
  answer: Answer = (_r, res) => { res.writeHead(200).end(); };
  private constructor(private server: Server, public port: number) {}

  static async start(port = 0): Promise<Collector> {
    let self: Collector | null = null;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const got: Received = { headers: req.headers, records: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>[] };
        self?.received.push(got);
        self?.answer(got, res);
      });
    });
    await new Promise<void>((done) => server.listen(port, '127.0.0.1', done));
    self = new Collector(server, (server.address() as AddressInfo).port);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/ingest`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

const logger = createLogger('silent', new PassThrough());

function options(url: string, over: Partial<HttpSinkOptions> = {}): HttpSinkOptions {
  return { url, shownUrl: url, headers: {}, ...HTTP_SINK_DEFAULTS, onFailure: 'failClosed', ...over };
}

const seqs = (r: Received): number[] => r.records.map((x) => x['seq'] as number);

describe('HTTP batch sink', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => { for (const c of cleanup) await c(); });

  it('sends batches of batchRecords as JSON arrays, with X-Portcullis-Batch and the configured headers', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    const sink = new HttpSink(options(c.url, { batchRecords: 100, headers: { Authorization: 'Bearer siem-secret' } }), { logger, clock: systemClock });
    await sink.start();
    const entries = chainOf('gw-1/main', 250);
    for (const e of entries) assert.equal(sink.accept(e), true);
    await sink.flushed();
    await sink.close();
    assert.deepEqual(c.received.map((r) => r.records.length), [100, 100, 50]);
    assert.deepEqual(c.received.map((r) => r.headers['x-portcullis-batch']), ['gw-1/main:1-100', 'gw-1/main:101-200', 'gw-1/main:201-250']);
    for (const r of c.received) {
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers.authorization, 'Bearer siem-secret');
    }
    assert.deepEqual(c.received.flatMap((r) => r.records), entries.map((e) => JSON.parse(e.line) as unknown));
    assert.equal(sink.dropped, 0);
  });

  it('keeps one chain per batch', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    const sink = new HttpSink(options(c.url), { logger, clock: systemClock });
    await sink.start();
    const a = chainOf('gw-1/w1', 3);
    const b = chainOf('gw-1/w2', 2);
    for (const e of [...a, ...b]) sink.accept(e);
    await sink.flushed();
    await sink.close();
    assert.deepEqual(c.received.map((r) => r.headers['x-portcullis-batch']), ['gw-1/w1:1-3', 'gw-1/w2:1-2']);
  });

  it('waits batchIntervalMs for a batch to fill', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    const clock = new ManualClock();
    const sink = new HttpSink(options(c.url, { batchIntervalMs: 1000 }), { logger, clock });
    await sink.start();
    for (const e of chainOf('gw-1/main', 5)) sink.accept(e);
    await new Promise((done) => setImmediate(done));
    assert.equal(c.received.length, 0, 'not sent before the interval');
    clock.advance(1000);
    await waitUntil('the batch arrives', () => c.received.length === 1);
    assert.equal(c.received[0]?.records.length, 5);
    await sink.close();
  });

  it('retries a 503 after its Retry-After, on the injected clock, and then delivers', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    let refusals = 2;
    c.answer = (_r, res) => {
      if (refusals-- > 0) res.writeHead(503, { 'retry-after': '7' }).end();
      else res.writeHead(204).end();
    };
    const clock = new ManualClock();
    const sink = new HttpSink(options(c.url, { retryInitialMs: 100, retryMaxMs: 60_000 }), { logger, clock });
    await sink.start();
    const entries = chainOf('gw-1/main', 10);
    for (const e of entries) sink.accept(e);
    await sink.flushed();
    assert.equal(c.received.length, 1);
    assert.equal(sink.state, 'failing');
    clock.advance(6999);
    await new Promise((done) => setImmediate(done));
    assert.equal(c.received.length, 1, 'not before Retry-After');
    clock.advance(1);
    await waitUntil('the second attempt', () => c.received.length === 2);
    await sink.flushed();
    clock.advance(7000);
    await waitUntil('the third attempt', () => c.received.length === 3);
    await sink.flushed();
    assert.equal(sink.state, 'ok');
    for (const r of c.received) assert.equal(r.headers['x-portcullis-batch'], 'gw-1/main:1-10', 'a retry is the same batch');
    assert.equal(sink.dropped, 0);
    await sink.close();
  });

  it('drops a batch the collector refuses with 400, counts it, and reports failing until the next delivery', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    c.answer = (r, res) => { res.writeHead(seqs(r)[0] === 1 ? 400 : 200).end(); };
    const sink = new HttpSink(options(c.url, { batchRecords: 5 }), { logger, clock: systemClock });
    await sink.start();
    const entries = chainOf('gw-1/main', 5);
    for (const e of entries) sink.accept(e);
    await sink.flushed();
    assert.equal(sink.dropped, 5);
    assert.equal(sink.state, 'failing');
    for (const e of chainOf('gw-1/main', 10).slice(5)) sink.accept(e);
    await sink.flushed();
    assert.equal(sink.state, 'ok');
    assert.deepEqual(c.received.map(seqs), [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]);
    await sink.close();
  });

  it('loses nothing when the collector is down and comes back', async () => {
    const first = await Collector.start();
    const port = first.port;
    await first.stop();
    const sink = new HttpSink(options(`http://127.0.0.1:${port}/ingest`, { batchRecords: 50, retryInitialMs: 10, retryMaxMs: 50 }), { logger, clock: systemClock });
    await sink.start();
    const entries = chainOf('gw-1/main', 220);
    for (const e of entries.slice(0, 120)) sink.accept(e);
    await sink.flushed();
    assert.equal(sink.state, 'failing');
    const back = await Collector.start(port);
    cleanup.push(() => back.stop());
    for (const e of entries.slice(120)) sink.accept(e);
    await waitUntil('every record is delivered', () => back.received.reduce((n, r) => n + r.records.length, 0) >= 220, 20_000);
    await sink.flushed();
    assert.deepEqual(back.received.flatMap(seqs), entries.map((e) => e.seq));
    assert.equal(sink.state, 'ok');
    assert.equal(sink.dropped, 0);
    await sink.close();
  });

  it('never holds up accept() on a slow collector; past maxQueueBytes records are dropped and counted', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    const held: ServerResponse[] = [];
    c.answer = (_r, res) => { held.push(res); };
    const sink = new HttpSink(options(c.url, { batchRecords: 10, maxQueueBytes: 65536, timeoutMs: 60_000 }), { logger, clock: systemClock });
    await sink.start();
    const entries = chainOf('gw-1/main', 2000);
    for (const e of entries.slice(0, 10)) sink.accept(e);
    await waitUntil('the first batch is held', () => held.length === 1);
    let accepted = 0;
    for (const e of entries.slice(10)) if (sink.accept(e)) accepted++;
    assert.ok(accepted > 0 && accepted < 1990, `accepted ${accepted}`);
    assert.equal(sink.dropped, 1990 - accepted);
    assert.ok(sink.queuedBytes <= 65536);
    assert.equal(sink.state, 'backlogged');
    for (const res of held) res.writeHead(200).end();
    c.answer = (_r, res) => { res.writeHead(200).end(); };
    await sink.flushed();
    await sink.close();
    assert.equal(c.received.reduce((n, r) => n + r.records.length, 0), 10 + accepted);
  });

  it('retries a batch the collector does not answer within timeoutMs', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    let first = true;
    c.answer = (_r, res) => {
      if (first) first = false;
      else res.writeHead(200).end();
    };
    const sink = new HttpSink(options(c.url, { timeoutMs: 200, retryInitialMs: 10, retryMaxMs: 20 }), { logger, clock: systemClock });
    await sink.start();
    for (const e of chainOf('gw-1/main', 3)) sink.accept(e);
    await waitUntil('the batch is sent again and delivered', () => c.received.length === 2 && sink.queuedBytes === 0);
    assert.equal(sink.state, 'ok');
    await sink.close();
  });

  for (const status of [401, 302, 413]) {
    it(`treats ${status} as permanent: dropped, counted, not sent again`, async () => {
      const c = await Collector.start();
      cleanup.push(() => c.stop());
      c.answer = (_r, res) => { res.writeHead(status, status === 302 ? { location: 'http://127.0.0.1:1/elsewhere' } : {}).end(); };
      const sink = new HttpSink(options(c.url), { logger, clock: systemClock });
      await sink.start();
      for (const e of chainOf('gw-1/main', 4)) sink.accept(e);
      await sink.flushed();
      assert.equal(c.received.length, 1);
      assert.equal(sink.dropped, 4);
      assert.equal(sink.state, 'failing');
      await sink.close();
    });
  }

  it('names a chain that is not plain ASCII in X-Portcullis-Batch without breaking the request', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    const sink = new HttpSink(options(c.url), { logger, clock: systemClock });
    await sink.start();
    for (const e of chainOf('gw-é\r\n%/main', 2)) sink.accept(e);
    await sink.flushed();
    await sink.close();
    assert.equal(c.received[0]?.headers['x-portcullis-batch'], 'gw-%C3%A9%0D%0A%25/main:1-2');
  });

  it('hands a queued record over on close, and drops and counts what the collector cannot take', async () => {
    const c = await Collector.start();
    cleanup.push(() => c.stop());
    c.answer = (_r, res) => { res.writeHead(500).end(); };
    const sink = new HttpSink(options(c.url, { retryInitialMs: 60_000 }), { logger, clock: systemClock });
    await sink.start();
    for (const e of chainOf('gw-1/main', 3)) sink.accept(e);
    await sink.flushed();
    await sink.close();
    assert.equal(sink.dropped, 3);
    assert.equal(sink.state, 'closed');
    assert.equal(sink.accept(chainOf('gw-1/main', 1)[0] as LinkedEntry), false);
  });
});

describe('HTTP sink back-off', () => {
  it('doubles from initialMs, with jitter in the upper half, and never passes maxMs', () => {
    for (let f = 0; f < 40; f++) {
      const base = Math.min(60_000, 500 * 2 ** f);
      for (const r of [0, 0.5, 0.999999]) {
        const d = retryDelayMs(f, 500, 60_000, r);
        assert.ok(d >= base / 2 && d <= base, `failure ${f}: ${d}`);
        assert.ok(d <= 60_000);
      }
    }
  });

  it('takes Retry-After within maxMs', () => {
    assert.equal(retryDelayMs(0, 500, 60_000, 0.5, 7000), 7000);
    assert.equal(retryDelayMs(0, 500, 60_000, 0.5, 86_400_000), 60_000);
    assert.equal(retryDelayMs(3, 500, 60_000, 0.5, 0), 0);
  });

  const now = Date.UTC(2026, 10, 30, 0, 0, 0);
  for (const [value, want] of [
    ['7', 7000], ['0', 0], [' 12 ', 12_000], ['Mon, 30 Nov 2026 00:00:30 GMT', 30_000], ['Mon, 30 Nov 2026 00:00:00 GMT', 0],
    ['-1', null], ['1.5', null], ['1e9', null], ['', null], ['soon', null], ['9999999999999', null], [null, null], ['999999999', 999_999_999_000], ['1700000000', null],
  ] as const) {
    it(`reads Retry-After ${JSON.stringify(value)} as ${String(want)}`, () => {
      assert.equal(parseRetryAfter(value, now), want);
    });
  }
});
