// The request path's counters and histograms are the gateway's own (plain children, no label
// hashing per request). They must expose exactly what prom-client's would for the same
// observations — the text format, and the JSON the workers' aggregation reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../src/observability/hot-metrics.js';

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Edge values: on a bound, between bounds, past the last bound, zero. */
const VALUES = [0, 0.0005, 0.00051, 0.001, 0.003, 0.01, 0.7, 1, 29.99, 30, 30.0001, 1e6];

function pair(): { ours: Registry; theirs: Registry } {
  const ours = new Registry();
  const theirs = new Registry();
  const hotCounter = new HotCounter('t_requests_total', 'Requests.', ['route', 'status'], [ours]);
  const hotHistogram = new HotHistogram('t_duration_seconds', 'Duration.', ['route'], BOUNDS, [ours]);
  const counter = new Counter({ name: 't_requests_total', help: 'Requests.', labelNames: ['route', 'status'] as const, registers: [theirs] });
  const histogram = new Histogram({ name: 't_duration_seconds', help: 'Duration.', labelNames: ['route'] as const, buckets: BOUNDS, registers: [theirs] });
  for (const route of ['a', 'b "quoted"\\path']) {
    VALUES.forEach((value, i) => {
      hotHistogram.labels({ route }).observe(value);
      histogram.observe({ route }, value);
      const status = i % 3 === 0 ? '200' : '503';
      hotCounter.labels({ route, status }).inc();
      counter.inc({ route, status });
    });
  }
  return { ours, theirs };
}

describe('hot metrics', () => {
  it('expose the same text as prom-client for the same observations', async () => {
    const { ours, theirs } = pair();
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('aggregate across workers as prom-client does', async () => {
    const a = pair();
    const b = pair();
    const ours = await AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]).metrics();
    const theirs = await AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]).metrics();
    assert.equal(ours, theirs);
    assert.match(ours, /^t_requests_total\{route="a",status="200"\} 8$/m);
  });

  it('ignores a value that is not a finite number instead of corrupting the sum', async () => {
    const registry = new Registry();
    const histogram = new HotHistogram('t_seconds', 'x', ['route'], BOUNDS, [registry]);
    const child = histogram.labels({ route: 'r' });
    child.observe(Number.NaN);
    child.observe(Number.POSITIVE_INFINITY);
    child.observe(0.2);
    const text = await registry.metrics();
    assert.match(text, /^t_seconds_count\{route="r"\} 1$/m);
    assert.match(text, /^t_seconds_sum\{route="r"\} 0.2$/m);
  });

  it('reset zeroes every child in place, and a child a caller kept goes on counting', async () => {
    const registry = new Registry();
    const counter = new HotCounter('t_total', 'x', ['k'], [registry]);
    const histogram = new HotHistogram('t_seconds', 'x', ['k'], BOUNDS, [registry]);
    const kept = counter.labels({ k: 'v' });
    const keptHistogram = histogram.labels({ k: 'v' });
    kept.inc();
    keptHistogram.observe(0.2);
    registry.resetMetrics();
    let text = await registry.metrics();
    assert.match(text, /^t_total\{k="v"\} 0$/m);
    assert.match(text, /^t_seconds_count\{k="v"\} 0$/m);
    kept.inc();
    keptHistogram.observe(0.3);
    text = await registry.metrics();
    assert.match(text, /^t_total\{k="v"\} 1$/m);
    assert.match(text, /^t_seconds_sum\{k="v"\} 0.3$/m);
  });
});
