// Reading the trail back from the NATS stream: every record of every chain, the chain taken from
// its subject, in stream order; a message that is not a record is skipped and counted; follow mode
// sees records published after it began, until aborted. Credentials never appear in the name.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { natsSource } from '../src/audit/read/nats-source.js';
import type { SourceRecord } from '../src/audit/read/source.js';
import { NatsSink } from '../src/audit/sinks/nats-sink.js';
import { chainFromSubject, subjectFor } from '../src/audit/sinks/nats-subject.js';
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

describe('chain <-> subject', () => {
  for (const chain of ['gw-1/main', 'host.example.com/w3', 'odd name*>/w1', 'a..b/main', '.lead/main', 'x/y.z', '%41/main', 'solo']) {
    it(`maps ${JSON.stringify(chain)} to a valid subject and back`, () => {
      const subject = subjectFor('portcullis.audit', chain);
      assert.doesNotMatch(subject, /[\s*>]|\.\.|\.$/);
      assert.equal(chainFromSubject('portcullis.audit', subject), chain);
    });
  }
  it('names no chain for a subject outside the prefix or with an empty token', () => {
    assert.equal(chainFromSubject('portcullis.audit', 'other.gw-1.main'), null);
    assert.equal(chainFromSubject('portcullis.audit', 'portcullis.audit'), null);
    assert.equal(chainFromSubject('portcullis.audit', 'portcullis.audit.gw..main'), null);
    assert.equal(chainFromSubject('portcullis.audit', 'portcullis.audit.%E0.main'), null);
  });
});

describe('NATS record source', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-nats-source-'));
  after(async () => {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const logger = createLogger('silent', new PassThrough());
  const o: NatsSinkOptions = {
    servers: nats?.url ?? '', stream: 'AUDIT_SRC', subject: 'src.audit', createStream: true, duplicateWindowMs: 120_000,
    spoolMaxBytes: NATS_SINK_DEFAULTS.spoolMaxBytes, ackTimeoutMs: 2000, maxInFlight: 64, onFailure: 'failClosed',
  };

  async function publish(chain: string, from: number, count: number): Promise<void> {
    const sink = new NatsSink(o, { spoolPath: join(dir, `${chain.replace('/', '_')}.log`), logger, clock: systemClock });
    await sink.start();
    // Records accepted before the connection is up are spooled, and published from the spool once it is.
    for (const e of chainOf(chain, from + count).slice(from)) sink.accept(e);
    await sink.flushed();
    await waitUntil('the records are published, none left in the spool', () => sink.connected && sink.spooledBytes === 0);
    await sink.flushed();
    await sink.close();
  }

  async function collect(iterable: AsyncIterable<SourceRecord>, until?: (got: SourceRecord[]) => boolean): Promise<SourceRecord[]> {
    const got: SourceRecord[] = [];
    for await (const r of iterable) {
      got.push(r);
      if (until?.(got) === true) break;
    }
    return got;
  }

  it('yields every record with the chain its subject names, and skips what is not a record', async () => {
    await publish('gw-1/main', 0, 20);
    await publish('edge.example.com/w2', 0, 10);
    const nc = await connect({ servers: o.servers });
    const js = jetstream(nc);
    await js.publish('src.audit.gw-1.main', 'not json');
    await js.publish('src.audit.gw-1.main', '[1,2]');
    await nc.close();
    const source = natsSource(o.servers, { stream: o.stream, subject: o.subject });
    const got = await collect(source.records({ follow: false }));
    await source.close();
    assert.equal(got.length, 30, JSON.stringify({ chains: got.map((r) => r.chain), skipped: source.skipped }));
    assert.deepEqual(got.filter((r) => r.chain === 'gw-1/main').map((r) => r.record['seq']), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(got.filter((r) => r.chain === 'edge.example.com/w2').map((r) => r.record['seq']), Array.from({ length: 10 }, (_, i) => i + 1));
    for (const r of got) assert.match(String(r.record['requestId']), new RegExp(`^${r.chain.replace(/\./g, '\\.')} `), 'the chain its subject names');
    assert.equal(source.skipped, 2);
  });

  it('follows: sees records published after it began, until aborted', async () => {
    const source = natsSource(o.servers, { stream: o.stream, subject: o.subject, deliver: 'new' });
    const abort = new AbortController();
    const got: SourceRecord[] = [];
    const reading = (async () => {
      for await (const r of source.records({ follow: true, signal: abort.signal })) got.push(r);
    })();
    // The consumer starts on its own: probe records until one shows, then the records under test.
    let probes = 0;
    await waitUntil('the reader sees new records', async () => {
      await publish('probe/main', probes++, 1);
      return got.length > 0;
    });
    await publish('gw-2/main', 0, 5);
    await waitUntil('all followed records', () => got.filter((r) => r.chain === 'gw-2/main').length >= 5);
    abort.abort();
    await reading;
    await source.close();
    assert.deepEqual(got.filter((r) => r.chain === 'gw-2/main').map((r) => r.record['seq']), [1, 2, 3, 4, 5]);
    assert.ok(got.every((r) => r.chain === 'gw-2/main' || r.chain === 'probe/main'), 'no record from before it began');
  });

  it('reads from a time on with since', async () => {
    const source = natsSource(o.servers, { stream: o.stream, subject: o.subject });
    const got = await collect(source.records({ follow: false, since: Date.now() + 3_600_000 }));
    assert.equal(got.length, 0);
    const earlier = await collect(natsSource(o.servers, { stream: o.stream, subject: o.subject, since: Date.now() - 3_600_000 }).records({ follow: false }));
    assert.ok(earlier.filter((r) => r.chain === 'gw-1/main').length === 20);
    await source.close();
  });

  it('never shows credentials in its name, and refuses a URL that is not nats://', () => {
    const s = natsSource('nats://audit:hunter2@127.0.0.1:4222');
    assert.doesNotMatch(s.name, /hunter2|audit:/);
    assert.throws(() => natsSource('http://secret@127.0.0.1/'), (e: unknown) => e instanceof OperatorError && !e.message.includes('secret'));
  });
});
