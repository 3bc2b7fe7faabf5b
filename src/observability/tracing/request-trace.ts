import { formatTraceparent } from './trace-context.js';
import type { SpanIds } from './span-ids.js';

/** One stage run of a sampled request: its span, ended when the stage returns (or its promise settles). */
export interface StageSpan {
  readonly name: string;
  readonly spanId: string;
  readonly startMs: number;
  endMs: number;
  /** The code of the verdict the stage ended the request with, or null: it passed the request on. */
  code: string | null;
  /** The stage threw (or its promise rejected): a bug or an outage. */
  failed: boolean;
}

/**
 * The trace one request belongs to: its ids, whether it is sampled, and (when sampled) the span
 * of each stage run so far. Made when the request arrives, ended with its audit record
 * (Tracer.end). An unsampled request keeps its ids (the audit record, the logs and the upstream
 * see them) and records no span.
 */
export class RequestTrace {
  /** The stage spans, in the order the stages ran; empty when not sampled. */
  readonly stages: StageSpan[] = [];
  /** The stage running (the forward stage while the upstream request is assembled), or null. */
  private current: StageSpan | null = null;

  constructor(
    /** 32 lower-case hex digits: a trusted proxy's, or new. */
    readonly traceId: string,
    /** The request's own (SERVER) span. */
    readonly spanId: string,
    /** A trusted proxy's span this request continues, or null: this request is the trace's root. */
    readonly parentSpanId: string | null,
    readonly sampled: boolean,
    /** A trusted proxy's valid `tracestate`, passed on upstream unchanged; or null. */
    readonly tracestate: string | null,
    private readonly ids: SpanIds,
  ) {}

  /** Starts the span of a stage run (sampled requests only). */
  beginStage(name: string): StageSpan {
    const span: StageSpan = { name, spanId: this.ids.spanId(), startMs: performance.now(), endMs: 0, code: null, failed: false };
    this.stages.push(span);
    this.current = span;
    return span;
  }

  endStage(span: StageSpan, code: string | null, failed = false): void {
    span.endMs = performance.now();
    span.code = code;
    span.failed = failed;
    if (this.current === span) this.current = null;
  }

  /**
   * The `traceparent` the upstream receives: this trace, with the forwarding stage's span as the
   * parent (the request span when the request is not sampled, as no stage span exists then).
   */
  upstreamTraceparent(): string {
    return formatTraceparent(this.traceId, this.current?.spanId ?? this.spanId, this.sampled);
  }
}
