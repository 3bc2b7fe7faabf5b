import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { lockChain } from '../src/audit/chain-lock.js';
import { HttpSink } from '../src/audit/sinks/http-sink.js';
import type { AuditSink, LinkedEntry, SinkState } from '../src/audit/sinks/sink.js';
import { HTTP_SINK_DEFAULTS } from '../src/config/compile-audit-sinks.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { configProblems } from './harness/config.js';
import { chainOf } from './harness/linked-records.js';
import { Retention } from '../src/audit/retention.js';
import { chainFiles } from '../src/audit/trail-files.js';
import { OperatorError } from '../src/lib/operator-error.js';
import { ManualClock } from './harness/manual-clock.js';
import { waitUntil } from './harness/assertions.js';
import { startGateway } from './harness/gateway.js';
import { checkChain, publicKeys, requestRecord, testTrail } from './harness/trail.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Settles `promise` or fails the test after `ms`: what must not hang is given a bound. */
async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms); });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const CHAIN_LOCK_MODULE = new URL('../src/audit/chain-lock.js', import.meta.url).href;

describe('one writer per chain', () => {
  it('refuses a second trail on the same chain while the first is open, and lets it in once the first closed', async (t) => {
    const dir = await tempDir(t);
    const clock = new ManualClock();
    const first = testTrail(dir, clock);
    await first.trail.open();
    assert.ok(first.trail.write(requestRecord('a', clock.now())));
    await first.trail.flushed();
    const second = testTrail(dir, clock);
    await assert.rejects(second.trail.open(), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.match(err.message, /another gateway process is writing audit chain test\/main/);
      return true;
    });
    await second.trail.close();
    assert.ok(first.trail.write(requestRecord('b', clock.now())));
    await first.trail.close();
    const third = testTrail(dir, clock);
    await third.trail.open();
    assert.ok(third.trail.write(requestRecord('c', clock.now())));
    await third.trail.close();
    assert.deepEqual((await readdir(join(dir, 'audit'))).filter((name) => name.includes('lock')), ['audit.log.lock'], 'one lock file, no journal beside it');
    const check = checkChain([join(dir, 'audit', 'audit.log')], publicKeys(join(dir, 'audit', 'keys')));
    assert.deepEqual(check.problems, []);
    assert.deepEqual(check.records.filter((r) => r.kind === 'request').map((r) => r.requestId), ['a', 'b', 'c']);
  });

  it('is held by the process itself: another process is refused, and a writer killed with SIGKILL leaves no stale lock', async (t) => {
    const dir = await tempDir(t);
    const active = join(dir, 'audit', 'audit.log');
    const child = spawn(process.execPath, ['--input-type=module', '-e',
      `import { lockChain } from ${JSON.stringify(CHAIN_LOCK_MODULE)}; lockChain(${JSON.stringify(active)}, 'other/main'); process.stdout.write('held\\n'); setInterval(() => {}, 60000);`,
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    await waitUntil('the other process holds the chain', () => out.includes('held'));
    assert.throws(() => lockChain(active, 'test/main'), /another gateway process is writing audit chain test\/main/);
    const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
    child.kill('SIGKILL');
    await exited;
    const lock = lockChain(active, 'test/main');
    lock.release();
    lock.release();
  });

  it('a second gateway on the same dataDir refuses to start instead of interleaving its records into the chain', async (t) => {
    const dir = await tempDir(t);
    const config = { dataDir: join(dir, 'data'), upstreams: { u: { targets: ['http://127.0.0.1:9'] } }, routes: [{ name: 'r', match: { path: '/r' }, upstream: 'u', public: true }] };
    const one = await startGateway(config);
    t.after(() => one.close());
    await assert.rejects(startGateway(config), /another gateway process is writing audit chain \S+\/main/);
  });
});

describe('audit files that are not regular files', () => {
  for (const which of ['active', 'sealed'] as const) {
    it(`a FIFO as the ${which} file is refused at open, without blocking, and the chain's lock is let go`, async (t) => {
      const dir = await tempDir(t);
      const clock = new ManualClock();
      const files = chainFiles(join(dir, 'audit', 'audit.log'), 'main');
      await mkdir(files.dir, { recursive: true });
      const fifo = which === 'active' ? files.active : files.sealed(1);
      execFileSync('mkfifo', [fifo]);
      const run = testTrail(dir, clock);
      await within('opening a trail on a FIFO', 10_000, assert.rejects(run.trail.open(), (err: unknown) => {
        assert.ok(err instanceof OperatorError);
        assert.match(err.message, /\(EFTYPE\): it is not a regular file \(a FIFO\)/);
        return true;
      }));
      await run.trail.close();
      await unlink(fifo);
      const again = testTrail(dir, clock);
      await again.trail.open();
      await again.trail.close();
    });
  }
});

describe('archive commands that misbehave', () => {
  async function sealedFile(dir: string): Promise<ReturnType<typeof chainFiles>> {
    const files = chainFiles(join(dir, 'audit', 'audit.log'), 'main');
    await mkdir(files.dir, { recursive: true });
    await writeFile(files.sealed(1), '{"seq":1}\n');
    return files;
  }

  it('a command that leaves a process in the background holding its output is ended, with that process, at its timeout', async (t) => {
    const dir = await tempDir(t);
    const files = await sealedFile(dir);
    const pidFile = join(dir, 'bg.pid');
    const logs = new PassThrough();
    let logged = '';
    logs.on('data', (chunk: Buffer) => { logged += chunk.toString('utf8'); });
    const retention = new Retention({
      files, maxAgeMs: null, maxBytes: null, archiveTimeoutMs: 300, logger: pino(logs), clock: new ManualClock(),
      archiveCommand: ['sh', '-c', `sleep 600 & echo $! > ${pidFile}; wait`],
    });
    t.after(() => retention.close());
    await within('a sweep whose archive command hangs', 20_000, retention.sweep());
    assert.match(logged, /ran past archiveTimeoutMs \(300 ms\)/);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await waitUntil('the background process is gone', () => !alive(pid));
  });

  it('a command that exits at once but leaves a child holding its pipes does not hold up retention', async (t) => {
    const dir = await tempDir(t);
    const files = await sealedFile(dir);
    const pidFile = join(dir, 'bg.pid');
    const retention = new Retention({
      files, maxAgeMs: null, maxBytes: null, archiveTimeoutMs: 600_000, logger: pino({ level: 'silent' }), clock: new ManualClock(),
      archiveCommand: ['sh', '-c', `sleep 600 & echo $! > ${pidFile}; exit 0`],
    });
    t.after(() => retention.close());
    await within('a sweep whose archive command exited', 20_000, retention.sweep());
    await readFile(`${files.sealed(1)}.archived`);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await waitUntil('the background process is gone', () => !alive(pid));
  });

  it('closing ends an archive under way instead of waiting for its timeout, and the file is archived at the next start', async (t) => {
    const dir = await tempDir(t);
    const files = await sealedFile(dir);
    const started = join(dir, 'started');
    const retention = new Retention({
      files, maxAgeMs: null, maxBytes: null, archiveTimeoutMs: 600_000, logger: pino({ level: 'silent' }), clock: new ManualClock(),
      archiveCommand: ['sh', '-c', `touch ${started}; exec sleep 600`],
    });
    const sweep = retention.sweep();
    await waitUntil('the archive command runs', () => readFile(started).then(() => true, () => false));
    await within('closing retention during an archive', 20_000, retention.close());
    await sweep;
    await assert.rejects(readFile(`${files.sealed(1)}.archived`), { code: 'ENOENT' });
    const next = new Retention({
      files, maxAgeMs: null, maxBytes: null, archiveTimeoutMs: 10_000, logger: pino({ level: 'silent' }), clock: new ManualClock(),
      archiveCommand: ['true'],
    });
    t.after(() => next.close());
    await next.sweep();
    await readFile(`${files.sealed(1)}.archived`);
  });
});

describe('the HTTP sink URL with a password', () => {
  const BASE = 'upstreams:\n  u: { targets: [http://127.0.0.1:3001] }\nroutes:\n  - name: r\n    match: { path: "/r" }\n    upstream: u\n    public: true\n';

  it('is refused by the config, without quoting it: fetch would refuse every batch and its error quote the password', () => {
    const problems = configProblems(`${BASE}audit:\n  http: { url: "https://siem:hunter2@collector.example/ingest" }\n`);
    assert.ok(problems.some((p) => /audit\.http\.url.*must not carry a user name or password/.test(p)), problems.join('\n'));
    assert.ok(problems.every((p) => !p.includes('hunter2')), problems.join('\n'));
  });

  it('never reaches a log line, even when a sink is built with one', async () => {
    const out = new PassThrough();
    let logged = '';
    out.on('data', (chunk: Buffer) => { logged += chunk.toString('utf8'); });
    const url = 'http://siem:hunter2@127.0.0.1:9/ingest';
    const sink = new HttpSink({ url, shownUrl: 'http://127.0.0.1:9/ingest', headers: {}, ...HTTP_SINK_DEFAULTS, onFailure: 'failOpen' }, { logger: createLogger('info', out), clock: systemClock });
    await sink.start();
    for (const entry of chainOf('gw/main', 3)) sink.accept(entry);
    await sink.flushed();
    await waitUntil('the failure is logged', () => logged.includes('audit collector did not take a batch'));
    await sink.close();
    assert.ok(!logged.includes('hunter2'), logged);
  });
});

/** An embedding program's own sink (`extraSinks`) that notes what the trail does with it. */
class WatchedSink implements AuditSink {
  readonly name = 'watched';
  readonly onFailure = 'failOpen' as const;
  readonly dropped = 0;
  started = 0;
  closed = 0;
  constructor(private readonly failStart = false) {}
  get state(): SinkState { return this.closed > 0 ? 'closed' : 'ok'; }
  start(): Promise<void> {
    this.started++;
    return this.failStart ? Promise.reject(new OperatorError('watched: cannot start')) : Promise.resolve();
  }
  accept(entry: LinkedEntry): boolean { return entry.seq > 0; }
  flushed(): Promise<void> { return Promise.resolve(); }
  close(): Promise<void> { this.closed++; return Promise.resolve(); }
}

describe('a start refused part way', () => {
  it('an unusable signing key (RSA) is found before any sink starts', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'audit', 'keys'), { recursive: true });
    execFileSync('openssl', ['genpkey', '-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', join(dir, 'audit', 'keys', 'signing.pem')], { stdio: 'ignore' });
    const sink = new WatchedSink();
    const run = testTrail(dir, new ManualClock(), { sinks: [sink] });
    await assert.rejects(run.trail.open(), /holds a rsa key; checkpoints are signed with Ed25519/);
    assert.equal(sink.started, 0, 'no sink was started (no connection made, no stream created)');
    await run.trail.close();
  });

  it('a sink that cannot start closes the sinks that did, and lets the chain go', async (t) => {
    const dir = await tempDir(t);
    const good = new WatchedSink();
    const bad = new WatchedSink(true);
    const run = testTrail(dir, new ManualClock(), { sinks: [good, bad] });
    await assert.rejects(run.trail.open(), /watched: cannot start/);
    assert.equal(good.closed, 1);
    assert.equal(run.file.state, 'closed', 'the file sink is closed again');
    const again = testTrail(dir, new ManualClock());
    await again.trail.open();
    await again.trail.close();
  });
});
