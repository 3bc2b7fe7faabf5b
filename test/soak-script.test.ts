import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOAK = join(ROOT, 'bench', 'soak.mjs');
const RUN_TIMEOUT_MS = 60_000;

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `node bench/soak.mjs` to its end; past RUN_TIMEOUT_MS it is sent SIGTERM (it then stops its children and exits 130). */
function runSoak(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK, ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS, killSignal: 'SIGTERM',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.once('error', reject);
    child.once('close', (code) => { resolve({ code, stdout, stderr }); });
  });
}

/** bench/flatness.mjs, typed for what this test calls. */
interface Judgement { start: number | null; end: number | null; slopePerMin: number | null; judged: boolean; flat: boolean | null; why: string | null }
interface Flatness {
  judgeSeries(samples: readonly { t: number; v: number | null }[], key: 'v', durationSec: number, rule: { unit: string; ratio: number; slack: number; maxSlopePerMin: number }): Judgement;
  slopePerMin(times: readonly number[], values: readonly number[]): number | null;
}
const flatness = (await import(new URL('../../bench/flatness.mjs', import.meta.url).href)) as Flatness;
const RULE = { unit: 'MiB', ratio: 1.1, slack: 16, maxSlopePerMin: 2 };

/** A 600 s series sampled every 5 s: `base + perMin × t/60`, with a ±`wobble` sawtooth. */
function series(base: number, perMin: number, wobble = 0): { t: number; v: number }[] {
  return Array.from({ length: 121 }, (_, i) => ({ t: i * 5, v: base + (perMin * i * 5) / 60 + (i % 4 < 2 ? wobble : -wobble) }));
}

describe('npm run soak', () => {
  it('holds a given rate on the full pipeline, answers every request and prints the report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-soak-test-'));
    try {
      const out = join(dir, 'soak.json');
      const run = await runSoak(['--rate', '50'], { SOAK_DURATION: '3', SOAK_WARMUP: '1', SOAK_OUT: out });
      const output = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.code, 0, output);
      // 50 requests/s for 3 s after a 1 s warm-up ramping from 0: exactly 25 + 150 requests, open loop.
      assert.match(run.stdout, /^requests: sent 175, ok 175, failed 0 \(connect 0, read 0, write 0, status 0, timeout 0, overload 0, unanswered 0\)\n {2}of which after the warm-up: sent 150, ok 150$/m, output);
      assert.match(run.stdout, /^latency \(measured phase\): p50 \d+\.\d{3} ms, p99 \d+\.\d{3} ms, p99\.9 \d+\.\d{3} ms, max \d+\.\d{3} ms$/m, output);
      assert.match(run.stdout, /^RSS: start \d+\.\d, end \d+\.\d, max \d+\.\d MiB; .*\(not judged: the run is shorter than 240 s\)$/m, output);
      assert.match(run.stdout, /^event-loop delay p99: start \d+\.\d\d, end \d+\.\d\d, max \d+\.\d\d ms; /m, output);
      assert.match(run.stdout, /^heap used: start \d+\.\d, end \d+\.\d, max \d+\.\d MiB; /m, output);
      assert.match(run.stdout, /^verdict: PASS — no failed request; flatness not judged/m, output);
      const report = JSON.parse(readFileSync(out, 'utf8')) as { rate: number; pass: boolean; capacity: unknown; samples: { t: number; rssMiB: number | null; loopP99Ms: number | null }[] };
      assert.equal(report.rate, 50);
      assert.equal(report.capacity, null, '--rate skips the capacity run');
      assert.equal(report.pass, true);
      const measured = report.samples.filter((s) => s.t >= 0 && s.t <= 3);
      assert.ok(measured.length >= 3, `samples over the measured phase: ${measured.length}\n${output}`);
      assert.ok(measured.every((s) => s.rssMiB !== null && s.rssMiB > 0 && s.loopP99Ms !== null), 'every sample has RSS and event-loop delay');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad arguments with exit 2 and one line, before starting anything', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--rate', '0'], {}, /--rate must be an integer from 1 to 100000, got "0"/],
      [['--rate', '12abc'], {}, /--rate must be an integer/],
      [['--rate', '100001'], {}, /--rate must be an integer from 1 to 100000/],
      [['--rate'], {}, /argument missing|--rate/],
      [['--bogus'], {}, /Unknown option '--bogus'/],
      [['extra'], {}, /Unexpected argument 'extra'/],
      [[], { SOAK_RATE: '-5' }, /SOAK_RATE must be an integer/],
      [[], { SOAK_LOAD: '0' }, /SOAK_LOAD must be a number above 0 and at most 1/],
      [[], { SOAK_LOAD: '1.5' }, /SOAK_LOAD must be a number above 0 and at most 1/],
      [[], { SOAK_LOAD: '0x1' }, /SOAK_LOAD must be a number/],
      [[], { SOAK_DURATION: '0' }, /SOAK_DURATION must be an integer ≥ 1/],
      [[], { SOAK_DURATION: '3601' }, /SOAK_DURATION must be at most 3600/],
      [[], { SOAK_WARMUP: '-1' }, /SOAK_WARMUP must be an integer ≥ 0/],
      [[], { BENCH_LOADGEN: 'ab' }, /BENCH_LOADGEN must be wrk or autocannon/],
    ];
    const runs = await Promise.all(cases.map(([args, env]) => runSoak(args, env)));
    for (const [i, [args, env, reason]] of cases.entries()) {
      const run = runs[i];
      assert.ok(run !== undefined);
      const label = `${args.join(' ')} ${JSON.stringify(env)}`;
      assert.equal(run.code, 2, label);
      assert.equal(run.stdout, '', label);
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `${label}: ${run.stderr}`);
      assert.match(run.stderr, reason, label);
    }
  });

  it('answers --help with its usage', async () => {
    const run = await runSoak(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^usage: npm run soak \[-- --rate N\]/);
    for (const name of ['SOAK_RATE', 'SOAK_LOAD', 'SOAK_DURATION', 'SOAK_WARMUP', 'SOAK_OUT']) assert.ok(run.stdout.includes(name), name);
  });
});

describe('the soak flatness rule', () => {
  it('passes a flat series with a garbage-collector sawtooth', () => {
    const j = flatness.judgeSeries(series(150, 0, 8).map(({ t, v }) => ({ t, v })), 'v', 600, RULE);
    assert.equal(j.judged, true);
    assert.equal(j.flat, true, j.why ?? '');
  });

  it('fails a slow leak by its slope even when the end stays under start × 1.10 + slack', () => {
    // +3 MiB/min: the last minute averages 178.5 MiB, under 150 × 1.1 + 16 = 181.
    const j = flatness.judgeSeries(series(150, 3), 'v', 600, RULE);
    assert.ok(j.end !== null && j.end < 181, `end ${j.end}`);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /slope over the second half 3\.00 MiB\/min > 2/);
  });

  it('fails a series whose end is above start × ratio + slack', () => {
    const samples = series(150, 0).map(({ t, v }) => ({ t, v: t >= 540 ? v + 40 : v }));
    const j = flatness.judgeSeries(samples, 'v', 600, RULE);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /^end 190\.0 MiB > start × 1\.1 \+ 16 MiB = 181\.0/);
  });

  it('judges nothing on runs shorter than four minutes', () => {
    const short = flatness.judgeSeries([{ t: 0, v: 100 }, { t: 1, v: 500 }, { t: 2, v: 900 }], 'v', 2, RULE);
    assert.equal(short.judged, false);
    assert.equal(short.flat, null);
    const minutes = flatness.judgeSeries(Array.from({ length: 48 }, (_, i) => ({ t: i * 5, v: 100 + i * 5 })), 'v', 235, RULE);
    assert.equal(minutes.judged, false);
    assert.equal(minutes.flat, null);
    assert.ok(minutes.slopePerMin !== null && Math.abs(minutes.slopePerMin - 60) < 1e-9, 'the slope is still reported');
  });

  it('passes a 50 MiB sawtooth with a one-minute period in any phase', () => {
    for (let phase = 0; phase < 60; phase += 5) {
      const samples = Array.from({ length: 121 }, (_, i) => ({ t: i * 5, v: 130 + (50 * ((i * 5 + phase) % 60)) / 60 }));
      const j = flatness.judgeSeries(samples, 'v', 600, RULE);
      assert.equal(j.flat, true, `phase ${phase}: ${j.why ?? ''}`);
    }
  });

  it('leaves out samples without a value, and says so when a window is empty', () => {
    const j = flatness.judgeSeries([{ t: 0, v: null }, { t: 300, v: 100 }, { t: 600, v: null }], 'v', 600, RULE);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /no samples in the start or end window/);
  });

  it('fits the least-squares slope per minute', () => {
    assert.equal(flatness.slopePerMin([0, 60, 120], [10, 11, 12]), 1);
    assert.equal(flatness.slopePerMin([5], [1]), null);
    assert.equal(flatness.slopePerMin([5, 5], [1, 2]), null);
  });
});

/** bench/raw-http-client.mjs, typed for what this test calls. */
interface RawClient { send(tag?: unknown): void; inFlight(): number; close(): void }
interface RawClientOptions {
  url: string; headers: Record<string, string>; connections: number; timeoutMs: number;
  onDone(status: number, startedAt: number, tag: unknown): void; onFail(kind: string, err: Error): void;
}
const { createRawClient } = (await import(new URL('../../bench/raw-http-client.mjs', import.meta.url).href)) as { createRawClient: (o: RawClientOptions) => RawClient };

interface Outcome { done: { status: number; tag: unknown }[]; failed: { kind: string; message: string }[] }

/** Sends `count` requests through a raw client and resolves once each has an outcome. */
function sendAll(url: string, count: number, options: { connections?: number; timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { done: [], failed: [] };
    const settle = (): void => {
      if (outcome.done.length + outcome.failed.length < count) return;
      client.close();
      resolve(outcome);
    };
    const client = createRawClient({
      url, headers: options.headers ?? {}, connections: options.connections ?? 2, timeoutMs: options.timeoutMs ?? 5000,
      onDone: (status, _startedAt, tag) => { outcome.done.push({ status, tag }); settle(); },
      onFail: (kind, err) => { outcome.failed.push({ kind, message: err.message }); settle(); },
    });
    for (let i = 0; i < count; i++) client.send(i);
  });
}

/** A TCP server on a free loopback port that answers every request with `reply(socket)`. */
async function tcpServer(onRequest: (socket: Socket) => void): Promise<{ server: Server; url: string; connections: () => number }> {
  let connections = 0;
  const server = createTcpServer((socket) => {
    connections++;
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        onRequest(socket);
      }
    });
    socket.on('error', () => { /* the client may close first */ });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/soak/path?q=1`, connections: () => connections };
}

const close = (server: Server): Promise<void> => new Promise((done) => { server.close(() => done()); });

describe('the soak generator\'s HTTP client', () => {
  it('reads Content-Length and chunked responses on keep-alive connections, within its connection bound', { timeout: 10_000 }, async () => {
    const seen: string[] = [];
    let n = 0;
    const server = createHttpServer((req, res) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers.authorization ?? ''}`);
      if (n++ % 2 === 0) res.end('fixed body');
      else { res.write('chunk one, '); res.end('chunk two'); } // no content-length: chunked
    });
    let sockets = 0;
    server.on('connection', () => { sockets++; });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/full/hello?x=1`;
      const outcome = await sendAll(url, 40, { connections: 3, headers: { authorization: 'Bearer t' } });
      assert.deepEqual(outcome.failed, []);
      assert.equal(outcome.done.length, 40);
      assert.ok(outcome.done.every((d) => d.status === 200));
      assert.deepEqual(new Set(outcome.done.map((d) => d.tag)).size, 40, 'every tag comes back once');
      assert.ok(seen.every((line) => line === 'GET /full/hello?x=1 Bearer t'), seen[0]);
      assert.ok(sockets <= 3, `connections: ${sockets}`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('parses a chunked response that arrives in pieces, with extensions and trailers, and reports non-2xx statuses', { timeout: 10_000 }, async () => {
    const { server, url } = await tcpServer((socket) => {
      socket.write('HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nab');
      setImmediate(() => socket.write('c\r\n0\r\nx-trailer: 1\r\n\r\n'));
    });
    try {
      const outcome = await sendAll(url, 3);
      assert.deepEqual(outcome.failed, []);
      assert.deepEqual(outcome.done.map((d) => d.status), [503, 503, 503]);
    } finally {
      await close(server);
    }
  });

  it('opens a new connection after a Connection: close response', { timeout: 10_000 }, async () => {
    const srv = await tcpServer((socket) => { socket.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok'); });
    try {
      const outcome = await sendAll(srv.url, 4, { connections: 1 });
      assert.deepEqual(outcome.failed, []);
      assert.equal(outcome.done.length, 4);
      assert.equal(srv.connections(), 4);
    } finally {
      await close(srv.server);
    }
  });

  it('fails, as read errors, responses it cannot frame: no length, an oversized head, a bad chunk size, bytes after the end', { timeout: 10_000 }, async () => {
    const replies = [
      'HTTP/1.1 200 OK\r\n\r\nread until close',
      `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\ncontent-length: 0\r\n\r\n`,
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA',
      'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nok',
      'SMTP ready\r\n\r\n',
    ];
    for (const reply of replies) {
      const { server, url } = await tcpServer((socket) => { socket.write(reply); });
      try {
        const outcome = await sendAll(url, 1);
        const label = JSON.stringify(reply.slice(0, 60));
        assert.equal(outcome.done.length, 0, label);
        assert.equal(outcome.failed[0]?.kind, 'read', label);
      } finally {
        await close(server);
      }
    }
  });

  it('refuses headers that would split the request, and targets other than http:', () => {
    const base = { url: 'http://127.0.0.1:9/', connections: 1, timeoutMs: 100, onDone: () => {}, onFail: () => {} };
    assert.throws(() => createRawClient({ ...base, headers: { 'x-a': 'v\r\nx-injected: 1' } }), /no CR, LF/);
    assert.throws(() => createRawClient({ ...base, headers: { 'x-a\nb': 'v' } }), /no CR, LF/);
    assert.throws(() => createRawClient({ ...base, url: 'https://127.0.0.1:9/', headers: {} }), /only http: targets/);
  });

  it('times out a request that gets no answer, and fails one request per refused connection attempt', { timeout: 10_000 }, async () => {
    const silent = await tcpServer(() => { /* never answers */ });
    try {
      const outcome = await sendAll(silent.url, 2, { timeoutMs: 150 });
      assert.deepEqual(outcome.failed.map((f) => f.kind), ['timeout', 'timeout']);
    } finally {
      await close(silent.server);
    }
    const gone = await tcpServer(() => { /* closed before use */ });
    await close(gone.server);
    const outcome = await sendAll(gone.url, 3, { connections: 1 });
    assert.equal(outcome.done.length, 0);
    assert.deepEqual(outcome.failed.map((f) => f.kind), ['connect', 'connect', 'connect']);
  });
});
