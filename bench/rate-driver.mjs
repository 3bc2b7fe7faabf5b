// Open-loop load at a constant rate, for `npm run soak`: request i is sent at start + i / rate,
// whether or not earlier ones have been answered (wrk and autocannon are closed loops: a slow
// answer delays the next request; autocannon's `overallRate` gives each connection a budget per
// second that it spends at full speed at the start of each second). Requests go out on a 1 ms
// tick, over one undici Pool. Runs in its own (pinned) child process.
//
// Bounded: it sends exactly rate × (warmupSec + durationSec) requests; every request has a
// timeout; at most `maxInFlight` are outstanding — a request due past that bound is not sent and
// counts as an `overload` failure. Latency is measured from the moment a request is handed to the
// pool (its queueing there included) to the end of its response body, for the requests sent
// after the warm-up.
//
// Prints `RATE_START {}` as it starts sending, `RATE_PROGRESS {...}` every `progressMs` and one
// `RATE_JSON {...}` line at the end.
// Usage: node bench/rate-driver.mjs '{"url":…,"rate":1000,"warmupSec":30,"durationSec":600,
//   "headers":{},"connections":50,"timeoutMs":5000,"maxInFlight":1000,"progressMs":5000}'
import { createHistogram, performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { Pool } from 'undici';
import { latencySummaryUs, recordMs } from './latency.mjs';

const TICK_MS = 1;
const MAX_ERROR_SAMPLES = 5;

const cfg = JSON.parse(process.argv[2] ?? '{}');
for (const key of ['rate', 'durationSec', 'connections', 'timeoutMs', 'maxInFlight', 'progressMs']) {
  if (!(Number.isFinite(cfg[key]) && cfg[key] > 0)) {
    process.stderr.write(`rate-driver: ${key} must be a positive number\n`);
    process.exit(2);
  }
}
const target = new URL(cfg.url);
const path = `${target.pathname}${target.search}`;
const headers = cfg.headers ?? {};
const warmupSec = cfg.warmupSec ?? 0;

const pool = new Pool(target.origin, {
  connections: cfg.connections, pipelining: 1, keepAliveTimeout: 60_000,
  headersTimeout: cfg.timeoutMs, bodyTimeout: cfg.timeoutMs, connect: { timeout: cfg.timeoutMs },
});

const total = Math.round(cfg.rate * (warmupSec + cfg.durationSec));
const warmupCount = Math.round(cfg.rate * warmupSec);
const hist = createHistogram();
const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0, overload: 0 };
const errorSamples = new Map(); // first few distinct failures, for the report
let sent = 0;
let ok = 0;
let inFlight = 0;
let bytes = 0;
let maxLagMs = 0;
let measuredOk = 0;
let finished = false;

function failed() {
  return Object.values(errors).reduce((a, b) => a + b, 0);
}

function noteError(kind, detail) {
  errors[kind]++;
  if (errorSamples.size < MAX_ERROR_SAMPLES && !errorSamples.has(detail)) errorSamples.set(detail, kind);
}

/** Sorts a request failure into the wrk-style kinds. */
function classify(err) {
  const code = err?.code ?? '';
  if (/TIMEOUT/.test(code)) return 'timeout';
  if (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT' || code === 'ENOTFOUND') return 'connect';
  if (code === 'EPIPE') return 'write';
  return 'read';
}

async function send(measured) {
  inFlight++;
  const t0 = performance.now();
  try {
    const res = await pool.request({ method: 'GET', path, headers });
    const body = await res.body.arrayBuffer();
    bytes += body.byteLength;
    if (measured) recordMs(hist, performance.now() - t0);
    if (res.statusCode >= 200 && res.statusCode <= 299) {
      ok++;
      if (measured) measuredOk++;
    } else noteError('status', `status ${res.statusCode}`);
  } catch (err) {
    const kind = classify(err);
    noteError(kind, `${err?.code ?? 'error'}: ${err?.message ?? err}`);
  } finally {
    inFlight--;
  }
}

process.stdout.write('RATE_START {}\n');
const start = performance.now();

function tick() {
  const elapsedMs = performance.now() - start;
  const due = Math.min(total, Math.floor((elapsedMs * cfg.rate) / 1000));
  if (sent < due) maxLagMs = Math.max(maxLagMs, elapsedMs - ((sent + 1) * 1000) / cfg.rate);
  while (sent < due) {
    const measured = sent >= warmupCount;
    sent++;
    if (inFlight >= cfg.maxInFlight) noteError('overload', `more than ${cfg.maxInFlight} requests outstanding`);
    else void send(measured);
  }
  if (sent >= total) {
    clearInterval(ticker);
    void finish();
  }
}

function progress() {
  return { elapsedMs: Math.round(performance.now() - start), sent, ok, failed: failed(), inFlight };
}

const ticker = setInterval(tick, TICK_MS);
const reporter = setInterval(() => process.stdout.write(`RATE_PROGRESS ${JSON.stringify(progress())}\n`), cfg.progressMs);

/** Waits for the outstanding requests (each bounded by its timeout), then prints the report. */
async function finish() {
  if (finished) return;
  finished = true;
  const sendingEndedMs = performance.now() - start;
  const drainDeadline = performance.now() + cfg.timeoutMs * 2;
  while (inFlight > 0 && performance.now() < drainDeadline) await new Promise((done) => setTimeout(done, 10));
  clearInterval(reporter);
  const report = {
    rate: cfg.rate, warmupSec, durationSec: cfg.durationSec,
    durationUs: Math.round((sendingEndedMs - warmupSec * 1000) * 1000),
    sent, ok, failed: failed() + inFlight, unanswered: inFlight, bytes, errors,
    measured: { sent: total - warmupCount, ok: measuredOk },
    maxScheduleLagMs: Math.round(maxLagMs * 1000) / 1000,
    errorSamples: [...errorSamples].map(([detail, kind]) => ({ kind, detail })),
    latencyUs: latencySummaryUs(hist),
  };
  process.stdout.write(`RATE_JSON ${JSON.stringify(report)}\n`);
  await pool.destroy();
  process.exit(0);
}

const stop = () => {
  clearInterval(ticker);
  clearInterval(reporter);
  void pool.destroy().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
