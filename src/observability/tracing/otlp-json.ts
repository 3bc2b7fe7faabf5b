import type { SpanData } from './span-data.js';

/** OTLP's Status.code for an error (STATUS_CODE_ERROR). */
const STATUS_ERROR = 2;

/** Whole milliseconds of performance.timeOrigin, and the fraction, apart: their sum in nanoseconds overflows a double's integers. */
const ORIGIN_MS = Math.floor(performance.timeOrigin);
const ORIGIN_FRACTION_MS = performance.timeOrigin - ORIGIN_MS;

/** A performance.now() reading as Unix nanoseconds, in decimal (OTLP/JSON writes 64-bit integers as strings). */
export function unixNanos(monotonicMs: number): string {
  const ms = ORIGIN_FRACTION_MS + monotonicMs;
  const whole = Math.floor(ms);
  const nanos = Math.round((ms - whole) * 1e6);
  return (BigInt(ORIGIN_MS + whole) * 1_000_000n + BigInt(nanos)).toString();
}

interface KeyValue {
  readonly key: string;
  readonly value: { readonly stringValue: string } | { readonly intValue: string };
}

function attributes(flat: readonly (string | number)[]): KeyValue[] {
  const out: KeyValue[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const value = flat[i + 1] as string | number;
    out.push({ key: String(flat[i]), value: typeof value === 'number' ? { intValue: String(Math.trunc(value)) } : { stringValue: value } });
  }
  return out;
}

/**
 * An OTLP/HTTP request body in the JSON encoding (OTLP's protobuf JSON mapping: ids as hex
 * strings, times as decimal strings of Unix nanoseconds, enums as numbers): one resource (this
 * gateway process: `service.name`, and `process.pid`, which tells the workers of a host apart),
 * one instrumentation scope, the spans.
 */
export function otlpTraceRequest(spans: readonly SpanData[], serviceName: string): string {
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: attributes(['service.name', serviceName, 'process.pid', process.pid]) },
      scopeSpans: [{
        scope: { name: 'portcullis' },
        spans: spans.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          ...(s.parentSpanId === null ? {} : { parentSpanId: s.parentSpanId }),
          ...(s.traceState === null ? {} : { traceState: s.traceState }),
          name: s.name,
          kind: s.kind,
          startTimeUnixNano: unixNanos(s.startMs),
          endTimeUnixNano: unixNanos(s.endMs),
          attributes: attributes(s.attributes),
          status: s.error ? { code: STATUS_ERROR } : {},
        })),
      }],
    }],
  });
}
