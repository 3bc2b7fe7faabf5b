import { createHash } from 'node:crypto';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import { DENIALS, type DenialCode } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { OtlpExporter, type ExporterSettings } from './otlp-exporter.js';
import { RequestTrace } from './request-trace.js';
import { SPAN_KIND, type SpanData } from './span-data.js';
import { SpanIds } from './span-ids.js';
import { parseTraceparent, parseTracestate } from './trace-context.js';

/** The `tracing` section, compiled. */
export interface TracingSettings {
  /** `service.name` of the exported resource. */
  readonly serviceName: string;
  /** The share of requests that start a trace here which are sampled (0…1); a trusted parent's sampled flag decides for the others. */
  readonly sampleRatio: number;
  /** Whether the request span carries the canonical path (`url.path`); off when path segments carry secrets. */
  readonly urlPath: boolean;
  readonly exporter: ExporterSettings;
}

/** Most characters of a span attribute taken from a request (a path, a request id). */
const ATTRIBUTE_MAX_CHARS = 1024;

/** The outcome of a finished request, as its audit record tells it. */
export interface TracedOutcome {
  readonly status: number;
  /** The reason code, or null when allowed. */
  readonly reason: string | null;
}

/**
 * OpenTelemetry tracing of the request path: a SERVER span per request with an INTERNAL child per
 * stage run (the forwarding stage's is CLIENT, and the upstream's `traceparent` names it), exported
 * over OTLP/HTTP. A resource: compiling a config describes it; the gateway starts it with the
 * config (the exporter's timer) and stops it when no config uses it any more (queued spans are
 * flushed). Spans carry no header, credential, query or identity: see docs/tracing.md.
 */
export class Tracer implements Resource {
  readonly key: string;
  private readonly ids = new SpanIds();
  private exporter: OtlpExporter | null = null;

  constructor(readonly settings: TracingSettings) {
    // The headers may hold a collector's API key: the key (which logs may show) holds their digest.
    const headers = createHash('sha256').update(JSON.stringify(settings.exporter.headers)).digest('hex');
    this.key = `tracer:${JSON.stringify({ ...settings, exporter: { ...settings.exporter, endpoint: settings.exporter.shownEndpoint, headers } })}`;
  }

  start(context: ResourceContext): Promise<void> {
    this.exporter = new OtlpExporter(this.settings.exporter, { logger: context.logger, clock: context.clock, metrics: context.metrics, serviceName: this.settings.serviceName });
    this.exporter.start();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const exporter = this.exporter;
    this.exporter = null;
    await exporter?.stop();
  }

  /** Spans waiting to be exported (0 before start). */
  get queued(): number {
    return this.exporter?.queued ?? 0;
  }

  /** Resolves once the exporter has no export under way: its outcome is then counted. */
  idle(): Promise<void> {
    return this.exporter?.idle() ?? Promise.resolve();
  }

  /**
   * The trace of a request that just arrived. Its `traceparent`/`tracestate` fields (present only
   * when a trusted proxy sent them: the header pass drops them from anyone else) continue the
   * caller's trace when valid; otherwise the request starts one, sampled at `sampleRatio`.
   */
  begin(traceparent: readonly string[] | null, tracestate: readonly string[] | null): RequestTrace {
    const parent = parseTraceparent(traceparent);
    if (parent !== null) return new RequestTrace(parent.traceId, this.ids.spanId(), parent.parentId, parent.sampled, parseTracestate(tracestate), this.ids);
    const ratio = this.settings.sampleRatio;
    const sampled = ratio >= 1 || (ratio > 0 && Math.random() < ratio);
    return new RequestTrace(this.ids.traceId(), this.ids.spanId(), null, sampled, null, this.ids);
  }

  /** Ends a request's trace: its spans, when sampled, go to the export queue. */
  end(ex: Exchange, trace: RequestTrace, outcome: TracedOutcome): void {
    if (!trace.sampled || this.exporter === null) return;
    const end = performance.now();
    const method = ex.req.method ?? '';
    const route = ex.route?.name ?? null;
    const attributes: (string | number)[] = ['http.request.method', bounded(method)];
    const path = ex.target?.path;
    // The canonical path only: the query is where tokens and other secrets travel. A path segment
    // can be one too (`/reset/{token}`): `urlPath: false` leaves the path out.
    if (path !== undefined && this.settings.urlPath) attributes.push('url.path', bounded(path));
    if (route !== null) attributes.push('http.route', bounded(route));
    attributes.push('http.response.status_code', outcome.status, 'client.address', ex.clientIp, 'portcullis.decision', ex.decision);
    if (outcome.reason !== null) attributes.push('portcullis.code', outcome.reason);
    if (ex.stage !== null) attributes.push('portcullis.stage', ex.stage);
    attributes.push('portcullis.request_id', bounded(ex.requestId));
    const spans: SpanData[] = [{
      traceId: trace.traceId, spanId: trace.spanId, parentSpanId: trace.parentSpanId, name: route === null ? bounded(method) : `${bounded(method)} ${route}`,
      kind: SPAN_KIND.server, startMs: ex.startedAt, endMs: end, attributes,
      error: outcome.status >= 500 || ex.decision === 'abort' || ex.decision === 'error', traceState: trace.tracestate,
    }];
    for (const stage of trace.stages) {
      const forward = stage.name === 'forward';
      const stageAttributes: (string | number)[] = ['portcullis.stage', stage.name];
      if (stage.code !== null) stageAttributes.push('portcullis.code', stage.code);
      if (forward && ex.upstreamStatus !== null) stageAttributes.push('http.response.status_code', ex.upstreamStatus);
      spans.push({
        traceId: trace.traceId, spanId: stage.spanId, parentSpanId: trace.spanId, name: stage.name,
        kind: forward ? SPAN_KIND.client : SPAN_KIND.internal, startMs: stage.startMs,
        // A stage still running when the exchange ended (the client left mid-stage) ends with it.
        endMs: stage.endMs === 0 ? end : stage.endMs, attributes: stageAttributes,
        error: stage.failed || serverError(stage.code) || (forward && ex.upstreamStatus !== null && ex.upstreamStatus >= 500), traceState: null,
      });
    }
    this.exporter.offer(spans);
  }
}

/** A code of the denial catalogue with a 5xx status. */
function serverError(code: string | null): boolean {
  return code !== null && Object.hasOwn(DENIALS, code) && DENIALS[code as DenialCode].status >= 500;
}

function bounded(text: string): string {
  return text.length <= ATTRIBUTE_MAX_CHARS ? text : text.slice(0, ATTRIBUTE_MAX_CHARS);
}
