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
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { cleanup, failure, hasCommand, hasExited, launch, makeScratchDir, recordTree, scratchDir, stopChildrenOnExit, waitForLine } from './children.mjs';
import { intEnv } from './env.mjs';
import { detectLayout } from './layout.mjs';
import { errorCount, pickLoadGenerator, runLoad } from './load.mjs';
import { nginxArgs, nginxConfig } from './nginx-config.mjs';
import { cpuTimeUs, processTree, sampleMaxRss } from './proc-stats.mjs';
import { formatSummary, summariseProfile } from './profile-summary.mjs';
import { aimLine, assertReportable, renderText, tables, writeReport } from './report.mjs';
import { ruleCost } from './rule-cost.mjs';
import { BENCH_USER, benchTls, callbackPath, defaults, loginPath, peerJwt, scenarios as defineScenarios, SESSION_AUTHENTICATORS } from './scenarios.mjs';
import { loginForSession, sessionCookieName } from './session-login.mjs';
import { freePort, jsonLine, probe, startAuthorizationServer, startGateway, startUpstream, useAuthorizationServer, waitForHttp, writeGatewayConfig } from './servers.mjs';
import { checkAims, compare, round, summariseRuns } from './stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const OUT_DIR = join(ROOT, '.bench');
const DOC_FILE = join(ROOT, 'docs', 'performance.md');
const SVG_FILE = join(ROOT, 'docs', 'performance.svg');
const USAGE = `usage: npm run bench [-- --report]
  --report  also write the tables into docs/performance.md (between its bench markers) and the chart to docs/performance.svg
Environment: BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_ONLY, BENCH_LOADGEN, BENCH_CPU_PROF, BENCH_STRICT (see docs/performance.md)`;

// ---------------------------------------------------------------------------------------------
// Settings

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
// Child processes (bench/children.mjs): every one is tracked and ended (with the processes it
// started) on exit, error or Ctrl+C.

function describeLayout(layout) {
  if (!layout.pinned) return `unpinned (${layout.reason}): the OS schedules every process on ${layout.cpus} CPU(s); expect more noise`;
  return `pinned with taskset: core ${layout.serverCore} = server under test (nginx, a bare proxy, the peer gateway or the gateway, one at a time); ` +
    `core ${layout.loadCore} = load generator + upstream + runner; gateway-workers-2 unpinned on CPUs ${layout.allCpus}`;
}

const isInterrupted = stopChildrenOnExit();

// ---------------------------------------------------------------------------------------------
// Servers. A starter resolves with { child, origin } or, when the server cannot run on this
// machine, with { skip: 'one line saying why' }.

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
  const dir = join(scratchDir(), 'nginx');
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
  const child = launch('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', scratchDir()],
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

/** Waits until the nats-server on `port` greets a client with its INFO line (it logs on stderr only). */
async function natsGreets(child, port) {
  for (let i = 0; i < 100; i++) {
    if (hasExited(child)) throw failure(child, 'exited early');
    const greeted = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(500);
      socket.once('data', (d) => { resolve(d.toString().startsWith('INFO ')); socket.destroy(); });
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => { resolve(false); socket.destroy(); });
    });
    if (greeted) return;
    await delay(100);
  }
  throw failure(child, 'not answering after 10 s');
}

/**
 * The gateway whose audit trail also publishes every record to a private nats-server with JetStream
 * (no other load on it), on the load generator's core like the other helpers. Skipped without the
 * binary.
 */
async function startGatewayNats(layout, upstreamOrigin, profileDir, redisUrl) {
  if (!hasCommand('nats-server')) return { skip: 'nats-server is not installed: skipping the JetStream audit scenario (Debian: apt-get install nats-server)' };
  const port = await freePort();
  const dir = join(scratchDir(), 'nats');
  mkdirSync(dir, { recursive: true });
  const nats = launch('nats', 'nats-server', ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)], { cpus: layout.loadCore ?? null, layout });
  await natsGreets(nats, port);
  return startGateway(layout, upstreamOrigin, profileDir, redisUrl, { name: 'gateway-nats', natsUrl: `nats://127.0.0.1:${port}` });
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
  const ports = { httpPort: await freePort(), httpsPort: await freePort(), adminPort: await freePort() };
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

// ---------------------------------------------------------------------------------------------
// Load generation

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

/** Where a scenario's load goes: the target's HTTPS listener for an `https` scenario, else its plain one. */
function originOf(server, s) {
  if (s.https !== true) return server.origin;
  if (server.httpsOrigin === undefined) throw new Error(`scenario ${s.name}: target ${s.target} has no HTTPS listener`);
  return server.httpsOrigin;
}

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
  const loadgen = pickLoadGenerator(settings.loadgen);
  const rewarm = Math.min(settings.warmupSec, settings.rewarmSec);
  const seconds = selected.length * (settings.warmupSec + (settings.rounds - 1) * rewarm + settings.rounds * (settings.durationSec + 1));
  console.log(`portcullis bench — ${selected.length} scenarios × ${settings.rounds} round(s), ${settings.durationSec} s measured each ` +
    `(warmup ${settings.warmupSec} s in round 1, ${rewarm} s after); about ${Math.ceil(seconds / 60)} min`);
  console.log(`layout: ${describeLayout(layout)}`);
  console.log(`load generator: ${loadgen.name} ${loadgen.version}; node ${process.version}; ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (settings.cpuProf) console.log('BENCH_CPU_PROF=1: the gateway runs under --cpu-prof; its figures are NOT representative');

  makeScratchDir('portcullis-bench-');
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
  // The introspection scenarios' authorization server, started before any gateway config is written.
  // For the session scenarios it also has a login client whose callbacks are on the gateway: its
  // port is chosen first.
  const sessionPort = selected.some((s) => s.session !== undefined) ? await freePort() : null;
  const sessionBase = sessionPort === null ? null : `http://127.0.0.1:${sessionPort}`;
  const redirectUris = sessionBase === null ? null : Object.keys(SESSION_AUTHENTICATORS).map((name) => `${sessionBase}${callbackPath(name)}`);
  const authorizationServer = selected.some((s) => s.needsAuthorizationServer) ? await startAuthorizationServer(layout, redirectUris) : null;
  if (authorizationServer !== null) useAuthorizationServer(authorizationServer);
  const login = sessionBase === null || authorizationServer?.web == null ? null
    : { base: sessionBase, issuer: authorizationServer.issuer, clientId: authorizationServer.web.clientId, clientSecret: authorizationServer.web.clientSecret };
  const nginx = selected.some((s) => s.target === 'nginx') ? nginxBinary() : null;
  const starters = {
    nginx: () => startNginx(layout, upstream.origin, nginx),
    'bare-proxy': () => startBareProxy(layout, upstream.origin, 'request'),
    'bare-proxy-stream': () => startBareProxy(layout, upstream.origin, 'stream'),
    'peer-fast-gateway': () => startPeerGateway(layout, upstream.origin),
    gateway: () => startGateway(layout, upstream.origin, profileDir, redis?.url ?? null, login === null ? {} : { httpPort: sessionPort, login }),
    'gateway-audit-off': () => startGateway(layout, upstream.origin, profileDir, redis?.url ?? null, { name: 'gateway-audit-off', auditOff: true }),
    'gateway-nats': () => startGatewayNats(layout, upstream.origin, profileDir, redis?.url ?? null),
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
  const ctx = { upstreamOrigin: upstream.origin, workDir: join(scratchDir(), 'gateway'), introspectionToken: authorizationServer?.token ?? null, sessionCookies: {} };
  // One real login per session scenario's authenticator, through the gateway, before any load.
  for (const name of new Set(selected.filter((s) => s.session !== undefined).map((s) => s.session))) {
    ctx.sessionCookies[name] = await loginForSession(`${servers.gateway.origin}${loginPath(name)}?rd=/${name}/hello`, sessionCookieName(name));
  }

  const expected = await probe(upstream.origin, '/bench/hello', {});
  for (const s of selected) {
    s.resolvedHeaders = typeof s.headers === 'function' ? s.headers(ctx) : { ...(s.headers ?? {}) };
    const origin = originOf(servers[s.target], s);
    const got = await probe(origin, s.path, s.resolvedHeaders, { method: s.method, body: s.body });
    if (got.status !== 200 || got.body !== expected.body) {
      throw new Error(`scenario ${s.name}: probe of ${origin}${s.path} answered ${got.status} ${got.body.slice(0, 200)}`);
    }
    if (s.identityPath !== undefined) {
      // The upstream must have received the session's identity, and no gateway cookie.
      const who = await probe(origin, s.identityPath, s.resolvedHeaders);
      const seen = who.status === 200 ? JSON.parse(who.body) : null;
      if (seen?.['x-user-id'] !== BENCH_USER || seen.gatewayCookie !== false) {
        throw new Error(`scenario ${s.name}: probe of ${origin}${s.identityPath} answered ${who.status} ${who.body.slice(0, 200)} (expected x-user-id ${BENCH_USER}, no gateway cookie)`);
      }
    }
  }

  const runs = new Map(selected.map((s) => [s.name, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    // Odd rounds run the scenarios in order, even rounds in reverse: no scenario always follows the same one.
    for (const s of r % 2 === 1 ? selected : [...selected].reverse()) {
      const load = {
        url: originOf(servers[s.target], s) + s.path, connections: s.connections, headers: s.resolvedHeaders,
        ...(s.streams === undefined ? {} : { streams: s.streams, ca: benchTls.ca }),
        ...(s.method === undefined ? {} : { method: s.method }),
        ...(s.body === undefined ? {} : { body: s.body }),
      };
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
      if (hasExited(server)) throw failure(server, 'exited during the run');
      runs.get(s.name).push(report);
      const errors = errorCount(report);
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

  // The policy scenario's rules priced alone, after the load (nothing else running): CPU per
  // evaluation of a realistic rule set in CEL as the gateway runs it, and in Cedar for comparison.
  let ruleCosts = null;
  if (selected.some((s) => s.name === 'gateway-policy-validated')) {
    ruleCosts = await ruleCost();
    const line = (lang) => `${lang} ${ruleCosts[lang].allowed.nsPerEvaluation} ns allowed (spread ${ruleCosts[lang].allowed.spread}), ` +
      `${ruleCosts[lang].refused.nsPerEvaluation} ns refused (spread ${ruleCosts[lang].refused.spread})`;
    const text = `rule evaluation per request (${ruleCosts.rules} rules, ${ruleCosts.rounds} rounds of ${ruleCosts.evaluations}): ${line('cel')}; for comparison ${line('cedar')}`;
    console.log(`\n${text}`);
    notes.push(text);
  }

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
    ruleCosts,
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
  if (isInterrupted()) return; // the signal handler is already cleaning up
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  await cleanup().catch(() => {});
  process.exit(1);
});
