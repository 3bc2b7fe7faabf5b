// Open-loop load at a constant rate, for `npm run soak`: after the warm-up, request i is sent at
// warm-up end + i / rate, whether or not earlier ones have been answered (wrk and autocannon are
// closed loops: a slow answer delays the next request; autocannon's `overallRate` gives each
// connection a budget per second that it spends at full speed at the start of each second).
// During the warm-up the rate ramps linearly from 0, so a gateway whose code is not yet compiled
// by the JIT is not met by a full-rate backlog. Requests go out on a 1 ms tick, over up to
// `connections` keep-alive connections (bench/raw-http-client.mjs). Runs in its own (pinned)
// child process.
//
// Bounded: it sends exactly rate × (warmupSec / 2 + durationSec) requests; every request has a
// timeout; at most `maxInFlight` are outstanding — a request due past that bound is not sent and
// counts as an `overload` failure. Latency is measured from the moment a request is handed to the
// client (its wait for a free connection included) to the end of its response, for the requests
// sent after the warm-up.
//
// Prints `RATE_START {}` as it starts sending, `RATE_PROGRESS {...}` every `progressMs` and one
// `RATE_JSON {...}` line at the end.
// Usage: node bench/rate-driver.mjs '{"url":…,"rate":1000,"warmupSec":30,"durationSec":600,
//   "headers":{},"connections":50,"timeoutMs":5000,"maxInFlight":1000,"progressMs":5000}'
import { createHistogram, performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { latencySummaryUs, recordMs } from './latency.mjs';
import { createRawClient } from './raw-http-client.mjs';

const TICK_MS = 1;
const MAX_ERROR_SAMPLES = 5;

const cfg = JSON.parse(process.argv[2] ?? '{}');
for (const key of ['rate', 'durationSec', 'connections', 'timeoutMs', 'maxInFlight', 'progressMs']) {
  if (!(Number.isFinite(cfg[key]) && cfg[key] > 0)) {
    process.stderr.write(`rate-driver: ${key} must be a positive number\n`);
    process.exit(2);
  }
}
const headers = cfg.headers ?? {};
const warmupSec = cfg.warmupSec ?? 0;

const warmupMs = warmupSec * 1000;
const warmupCount = Math.round((cfg.rate * warmupSec) / 2);
const total = warmupCount + Math.round(cfg.rate * cfg.durationSec);
const hist = createHistogram();
const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0, overload: 0 };
const errorSamples = new Map(); // first few distinct failures, for the report
let sent = 0;
let ok = 0;
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

const client = createRawClient({
  url: cfg.url, headers, connections: cfg.connections, timeoutMs: cfg.timeoutMs,
  onDone(status, startedAt, measured) {
    if (measured) recordMs(hist, performance.now() - startedAt);
    if (status >= 200 && status <= 299) {
      ok++;
      if (measured) measuredOk++;
    } else noteError('status', `status ${status}`);
  },
  onFail(kind, err) {
    noteError(kind, `${kind}: ${err.message}`);
  },
});

process.stdout.write('RATE_START {}\n');
const start = performance.now();

/** Requests due `ms` after the start: rate × ms² / 2·warm-up during the ramp, then rate × ms. */
function dueBy(ms) {
  if (ms < warmupMs) return Math.floor((cfg.rate * ms * ms) / (2 * warmupMs * 1000));
  return warmupCount + Math.floor((cfg.rate * (ms - warmupMs)) / 1000);
}

/** When request number `n` (from 1) is due, in ms after the start: the inverse of `dueBy`. */
function dueAt(n) {
  if (n <= warmupCount) return Math.sqrt((2 * warmupMs * 1000 * n) / cfg.rate);
  return warmupMs + ((n - warmupCount) * 1000) / cfg.rate;
}

function tick() {
  const elapsedMs = performance.now() - start;
  const due = Math.min(total, dueBy(elapsedMs));
  if (sent < due) maxLagMs = Math.max(maxLagMs, elapsedMs - dueAt(sent + 1));
  while (sent < due) {
    const measured = sent >= warmupCount;
    sent++;
    if (client.inFlight() >= cfg.maxInFlight) noteError('overload', `more than ${cfg.maxInFlight} requests outstanding`);
    else client.send(measured);
  }
  if (sent >= total) {
    clearInterval(ticker);
    void finish();
  }
}

function progress() {
  return { elapsedMs: Math.round(performance.now() - start), sent, ok, failed: failed(), inFlight: client.inFlight() };
}

const ticker = setInterval(tick, TICK_MS);
const reporter = setInterval(() => process.stdout.write(`RATE_PROGRESS ${JSON.stringify(progress())}\n`), cfg.progressMs);

/** Waits for the outstanding requests (each bounded by its timeout), then prints the report. */
async function finish() {
  if (finished) return;
  finished = true;
  const sendingEndedMs = performance.now() - start;
  const drainDeadline = performance.now() + cfg.timeoutMs * 2;
  while (client.inFlight() > 0 && performance.now() < drainDeadline) await new Promise((done) => setTimeout(done, 10));
  clearInterval(reporter);
  const report = {
    rate: cfg.rate, warmupSec, durationSec: cfg.durationSec,
    durationUs: Math.round((sendingEndedMs - warmupMs) * 1000),
    sent, ok, failed: failed() + client.inFlight(), unanswered: client.inFlight(), errors,
    measured: { sent: total - warmupCount, ok: measuredOk },
    maxScheduleLagMs: Math.round(maxLagMs * 1000) / 1000,
    errorSamples: [...errorSamples].map(([detail, kind]) => ({ kind, detail })),
    latencyUs: latencySummaryUs(hist),
  };
  process.stdout.write(`RATE_JSON ${JSON.stringify(report)}\n`);
  client.close();
  process.exit(0);
}

const stop = () => {
  clearInterval(ticker);
  clearInterval(reporter);
  client.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
