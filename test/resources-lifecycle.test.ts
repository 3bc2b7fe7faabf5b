import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { ResourceSet, type Resource } from '../src/lifecycle/resources.js';
import { Metrics } from '../src/observability/metrics.js';
import { ManualClock } from './harness/manual-clock.js';
import { startGateway, toYaml } from './harness/gateway.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Gateway } from '../src/server/gateway.js';

/** A resource that records its life, to watch the lifecycle's order. */
class Recorded implements Resource {
  constructor(readonly key: string, private readonly log: string[], private readonly failStart = false) {}
  start(): Promise<void> {
    this.log.push(`start ${this.key}`);
    return this.failStart ? Promise.reject(new Error(`${this.key} cannot start`)) : Promise.resolve();
  }
  stop(): Promise<void> {
    this.log.push(`stop ${this.key}`);
    return Promise.resolve();
  }
}

const context = () => ({ logger: pino({ level: 'silent' }), clock: new ManualClock(), metrics: new Metrics() });

describe('one lifecycle for long-lived resources', () => {
  it('starts the new, swaps, and retires the old only after its last request left', async () => {
    const log: string[] = [];
    const set = new ResourceSet(context());
    const kept = new Recorded('kept', log);
    const first = await set.prepare([kept, new Recorded('old', log)]);
    first.enter(); // a request in flight on the first generation
    assert.equal(set.find('kept', Recorded), kept, 'a compile finds the running instance of an equal definition');
    const second = await set.prepare([set.find('kept', Recorded) ?? new Recorded('kept', log), new Recorded('new', log)]);
    assert.equal(set.active, second);
    const retired = set.retire(first);
    await Promise.resolve();
    assert.deepEqual(log, ['start kept', 'start old', 'start new'], 'nothing stops while a request still uses the old generation');
    first.leave();
    await retired;
    assert.deepEqual(log, ['start kept', 'start old', 'start new', 'stop old'], 'only what no newer generation uses is stopped');
    await set.stopAll();
    assert.deepEqual(log.slice(4).sort(), ['stop kept', 'stop new']);
  });

  it('a retirement finishing while a newer generation starts never stops what that generation reuses', async () => {
    const log: string[] = [];
    const set = new ResourceSet(context());
    const shared = new Recorded('shared', log);
    const first = await set.prepare([shared]);
    first.enter();
    await set.prepare([new Recorded('other', log)]); // a config without it: `shared` is to be retired
    const retired = set.retire(first);
    let release: () => void = () => undefined;
    const slow: Resource = { key: 'slow', start: () => new Promise<void>((done) => { release = done; }), stop: () => Promise.resolve() };
    // A third config takes `shared` back; its start is slow, and the old request leaves meanwhile.
    const third = set.prepare([set.find('shared', Recorded) ?? new Recorded('shared', log), slow]);
    first.leave();
    await retired;
    release();
    const generation = await third;
    assert.ok(generation.resources.has(shared));
    assert.equal(log.includes('stop shared'), false, 'the resource the third generation reuses was not stopped');
    await set.stopAll();
  });

  it('a reload before the gateway has started is refused, not half applied', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-early-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, toYaml({ dataDir: join(dir, 'data'), upstreams: { app: { targets: ['http://127.0.0.1:9'] } }, routes: [{ name: 'a', match: { path: '/**' }, upstream: 'app', public: true }] }));
    const gateway = await Gateway.fromFile(file, { logDestination: new PassThrough() });
    const result = await gateway.reload();
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.errors.join(' '), /still starting/);
  });

  it('a resource that fails to start leaves the running generation untouched', async () => {
    const log: string[] = [];
    const set = new ResourceSet(context());
    const running = await set.prepare([new Recorded('a', log)]);
    await assert.rejects(set.prepare([new Recorded('b', log), new Recorded('c', log, true)]), /c cannot start/);
    assert.equal(set.active, running);
    assert.deepEqual(log, ['start a', 'start b', 'start c', 'stop b']);
    assert.equal(set.find('b', Recorded), undefined);
    await set.stopAll();
  });

  it('an upstream pool whose settings a reload changes serves its requests in flight, then closes', async (t) => {
    const held: ServerResponse[] = [];
    let arrived: () => void = () => undefined;
    const upstream = createServer((_req, res) => { held.push(res); arrived(); });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const config = (timeoutMs: number) => ({
      upstreams: { app: { targets: [url], timeoutMs } },
      routes: [{ name: 'app', match: { path: '/**' }, upstream: 'app', public: true }],
    });
    const gw = await startGateway(config(5000));
    t.after(async () => { await gw.close(); upstream.closeAllConnections(); upstream.close(); });
    const old = gw.gateway.config.upstreamPools.get('app');
    assert.ok(old !== undefined);
    const count = 4;
    const all = new Promise<void>((done) => { arrived = () => { if (held.length === count) done(); }; });
    const inFlight = Array.from({ length: count }, (_, i) => fetch(`${gw.url}/r${i}`));
    await all;
    await gw.writeConfig(config(4000));
    const reloaded = await gw.gateway.reload();
    assert.ok(reloaded.ok && reloaded.changed);
    assert.notEqual(gw.gateway.config.upstreamPools.get('app'), old, 'the changed definition is a new pool');
    assert.equal(old.closed, false, 'the old pool stays open while its requests are in flight');
    for (const res of held) res.end('done');
    const answers = await Promise.all(inFlight.map(async (r) => { const res = await r; return `${res.status} ${await res.text()}`; }));
    assert.deepEqual(answers, Array.from({ length: count }, () => '200 done'));
    await gw.auditBarrier();
    // Retiring runs on the turns after the last record; bounded by turns, not time.
    for (let i = 0; i < 100 && !old.closed; i++) await new Promise<void>((r) => setImmediate(r));
    assert.equal(old.closed, true, 'the old pool is closed once its last request left');
  });
});
