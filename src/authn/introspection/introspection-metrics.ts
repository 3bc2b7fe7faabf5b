import { Gauge } from 'prom-client';
import { HotCounter, HotHistogram } from '../../observability/hot-metrics.js';
import type { Metrics } from '../../observability/metrics.js';

/** What one introspection exchange came to (the `outcome` label). */
export type IntrospectionOutcome = 'active' | 'inactive' | 'error' | 'timeout' | 'malformed' | 'circuit_open' | 'busy';

/** How a token's verdict was found (the cache `result` label): in the cache, stale (serveStale), a cached refusal, or not at all. */
export type CacheResult = 'hit' | 'miss' | 'stale' | 'negative' | 'shared';

/** The introspection series of one gateway's registry, by authenticator name (a config name: bounded). */
export interface IntrospectionMetrics {
  readonly requests: HotCounter<'authenticator' | 'outcome'>;
  readonly duration: HotHistogram<'authenticator'>;
  readonly cache: HotCounter<'authenticator' | 'result'>;
  readonly breakerOpen: Gauge<'authenticator'>;
}

const BY_REGISTRY = new WeakMap<Metrics, IntrospectionMetrics>();

/** The introspection series of `metrics`, registered on first use (a gateway without introspection has none). */
export function introspectionMetrics(metrics: Metrics): IntrospectionMetrics {
  let found = BY_REGISTRY.get(metrics);
  if (found !== undefined) return found;
  const registers = [metrics.registry];
  found = {
    // Counted on the request path: children found once, counting is an addition (hot-metrics.ts).
    requests: new HotCounter('portcullis_introspection_requests_total',
      'Calls to each introspection authenticator\'s endpoint (RFC 7662), by outcome: active, inactive, error (unreachable, 5xx), timeout, malformed (not an RFC 7662 answer), circuit_open and busy (refused without calling).',
      ['authenticator', 'outcome'], registers),
    duration: new HotHistogram('portcullis_introspection_duration_seconds', 'Time of each call to an introspection endpoint, by authenticator.',
      ['authenticator'], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers),
    cache: new HotCounter('portcullis_introspection_cache_total',
      'Token lookups of each introspection authenticator, by result: hit (fresh), shared (found in the shared Redis cache), stale (served past its TTL under onAuthUnavailable: serveStale), negative (a cached refusal), miss (not cached: introspected, or waited for the call another request with the same token made).',
      ['authenticator', 'result'], registers),
    breakerOpen: new Gauge({
      name: 'portcullis_introspection_breaker_open', help: 'Whether the circuit breaker of each introspection authenticator\'s endpoint is open (1) or closed (0).',
      labelNames: ['authenticator'] as const, registers, aggregator: 'max',
    }),
  };
  BY_REGISTRY.set(metrics, found);
  return found;
}
