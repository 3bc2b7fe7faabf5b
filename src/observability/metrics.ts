import { Counter, Gauge, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';
import { shownText } from '../lifecycle/readiness.js';
import type { CertificateInUse } from '../tls/certificate-expiry.js';
import type { DenialCode } from '../pipeline/denials.js';
import type { AuthenticationOutcome, DecisionTally, LimitOutcome } from '../pipeline/exchange.js';
import { CounterPairs, HotCounter, HotHistogram, type CounterChild, type HistogramChild } from './hot-metrics.js';

/**
 * Which process a registry describes: a gateway running alone, a worker of `start --workers`, or
 * the primary of `start --workers`, which handles no request itself and does, once for the host,
 * what a gateway alone does for itself: it reads the API key change log and fetches the JWK Sets.
 */
export type MetricsRole = 'gateway' | 'worker' | 'primary';

/**
 * How prom-client's default metrics combine across a host's processes, where summing is wrong
 * (the others are counters, histograms or amounts that add up: CPU, memory, handles, open fds).
 * prom-client already averages the event-loop lag, takes its min and max, and keeps the first
 * `nodejs_version_info`.
 */
const DEFAULT_METRIC_AGGREGATORS: Readonly<Record<string, Aggregator>> = Object.freeze({
  // The earliest start: the primary's, the host's up time. (prom-client omits it.)
  process_start_time_seconds: 'min',
  // A per-process limit: the tightest one, not N times one.
  process_max_fds: 'min',
});

/**
 * Prometheus metrics, one registry per gateway so several gateways in one process (tests) do not
 * collide. Labels are bounded: route names come from config, reason codes from the catalogue.
 *
 * Under `start --workers` the primary serves the host's metrics: its own registry and every
 * worker's, combined metric by metric with the `aggregator` each declares (prom-client's
 * AggregatorRegistry). Counters, histograms and amounts of work in progress are summed; a gauge
 * that states a fact (the config version, whether a store answers, how many keys a JWK Set has,
 * a time, a limit) declares how it combines instead, so the host reads 1, not N, for one version.
 * Each process registers only the metrics it writes: an idle gauge (a 0 nobody set) would
 * otherwise pull a minimum down.
 */
export class Metrics implements DecisionTally {
  readonly registry = new Registry();
  readonly requests: HotCounter<'route' | 'status' | 'decision'>;
  readonly stageDecisions: HotCounter<'stage' | 'decision'>;
  /** Requests the gateway ended itself, by route (empty: none matched) and reason code. */
  readonly denials: HotCounter<'route' | 'reason'>;
  /** Each authenticator's verdict on the credential it found (empty authenticator: none found one). */
  readonly authentications: HotCounter<'authenticator' | 'outcome'>;
  /** Each rate limit's and quota's decision on a request. */
  readonly limitDecisions: HotCounter<'limit' | 'decision'>;
  /** Identity assertions signed, by route and signing key (a rotation shows as the new kid taking over). */
  readonly identityAssertions: HotCounter<'route' | 'kid'>;
  /** Requests refused by an attribute rule, by route and rule (names from the config). */
  readonly policyDenials: HotCounter<'route' | 'rule'>;
  readonly upstreamLatency: HotHistogram<'upstream'>;
  readonly requestDuration: HotHistogram<'route'>;
  /** Requests being handled; read into `portcullis_requests_in_flight` at scrape time (summed across workers). */
  requestsInFlight = 0;
  /** Summed: the gateway and the primary each write audit records. */
  readonly auditDropped: Counter<'sink'>;
  /** Summed: each process writes its own chain. */
  readonly auditRecords: Counter;
  readonly auditCheckpoints: Counter;
  readonly auditArchives: Counter<'result'>;
  /** Records each stream or collector sink handled, by outcome; summed (each process has its own sinks). */
  readonly auditSinkRecords: Counter<'sink' | 'outcome'>;
  readonly auditSpoolBytes: Gauge<'sink'>;
  /** Anomalies the detectors raised in this process, by detector and severity. */
  readonly anomalyAlerts: Counter<'detector' | 'severity'>;
  /** Read at scrape time: the alerts the anomaly webhook could not deliver (set by the process's monitor). */
  readonly anomalyWebhookDropped: { collect: () => number } = { collect: () => 0 };
  /** One version is 1 on the host, whatever the number of processes running it. */
  readonly configInfo: Gauge<'version'>;
  readonly workerRestarts: Counter;
  /** The host's reloads: the primary counts each, a worker only those it applied, so the largest count is the host's. */
  readonly reloads: Counter<'result'>;

  /** Written by the process that fetches: a gateway alone, or the primary for its workers. */
  readonly jwksFetches: Counter<'uri' | 'result'>;
  readonly jwksKeys: Gauge<'uri'>;
  readonly jwksLastSuccess: Gauge<'uri'>;
  readonly jwksUp: Gauge<'uri'>;

  /** Written by the process that reads the change log: a gateway alone, or the primary for its workers. */
  readonly apiKeyStoreUp: Gauge;
  readonly apiKeyStorePolls: Counter<'result'>;
  /** Summed: each worker writes its own uses. */
  readonly apiKeyUsageBacklog: Gauge;
  /** 0 when any worker cannot reach the store. */
  readonly rateLimitStoreUp: Gauge<'store'>;
  /** Bearer tokens revoked, by where this process learnt of it (local: here; shared: from another gateway through Redis; host: from another worker). */
  readonly revocations: Counter<'source'>;
  /** Revocations in force loaded from Redis on (re)connecting. */
  readonly revocationsLoaded: Counter;
  /** 0 when any process's revocation list is cut off from Redis (labelled: no series without oauth.redis). */
  readonly revocationsSubscribed: Gauge<'redis'>;
  /** Restart-only options the config file changes that do not apply until a restart (0: the file is wholly in effect). */
  readonly configRestartRequired: Gauge;
  /** When each certificate the running config uses stops being valid (unix seconds). */
  readonly certificateExpiry: Gauge<'use' | 'name' | 'subject' | 'fingerprint'>;
  /** TLS connections refused for their client certificate before any request (summed: each process has its listeners). */
  readonly clientCertificateRefusals: Counter<'reason'>;
  /** HTTP/2 sessions closed, by why (see Http2SessionEnd). */
  readonly http2SessionsClosed: Counter<'reason'>;
  /** HTTP/2 streams the client reset before their response was sent, by whether the request path had started on them. */
  readonly http2StreamsReset: Counter<'when'>;
  /** TLS handshakes that failed, by listener and reason (src/tls/handshake-failures.ts). */
  readonly tlsHandshakeFailures: Counter<'listener' | 'reason'>;
  /** Calls to token endpoints for upstream credentials (summed: each serving process keeps its own token). */
  readonly upstreamTokenRequests: Counter<'upstream' | 'outcome'>;
  /** When the cached upstream token expires (unix seconds); the host reads its earliest. */
  readonly upstreamTokenExpiry: Gauge<'upstream'>;
  /** Spans the tracer handled, by outcome (summed: each serving process exports its own). */
  readonly traceSpans: Counter<'outcome'>;
  /** OTLP export requests, by result (ok, failed, timeout). */
  readonly traceExports: Counter<'result'>;

  /** `defaults`: also prom-client's process and runtime metrics. */
  constructor(defaults = true, role: MetricsRole = 'gateway') {
    const registers = [this.registry];
    // What serves requests: a gateway alone, or a worker.
    const serving = role === 'primary' ? [] : registers;
    // What is done once per host: by a gateway alone, or by the primary for its workers.
    const hostWide = role === 'worker' ? [] : registers;
    const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    this.requests = new HotCounter('portcullis_requests_total', 'Requests by route, status and decision.', ['route', 'status', 'decision'], serving);
    this.stageDecisions = new HotCounter('portcullis_stage_decisions_total',
      'Requests by the request-path stage that decided them (forward: the upstream answered) and the decision.', ['stage', 'decision'], serving);
    this.denials = new HotCounter('portcullis_denials_total', 'Requests the gateway ended itself, by route (empty: none matched) and reason code.', ['route', 'reason'], serving);
    this.authentications = new HotCounter('portcullis_authentications_total',
      'Credentials each authenticator decided on, by outcome: authenticated, or the reason code it refused with (authenticator empty: no credential any of the route\'s authenticators reads).',
      ['authenticator', 'outcome'], serving);
    this.limitDecisions = new HotCounter('portcullis_rate_limit_decisions_total',
      'Decisions of each rate limit and quota: allowed, limited (429), unavailable (store unreachable, failing closed: 503).', ['limit', 'decision'], serving);
    this.stageChildren = new CounterPairs(this.stageDecisions, 'stage', 'decision');
    this.denialChildren = new CounterPairs(this.denials, 'route', 'reason');
    this.authenticationChildren = new CounterPairs(this.authentications, 'authenticator', 'outcome');
    this.limitChildren = new CounterPairs(this.limitDecisions, 'limit', 'decision');
    this.identityAssertions = new HotCounter('portcullis_identity_assertions_total', 'Identity assertions signed, by route and by the kid of the key that signed them.', ['route', 'kid'], serving);
    this.assertionChildren = new CounterPairs(this.identityAssertions, 'route', 'kid');
    this.policyDenials = new HotCounter('portcullis_policy_denials_total', 'Requests refused by an attribute rule (when), by route and rule; a rule that could not be evaluated counts too.', ['route', 'rule'], serving);
    this.policyDenialChildren = new CounterPairs(this.policyDenials, 'route', 'rule');
    this.upstreamLatency = new HotHistogram('portcullis_upstream_latency_seconds', 'Time from forwarding to upstream response headers.', ['upstream'], latencyBuckets, serving);
    this.requestDuration = new HotHistogram('portcullis_request_duration_seconds', 'Time from request start to response end, by route.', ['route'], latencyBuckets, serving);
    const read = (): number => this.requestsInFlight;
    new Gauge({ name: 'portcullis_requests_in_flight', help: 'Requests being handled.', registers: serving, aggregator: 'sum', collect() { this.set(read()); } });
    this.auditDropped = new Counter({ name: 'portcullis_audit_dropped_total', help: 'Audit records a sink could not hold, by sink (file: never linked, marked by a gap record).', labelNames: ['sink'] as const, registers });
    this.auditRecords = new Counter({ name: 'portcullis_audit_records_total', help: 'Records linked into the audit chain (requests, admin operations, checkpoints and the trail\'s own records).', registers });
    this.auditCheckpoints = new Counter({ name: 'portcullis_audit_checkpoints_total', help: 'Signed checkpoints appended to the audit chain.', registers });
    this.auditArchives = new Counter({ name: 'portcullis_audit_archives_total', help: 'Runs of audit.archiveCommand on sealed files, by result (ok, failed).', labelNames: ['result'] as const, registers });
    this.auditSinkRecords = new Counter({ name: 'portcullis_audit_sink_records_total', help: 'Records a stream or collector sink handled, by sink and outcome (delivered, duplicate, spooled, retried, rejected, dropped).', labelNames: ['sink', 'outcome'] as const, registers, aggregator: 'sum' });
    this.auditSpoolBytes = new Gauge({ name: 'portcullis_audit_spool_bytes', help: 'Bytes in a sink\'s on-disk spool, waiting to be published.', labelNames: ['sink'] as const, registers, aggregator: 'sum' });
    this.anomalyAlerts = new Counter({ name: 'portcullis_anomaly_alerts_total', help: 'Anomalies raised by the detectors of audit.anomalies, by detector and severity.', labelNames: ['detector', 'severity'] as const, registers, aggregator: 'sum' });
    const webhookDropped = this.anomalyWebhookDropped;
    new Gauge({ name: 'portcullis_anomaly_webhook_dropped', help: 'Alerts the anomaly webhook could not deliver since start (queue full, refused, or out of attempts).', registers, aggregator: 'sum', collect() { this.set(webhookDropped.collect()); } });
    this.configInfo = new Gauge({ name: 'portcullis_config_info', help: 'The running config version (value 1).', labelNames: ['version'] as const, registers, aggregator: 'max' });
    this.workerRestarts = new Counter({ name: 'portcullis_worker_restarts_total', help: 'Workers that died and were replaced (start --workers).', registers });
    this.configRestartRequired = new Gauge({
      name: 'portcullis_config_restart_required', help: 'Options changed in the config file that apply only on restart (0: the file is wholly in effect; /readyz lists them).',
      registers, aggregator: 'max',
    });
    this.certificateExpiry = new Gauge({
      name: 'portcullis_certificate_expiry_timestamp_seconds',
      help: 'When each certificate the running config uses stops being valid (unix seconds), by use (server, client-ca, upstream-ca, upstream-client), the option or upstream it belongs to, subject and SHA-256 fingerprint.',
      labelNames: ['use', 'name', 'subject', 'fingerprint'] as const, registers: serving, aggregator: 'min',
    });
    this.clientCertificateRefusals = new Counter({
      name: 'portcullis_client_certificate_refusals_total',
      help: 'HTTPS connections refused for their client certificate before any request was read, by reason (client_certificate_missing, client_certificate_invalid, client_certificate_chain_too_deep).',
      labelNames: ['reason'] as const, registers: serving, aggregator: 'sum',
    });
    this.http2SessionsClosed = new Counter({
      name: 'portcullis_http2_sessions_closed_total',
      help: 'HTTP/2 connections closed, by reason: client, idle, rapid_reset (too many streams reset early), flood (invalid frames, refused streams), protocol_error, shutdown.',
      labelNames: ['reason'] as const, registers: serving, aggregator: 'sum',
    });
    this.http2StreamsReset = new Counter({
      name: 'portcullis_http2_streams_reset_total',
      help: 'HTTP/2 streams the client reset before their response was sent: unhandled (before the request path started; not audited), handled (audited as client_aborted).',
      labelNames: ['when'] as const, registers: serving, aggregator: 'sum',
    });
    this.tlsHandshakeFailures = new Counter({
      name: 'portcullis_tls_handshake_failures_total',
      help: 'TLS handshakes that failed, by listener and reason (protocol_version, no_shared_cipher, unknown_ca, certificate_required, bad_certificate, certificate_expired, certificate_revoked, unsupported_certificate, http_request, timeout, reset, other).',
      labelNames: ['listener', 'reason'] as const, registers: serving, aggregator: 'sum',
    });
    this.upstreamTokenRequests = new Counter({
      name: 'portcullis_upstream_token_requests_total',
      help: 'Client credentials token requests for upstreams, by upstream (the names sharing one setup, comma-separated) and outcome (ok, timeout, unreachable, refused, invalid).',
      labelNames: ['upstream', 'outcome'] as const, registers: serving, aggregator: 'sum',
    });
    this.upstreamTokenExpiry = new Gauge({
      name: 'portcullis_upstream_token_expiry_timestamp_seconds', help: 'When the cached client credentials token of each upstream expires (unix seconds).',
      labelNames: ['upstream'] as const, registers: serving, aggregator: 'min',
    });
    this.traceSpans = new Counter({
      name: 'portcullis_trace_spans_total',
      help: 'Spans of sampled requests, by outcome: exported, dropped_queue_full (the export queue was full), dropped_export_failed (the collector failed or did not answer in time), dropped_shutdown (not sent within the drain timeout).',
      labelNames: ['outcome'] as const, registers: serving, aggregator: 'sum',
    });
    this.traceExports = new Counter({
      name: 'portcullis_trace_exports_total', help: 'OTLP/HTTP export requests to the trace collector, by result (ok, failed, timeout).',
      labelNames: ['result'] as const, registers: serving, aggregator: 'sum',
    });
    this.reloads = new Counter({ name: 'portcullis_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'] as const, registers, aggregator: 'max' });

    this.jwksFetches = new Counter({
      name: 'portcullis_jwks_fetches_total', help: 'JWKS fetch attempts by URL and result (ok, error).',
      labelNames: ['uri', 'result'] as const, registers: hostWide,
    });
    this.jwksKeys = new Gauge({
      name: 'portcullis_jwks_keys', help: 'Keys in use per JWKS URL (0: never loaded; requests for it get 503).',
      labelNames: ['uri'] as const, registers: hostWide, aggregator: 'min',
    });
    this.jwksLastSuccess = new Gauge({
      name: 'portcullis_jwks_last_success_timestamp_seconds', help: 'Unix time of the last successful JWKS fetch per URL (alert on staleness).',
      labelNames: ['uri'] as const, registers: hostWide, aggregator: 'min',
    });
    this.jwksUp = new Gauge({
      name: 'portcullis_jwks_up', help: 'Whether the last fetch of each JWKS URL succeeded (1) or not (0). While 0 the last good keys are kept (portcullis_jwks_keys).',
      labelNames: ['uri'] as const, registers: hostWide, aggregator: 'min',
    });

    this.apiKeyStoreUp = new Gauge({
      name: 'portcullis_api_key_store_up', help: 'Whether the last read of the API key store change log succeeded (1) or not (0). While 0, cached keys work until their TTL and unknown keys get 503.',
      registers: hostWide, aggregator: 'min',
    });
    this.apiKeyStorePolls = new Counter({
      name: 'portcullis_api_key_store_polls_total', help: 'Reads of the API key store change log, by result (ok, error). Under --workers the primary reads it once for the host.',
      labelNames: ['result'] as const, registers: hostWide,
    });
    this.apiKeyUsageBacklog = new Gauge({
      name: 'portcullis_api_key_usage_backlog', help: 'API keys with uses counted in memory but not yet written to the store.', registers: serving, aggregator: 'sum',
    });
    this.rateLimitStoreUp = new Gauge({
      name: 'portcullis_rate_limit_store_up', help: 'Whether the shared rate-limit store (Redis) answers (1) or not (0). While 0, limits follow their onStoreError policy.',
      labelNames: ['store'] as const, registers: serving, aggregator: 'min',
    });
    this.revocations = new Counter({
      name: 'portcullis_revocations_total', help: 'Bearer tokens revoked, by where this process learnt of it: local (its admin API or webhook), shared (another gateway, through Redis), host (another worker).',
      labelNames: ['source'] as const, registers: serving, aggregator: 'sum',
    });
    this.revocationsLoaded = new Counter({
      name: 'portcullis_revocations_loaded_total', help: 'Revocations in force loaded from Redis on connecting and after every reconnection.', registers: serving, aggregator: 'sum',
    });
    this.revocationsSubscribed = new Gauge({
      name: 'portcullis_revocations_subscribed', help: 'Whether the revocation list is subscribed to Redis and loaded (1) or cut off (0); past oauth.revocations.maxStalenessMs at 0, bearer tokens are refused.',
      labelNames: ['redis'] as const, registers: serving, aggregator: 'min',
    });

    if (defaults) {
      collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
      for (const [name, aggregator] of Object.entries(DEFAULT_METRIC_AGGREGATORS)) {
        const metric = this.registry.getSingleMetric(`portcullis_${name}`) as { aggregator: Aggregator } | undefined;
        if (metric !== undefined) metric.aggregator = aggregator;
      }
    }
  }

  // Each label set's child, found once: the request path only adds to it.
  private readonly requestChildren = new Map<string, Map<number, Map<string, CounterChild>>>();
  private readonly stageChildren: CounterPairs<'stage', 'decision'>;
  private readonly denialChildren: CounterPairs<'route', 'reason'>;
  private readonly authenticationChildren: CounterPairs<'authenticator', 'outcome'>;
  private readonly limitChildren: CounterPairs<'limit', 'decision'>;
  private readonly assertionChildren: CounterPairs<'route', 'kid'>;
  private readonly policyDenialChildren: CounterPairs<'route', 'rule'>;
  private readonly durationChildren = new Map<string, HistogramChild>();
  private readonly upstreamChildren = new Map<string, HistogramChild>();

  /** Counts one finished request; label values are bounded (config names, status, decision). */
  stageDecided(stage: string, decision: string): void {
    this.stageChildren.inc(stage, decision);
  }

  /** One request the gateway ended itself; `route` is empty when none matched. */
  denied(route: string, reason: DenialCode): void {
    this.denialChildren.inc(route, reason);
  }

  authentication(authenticator: string, outcome: AuthenticationOutcome): void {
    this.authenticationChildren.inc(authenticator, outcome);
  }

  limit(limit: string, decision: LimitOutcome): void {
    this.limitChildren.inc(limit, decision);
  }

  identityAssertion(route: string, kid: string): void {
    this.assertionChildren.inc(route, kid);
  }

  rule(route: string, rule: string): void {
    this.policyDenialChildren.inc(route, rule);
  }

  request(route: string, status: number, decision: string, durationSeconds: number): void {
    let byStatus = this.requestChildren.get(route);
    if (byStatus === undefined) { byStatus = new Map(); this.requestChildren.set(route, byStatus); }
    let byDecision = byStatus.get(status);
    if (byDecision === undefined) { byDecision = new Map(); byStatus.set(status, byDecision); }
    let counter = byDecision.get(decision);
    if (counter === undefined) {
      counter = this.requests.labels({ route, status: String(status), decision });
      byDecision.set(decision, counter);
    }
    counter.inc();
    let duration = this.durationChildren.get(route);
    if (duration === undefined) {
      duration = this.requestDuration.labels({ route });
      this.durationChildren.set(route, duration);
    }
    duration.observe(durationSeconds);
  }

  /** The `uri` label values the JWKS metrics hold now. */
  private readonly jwksLabelled = new Set<string>();

  /** One JWKS fetch attempt; the URL comes from config (so the label set stays bounded) and is labelled without its query, fragment or userinfo. */
  jwksFetched(jwksUri: string, ok: boolean, keys: number): void {
    const uri = shownText(jwksUri);
    this.jwksLabelled.add(uri);
    this.jwksFetches.inc({ uri, result: ok ? 'ok' : 'error' });
    this.jwksKeys.set({ uri }, keys);
    this.jwksUp.set({ uri }, ok ? 1 : 0);
    if (ok) this.jwksLastSuccess.set({ uri }, Date.now() / 1000);
  }

  /**
   * Drops the JWKS series of every URL but `inUse` (the config now in effect): a set a reload
   * removed or replaced no longer reads up 0 or keys 0, so an alert on it ends, and reloads that
   * change URLs do not pile up series.
   */
  keepJwks(inUse: Iterable<string>): void {
    const keep = new Set([...inUse].map((u) => shownText(u)));
    for (const uri of this.jwksLabelled) {
      if (keep.has(uri)) continue;
      this.jwksLabelled.delete(uri);
      for (const result of ['ok', 'error']) this.jwksFetches.remove({ uri, result });
      this.jwksKeys.remove({ uri });
      this.jwksUp.remove({ uri });
      this.jwksLastSuccess.remove({ uri });
    }
  }

  /** Replaces the certificate expiry series with those of the config now in effect. */
  certificatesInUse(certificates: readonly CertificateInUse[]): void {
    this.certificateExpiry.reset();
    for (const c of certificates) {
      this.certificateExpiry.set({ use: c.use, name: c.name, subject: shownText(c.subject), fingerprint: c.fingerprint256 }, Math.floor(c.notAfter.getTime() / 1000));
    }
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
