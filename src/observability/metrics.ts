import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics, one registry per gateway so several gateways in one process (tests) do not
 * collide. Labels are bounded: route names come from config, reason codes from the catalogue.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'portcullis_requests_total', help: 'Requests by route, status and decision.',
    labelNames: ['route', 'status', 'decision'] as const, registers: [this.registry],
  });
  readonly stageDecisions = new Counter({
    name: 'portcullis_stage_decisions_total', help: 'Requests by the request-path stage that decided them (forward: the upstream answered) and the decision.',
    labelNames: ['stage', 'decision'] as const, registers: [this.registry],
  });
  readonly denials = new Counter({
    name: 'portcullis_denials_total', help: 'Requests the gateway ended itself, by reason code.',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly upstreamLatency = new Histogram({
    name: 'portcullis_upstream_latency_seconds', help: 'Time from forwarding to upstream response headers.',
    labelNames: ['upstream'] as const, registers: [this.registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  readonly requestDuration = new Histogram({
    name: 'portcullis_request_duration_seconds', help: 'Time from request start to response end, by route.',
    labelNames: ['route'] as const, registers: [this.registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  readonly inFlight = new Gauge({ name: 'portcullis_requests_in_flight', help: 'Requests being handled.', registers: [this.registry] });
  readonly auditDropped = new Counter({ name: 'portcullis_audit_dropped_total', help: 'Audit records that could not be written.', registers: [this.registry] });
  readonly configInfo = new Gauge({ name: 'portcullis_config_info', help: 'The running config version (value 1).', labelNames: ['version'] as const, registers: [this.registry] });
  readonly workerRestarts = new Counter({ name: 'portcullis_worker_restarts_total', help: 'Workers that died and were replaced (start --workers).', registers: [this.registry] });
  readonly reloads = new Counter({ name: 'portcullis_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'] as const, registers: [this.registry] });

  readonly jwksFetches = new Counter({
    name: 'portcullis_jwks_fetches_total', help: 'JWKS fetch attempts by URL and result (ok, error).',
    labelNames: ['uri', 'result'] as const, registers: [this.registry],
  });
  readonly jwksKeys = new Gauge({ name: 'portcullis_jwks_keys', help: 'Keys in use per JWKS URL (0: never loaded; requests for it get 503).', labelNames: ['uri'] as const, registers: [this.registry] });
  readonly jwksLastSuccess = new Gauge({
    name: 'portcullis_jwks_last_success_timestamp_seconds', help: 'Unix time of the last successful JWKS fetch per URL (alert on staleness).',
    labelNames: ['uri'] as const, registers: [this.registry],
  });

  readonly apiKeyStoreUp = new Gauge({
    name: 'portcullis_api_key_store_up', help: 'Whether the last read of the API key store change log succeeded (1) or not (0). While 0, cached keys work until their TTL and unknown keys get 503.',
    registers: [this.registry],
  });
  readonly apiKeyStorePolls = new Counter({
    name: 'portcullis_api_key_store_polls_total', help: 'Reads of the API key store change log, by result (ok, error). Under --workers the primary reads it once for the host.',
    labelNames: ['result'] as const, registers: [this.registry],
  });
  readonly apiKeyUsageBacklog = new Gauge({
    name: 'portcullis_api_key_usage_backlog', help: 'API keys with uses counted in memory but not yet written to the store.', registers: [this.registry],
  });
  readonly rateLimitStoreUp = new Gauge({
    name: 'portcullis_rate_limit_store_up', help: 'Whether the shared rate-limit store (Redis) answers (1) or not (0). While 0, limits follow their onStoreError policy.',
    labelNames: ['store'] as const, registers: [this.registry],
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
  }

  // Label children resolved once per label set: prom-client hashes the label object on every
  // unbound call, which is measurable on the request path.
  private readonly requestChildren = new Map<string, Counter.Internal>();
  private readonly stageChildren = new Map<string, Counter.Internal>();
  private readonly durationChildren = new Map<string, Histogram.Internal<'route'>>();
  private readonly upstreamChildren = new Map<string, Histogram.Internal<'upstream'>>();

  /** Counts one finished request; label values are bounded (config names, status, decision). */
  stageDecided(stage: string, decision: string): void {
    const key = `${stage}\u0000${decision}`;
    let counter = this.stageChildren.get(key);
    if (counter === undefined) {
      counter = this.stageDecisions.labels({ stage, decision });
      this.stageChildren.set(key, counter);
    }
    counter.inc();
  }

  request(route: string, status: number, decision: string, durationSeconds: number): void {
    const key = `${route}\u0000${status}\u0000${decision}`;
    let counter = this.requestChildren.get(key);
    if (counter === undefined) {
      counter = this.requests.labels({ route, status: String(status), decision });
      this.requestChildren.set(key, counter);
    }
    counter.inc();
    let duration = this.durationChildren.get(route);
    if (duration === undefined) {
      duration = this.requestDuration.labels({ route });
      this.durationChildren.set(route, duration);
    }
    duration.observe(durationSeconds);
  }

  /** One JWKS fetch attempt; the URL comes from config (so the label set stays bounded) and is labelled without its query. */
  jwksFetched(jwksUri: string, ok: boolean, keys: number): void {
    const uri = jwksUri.split('?', 1)[0] ?? jwksUri;
    this.jwksFetches.inc({ uri, result: ok ? 'ok' : 'error' });
    this.jwksKeys.set({ uri }, keys);
    if (ok) this.jwksLastSuccess.set({ uri }, Date.now() / 1000);
  }

  upstream(name: string, latencySeconds: number): void {
    let child = this.upstreamChildren.get(name);
    if (child === undefined) {
      child = this.upstreamLatency.labels({ upstream: name });
      this.upstreamChildren.set(name, child);
    }
    child.observe(latencySeconds);
  }
}
