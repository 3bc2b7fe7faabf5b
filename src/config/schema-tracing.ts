import { Type, type Static } from '@sinclair/typebox';
import { formatted, HEADER_NAME_PATTERN, Millis, strict } from './schema-parts.js';

/** `tracing`: OpenTelemetry traces of the request path, exported over OTLP/HTTP. Absent: off. */
export const TracingSchema = strict({
  serviceName: Type.Optional(formatted('^[\\x21-\\x7e][\\x20-\\x7e]{0,127}$', 'up to 128 printable ASCII characters, not starting with a space', { description: 'The service.name of the exported spans. Default portcullis.' })),
  sampleRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'The share of requests that start a trace at the gateway which are sampled (0 to 1); a trusted proxy\'s traceparent decides by its sampled flag instead. Default 1.' })),
  urlPath: Type.Optional(Type.Boolean({ description: 'Export the canonical path as url.path. false: spans carry the route name only (for APIs with secrets in path segments, such as /reset/{token}). Default true.' })),
  exporter: strict({
    endpoint: Type.String({ minLength: 1, maxLength: 2048, description: 'The collector\'s OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces (http or https; no user name, password, query or fragment; https when headers are set, except on loopback).' }),
    headers: Type.Optional(Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), Type.String({ maxLength: 8192 }), { additionalProperties: false, maxProperties: 32, description: 'Headers sent with every export (a collector API key: ${ENV} references); never logged.' })),
    timeoutMs: Type.Optional(Millis('How long one export request may take, connection to response; past it its spans are dropped. Default 10000.')),
    maxQueueSpans: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most spans waiting to be exported; the spans of a request that do not fit are dropped and counted. Default 2048.' })),
    maxBatchSpans: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Most spans in one export request; a full batch is sent at once. Default 512.' })),
    intervalMs: Type.Optional(Millis('How often spans waiting are exported when no batch fills. Default 5000.')),
  }, 'Where spans are exported: an OpenTelemetry collector\'s OTLP/HTTP endpoint (JSON encoding).'),
}, 'OpenTelemetry tracing: a span per request and per stage, trace context from trusted proxies, OTLP/HTTP export (see docs/tracing.md). Absent: off.');

export type RawTracing = Static<typeof TracingSchema>;
