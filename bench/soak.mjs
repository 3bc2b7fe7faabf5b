// `npm run soak`: the full pipeline (the bench's `gateway-full` route: a cached RS256 token, a
// scope, an in-process limit per caller, the identity headers and the audit record) held at a
// constant share of its measured capacity for ten minutes. Every request must succeed, and the
// gateway's resident memory and event-loop delay must stay flat. See docs/performance.md#soak.
//
// Phase 1 measures capacity: the bench's closed-loop generator (wrk, else autocannon) at 50
// connections, 5 s warmup then 10 s measured — or takes it from --rate / SOAK_RATE. Phase 2 sends
// SOAK_LOAD × capacity requests/s open-loop (bench/rate-driver.mjs) for SOAK_DURATION seconds
// after a SOAK_WARMUP that ramps up to that rate, sampling the gateway's RSS (/proc), and its
// event-loop delay p99 and heap from its admin /metrics, throughout. Same layout as the bench: the
// gateway alone on the second CPU.
//
// Exit 0: no failed request and both series flat; 1: anything else; 2: bad arguments.
import { statSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { cleanup, failure, hasExited, launch, makeScratchDir, recordTree, stopChild, stopChildrenOnExit, waitForLine } from './children.mjs';
import { intEnv } from './env.mjs';
import { FLAT_RULES, MIN_JUDGED_SEC, judgeSeries, windowSec } from './flatness.mjs';
import { detectLayout } from './layout.mjs';
import { errorCount, pickLoadGenerator, runLoad } from './load.mjs';
import { cpuTimeUs, rssKiB } from './proc-stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const SCENARIO = 'gateway-full';
const MAX_RATE = 100_000; // requests/s; far above one gateway process, far below the route's limit (10⁶/s per caller)
const MAX_DURATION_SEC = 3600; // the bench token is valid for two hours
const MAX_WARMUP_SEC = 600;
const REQUEST_TIMEOUT_MS = 5_000; // as the bench's wrk runs
const SCRAPE_TIMEOUT_MS = 2_000;
const LOAD_CORE_BUSY = 0.8; // generator + upstream CPU past which the report says latency includes their queueing
const USAGE = `usage: npm run soak [-- --rate N]
  --rate N    soak at N requests/s (skips measuring capacity); also SOAK_RATE
  -h, --help  this text
Environment: SOAK_RATE, SOAK_LOAD (share of the measured capacity, default 0.70), SOAK_DURATION (measured seconds,
default 600), SOAK_WARMUP (seconds before measuring, ramping up to the rate, default 30), BENCH_LOADGEN (capacity run: wrk |
autocannon), SOAK_OUT (the JSON report, default .bench/soak.json). Exit 0: no failed request and RSS and event-loop delay flat; 1: otherwise; 2: bad arguments.
See docs/performance.md#soak.`;

// ---------------------------------------------------------------------------------------------
// Settings

class UsageError extends Error {}

function positiveInt(name, raw, max) {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1 || value > max) throw new UsageError(`${name} must be an integer from 1 to ${max}, got "${raw}"`);
  return value;
}

function boundedIntEnv(name, fallback, min, max) {
  let value;
  try {
    value = intEnv(name, fallback, min);
  } catch (err) {
    throw new UsageError(err.message);
  }
  if (value > max) throw new UsageError(`${name} must be at most ${max}, got "${process.env[name]}"`);
  return value;
}

function readSettings() {
  let values;
  try {
    ({ values } = parseArgs({ options: { rate: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    throw new UsageError(err.message);
  }
  if (values.help) return { help: true };
  const rateRaw = values.rate ?? process.env.SOAK_RATE ?? '';
  const rate = rateRaw === '' ? null : positiveInt(values.rate === undefined ? 'SOAK_RATE' : '--rate', rateRaw, MAX_RATE);
  const loadRaw = process.env.SOAK_LOAD ?? '';
  const load = loadRaw === '' ? 0.70 : Number(loadRaw);
  if (!/^\d*\.?\d+$/.test(loadRaw === '' ? '0.70' : loadRaw) || !(load > 0 && load <= 1)) throw new UsageError(`SOAK_LOAD must be a number above 0 and at most 1, got "${loadRaw}"`);
  const loadgen = process.env.BENCH_LOADGEN ?? '';
  if (!['', 'wrk', 'autocannon'].includes(loadgen)) throw new UsageError(`BENCH_LOADGEN must be wrk or autocannon, got "${loadgen}"`);
  return {
    help: false, rate, load, loadgen, outFile: resolve(process.env.SOAK_OUT || join(ROOT, '.bench', 'soak.json')),
    durationSec: boundedIntEnv('SOAK_DURATION', 600, 1, MAX_DURATION_SEC),
    warmupSec: boundedIntEnv('SOAK_WARMUP', 30, 0, MAX_WARMUP_SEC),
  };
}

let settings;
try {
  settings = readSettings();
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`soak: ${err.message} (see npm run soak -- --help)\n`);
  process.exit(2);
}
if (settings.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const isInterrupted = stopChildrenOnExit();

// ---------------------------------------------------------------------------------------------
// Sampling the gateway

const fmt = (x, digits = 1) => (x === null || x === undefined ? '—' : x.toFixed(digits));
const int = (n) => Math.round(n).toLocaleString('en-US');

/** A sample's interval: 40 samples over a short run, one every 5 s over the default ten minutes. */
function sampleIntervalMs(durationSec) {
  return Math.min(5_000, Math.max(250, (durationSec * 1000) / 40));
}

/** One value of an unlabelled metric in Prometheus text, or null. */
function metricValue(text, name) {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  const value = m === null ? NaN : Number(m[1]);
  return Number.isFinite(value) ? value : null;
}

/**
 * RSS of the gateway (/proc), and its event-loop delay p99 and heap in use from its admin
 * /metrics. prom-client resets its event-loop histogram at every scrape, so each p99 covers the
 * interval since the previous sample (nothing else scrapes this gateway). `scrapeError` is set
 * when the admin listener did not answer in time.
 */
async function sample(gateway, tree) {
  const kib = rssKiB(tree);
  const s = { rssMiB: kib === null ? null : kib / 1024, loopP99Ms: null, heapMiB: null, scrapeError: null };
  try {
    const res = await request(`${gateway.adminOrigin}/metrics`, { headersTimeout: SCRAPE_TIMEOUT_MS, bodyTimeout: SCRAPE_TIMEOUT_MS });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    const lag = metricValue(text, 'portcullis_nodejs_eventloop_lag_p99_seconds');
    const heap = metricValue(text, 'portcullis_nodejs_heap_size_used_bytes');
    s.loopP99Ms = lag === null ? null : lag * 1000;
    s.heapMiB = heap === null ? null : heap / 2 ** 20;
    if (lag === null) s.scrapeError = 'no portcullis_nodejs_eventloop_lag_p99_seconds in /metrics';
  } catch (err) {
    s.scrapeError = err.message;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Phases

/** Phase 1: requests/s of the full pipeline under the bench's closed-loop generator, at the bench's defaults. */
async function measureCapacity(layout, defaults, load) {
  const loadgen = pickLoadGenerator(settings.loadgen);
  process.stdout.write(`capacity: ${loadgen.name} ${loadgen.version}, ${load.connections} connections, warmup ${defaults.warmupSec} s, measure ${defaults.durationSec} s… `);
  if (defaults.warmupSec > 0) await runLoad(loadgen, layout, { ...load, durationSec: defaults.warmupSec });
  const report = await runLoad(loadgen, layout, { ...load, durationSec: defaults.durationSec });
  const rps = report.requests / (report.durationUs / 1e6);
  console.log(`${int(rps)} req/s, p50 ${(report.latencyUs.p50 / 1000).toFixed(3)} ms`);
  if (errorCount(report) > 0) throw new Error(`the capacity run had errors: ${JSON.stringify(report.errors)}`);
  await delay(500); // let closed connections settle
  return { requestsPerSec: rps, loadGenerator: loadgen, connections: load.connections, durationSec: defaults.durationSec };
}

/**
 * Most requests outstanding at once: as many as the request timeout lets through at the rate (a
 * backlog longer than that would time out anyway), at least 1,000 and at most 50,000 (the
 * generator's memory).
 */
function maxOutstanding(rate) {
  return Math.min(50_000, Math.max(1000, Math.ceil((rate * REQUEST_TIMEOUT_MS) / 1000)));
}

/**
 * Phase 2: the open-loop run, sampling the gateway every `sampleMs` until the driver reports.
 * Resolves with the driver's report and the samples (t: seconds since the end of the warm-up).
 */
async function soak(layout, { gateway, upstream }, url, headers, rate, connections) {
  const sampleMs = sampleIntervalMs(settings.durationSec);
  const spec = { url, rate, warmupSec: settings.warmupSec, durationSec: settings.durationSec, headers, connections,
    timeoutMs: REQUEST_TIMEOUT_MS, maxInFlight: maxOutstanding(rate), progressMs: sampleMs };
  const driver = launch('rate-driver', process.execPath, [join(BENCH, 'rate-driver.mjs'), JSON.stringify(spec)], { cpus: layout.loadCore ?? null, layout });
  let latest = { sent: 0, ok: 0, failed: 0 };
  driver.lines.on('line', (line) => {
    const m = /^RATE_PROGRESS (.*)$/.exec(line);
    if (m !== null) latest = JSON.parse(m[1]);
  });
  const totalMs = (settings.warmupSec + settings.durationSec) * 1000;
  await waitForLine(driver, (line) => (line.startsWith('RATE_START ') ? true : undefined));
  const t0 = performance.now();
  let report = null;
  const done = waitForLine(driver, (line) => {
    const m = /^RATE_JSON (.*)$/.exec(line);
    return m === null ? undefined : JSON.parse(m[1]);
  }, totalMs + 4 * REQUEST_TIMEOUT_MS + 30_000).then((r) => { report = r; });
  done.catch(() => {}); // raced below; this only keeps a rejection between races from counting as unhandled

  const tree = gateway.child.tree;
  // CPU time of the gateway and of what shares the load generator's core, read when the measured
  // phase starts and at the last sample inside it.
  const watched = { gateway: tree, generator: [driver.pid], upstream: [upstream.child.pid] };
  const cpuReading = (ms) => ({ ms, us: Object.fromEntries(Object.entries(watched).map(([name, pids]) => [name, cpuTimeUs(pids)])) });
  const samples = [];
  const progressEverySec = Math.max(sampleMs / 1000, settings.durationSec / 10);
  let nextProgressSec = 0;
  let cpuAtStart = null;
  let cpuAtEnd = null;
  const measuredStartMs = settings.warmupSec * 1000;
  if (settings.warmupSec > 0) console.log(`warm-up ${settings.warmupSec} s, ramping up to ${int(rate)} req/s…`);
  // Bounded: the driver reports or fails within its own deadline, and the samples are counted too.
  const maxSamples = Math.ceil((totalMs + 4 * REQUEST_TIMEOUT_MS + 30_000) / sampleMs) + 1;
  for (let i = 1; report === null && i <= maxSamples; i++) {
    await Promise.race([delay(Math.max(0, t0 + i * sampleMs - performance.now())), done]);
    if (report !== null) break;
    if (hasExited(gateway.child)) throw failure(gateway.child, 'exited during the soak');
    const elapsedMs = performance.now() - t0;
    if (cpuAtStart === null && elapsedMs >= measuredStartMs) cpuAtStart = cpuReading(elapsedMs);
    if (elapsedMs <= totalMs) cpuAtEnd = cpuReading(elapsedMs);
    const t = (elapsedMs - measuredStartMs) / 1000;
    const s = { t: Math.round(t * 1000) / 1000, ...(await sample(gateway, tree)) };
    samples.push(s);
    if (t >= nextProgressSec) {
      nextProgressSec += progressEverySec;
      console.log(`[${`${Math.round(t)}`.padStart(String(settings.durationSec).length)}/${settings.durationSec} s] sent ${int(latest.sent)}, ok ${int(latest.ok)}, failed ${int(latest.failed)} · ` +
        `RSS ${fmt(s.rssMiB)} MiB · event-loop p99 ${fmt(s.loopP99Ms, 2)} ms · heap ${fmt(s.heapMiB)} MiB${s.scrapeError === null ? '' : ` · metrics: ${s.scrapeError}`}`);
    }
  }
  await done;
  await stopChild(driver);
  const cpu = {};
  for (const name of Object.keys(watched)) {
    const [a, b] = [cpuAtStart?.us[name] ?? null, cpuAtEnd?.us[name] ?? null];
    cpu[name] = a === null || b === null || cpuAtEnd.ms <= cpuAtStart.ms ? null : (b - a) / ((cpuAtEnd.ms - cpuAtStart.ms) * 1000);
  }
  return { report, samples, sampleMs, cpu };
}

// ---------------------------------------------------------------------------------------------
// Report

function describeLayout(layout) {
  if (!layout.pinned) return `unpinned (${layout.reason}): the OS schedules every process on ${layout.cpus} CPU(s)`;
  return `pinned with taskset: core ${layout.serverCore} = the gateway; core ${layout.loadCore} = upstream + load generator + runner`;
}

function auditBytes(configFile) {
  try {
    return statSync(join(dirname(configFile), 'data', 'audit', 'audit.log')).size;
  } catch {
    return null;
  }
}

function seriesLine(label, unit, j, judged, digits) {
  const slope = j.slopePerMin === null ? '—' : `${j.slopePerMin >= 0 ? '+' : ''}${j.slopePerMin.toFixed(2)} ${unit}/min`;
  let verdict = ' (reported, not judged)';
  if (judged) verdict = j.flat === null ? ` (not judged: the run is shorter than ${MIN_JUDGED_SEC} s)` : j.flat ? ' → flat' : ` → NOT FLAT: ${j.why}`;
  return `${label}: start ${fmt(j.start, digits)}, end ${fmt(j.end, digits)}, max ${fmt(j.max, digits)} ${unit}; slope over the second half ${slope}${verdict}`;
}

async function main() {
  let defaults;
  let scenarios;
  try {
    ({ defaults, scenarios } = await import('./scenarios.mjs'));
  } catch (err) {
    if (err.code === 'ERR_MODULE_NOT_FOUND' && /dist/.test(err.message)) throw new Error('the gateway is not built: run `npm run build` first (`npm run soak` builds)');
    throw err;
  }
  const { probe, startGateway, startUpstream } = await import('./servers.mjs');
  const full = scenarios({ connections: defaults.connections }).find((s) => s.name === SCENARIO);
  const layout = detectLayout();
  console.log(`portcullis soak — ${SCENARIO}: ${full.note}`);
  console.log(`layout: ${describeLayout(layout)}`);
  console.log(`node ${process.version}; ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  makeScratchDir('portcullis-soak-');
  const upstream = await startUpstream(layout);
  const gateway = await startGateway(layout, upstream.origin, null, null);
  recordTree(gateway.child);
  const url = gateway.origin + full.path;
  const expected = await probe(upstream.origin, full.path, {});
  const got = await probe(gateway.origin, full.path, full.headers);
  if (got.status !== 200 || got.body !== expected.body) throw new Error(`probe of ${url} answered ${got.status} ${got.body.slice(0, 200)}`);

  const capacity = settings.rate === null ? await measureCapacity(layout, defaults, { url, connections: full.connections, headers: full.headers }) : null;
  const rate = settings.rate ?? Math.max(1, Math.round(capacity.requestsPerSec * settings.load));
  console.log(capacity === null
    ? `soak: ${int(rate)} req/s (given), open loop, for ${settings.durationSec} s after a ${settings.warmupSec} s warm-up`
    : `soak: ${Math.round(settings.load * 100)}% of capacity = ${int(rate)} req/s, open loop, for ${settings.durationSec} s after a ${settings.warmupSec} s warm-up`);

  const run = await soak(layout, { gateway, upstream }, url, full.headers, rate, full.connections);
  if (hasExited(gateway.child)) throw failure(gateway.child, 'exited during the soak');
  const { report } = run;
  const measured = run.samples.filter((s) => s.t >= 0 && s.t <= settings.durationSec);
  const rss = judgeSeries(measured, 'rssMiB', settings.durationSec);
  const loop = judgeSeries(measured, 'loopP99Ms', settings.durationSec);
  const heap = judgeSeries(measured, 'heapMiB', settings.durationSec, { ...FLAT_RULES.rssMiB });
  const scrapeErrors = run.samples.filter((s) => s.scrapeError !== null).length;
  const lat = report.latencyUs;
  const audit = auditBytes(gateway.configFile);
  await cleanup();

  const problems = [];
  if (report.failed > 0) problems.push(`${int(report.failed)} failed requests`);
  if (scrapeErrors > 0) problems.push(`${scrapeErrors} of ${run.samples.length} metrics scrapes failed`);
  if (rss.flat === false) problems.push('RSS not flat');
  if (loop.flat === false) problems.push('event-loop delay not flat');
  const pass = problems.length === 0;

  const w = windowSec(settings.durationSec);
  console.log('');
  console.log(`requests: sent ${int(report.sent)}, ok ${int(report.ok)}, failed ${int(report.failed)} ` +
    `(connect ${report.errors.connect}, read ${report.errors.read}, write ${report.errors.write}, status ${report.errors.status}, timeout ${report.errors.timeout}, ` +
    `overload ${report.errors.overload}, unanswered ${report.unanswered})`);
  console.log(`  of which after the warm-up: sent ${int(report.measured.sent)}, ok ${int(report.measured.ok)}`);
  for (const e of report.errorSamples) console.log(`  first failures: ${e.kind}: ${e.detail}`);
  console.log(`latency (measured phase): p50 ${(lat.p50 / 1000).toFixed(3)} ms, p99 ${(lat.p99 / 1000).toFixed(3)} ms, p99.9 ${(lat.p999 / 1000).toFixed(3)} ms, max ${(lat.max / 1000).toFixed(3)} ms`);
  const pct = (x) => (x === null ? '—' : `${Math.round(x * 100)}%`);
  console.log(`CPU (measured phase, 100% = one core): gateway ${pct(run.cpu.gateway)}, load generator ${pct(run.cpu.generator)}, upstream ${pct(run.cpu.upstream)}; ` +
    `load generator behind schedule by at most ${report.maxScheduleLagMs} ms${audit === null ? '' : `; audit trail ${fmt(audit / 2 ** 20)} MiB`}`);
  const loadCore = run.cpu.generator === null || run.cpu.upstream === null ? null : run.cpu.generator + run.cpu.upstream;
  if (layout.pinned && loadCore !== null && loadCore > LOAD_CORE_BUSY) {
    console.log(`note: the load generator's core was ${pct(loadCore)} busy with the generator and the upstream alone: the latency figures include queueing there ` +
      '(RSS and event-loop delay are the gateway\'s own)');
  }
  console.log(`samples: ${measured.length} over the measured phase, one every ${run.sampleMs / 1000} s; start = mean of the first ${w} s, end = mean of the last ${w} s`);
  console.log(seriesLine('RSS', 'MiB', rss, true, 1));
  console.log(seriesLine('event-loop delay p99', 'ms', loop, true, 2));
  console.log(seriesLine('heap used', 'MiB', heap, false, 1));
  const flatness = rss.flat === null ? `flatness not judged (the run is shorter than ${MIN_JUDGED_SEC} s)` : 'RSS and event-loop delay flat';
  console.log(pass ? `verdict: PASS — no failed request; ${flatness}` : `verdict: FAIL — ${problems.join('; ')}`);

  const out = {
    date: new Date().toISOString(), node: process.version, scenario: SCENARIO, layout: { ...layout, description: describeLayout(layout) },
    settings: { ...settings, help: undefined, requestTimeoutMs: REQUEST_TIMEOUT_MS, sampleMs: run.sampleMs, windowSec: w },
    capacity, rate, cpu: run.cpu, auditBytes: audit, driver: report,
    series: { rssMiB: rss, loopP99Ms: loop, heapMiB: heap }, rules: { ...FLAT_RULES, minJudgedSec: MIN_JUDGED_SEC },
    scrapeErrors, problems, pass, samples: run.samples,
  };
  mkdirSync(dirname(settings.outFile), { recursive: true });
  writeFileSync(settings.outFile, JSON.stringify(out, null, 2) + '\n');
  const shown = relative(process.cwd(), settings.outFile);
  console.log(`wrote ${shown.startsWith('..') ? settings.outFile : shown}`);
  return pass ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, async (err) => {
  if (isInterrupted()) return; // the signal handler is already cleaning up
  process.stderr.write(`soak failed: ${err.stack ?? err}\n`);
  await cleanup().catch(() => {});
  process.exit(1);
});
