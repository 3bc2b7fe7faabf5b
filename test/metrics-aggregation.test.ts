// How a host's metrics combine under `start --workers`: the primary aggregates its own registry and
// every worker's with prom-client's AggregatorRegistry, each metric by the aggregator it declares.
// Counters and histograms add up; a gauge that states a fact must read as one process would.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { AggregatorRegistry } from 'prom-client';
import { Metrics } from '../src/observability/metrics.js';

/** The "Across workers" column of docs/operations.md's metrics table, by metric name. */
function documentedAggregation(): Map<string, string> {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/operations.md', import.meta.url)), 'utf8');
  const rows = new Map<string, string>();
  for (const line of doc.split('\n')) {
    if (!line.startsWith('| `portcullis_')) continue;
    const cells = line.split('|').map((c) => c.trim());
    rows.set((cells[1] ?? '').replaceAll('`', ''), cells.at(-2) ?? '');
  }
  return rows;
}

/** The value of `name` with these labels in an aggregated exposition text, or undefined. */
function valueIn(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics across the processes of a host', () => {
  it('every metric a gateway registers says how it combines across workers, as docs/operations.md says', async () => {
    const documented = documentedAggregation();
    const metrics = await new Metrics(false).registry.getMetricsAsJSON();
    assert.ok(metrics.length > 10);
    for (const m of metrics) assert.equal(documented.get(m.name), m.aggregator, `${m.name} (${m.type})`);
  });

  it('each process registers only the metrics it writes: the primary the host-wide ones, a worker what serving produces', async () => {
    const names = async (role: 'gateway' | 'worker' | 'primary'): Promise<string[]> => (await new Metrics(false, role).registry.getMetricsAsJSON()).map((m) => m.name).sort();
    const everywhere = ['portcullis_anomaly_alerts_total', 'portcullis_anomaly_webhook_dropped', 'portcullis_audit_archives_total', 'portcullis_audit_checkpoints_total', 'portcullis_audit_dropped_total', 'portcullis_audit_records_total', 'portcullis_audit_sink_records_total', 'portcullis_audit_spool_bytes', 'portcullis_config_info', 'portcullis_config_reloads_total', 'portcullis_config_restart_required', 'portcullis_worker_restarts_total'];
    const hostWide = ['portcullis_api_key_store_polls_total', 'portcullis_api_key_store_up', 'portcullis_jwks_fetches_total', 'portcullis_jwks_keys', 'portcullis_jwks_last_success_timestamp_seconds', 'portcullis_jwks_up'];
    assert.deepEqual(await names('primary'), [...everywhere, ...hostWide].sort());
    const worker = await names('worker');
    for (const name of hostWide) assert.ok(!worker.includes(name), `${name} is the primary's`);
    assert.deepEqual(await names('gateway'), [...worker, ...hostWide].sort(), 'a gateway alone writes both');
  });

  it('a primary and two workers read as one host: facts once, the worst state of a store, counts and work in progress summed', async () => {
    const primary = new Metrics(true, 'primary');
    const workers = [new Metrics(true, 'worker'), new Metrics(true, 'worker')] as const;
    for (const m of [primary, ...workers]) m.configInfo.set({ version: 'v1' }, 1);
    primary.reloads.inc({ result: 'applied' }, 2);
    for (const w of workers) w.reloads.inc({ result: 'applied' });
    primary.apiKeyStoreUp.set(0);
    primary.apiKeyStorePolls.inc({ result: 'error' });
    workers[0].rateLimitStoreUp.set({ store: 'redis://r' }, 1);
    workers[1].rateLimitStoreUp.set({ store: 'redis://r' }, 0);
    primary.jwksFetched('https://idp/jwks', true, 2);
    workers[0].requestsInFlight = 2;
    workers[1].requestsInFlight = 3;
    workers[0].apiKeyUsageBacklog.set(4);
    workers[1].apiKeyUsageBacklog.set(5);
    for (const w of workers) w.request('r', 200, 'allow', 0.01);
    for (const w of workers) { w.denied('r', 'rate_limited'); w.authentication('users', 'invalid_credential'); w.limit('perCaller', 'limited'); }
    primary.jwksFetched('https://idp/other', false, 0);
    primary.workerRestarts.inc();

    const text = await AggregatorRegistry.aggregate(await Promise.all([primary, ...workers].map((m) => m.registry.getMetricsAsJSON()))).metrics();
    const expected: Record<string, number> = {
      'portcullis_config_info{version="v1"}': 1,
      'portcullis_config_reloads_total{result="applied"}': 2,
      portcullis_api_key_store_up: 0,
      'portcullis_api_key_store_polls_total{result="error"}': 1,
      'portcullis_rate_limit_store_up{store="redis://r"}': 0,
      'portcullis_jwks_keys{uri="https://idp/jwks"}': 2,
      'portcullis_jwks_fetches_total{uri="https://idp/jwks",result="ok"}': 1,
      portcullis_requests_in_flight: 5,
      portcullis_api_key_usage_backlog: 9,
      'portcullis_requests_total{route="r",status="200",decision="allow"}': 2,
      portcullis_worker_restarts_total: 1,
      'portcullis_denials_total{route="r",reason="rate_limited"}': 2,
      'portcullis_authentications_total{authenticator="users",outcome="invalid_credential"}': 2,
      'portcullis_rate_limit_decisions_total{limit="perCaller",decision="limited"}': 2,
      'portcullis_jwks_up{uri="https://idp/jwks"}': 1,
      'portcullis_jwks_up{uri="https://idp/other"}': 0,
    };
    for (const [series, value] of Object.entries(expected)) assert.equal(valueIn(text, series), value, series);
    assert.match(text, /^portcullis_nodejs_version_info\{[^}]*\} 1$/m, 'one runtime, not three');
    const own = (await primary.registry.getSingleMetric('portcullis_process_start_time_seconds')?.get())?.values[0]?.value;
    assert.equal(valueIn(text, 'portcullis_process_start_time_seconds'), own, 'the earliest start: all three started with this process here');
    const maxFds = (await primary.registry.getSingleMetric('portcullis_process_max_fds')?.get())?.values[0]?.value;
    if (maxFds !== undefined) assert.equal(valueIn(text, 'portcullis_process_max_fds'), maxFds, 'the per-process limit, not three times it');

    primary.apiKeyStoreUp.set(1);
    workers[1].rateLimitStoreUp.set({ store: 'redis://r' }, 1);
    const healed = await AggregatorRegistry.aggregate(await Promise.all([primary, ...workers].map((m) => m.registry.getMetricsAsJSON()))).metrics();
    assert.equal(valueIn(healed, 'portcullis_api_key_store_up'), 1, 'the primary reads the store again; no worker has an idle 0 of its own');
    assert.equal(valueIn(healed, 'portcullis_rate_limit_store_up{store="redis://r"}'), 1, 'up once every worker reaches the store');
  });
});
