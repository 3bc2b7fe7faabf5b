// Fallback load generator when wrk is not installed: autocannon, run programmatically in its own
// (pinned) child process. autocannon's own histogram has 1 ms resolution, too coarse for
// sub-millisecond proxies, so latencies are recorded here in microseconds from its per-response
// timings. Prints one line `LOAD_JSON {...}` in the same shape as bench/wrk-report.lua.
// Usage: node bench/autocannon-driver.mjs '{"url":…,"connections":50,"durationSec":10,"headers":{}}'
import { createHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { latencySummaryUs, recordMs } from './latency.mjs';

const { url, connections, durationSec, headers, method = 'GET', body } = JSON.parse(process.argv[2] ?? '{}');
const hist = createHistogram();
let non2xx = 0;

const instance = autocannon({ url, connections, duration: durationSec, headers, method, ...(body === undefined ? {} : { body }), pipelining: 1, timeout: 2 }, (err, result) => {
  if (err) {
    process.stderr.write(`autocannon failed: ${err.message}\n`);
    process.exit(1);
  }
  const report = {
    durationUs: Math.round(result.duration * 1e6),
    requests: result.requests.total,
    bytes: result.throughput.total,
    errors: { connect: 0, read: result.errors, write: 0, status: non2xx, timeout: result.timeouts },
    latencyUs: latencySummaryUs(hist),
  };
  process.stdout.write(`LOAD_JSON ${JSON.stringify(report)}\n`);
});

instance.on('response', (client, statusCode, resBytes, responseTimeMs) => {
  if (statusCode < 200 || statusCode > 299) non2xx++;
  recordMs(hist, responseTimeMs);
});

const stop = () => instance.stop();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
