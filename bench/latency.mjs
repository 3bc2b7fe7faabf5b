// Latency summaries of the bench's Node load generators, in the shape bench/wrk-report.lua prints.

/** min, mean, stdev, max and percentiles in µs of a node:perf_hooks histogram that records nanoseconds. */
export function latencySummaryUs(hist) {
  const us = (ns) => ns / 1000;
  return {
    min: hist.count === 0 ? 0 : us(hist.min), mean: hist.count === 0 ? 0 : us(hist.mean), stdev: hist.count === 0 ? 0 : us(hist.stddev),
    max: hist.count === 0 ? 0 : us(hist.max), p50: us(hist.percentile(50)), p90: us(hist.percentile(90)),
    p99: us(hist.percentile(99)), p999: us(hist.percentile(99.9)),
  };
}

/** Records one response time given in milliseconds (at least 1 ns, as the histogram needs). */
export function recordMs(hist, ms) {
  hist.record(Math.max(1, Math.round(ms * 1e6)));
}
