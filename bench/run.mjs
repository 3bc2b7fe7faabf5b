// `npm run bench`: throughput, latency, CPU and memory of the gateway against the field — the
// upstream itself, nginx, bare Node proxies and a peer Node gateway — measured in one run on
// loopback. `npm run bench -- --report` also writes the tables into docs/performance.md and the
// chart to docs/performance.svg. See docs/performance.md.
//
// Layout (when taskset exists and at least 2 CPUs are allowed): the server under test — nginx, a
// bare proxy, the peer gateway or the gateway, each its own child process (tree) — runs alone on
// the second CPU; the upstream, the load generator and this runner share the first. Only one
// server is under load at a time. The gateway under `--workers 2` is the exception: it is given
// every allowed CPU, as its workers would be in production.
//
// Environment (defaults in scenarios.mjs): BENCH_DURATION (measured seconds per scenario and
// round, 10), BENCH_WARMUP (5), BENCH_CONNECTIONS (50), BENCH_ROUNDS (3; median), BENCH_ONLY
// (comma-separated scenario names; their baselines, references and aims' scenarios are added),
// BENCH_LOADGEN (wrk | autocannon), BENCH_CPU_PROF=1 (profile the gateway child and summarise it;
// figures are then not representative), BENCH_STRICT=1 (exit 1 when a scenario misses an aim).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { Client } from 'undici';
import { stringify } from 'yaml';
import { nginxArgs, nginxConfig } from './nginx-config.mjs';
import { cpuTimeUs, processTree, sampleMaxRss } from './proc-stats.mjs';
import { formatSummary, summariseProfile } from './profile-summary.mjs';
import { aimLine, assertReportable, renderText, tables, writeReport } from './report.mjs';
import { defaults, gatewayConfig, peerJwt, scenarios as defineScenarios } from './scenarios.mjs';
import { checkAims, compare, round, summariseRuns } from './stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const OUT_DIR = join(ROOT, '.bench');
const DOC_FILE = join(ROOT, 'docs', 'performance.md');
const SVG_FILE = join(ROOT, 'docs', 'performance.svg');
const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 100;
const STOP_TIMEOUT_MS = 5_000;
const USAGE = `usage: npm run bench [-- --report]
  --report  also write the tables into docs/performance.md (between its bench markers) and the chart to docs/performance.svg
Environment: BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_ONLY, BENCH_LOADGEN, BENCH_CPU_PROF, BENCH_STRICT (see docs/performance.md)`;

// ---------------------------------------------------------------------------------------------
// Settings

function intEnv(name, fallback, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replace(/s$/, ''));
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return value;
}

function readArgs() {
  try {
    return parseArgs({ options: { report: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }).values;
  } catch (err) {
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
}

const args = readArgs();
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
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
  report: args.report,
};

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and ended (with the processes it started) on exit, error
// or Ctrl+C.

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
  return { pinned: true, loadCore, serverCore, allCpus: allowed.join(','), cpus: allowed.length };
}

function describeLayout(layout) {
  if (!layout.pinned) return `unpinned (${layout.reason}): the OS schedules every process on ${layout.cpus} CPU(s); expect more noise`;
  return `pinned with taskset: core ${layout.serverCore} = server under test (nginx, a bare proxy, the peer gateway or the gateway, one at a time); ` +
    `core ${layout.loadCore} = load generator + upstream + runner; gateway-workers-2 unpinned on CPUs ${layout.allCpus}`;
}

/**
 * Starts a child, pinned to `cpus` (a taskset CPU list) when the layout is pinned; keeps its last
 * output lines for errors. Children inherit this runner's affinity (the load generator's core),
 * so a child that should run elsewhere is always given its CPUs.
 */
function launch(name, cmd, argv, { cpus: cpuList = null, layout, env = process.env } = {}) {
  const pinned = layout.pinned && cpuList !== null;
  const child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', String(cpuList), cmd, ...argv] : argv, {
    cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.benchName = name;
  child.tail = [];
  child.tree = [child.pid];
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

/** Resolves once `origin + path` answers 200 (for servers that print nothing when ready); fails if the child exits first. */
async function waitForHttp(child, origin, path) {
  let exited = null;
  child.exited.then((status) => { exited = status; });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited !== null) throw failure(child, `exited early (code ${exited.code}, signal ${exited.signal})`);
    try {
      if ((await probe(origin, path, {})).status === 200) return;
    } catch {
      // not listening yet
    }
    await delay(READY_POLL_MS);
  }
  throw failure(child, `not answering ${origin}${path} after ${READY_TIMEOUT_MS} ms`);
}

/** Records the child's process tree (nginx's worker, the gateway's workers) once it is ready. */
function recordTree(child) {
  child.tree = processTree(child.pid);
}

/** Kills what is left of a child's tree: a worker whose parent was killed outright is not stopped by it. */
function killTree(child) {
  for (const pid of new Set([...processTree(child.pid), ...child.tree])) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => killTree(child), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}

async function cleanup() {
  await Promise.all([...children].map(stopChild));
  if (tempDir !== null) { rmSync(tempDir, { recursive: true, force: true }); tempDir = null; }
}

process.on('exit', () => {
  for (const child of children) killTree(child);
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
// Servers. A starter resolves with { child, origin } or, when the server cannot run on this
// machine, with { skip: 'one line saying why' }.

const jsonLine = (key) => (line) => {
  const msg = JSON.parse(line);
  return msg.ready === key ? msg : undefined;
};

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

async function startUpstream(layout) {
  const child = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs')], { cpus: layout.loadCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('upstream'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

async function startBareProxy(layout, upstreamOrigin, mode) {
  const child = launch(`bare-proxy (${mode})`, process.execPath, [join(BENCH, 'bare-proxy.mjs'), upstreamOrigin, mode], { cpus: layout.serverCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('bare-proxy'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

/** The nginx binary: on PATH, or where Debian installs it (/usr/sbin is not on every user's PATH). */
function nginxBinary() {
  if (hasCommand('nginx')) return 'nginx';
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null;
}

function nginxVersion(binary) {
  const out = spawnSync(binary, ['-v'], { encoding: 'utf8' });
  return /nginx\/(\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
}

async function startNginx(layout, upstreamOrigin, binary) {
  if (binary === null) return { skip: 'nginx is not installed: skipping the nginx scenarios and the ratios to nginx (Debian: apt-get install nginx)' };
  const dir = join(tempDir, 'nginx');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig({ dir, port, upstreamOrigin }));
  const child = launch('nginx', binary, nginxArgs(dir), { cpus: layout.serverCore ?? null, layout });
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(child, origin, '/');
  return { child, origin };
}

/** fast-gateway is a devDependency; a checkout installed without devDependencies lacks it. */
function hasFastGateway() {
  try {
    import.meta.resolve('fast-gateway');
    return true;
  } catch {
    return false;
  }
}

async function startPeerGateway(layout, upstreamOrigin) {
  if (!hasFastGateway()) return { skip: 'fast-gateway is not installed: skipping peer-fast-gateway (npm install adds it, a devDependency)' };
  const config = JSON.stringify({ upstream: upstreamOrigin, ...peerJwt });
  const child = launch('peer-fast-gateway', process.execPath, [join(BENCH, 'peer-fast-gateway.mjs'), config], { cpus: layout.serverCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('peer-fast-gateway'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

/**
 * A private redis-server for the Redis limiter scenarios, on the load generator's core (the server
 * under test stays alone on its core), no persistence. Null when redis-server is not installed.
 */
async function startRedis(layout) {
  if (!hasCommand('redis-server')) return null;
  const port = await freePort();
  const child = launch('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tempDir],
    { cpus: layout.loadCore ?? null, layout });
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

/** Writes a gateway config with its own data directory; `ports` fixes the listeners (default: any free port). */
function writeGatewayConfig(name, upstreamOrigin, redisUrl, ports = {}) {
  const workDir = join(tempDir, name);
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(workDir, 'gateway.yaml');
  writeFileSync(configFile, stringify(gatewayConfig({ upstreamOrigin, dataDir, workDir, redisUrl, ...ports })));
  return configFile;
}

async function startGateway(layout, upstreamOrigin, profileDir, redisUrl) {
  const configFile = writeGatewayConfig('gateway', upstreamOrigin, redisUrl);
  const nodeArgs = profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  const child = launch('gateway', process.execPath, [...nodeArgs, join(ROOT, 'dist/src/cli/main.js'), 'start', '-c', configFile], { cpus: layout.serverCore ?? null, layout });
  const msg = await waitForLine(child, (line) => {
    const m = JSON.parse(line);
    return m.msg === 'gateway listening' ? m : undefined;
  });
  return { child, origin: `http://127.0.0.1:${msg.http}`, adminOrigin: `http://127.0.0.1:${msg.admin}`, configFile };
}

/** Node's parseArgs error for a flag the CLI does not declare. */
const refusedWorkersFlag = (child) => child.tail.some((line) => /unknown option/i.test(line) && line.includes('--workers'));

/**
 * The gateway under `start --workers 2`, on every allowed CPU. Its listeners get fixed free ports
 * (workers share them) and readiness is the first 200 on the public route. Starting it is also the
 * probe: a build whose CLI refuses the flag exits at once with an unknown-option error, and the
 * scenario is skipped.
 */
async function startGatewayWorkers(layout, upstreamOrigin, redisUrl) {
  const ports = { httpPort: await freePort(), adminPort: await freePort() };
  const configFile = writeGatewayConfig('gateway-workers-2', upstreamOrigin, redisUrl, ports);
  const child = launch('gateway --workers 2', process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'start', '--workers', '2', '-c', configFile],
    { cpus: layout.allCpus ?? null, layout });
  const origin = `http://127.0.0.1:${ports.httpPort}`;
  try {
    await waitForHttp(child, origin, '/bench/hello');
  } catch (err) {
    // waitForHttp fails on the child's exit only once its output is all in.
    if (refusedWorkersFlag(child)) return { skip: '--workers is not supported by this build: skipping gateway-workers-2' };
    throw err;
  }
  return { child, origin };
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
      { cpus: layout.loadCore ?? null, layout });
  } else {
    child = launch('autocannon', process.execPath, [join(BENCH, 'autocannon-driver.mjs'), JSON.stringify({ url, connections, durationSec, headers })],
      { cpus: layout.loadCore ?? null, layout });
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

/**
 * One measured window: the load run, the CPU time of the server's process tree before and after
 * it, and the largest resident set sampled during it.
 */
async function measure(loadgen, layout, server, load) {
  const tree = processTree(server.child.pid);
  const cpuBefore = cpuTimeUs(tree);
  const rss = sampleMaxRss(tree);
  let maxRssKiB = null;
  const report = await runLoad(loadgen, layout, load).finally(() => { maxRssKiB = rss.stop(); });
  const cpuAfter = cpuTimeUs(tree);
  return { ...report, maxRssKiB, serverCpuUs: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore };
}

// ---------------------------------------------------------------------------------------------
// Main

/** The scenarios to run: all, or BENCH_ONLY's with every scenario their figures are compared to. */
function selectScenarios(all) {
  const byName = new Map(all.map((s) => [s.name, s]));
  const related = (s) => [s.baseline, s.references?.stream, s.references?.nginx, ...(s.aims ?? []).map((a) => a.against ?? s.baseline)];
  for (const s of all) {
    for (const n of related(s)) if (n !== undefined && !byName.has(n)) throw new Error(`scenario ${s.name}: unknown scenario ${n}`);
  }
  for (const n of settings.only) if (!byName.has(n)) throw new Error(`BENCH_ONLY: unknown scenario "${n}" (known: ${[...byName.keys()].join(', ')})`);
  if (settings.only.length === 0) return all;
  const wanted = new Set(settings.only.flatMap((n) => [n, ...related(byName.get(n))]));
  return all.filter((s) => wanted.has(s.name));
}

/** Drops the scenarios of `target` from `selected` (in place) and records why. */
function skipTarget(selected, notes, target, reason) {
  const names = selected.filter((s) => s.target === target).map((s) => s.name);
  for (let i = selected.length - 1; i >= 0; i--) if (selected[i].target === target) selected.splice(i, 1);
  console.log(reason);
  notes.push(`Not measured: ${names.join(', ')}. ${reason}.`);
}

function printResults(results, aims, roundsNote) {
  for (const t of tables(results)) {
    console.log('');
    console.log(renderText(t));
  }
  console.log('');
  console.log('req/s: higher is better; latency, CPU and RSS: lower is better. ×: ratio to the scenario named in the table\'s title or "against" column;');
  console.log('+p50: milliseconds added to that scenario\'s p50. cpu: CPU use of the server under test (its whole process tree) during the');
  console.log('measured window (100% = one core); µs/req: its CPU time per request; RSS: its largest resident set during the windows.');
  if (roundsNote !== null) console.log(roundsNote);
  for (const a of aims) console.log(aimLine(a));
}

async function main() {
  if (settings.report) assertReportable(DOC_FILE);
  const all = defineScenarios({ connections: settings.connections });
  const selected = selectScenarios(all);

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
  const notes = [];

  // The servers a scenario can target; only those some selected scenario uses are started.
  const upstream = await startUpstream(layout);
  const redis = selected.some((s) => s.needsRedis) ? await startRedis(layout) : null;
  if (selected.some((s) => s.needsRedis) && redis === null) {
    const reason = 'redis-server is not installed: skipping the Redis scenarios (Debian: apt-get install redis-server)';
    const names = selected.filter((s) => s.needsRedis).map((s) => s.name);
    for (let i = selected.length - 1; i >= 0; i--) if (selected[i].needsRedis) selected.splice(i, 1);
    console.log(reason);
    notes.push(`Not measured: ${names.join(', ')}. ${reason}.`);
  }
  const nginx = selected.some((s) => s.target === 'nginx') ? nginxBinary() : null;
  const starters = {
    nginx: () => startNginx(layout, upstream.origin, nginx),
    'bare-proxy': () => startBareProxy(layout, upstream.origin, 'request'),
    'bare-proxy-stream': () => startBareProxy(layout, upstream.origin, 'stream'),
    'peer-fast-gateway': () => startPeerGateway(layout, upstream.origin),
    gateway: () => startGateway(layout, upstream.origin, profileDir, redis?.url ?? null),
    'gateway-workers-2': () => startGatewayWorkers(layout, upstream.origin, redis?.url ?? null),
  };
  const servers = { upstream };
  for (const target of new Set(selected.map((s) => s.target))) {
    if (target === 'upstream') continue;
    const start = starters[target];
    if (start === undefined) throw new Error(`unknown target "${target}" (known: upstream, ${Object.keys(starters).join(', ')})`);
    const server = await start();
    if (server.skip !== undefined) skipTarget(selected, notes, target, server.skip);
    else {
      recordTree(server.child);
      servers[target] = server;
    }
  }
  if (servers['gateway-workers-2'] !== undefined) console.log('gateway-workers-2 runs unpinned: its workers share the CPUs with the load generator and the upstream');
  const ctx = { upstreamOrigin: upstream.origin, workDir: join(tempDir, 'gateway') };

  const expected = await probe(upstream.origin, '/bench/hello', {});
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
    // Odd rounds run the scenarios in order, even rounds in reverse: no scenario always follows the same one.
    for (const s of r % 2 === 1 ? selected : [...selected].reverse()) {
      const load = { url: servers[s.target].origin + s.path, connections: s.connections, headers: s.resolvedHeaders };
      const label = `[${r}/${settings.rounds}] ${s.name.padEnd(26)}`;
      // The first round warms the JIT; later rounds only re-open connections.
      const warmup = r === 1 ? settings.warmupSec : rewarm;
      if (warmup > 0) {
        process.stdout.write(`${label} warmup ${warmup} s… `);
        await runLoad(loadgen, layout, { ...load, durationSec: warmup });
      } else process.stdout.write(`${label} `);
      process.stdout.write(`measure ${settings.durationSec} s… `);
      const callsBefore = s.needsRedis ? await redisCalls(redis.url) : null;
      const report = await measure(loadgen, layout, servers[s.target], { ...load, durationSec: settings.durationSec });
      // Round trips per request: the limiter's script calls during the measured window ÷ the requests.
      if (callsBefore !== null) report.redisCallsPerRequest = ((await redisCalls(redis.url)) - callsBefore) / report.requests;
      const server = servers[s.target].child;
      if (server.exitCode !== null || server.signalCode !== null) throw failure(server, 'exited during the run');
      runs.get(s.name).push(report);
      const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
      console.log(`${Math.round(report.requests / (report.durationUs / 1e6)).toLocaleString('en-US')} req/s, p50 ${(report.latencyUs.p50 / 1000).toFixed(3)} ms` +
        (errors > 0 ? `, ${errors} ERRORS ${JSON.stringify(report.errors)}` : ''));
      await delay(500); // let closed connections settle
    }
  }

  const results = selected.map((s) => ({
    name: s.name, target: s.target, path: s.path, connections: s.connections, baseline: s.baseline, references: s.references ?? null,
    note: s.note ?? null, aims: s.aims ?? [], ...summariseRuns(runs.get(s.name)),
  }));
  const byName = new Map(results.map((s) => [s.name, s]));
  for (const s of results) {
    s.ratios = {
      baseline: compare(s, byName.get(s.baseline)),
      stream: compare(s, byName.get(s.references?.stream)),
      nginx: compare(s, byName.get(s.references?.nginx)),
    };
  }
  const aims = results.flatMap((s) => checkAims(s, byName));

  const roundsNote = settings.rounds > 1
    ? `figures are medians of ${settings.rounds} rounds (alternating order); ratios are medians of the per-round ratios (paired by round); ±: half the max−min spread of req/s over the rounds, as % of the median.`
    : null;
  printResults(results, aims, roundsNote);
  for (const s of selected.filter((x) => x.needsRedis)) {
    const perRound = runs.get(s.name).map((r) => r.redisCallsPerRequest);
    byName.get(s.name).redisCallsPerRequest = perRound;
    console.log(`${s.name}: Redis round trips per request ${perRound.map((n) => n.toFixed(3)).join(' ')} (per round; target 1)`);
  }
  for (const note of notes) console.log(note);
  const totalErrors = results.reduce((a, s) => a + s.errors, 0);
  if (totalErrors > 0) {
    const warning = `WARNING: ${totalErrors} load-generator errors (see "errors"); those figures are suspect.`;
    console.log(warning);
    notes.push(warning);
  }

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
    nginx: servers.nginx === undefined ? null : nginxVersion(nginx),
    layout: { ...layout, description: describeLayout(layout) },
    loadGenerator: loadgen,
    settings: { warmupSec: settings.warmupSec, rewarmSec: rewarm, durationSec: settings.durationSec, connections: settings.connections, rounds: settings.rounds, cpuProfile: settings.cpuProf },
    scenarios: results,
    aims,
    notes,
    profile,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'last.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${join('.bench', 'last.json')}`);
  if (settings.report) {
    writeReport(report, { docFile: DOC_FILE, svgFile: SVG_FILE, defaults });
    console.log('wrote the tables into docs/performance.md (between its bench markers) and the chart to docs/performance.svg');
  }
  return settings.strict && aims.some((a) => a.pass === false) ? 1 : 0;
}

function gitInfo() {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' });
  return { commit: rev.status === 0 ? rev.stdout.trim() : null, srcDirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

main().then((code) => { process.exitCode = code; }, async (err) => {
  if (interrupted) return; // the signal handler is already cleaning up
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  await cleanup().catch(() => {});
  process.exit(1);
});
