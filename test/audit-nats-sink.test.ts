// The NATS JetStream sink against a real nats-server: every record is stored once, in chain order,
// with its hash as Nats-Msg-Id; a server killed mid-load and restarted loses nothing and stores no
// duplicate, the spool stays within its bound, and the sink recovers by itself; a full spool makes
// a fail-closed sink report failing and a fail-open one count its drops.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsSink } from '../src/audit/sinks/nats-sink.js';
import type { LinkedEntry } from '../src/audit/sinks/sink.js';
import type { SinkMetrics, SinkOutcome } from '../src/audit/sinks/sink-metrics.js';
import { NATS_SINK_DEFAULTS, type NatsSinkOptions } from '../src/config/compile-audit-sinks.js';
import { systemClock } from '../src/lib/clock.js';
import { OperatorError } from '../src/lib/operator-error.js';
import { createLogger } from '../src/observability/logger.js';
import { waitUntil } from './harness/assertions.js';
import { chainOf } from './harness/linked-records.js';
import { startNats } from './harness/nats.js';

const started = await startNats();
const skip = typeof started === 'string' ? started : false;
const nats = typeof started === 'string' ? null : started;

class CountingMetrics implements SinkMetrics {
  readonly counts = new Map<SinkOutcome, number>();
  maxSpool = 0;
  sinkRecords(_sink: string, outcome: SinkOutcome, count: number): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + count);
  }
  spoolBytes(_sink: string, bytes: number): void {
    this.maxSpool = Math.max(this.maxSpool, bytes);
  }
}

let n = 0;
function options(over: Partial<NatsSinkOptions> = {}): NatsSinkOptions {
  n++;
  return {
    servers: nats?.url ?? '', stream: `AUDIT_T${n}`, subject: `t${n}.audit`, createStream: true,
    duplicateWindowMs: 120_000, spoolMaxBytes: NATS_SINK_DEFAULTS.spoolMaxBytes, ackTimeoutMs: 1000, maxInFlight: 64, onFailure: 'failClosed', ...over,
  };
}

/** One record as the stream stores it: a message holds consecutive records of one chain, one per line. */
interface Stored { subject: string; msgId: string | undefined; line: string; hash: string; first: boolean }

async function readStream(stream: string): Promise<Stored[]> {
  const nc = await connect({ servers: nats?.url ?? '' });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const out: Stored[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (m === null) continue;
      m.string().split('\n').filter((l) => l !== '').forEach((line, i) => {
        out.push({ subject: m.subject, msgId: m.header.get('Nats-Msg-Id'), line, hash: (JSON.parse(line) as { hash: string }).hash, first: i === 0 });
      });
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe('NATS JetStream sink', { skip }, () => {
  const dirs: string[] = [];
  const logger = createLogger('silent', new PassThrough());
  const spoolPath = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'portcullis-nats-sink-'));
    dirs.push(d);
    return join(d, 'audit', 'spool', 'gw-1', 'main.log');
  };
  after(async () => {
    await nats?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('stores every record once, in order, on <subject>.<chain>, each message under the hash of its first record as Nats-Msg-Id', async () => {
    const o = options();
    const metrics = new CountingMetrics();
    const sink = new NatsSink(o, { spoolPath: spoolPath(), logger, clock: systemClock, metrics });
    await sink.start();
    const entries = chainOf('gw-1/main', 300);
    for (const e of entries) assert.equal(sink.accept(e), true);
    await sink.flushed();
    // The same records again (a writer that re-sends after a lost ack): de-duplicated by the stream.
    for (const e of entries.slice(0, 50)) sink.accept(e);
    await sink.flushed();
    await sink.close();
    const stored = await readStream(o.stream);
    assert.equal(stored.length, 300);
    stored.forEach((s, i) => {
      const e = entries[i] as LinkedEntry;
      assert.equal(s.subject, `${o.subject}.gw-1.main`);
      assert.equal(s.line, e.line.slice(0, -1));
      if (s.first) assert.equal(s.msgId, e.hash, 'a message is identified by its first record');
    });
    assert.ok(stored.filter((s) => s.first).length < 300 / 4, 'records travel several to a message');
    assert.equal(metrics.counts.get('delivered'), 300);
    assert.equal(metrics.counts.get('duplicate'), 50);
    assert.equal(sink.dropped, 0);
    assert.equal(sink.state, 'closed');
  });

  it('loses nothing and stores no duplicate when the server is killed mid-load and restarted', async () => {
    assert.ok(nats);
    const spoolMaxBytes = 512 * 1024;
    const o = options({ spoolMaxBytes, ackTimeoutMs: 500 });
    const metrics = new CountingMetrics();
    const path = spoolPath();
    const sink = new NatsSink(o, { spoolPath: path, logger, clock: systemClock, metrics });
    await sink.start();
    const entries = chainOf('edge.example.com/w1', 1200);
    for (const e of entries.slice(0, 400)) sink.accept(e);
    // Mid-load: the server dies while publishes wait for their acknowledgements.
    const killed = nats.kill();
    for (const [i, e] of entries.slice(400, 900).entries()) {
      assert.equal(sink.accept(e), true);
      // Now and then let the sink work, so records arrive while it writes the spool.
      if (i % 10 === 0) await new Promise((done) => setImmediate(done));
    }
    await killed;
    await waitUntil('the records are in the spool', () => sink.spooledBytes > 0 && !sink.connected);
    await sink.flushed();
    assert.ok(statSync(path).size <= spoolMaxBytes, 'the spool file stays within spool.maxBytes');
    await nats.restart();
    for (const [i, e] of entries.slice(900).entries()) {
      sink.accept(e);
      if (i % 10 === 0) await new Promise((done) => setImmediate(done));
    }
    await waitUntil('the spool is published and empty', () => sink.spooledBytes === 0 && sink.connected, 30_000);
    await sink.flushed();
    assert.equal(sink.state, 'ok');
    await sink.close();
    assert.ok(metrics.maxSpool <= spoolMaxBytes, `spool peaked at ${metrics.maxSpool} bytes`);
    const stored = await readStream(o.stream);
    const hashes = stored.map((s) => s.hash);
    assert.equal(new Set(hashes).size, hashes.length, 'no record is stored twice');
    const missing = entries.filter((e) => !hashes.includes(e.hash)).map((e) => e.seq);
    assert.deepEqual(missing, [], 'every record is stored');
    for (const s of stored) assert.equal(s.subject, `${o.subject}.edge.example.com.w1`);
    assert.equal(sink.dropped, 0);
  });

  it('publishes at its next start what a previous run left in the spool', async () => {
    assert.ok(nats);
    const o = options({ servers: 'nats://127.0.0.1:1', ackTimeoutMs: 200 });
    const path = spoolPath();
    const first = new NatsSink(o, { spoolPath: path, logger, clock: systemClock });
    await first.start();
    const entries = chainOf('gw-1/main', 40);
    for (const e of entries) first.accept(e);
    await first.flushed();
    await first.close();
    assert.ok(statSync(path).size > 0);
    const second = new NatsSink({ ...o, servers: nats.url }, { spoolPath: path, logger, clock: systemClock });
    await second.start();
    await waitUntil('the old spool is published', () => second.spooledBytes === 0 && second.connected, 20_000);
    await second.close();
    assert.deepEqual((await readStream(o.stream)).map((s) => s.hash), entries.map((e) => e.hash));
  });

  for (const onFailure of ['failClosed', 'failOpen'] as const) {
    it(`${onFailure}: a full spool makes the sink report failing and count what it drops`, async () => {
      const o = options({ servers: 'nats://127.0.0.1:1', ackTimeoutMs: 200, spoolMaxBytes: 8192, onFailure });
      const metrics = new CountingMetrics();
      const sink = new NatsSink(o, { spoolPath: spoolPath(), logger, clock: systemClock, metrics });
      await sink.start();
      const entries = chainOf('gw-1/main', 200);
      // The first record finds the server gone: from then on records go to the spool.
      assert.equal(sink.accept(entries.shift() as LinkedEntry), true);
      await sink.flushed();
      assert.ok(sink.spooledBytes > 0);
      let refused = 0;
      for (const e of entries) {
        if (!sink.accept(e)) refused++;
        if (sink.state !== 'ok' && onFailure === 'failClosed' && refused > 0) break;
      }
      await sink.flushed();
      assert.ok(refused > 0);
      assert.equal(sink.state, 'failing');
      assert.equal(sink.onFailure, onFailure);
      assert.equal(sink.dropped, refused);
      assert.equal(metrics.counts.get('dropped'), refused);
      assert.ok(sink.spooledBytes <= 8192);
      await sink.close();
    });
  }
});

describe('NATS sink without a server', () => {
  it('refuses to start, naming the spool, when the spool cannot be created', async () => {
    const d = mkdtempSync(join(tmpdir(), 'portcullis-nats-sink-'));
    try {
      writeFileSync(join(d, 'audit'), 'a file where the spool directory should be');
      const sink = new NatsSink(options({ servers: 'nats://127.0.0.1:1' }), { spoolPath: join(d, 'audit', 'spool', 'gw-1', 'main.log'), logger: createLogger('silent', new PassThrough()), clock: systemClock });
      await assert.rejects(sink.start(), (e: unknown) => e instanceof OperatorError && e.message.includes('spool'));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('starts, spools and never throws from accept when the server is unreachable', async () => {
    const d = mkdtempSync(join(tmpdir(), 'portcullis-nats-sink-'));
    try {
      const sink = new NatsSink(options({ servers: 'nats://127.0.0.1:1', ackTimeoutMs: 100 }), { spoolPath: join(d, 's.log'), logger: createLogger('silent', new PassThrough()), clock: systemClock });
      await sink.start();
      for (const e of chainOf('gw-1/main', 10)) assert.equal(sink.accept(e), true);
      await sink.flushed();
      assert.equal(sink.state, 'ok');
      assert.ok(sink.spooledBytes > 0);
      await sink.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
