/**
 * One finished span as the exporter queues it: what OTLP needs, nothing else. Times are
 * performance.now() readings (milliseconds on the process's monotonic clock); the encoder turns
 * them into Unix nanoseconds from performance.timeOrigin, so span times never jump with the wall
 * clock and stay ordered within a trace.
 */
export interface SpanData {
  readonly traceId: string;
  readonly spanId: string;
  /** The parent span; null for a root span. */
  readonly parentSpanId: string | null;
  readonly name: string;
  readonly kind: SpanKind;
  readonly startMs: number;
  readonly endMs: number;
  /** Flat `[key, value, …]`: string values are `stringValue`, numbers `intValue`. */
  readonly attributes: readonly (string | number)[];
  /** Status ERROR (a 5xx, an abort, a stage that threw); otherwise UNSET. */
  readonly error: boolean;
  /** The W3C tracestate the span's context carries, or null. */
  readonly traceState: string | null;
}

/** OTLP's SpanKind values (opentelemetry/proto/trace/v1/trace.proto). */
export const SPAN_KIND = Object.freeze({ internal: 1, server: 2, client: 3 } as const);
export type SpanKind = (typeof SPAN_KIND)[keyof typeof SPAN_KIND];
