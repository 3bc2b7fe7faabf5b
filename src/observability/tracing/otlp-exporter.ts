import type { Clock, Timer } from '../../lib/clock.js';
import { shownText } from '../../lifecycle/readiness.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { otlpTraceRequest } from './otlp-json.js';
import type { SpanData } from './span-data.js';

/** Where and how spans are exported (`tracing.exporter`, compiled). */
export interface ExporterSettings {
  /** The collector's OTLP/HTTP traces URL (`…/v1/traces`). */
  readonly endpoint: string;
  /** The endpoint as logs show it: scheme, host and path. */
  readonly shownEndpoint: string;
  /** Sent with every export (a collector's API key); never logged. */
  readonly headers: Readonly<Record<string, string>>;
  /** How long one export request may take, connection to response. */
  readonly timeoutMs: number;
  /** Most spans waiting to be exported; the spans of a request that do not fit are dropped. */
  readonly maxQueueSpans: number;
  /** Most spans in one export request; a full batch is sent without waiting for the interval. */
  readonly maxBatchSpans: number;
  /** How often waiting spans are sent when no batch fills. */
  readonly intervalMs: number;
  /** At shutdown, how long spans still queued may take to be sent (the gateway's drain timeout). */
  readonly flushTimeoutMs: number;
}

export interface ExporterDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: Pick<Metrics, 'traceSpans' | 'traceExports'>;
  readonly serviceName: string;
}

/** At most one warning about failing exports per this many milliseconds (the rest are counted in it). */
export const EXPORT_FAILURE_LOG_INTERVAL_MS = 60_000;

/**
 * Sends spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding. Requests never
 * wait for it: `offer` queues a request's spans (or drops them all, counted, when the queue cannot
 * take them: drop newest), and one export request at a time carries up to `maxBatchSpans` of them,
 * every `intervalMs` or as soon as a batch is full. A failed or late export drops its batch
 * (counted); failures are logged at most once a minute. Nothing here can fail or slow a request.
 */
export class OtlpExporter {
  private queue: SpanData[] = [];
  private inFlight: Promise<void> | null = null;
  private abortInFlight: (() => void) | null = null;
  private timer: Timer | null = null;
  private stopped = false;
  private failing = false;
  private lastFailureLogAt = Number.NEGATIVE_INFINITY;
  private unloggedFailures = 0;

  constructor(private readonly settings: ExporterSettings, private readonly deps: ExporterDeps) {}

  /** Spans waiting to be exported. */
  get queued(): number {
    return this.queue.length;
  }

  start(): void {
    this.arm();
  }

  /** Resolves once no export is under way (those that follow at once, a full batch waiting, included). */
  async idle(): Promise<void> {
    while (this.inFlight !== null) await this.inFlight;
  }

  /** Queues the spans of one request, all or none. */
  offer(spans: readonly SpanData[]): void {
    if (this.stopped || this.queue.length + spans.length > this.settings.maxQueueSpans) {
      this.deps.metrics.traceSpans.inc({ outcome: 'dropped_queue_full' }, spans.length);
      return;
    }
    for (const span of spans) this.queue.push(span);
    if (this.queue.length >= this.settings.maxBatchSpans) this.send(this.settings.timeoutMs);
  }

  /**
   * Sends what is queued, within `flushTimeoutMs` in all (an export under way included); what is
   * left after it is dropped and counted. Offers after this are dropped.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    const deadline = performance.now() + this.settings.flushTimeoutMs;
    // An I/O deadline on Node's own timer, like the export's own timeout.
    const cut = setTimeout(() => this.abortInFlight?.(), this.settings.flushTimeoutMs);
    try {
      for (;;) {
        if (this.inFlight !== null) await this.inFlight;
        const left = deadline - performance.now();
        if (this.queue.length === 0 || left <= 0) break;
        this.send(Math.min(this.settings.timeoutMs, Math.max(1, Math.ceil(left))));
      }
    } finally {
      clearTimeout(cut);
    }
    if (this.queue.length > 0) {
      this.deps.metrics.traceSpans.inc({ outcome: 'dropped_shutdown' }, this.queue.length);
      this.deps.logger.warn({ endpoint: this.settings.shownEndpoint, spans: this.queue.length }, 'trace spans not exported within the drain timeout were dropped');
      this.queue = [];
    }
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.deps.clock.setTimer(() => {
      this.timer = null;
      this.send(this.settings.timeoutMs);
      this.arm();
    }, this.settings.intervalMs);
  }

  /** Starts one export of the head of the queue, unless one is under way or nothing waits. */
  private send(timeoutMs: number): void {
    if (this.inFlight !== null || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.settings.maxBatchSpans);
    this.inFlight = this.post(batch, timeoutMs).catch(() => undefined).finally(() => {
      this.inFlight = null;
      this.abortInFlight = null;
      // More than a batch waits: send on at once rather than on the next tick of the interval.
      if (!this.stopped && this.queue.length >= this.settings.maxBatchSpans) this.send(this.settings.timeoutMs);
    });
  }

  private async post(batch: readonly SpanData[], timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    this.abortInFlight = () => controller.abort();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let failure: string | null = null;
    try {
      const res = await fetch(this.settings.endpoint, {
        method: 'POST',
        headers: { ...this.settings.headers, 'content-type': 'application/json' },
        body: otlpTraceRequest(batch, this.deps.serviceName),
        redirect: 'manual',
        signal: controller.signal,
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) failure = `HTTP ${res.status}`;
    } catch (err) {
      // Never the error's own text alone: fetch quotes the URL in some of its messages.
      const cause = (err as { cause?: { code?: unknown } }).cause;
      failure = controller.signal.aborted ? `no answer within ${timeoutMs} ms` : `request failed${typeof cause?.code === 'string' ? ` (${cause.code})` : ''}`;
    } finally {
      clearTimeout(timer);
    }
    if (failure === null) {
      this.deps.metrics.traceExports.inc({ result: 'ok' });
      this.deps.metrics.traceSpans.inc({ outcome: 'exported' }, batch.length);
      if (this.failing) this.deps.logger.info({ endpoint: this.settings.shownEndpoint }, 'trace collector takes spans again');
      this.failing = false;
      return;
    }
    this.deps.metrics.traceExports.inc({ result: controller.signal.aborted ? 'timeout' : 'failed' });
    this.deps.metrics.traceSpans.inc({ outcome: 'dropped_export_failed' }, batch.length);
    this.failing = true;
    this.unloggedFailures++;
    const now = this.deps.clock.now();
    if (now - this.lastFailureLogAt >= EXPORT_FAILURE_LOG_INTERVAL_MS) {
      this.lastFailureLogAt = now;
      this.deps.logger.warn({ endpoint: this.settings.shownEndpoint, err: shownText(failure), failedExports: this.unloggedFailures, droppedSpans: batch.length }, 'trace export failed; its spans are dropped');
      this.unloggedFailures = 0;
    }
  }
}
