// `npm run bench`: throughput and latency of the gateway against a bare Node proxy and the
// upstream itself, measured in one run on loopback. See docs/performance.md.
//
// Layout (when taskset exists and at least 2 CPUs are allowed): the server under test — the bare
// proxy or the gateway, each its own child process — runs alone on the second CPU; the upstream,
// the load generator and this runner share the first. Only one server is under load at a time.
//
// Environment (defaults in scenarios.mjs): BENCH_DURATION (measured seconds per scenario and
// round, 10), BENCH_WARMUP (5), BENCH_CONNECTIONS (50), BENCH_ROUNDS (3; median), BENCH_ONLY
// (comma-separated scenario names; their baselines are added), BENCH_LOADGEN (wrk | autocannon),
// BENCH_CPU_PROF=1 (profile the gateway child and summarise it; figures are then not
// representative), BENCH_STRICT=1 (exit 1 when a scenario misses its minimum aim).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { Client } from 'undici';
import { stringify } from 'yaml';
import { formatSummary, summariseProfile } from './profile-summary.mjs';
import { defaults, gatewayConfig, scenarios as defineScenarios } from './scenarios.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const OUT_DIR = join(ROOT, '.bench');
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Settings

function intEnv(name, fallback, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replace(/s$/, ''));
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return value;
}

const settings = {
  warmupSec: intEnv('BENCH_WARMUP', defaults.warmupSec, 0),
  rewarmSec: defaults.rewarmSec,
  durationSec: intEnv('BENCH_DURATION', defaults.durationSec, 1),
  connections: intEnv('BENCH_CONNECTIONS', defaults.connections, 1),
  rounds: intEnv('BENCH_ROUNDS', defaults.rounds, 1),
  only: (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
  loadgen: process.env.BENCH_LOADGEN ?? '',
  cpuProf: process.env.BENCH_CPU_PROF === '1',
  strict: process.env.BENCH_STRICT === '1',
};

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and ended on exit, error or Ctrl+C.

const children = new Set();
let tempDir = null;

function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** CPUs this process may run on, from `taskset -pc` (e.g. "0,1" or "0-3"). */
function allowedCpus() {
  const out = spawnSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8' });
  const list = /list:\s*(\S+)/.exec(out.stdout ?? '')?.[1];
  if (out.status !== 0 || list === undefined) return [];
  const result = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) result.push(c);
  }
  return result;
}

function detectLayout() {
  if (!hasCommand('taskset')) return { pinned: false, reason: 'taskset not found', cpus: availableParallelism() };
  const allowed = allowedCpus();
  if (allowed.length < 2) return { pinned: false, reason: `only ${allowed.length || availableParallelism()} CPU allowed`, cpus: allowed.length };
  const [loadCore, serverCore] = allowed;
  // This runner joins the load generator's core so it never competes with the server under test.
  spawnSync('taskset', ['-a', '-pc', String(loadCore), String(process.pid)], { stdio: 'ignore' });
  return { pinned: true, loadCore, serverCore, cpus: allowed.length };
}

function describeLayout(layout) {
  if (!layout.pinned) return `unpinned (${layout.reason}): the OS schedules every process on ${layout.cpus} CPU(s); expect more noise`;
  return `pinned with taskset: core ${layout.serverCore} = server under test (bare proxy or gateway, one at a time); ` +
    `core ${layout.loadCore} = load generator + upstream + runner`;
}

/** Starts a child, pinned to `core` when the layout is pinned; keeps its last output lines for errors. */
function launch(name, cmd, args, { core = null, layout, env = process.env } = {}) {
  const pinned = layout.pinned && core !== null;
  const child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', String(core), cmd, ...args] : args, {
    cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.benchName = name;
  child.tail = [];
  const keep = (line) => { child.tail.push(line); if (child.tail.length > 40) child.tail.shift(); };
  child.lines = createInterface({ input: child.stdout });
  child.lines.on('line', keep);
  createInterface({ input: child.stderr }).on('line', (line) => keep(`[stderr] ${line}`));
  // 'close', not 'exit': the last stdout lines (a report) may still be in the pipe at 'exit'.
  child.exited = new Promise((done) => child.once('close', (code, signal) => { children.delete(child); done({ code, signal }); }));
  child.once('error', (err) => keep(`[spawn] ${err.message}`));
  children.add(child);
  return child;
}

function failure(child, message) {
  return new Error(`${child.benchName}: ${message}\n  last output:\n    ${child.tail.join('\n    ') || '(none)'}`);
}

/** Resolves with the first stdout line for which `pick` returns a value; fails if the child exits first. */
function waitForLine(child, pick, timeoutMs = READY_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => { if (done) return; done = true; clearTimeout(timer); child.lines.off('line', onLine); fn(value); };
    const onLine = (line) => {
      let value;
      try { value = pick(line); } catch { value = undefined; }
      if (value !== undefined) finish(resolve, value);
    };
    const timer = setTimeout(() => finish(reject, failure(child, `not ready after ${timeoutMs} ms`)), timeoutMs);
    child.lines.on('line', onLine);
    child.exited.then(({ code, signal }) => finish(reject, failure(child, `exited early (code ${code}, signal ${signal})`)));
  });
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}

async function cleanup() {
  await Promise.all([...children].map(stopChild));
  if (tempDir !== null) { rmSync(tempDir, { recursive: true, force: true }); tempDir = null; }
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
});
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping child processes…\n`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Servers

const jsonLine = (key) => (line) => {
  const msg = JSON.parse(line);
  return msg.ready === key ? msg : undefined;
};

async function startUpstream(layout) {
  const child = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs')], { core: layout.loadCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('upstream'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

async function startBareProxy(layout, upstreamOrigin, mode) {
  const child = launch(`bare-proxy (${mode})`, process.execPath, [join(BENCH, 'bare-proxy.mjs'), upstreamOrigin, mode], { core: layout.serverCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('bare-proxy'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

/**
 * A private redis-server for the Redis limiter scenario, on the load generator's core (the server
 * under test stays alone on its core), no persistence. Null when redis-server is not installed.
 */
async function startRedis(layout) {
  if (!hasCommand('redis-server')) return null;
  const probe = createServer();
  await new Promise((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address();
  await new Promise((done) => probe.close(done));
  const child = launch('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tempDir],
    { core: layout.loadCore ?? null, layout });
  await waitForLine(child, (line) => (line.includes('Ready to accept connections') ? true : undefined));
  return { child, url: `redis://127.0.0.1:${port}` };
}

/** Redis commands per request: `evalsha` + `eval` calls since `since` (an INFO commandstats reading). */
async function redisCalls(url) {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const stats = await client.info('commandstats');
    const calls = (name) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    return calls('evalsha') + calls('eval');
  } finally {
    client.disconnect();
  }
}

async function startGateway(layout, upstreamOrigin, profileDir, redisUrl) {
  const workDir = join(tempDir, 'gateway');
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(workDir, 'gateway.yaml');
  writeFileSync(configFile, stringify(gatewayConfig({ upstreamOrigin, dataDir, workDir, redisUrl })));
  const nodeArgs = profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  const child = launch('gateway', process.execPath, [...nodeArgs, join(ROOT, 'dist/src/cli/main.js'), 'start', '-c', configFile], { core: layout.serverCore ?? null, layout });
  const msg = await waitForLine(child, (line) => {
    const m = JSON.parse(line);
    return m.msg === 'gateway listening' ? m : undefined;
  });
  return { child, origin: `http://127.0.0.1:${msg.http}`, adminOrigin: `http://127.0.0.1:${msg.admin}`, configFile };
}

/** One request through a target: it must answer 200 with exactly the upstream's body. */
async function probe(origin, path, headers) {
  const client = new Client(origin);
  try {
    const res = await client.request({ method: 'GET', path, headers });
    const body = await res.body.text();
    return { status: res.statusCode, body };
  } finally {
    await client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Load generation

function pickLoadGenerator() {
  const wanted = settings.loadgen;
  if (wanted !== '' && wanted !== 'wrk' && wanted !== 'autocannon') throw new Error(`BENCH_LOADGEN must be wrk or autocannon, got "${wanted}"`);
  if (wanted !== 'autocannon' && hasCommand('wrk')) {
    const v = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
    const version = /wrk\s+(\S+)/.exec(`${v.stdout}${v.stderr}`)?.[1] ?? 'unknown';
    return { name: 'wrk', version };
  }
  if (wanted === 'wrk') throw new Error('BENCH_LOADGEN=wrk but wrk is not on PATH');
  const version = JSON.parse(spawnSync(process.execPath, ['-p', 'JSON.stringify(require("autocannon/package.json").version)'], { cwd: ROOT, encoding: 'utf8' }).stdout);
  return { name: 'autocannon', version };
}

/** One bounded load run against `url`; resolves with the generator's report. */
async function runLoad(loadgen, layout, { url, connections, durationSec, headers }) {
  let child;
  if (loadgen.name === 'wrk') {
    const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    child = launch('wrk', 'wrk', ['-t1', `-c${connections}`, `-d${durationSec}s`, '--timeout', '5s', '-s', join(BENCH, 'wrk-report.lua'), ...headerArgs, url],
      { core: layout.loadCore ?? null, layout });
  } else {
    child = launch('autocannon', process.execPath, [join(BENCH, 'autocannon-driver.mjs'), JSON.stringify({ url, connections, durationSec, headers })],
      { core: layout.loadCore ?? null, layout });
  }
  const report = waitForLine(child, (line) => {
    const m = /^(?:WRK|LOAD)_JSON (.*)$/.exec(line);
    return m === null ? undefined : JSON.parse(m[1]);
  }, (durationSec + 30) * 1000);
  try {
    return await report;
  } finally {
    await stopChild(child);
  }
}

/** user + system CPU time of a process (all threads) in µs, from /proc; null where there is no /proc. */
let clockTicks = null;
function cpuTimeUs(pid) {
  try {
    clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks; // utime, stime
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and report

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const fmtRatio = (x) => (x === null ? '—' : x.toFixed(2));
const round = (x, digits) => (x === null || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits);

function summariseRuns(runs) {
  const errs = runs.map((r) => Object.values(r.errors).reduce((a, b) => a + b, 0));
  const rps = runs.map((r) => r.requests / (r.durationUs / 1e6));
  return {
    requestsPerSec: round(median(rps), 1),
    latencyMs: {
      mean: round(median(runs.map((r) => r.latencyUs.mean / 1000)), 3),
      p50: round(median(runs.map((r) => r.latencyUs.p50 / 1000)), 3),
      p90: round(median(runs.map((r) => r.latencyUs.p90 / 1000)), 3),
      p99: round(median(runs.map((r) => r.latencyUs.p99 / 1000)), 3),
      p999: round(median(runs.map((r) => r.latencyUs.p999 / 1000)), 3),
      max: round(Math.max(...runs.map((r) => r.latencyUs.max / 1000)), 3),
    },
    // (max − min) ÷ median of requests/s over the rounds: the run-to-run noise of this scenario.
    spread: runs.length < 2 ? null : round((Math.max(...rps) - Math.min(...rps)) / median(rps), 3),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    errors: errs.reduce((a, b) => a + b, 0),
    // CPU of the server under test (all its threads) over the measured window, from /proc.
    serverCpu: runs.some((r) => r.serverCpuUs === null) ? null : {
      utilisation: round(median(runs.map((r) => r.serverCpuUs / r.durationUs)), 3),
      usPerRequest: round(median(runs.map((r) => r.serverCpuUs / r.requests)), 1),
    },
    rounds: runs.map((r) => ({
      requestsPerSec: round(r.requests / (r.durationUs / 1e6), 1), p50Ms: round(r.latencyUs.p50 / 1000, 3), p99Ms: round(r.latencyUs.p99 / 1000, 3),
      serverCpuUsPerRequest: r.serverCpuUs === null ? null : round(r.serverCpuUs / r.requests, 1), errors: r.errors,
    })),
  };
}

/**
 * Ratios of a scenario to another. Rounds are paired: round r of both ran minutes apart at most,
 * so each round gives a ratio and the median of those is reported. That cancels most of the slow
 * drift of a shared machine, which a ratio of two medians would not.
 */
function compare(result, base) {
  if (base === undefined) return null;
  const pairs = result.rounds.map((r, i) => [r, base.rounds[i]]).filter(([, b]) => b !== undefined);
  const paired = (f) => round(median(pairs.map(([a, b]) => f(a, b))), 3);
  return {
    throughput: paired((a, b) => a.requestsPerSec / b.requestsPerSec),
    p50: paired((a, b) => a.p50Ms / b.p50Ms),
    p99: paired((a, b) => a.p99Ms / b.p99Ms),
    addedP50Ms: paired((a, b) => a.p50Ms - b.p50Ms),
    addedP99Ms: paired((a, b) => a.p99Ms - b.p99Ms),
    cpuPerRequest: pairs.some(([a, b]) => a.serverCpuUsPerRequest === null || b.serverCpuUsPerRequest === null) ? null
      : paired((a, b) => a.serverCpuUsPerRequest / b.serverCpuUsPerRequest),
    perRound: pairs.map(([a, b]) => ({ throughput: round(a.requestsPerSec / b.requestsPerSec, 3), addedP50Ms: round(a.p50Ms - b.p50Ms, 3) })),
  };
}

function checkAims(s) {
  const out = [];
  const r = s.ratios;
  if (s.aims?.throughputRatio !== undefined && r !== null) {
    const { min, goal } = s.aims.throughputRatio;
    out.push({ scenario: s.name, metric: `requests/s ÷ ${s.baseline}`, value: r.throughput, min, goal: goal ?? null,
      status: r.throughput >= (goal ?? min) ? 'meets goal' : r.throughput >= min ? 'meets minimum' : 'BELOW MINIMUM', pass: r.throughput >= min,
      perRound: r.perRound.map((p) => p.throughput) });
  }
  if (s.aims?.addedP50Ms !== undefined && r !== null) {
    const { max } = s.aims.addedP50Ms;
    out.push({ scenario: s.name, metric: `p50 added over ${s.baseline} (ms)`, value: r.addedP50Ms, max,
      status: r.addedP50Ms < max ? 'meets aim' : 'ABOVE AIM', pass: r.addedP50Ms < max,
      perRound: r.perRound.map((p) => p.addedP50Ms) });
  }
  return out;
}

function table(results) {
  const header = ['scenario', 'conns', 'req/s', '±', '×base', 'p50 ms', '×base', 'p99 ms', '×base', '+p50 ms', 'cpu', 'µs/req', '×base', 'errors', 'baseline'];
  const fmt = (x, d) => (x === null || x === undefined ? '—' : x.toFixed(d));
  const rows = results.map((s) => [
    s.name, String(s.connections), Math.round(s.requestsPerSec).toLocaleString('en-US'),
    s.spread === null ? '—' : `${Math.round(s.spread * 50)}%`, fmt(s.ratios?.throughput, 2),
    fmt(s.latencyMs.p50, 3), fmt(s.ratios?.p50, 2), fmt(s.latencyMs.p99, 3), fmt(s.ratios?.p99, 2),
    s.name === s.baseline ? '—' : (s.ratios?.addedP50Ms >= 0 ? '+' : '') + fmt(s.ratios?.addedP50Ms, 3),
    s.serverCpu === null ? '—' : `${Math.round(s.serverCpu.utilisation * 100)}%`, fmt(s.serverCpu?.usPerRequest, 0), fmt(s.ratios?.cpuPerRequest, 2),
    String(s.errors), s.baseline,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function gitInfo() {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' });
  return { commit: rev.status === 0 ? rev.stdout.trim() : null, srcDirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const all = defineScenarios({ connections: settings.connections });
  const names = new Set(all.map((s) => s.name));
  for (const s of all) {
    for (const n of [s.baseline, ...(s.alsoCompare ?? [])]) if (!names.has(n)) throw new Error(`scenario ${s.name}: unknown scenario ${n}`);
  }
  for (const n of settings.only) if (!names.has(n)) throw new Error(`BENCH_ONLY: unknown scenario "${n}" (known: ${[...names].join(', ')})`);
  const wanted = new Set(settings.only.length === 0 ? names : settings.only.flatMap((n) => [n, all.find((s) => s.name === n).baseline]));
  const selected = all.filter((s) => wanted.has(s.name));

  const layout = detectLayout();
  const loadgen = pickLoadGenerator();
  const rewarm = Math.min(settings.warmupSec, settings.rewarmSec);
  const seconds = selected.length * (settings.warmupSec + (settings.rounds - 1) * rewarm + settings.rounds * (settings.durationSec + 1));
  console.log(`portcullis bench — ${selected.length} scenarios × ${settings.rounds} round(s), ${settings.durationSec} s measured each ` +
    `(warmup ${settings.warmupSec} s in round 1, ${rewarm} s after); about ${Math.ceil(seconds / 60)} min`);
  console.log(`layout: ${describeLayout(layout)}`);
  console.log(`load generator: ${loadgen.name} ${loadgen.version}; node ${process.version}; ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (settings.cpuProf) console.log('BENCH_CPU_PROF=1: the gateway runs under --cpu-prof; its figures are NOT representative');

  tempDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const profileDir = settings.cpuProf ? join(OUT_DIR, 'profiles') : null;
  if (profileDir !== null) mkdirSync(profileDir, { recursive: true });

  // The servers a scenario can target; only those some selected scenario uses are started.
  const upstream = await startUpstream(layout);
  const redis = selected.some((s) => s.needsRedis) ? await startRedis(layout) : null;
  if (selected.some((s) => s.needsRedis) && redis === null) {
    console.log('redis-server is not installed: skipping the Redis limiter scenario (Debian: apt-get install redis-server)');
    for (let i = selected.length - 1; i >= 0; i--) if (selected[i].needsRedis) selected.splice(i, 1);
  }
  const starters = {
    'bare-proxy': () => startBareProxy(layout, upstream.origin, 'request'),
    'bare-proxy-stream': () => startBareProxy(layout, upstream.origin, 'stream'),
    gateway: () => startGateway(layout, upstream.origin, profileDir, redis?.url ?? null),
  };
  const servers = { upstream };
  for (const target of new Set(selected.map((s) => s.target))) {
    if (target === 'upstream') continue;
    const start = starters[target];
    if (start === undefined) throw new Error(`unknown target "${target}" (known: upstream, ${Object.keys(starters).join(', ')})`);
    servers[target] = await start();
  }
  const ctx = { upstreamOrigin: upstream.origin, workDir: join(tempDir, 'gateway') };

  const expected = await probe(upstream.origin, selected[0].path, {});
  for (const s of selected) {
    const server = servers[s.target];
    s.resolvedHeaders = typeof s.headers === 'function' ? s.headers(ctx) : { ...(s.headers ?? {}) };
    const got = await probe(server.origin, s.path, s.resolvedHeaders);
    if (got.status !== 200 || got.body !== expected.body) {
      throw new Error(`scenario ${s.name}: probe of ${server.origin}${s.path} answered ${got.status} ${got.body.slice(0, 200)}`);
    }
  }

  const runs = new Map(selected.map((s) => [s.name, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    for (const s of selected) {
      const load = { url: servers[s.target].origin + s.path, connections: s.connections, headers: s.resolvedHeaders };
      const label = `[${r}/${settings.rounds}] ${s.name.padEnd(22)}`;
      // The first round warms the JIT; later rounds only re-open connections.
      const warmup = r === 1 ? settings.warmupSec : Math.min(settings.warmupSec, settings.rewarmSec);
      if (warmup > 0) {
        process.stdout.write(`${label} warmup ${warmup} s… `);
        await runLoad(loadgen, layout, { ...load, durationSec: warmup });
      } else process.stdout.write(`${label} `);
      process.stdout.write(`measure ${settings.durationSec} s… `);
      const pid = servers[s.target].child.pid;
      const callsBefore = s.needsRedis ? await redisCalls(redis.url) : null;
      const cpuBefore = cpuTimeUs(pid);
      const report = await runLoad(loadgen, layout, { ...load, durationSec: settings.durationSec });
      const cpuAfter = cpuTimeUs(pid);
      // Round trips per request: the limiter's script calls during the measured window ÷ the requests.
      if (callsBefore !== null) report.redisCallsPerRequest = ((await redisCalls(redis.url)) - callsBefore) / report.requests;
      const server = servers[s.target].child;
      if (server.exitCode !== null || server.signalCode !== null) throw failure(server, 'exited during the run');
      report.serverCpuUs = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
      runs.get(s.name).push(report);
      const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
      console.log(`${Math.round(report.requests / (report.durationUs / 1e6)).toLocaleString('en-US')} req/s, p50 ${(report.latencyUs.p50 / 1000).toFixed(3)} ms` +
        (errors > 0 ? `, ${errors} ERRORS ${JSON.stringify(report.errors)}` : ''));
      await delay(500); // let closed connections settle
    }
  }

  const results = selected.map((s) => ({
    name: s.name, target: s.target, path: s.path, connections: s.connections, baseline: s.baseline, note: s.note ?? null,
    aims: s.aims ?? null, alsoCompare: s.alsoCompare ?? [], ...summariseRuns(runs.get(s.name)),
  }));
  const byName = new Map(results.map((s) => [s.name, s]));
  for (const s of results) s.ratios = compare(s, byName.get(s.baseline));
  const aims = results.flatMap(checkAims);
  // Extra comparisons a scenario asks for (e.g. the gateway against the stricter stream baseline).
  const comparisons = results.flatMap((s) => (s.alsoCompare ?? []).filter((n) => byName.has(n))
    .map((n) => ({ scenario: s.name, against: n, ...compare(s, byName.get(n)) })));

  console.log('');
  console.log(table(results));
  console.log('');
  console.log('×base: ratio to the baseline column (req/s: higher is better; latency, CPU: lower is better). +p50: milliseconds added to the baseline\'s p50.');
  console.log('cpu: CPU use of the server under test during the measured window (100% = one core); µs/req: its CPU time per request.');
  if (settings.rounds > 1) {
    console.log(`figures are medians of ${settings.rounds} interleaved rounds; ratios are medians of the per-round ratios (paired by round);`);
    console.log('±: half the max−min spread of req/s over the rounds, as % of the median.');
  }
  for (const c of comparisons) {
    console.log(`${c.scenario} vs ${c.against}: req/s ×${fmtRatio(c.throughput)}, p50 ×${fmtRatio(c.p50)} (${c.addedP50Ms >= 0 ? '+' : ''}${c.addedP50Ms} ms), p99 ×${fmtRatio(c.p99)}, CPU/req ×${fmtRatio(c.cpuPerRequest)}` +
      (c.perRound.length > 1 ? `; req/s per round ${c.perRound.map((p) => fmtRatio(p.throughput)).join(' ')}` : ''));
  }
  for (const a of aims) {
    const rounds = a.perRound.length > 1 ? `; per round ${a.perRound.join(' ')}` : '';
    const target = a.min !== undefined ? `minimum ${a.min.toFixed(2)}${a.goal === null ? '' : `, goal ${a.goal.toFixed(2)}`}` : `< ${a.max} ms`;
    console.log(`aim ${a.scenario}: ${a.metric} = ${a.value} (${target}) — ${a.status}${rounds}`);
  }
  for (const s of selected.filter((x) => x.needsRedis)) {
    const perRound = runs.get(s.name).map((r) => r.redisCallsPerRequest);
    const result = byName.get(s.name);
    result.redisCallsPerRequest = perRound;
    console.log(`${s.name}: Redis round trips per request ${perRound.map((n) => n.toFixed(3)).join(' ')} (per round; target 1)`);
  }
  const totalErrors = results.reduce((a, s) => a + s.errors, 0);
  if (totalErrors > 0) console.log(`WARNING: ${totalErrors} load-generator errors (see "errors"); those figures are suspect.`);

  await cleanup();

  let profile = null;
  if (profileDir !== null) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(profileDir, f)).sort();
    const latest = files.at(-1);
    if (latest !== undefined) {
      profile = summariseProfile(latest, 25);
      console.log('');
      console.log(formatSummary(profile));
    }
  }

  const report = {
    date: new Date().toISOString(),
    git: gitInfo(),
    machine: { cpuModel: cpus()[0]?.model ?? null, cpus: cpus().length, memoryGiB: round(totalmem() / 2 ** 30, 1), platform: process.platform, release: release(), loadAverageAtStart: loadavg() },
    node: process.version,
    layout: { ...layout, description: describeLayout(layout) },
    loadGenerator: loadgen,
    settings: { warmupSec: settings.warmupSec, rewarmSec: rewarm, durationSec: settings.durationSec, connections: settings.connections, rounds: settings.rounds, cpuProfile: settings.cpuProf },
    scenarios: results,
    comparisons,
    aims,
    profile,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'last.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${join('.bench', 'last.json')}`);
  return settings.strict && aims.some((a) => !a.pass) ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, async (err) => {
  if (interrupted) return; // the signal handler is already cleaning up
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  await cleanup().catch(() => {});
  process.exit(1);
});
