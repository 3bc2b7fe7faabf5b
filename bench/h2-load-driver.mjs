// The load generator of the HTTP/2 scenarios (wrk and autocannon speak HTTP/1.1 only): node:http2,
// `connections` sessions each keeping `streams` requests in flight (closed loop), run in its own
// (pinned) child process. Prints one line `LOAD_JSON {...}` in the same shape as
// bench/wrk-report.lua; latencies in microseconds.
// Usage: node bench/h2-load-driver.mjs '{"url":…,"connections":5,"streams":10,"durationSec":10,"headers":{},"ca":"…PEM…"}'
import { connect } from 'node:http2';
import { createHistogram, performance } from 'node:perf_hooks';
import { latencySummaryUs, recordMs } from './latency.mjs';

const { url, connections, streams, durationSec, headers, ca } = JSON.parse(process.argv[2] ?? '{}');
const target = new URL(url);
const hist = createHistogram();
const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
let requests = 0;
let bytes = 0;
let running = true;
const started = process.hrtime.bigint();

/** One stream after another on `session`, until the run ends. */
function loop(session, done) {
  if (!running || session.closed || session.destroyed) { done(); return; }
  const t0 = performance.now();
  const stream = session.request({ ':path': target.pathname + target.search, ...headers });
  stream.setTimeout(5000, () => { errors.timeout++; stream.close(); });
  stream.on('response', (h) => { if (h[':status'] < 200 || h[':status'] > 299) errors.status++; });
  stream.on('data', (chunk) => { bytes += chunk.length; });
  stream.on('error', () => { errors.read++; });
  stream.on('close', () => {
    if (stream.rstCode === 0) { requests++; recordMs(hist, performance.now() - t0); }
    loop(session, done);
  });
}

const sessions = [];
const finished = [];
for (let c = 0; c < connections; c++) {
  const session = connect(target.origin, { ca, servername: 'localhost' });
  session.on('error', () => { errors.connect++; });
  sessions.push(session);
  for (let s = 0; s < streams; s++) finished.push(new Promise((done) => loop(session, done)));
}

const stop = () => { running = false; };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, durationSec * 1000);
await Promise.all(finished);
const durationUs = Number((process.hrtime.bigint() - started) / 1000n);
for (const session of sessions) session.close();
process.stdout.write(`LOAD_JSON ${JSON.stringify({ durationUs, requests, bytes, errors, latencyUs: latencySummaryUs(hist) })}\n`);
