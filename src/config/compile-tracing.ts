import { isIP } from 'node:net';
import type { ConfigSource } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import type { RawTracing } from './schema-tracing.js';
import { Tracer } from '../observability/tracing/tracer.js';

/** Documented defaults; docs/configuration.md lists the same values. */
export const TRACING_DEFAULTS = Object.freeze({
  serviceName: 'portcullis',
  sampleRatio: 1,
  urlPath: true,
  'exporter.timeoutMs': 10_000,
  'exporter.maxQueueSpans': 2048,
  'exporter.maxBatchSpans': 512,
  'exporter.intervalMs': 5000,
});

/** Headers the exporter writes itself: a configured value would corrupt the request's framing or type. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'connection', 'host', 'expect', 'upgrade', 'te', 'keep-alive', 'trailer']);

/** Control characters in a header value would split the request (CWE-113). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || (isIP(hostname) === 4 && hostname.startsWith('127.'));
}

/**
 * `tracing`, compiled into the tracer (a resource: nothing opens until the config goes live), or
 * null when the section is absent. Problems are located at the option.
 */
export function compileTracing(raw: RawTracing | undefined, drainTimeoutMs: number, loaded: ConfigSource, problems: ConfigProblem[]): Tracer | null {
  if (raw === undefined) return null;
  const at = (...path: string[]): string[] => ['tracing', 'exporter', ...path];
  const e = raw.exporter;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(e.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) problems.push(loaded.problem(at('headers', name), `${name} is set by the exporter itself; remove it`, true));
    else if (!HEADER_VALUE.test(value)) problems.push(loaded.problem(at('headers', name), 'must not contain control characters such as line breaks'));
    else headers[name] = value;
  }
  let url: URL | null = null;
  try { url = new URL(e.endpoint); } catch { /* reported below */ }
  let shownEndpoint = '';
  if (url === null) problems.push(loaded.problem(at('endpoint'), 'must be a URL like http://collector:4318/v1/traces (it could not be parsed)'));
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(loaded.problem(at('endpoint'), `must be an http:// or https:// URL, not ${url.protocol}//`));
  else if (url.hostname === '') problems.push(loaded.problem(at('endpoint'), 'must name a host: http://collector:4318/v1/traces'));
  // fetch refuses such a URL and quotes it, password and all, in its error: every export would fail and log it.
  else if (url.username !== '' || url.password !== '') problems.push(loaded.problem(at('endpoint'), 'must not carry a user name or password; send the collector\'s credentials in tracing.exporter.headers'));
  else if (url.search !== '' || url.hash !== '') problems.push(loaded.problem(at('endpoint'), 'must not carry a query or fragment (logs show the endpoint; send credentials in tracing.exporter.headers): write it like http://collector:4318/v1/traces'));
  // Headers are where a collector's API key goes: never in clear text beyond this machine.
  else if (url.protocol === 'http:' && Object.keys(headers).length > 0 && !isLoopback(url.hostname)) {
    problems.push(loaded.problem(at('endpoint'), 'must be https when tracing.exporter.headers are set (they usually carry the collector\'s API key; plain http is accepted for loopback hosts only)'));
  } else shownEndpoint = `${url.protocol}//${url.host}${url.pathname}`;
  const maxQueueSpans = e.maxQueueSpans ?? TRACING_DEFAULTS['exporter.maxQueueSpans'];
  const maxBatchSpans = e.maxBatchSpans ?? Math.min(TRACING_DEFAULTS['exporter.maxBatchSpans'], maxQueueSpans);
  if (maxBatchSpans > maxQueueSpans) problems.push(loaded.problem(at('maxBatchSpans'), `must be at most exporter.maxQueueSpans (${maxQueueSpans}): a batch is taken from the queue`));
  return new Tracer({
    serviceName: raw.serviceName ?? TRACING_DEFAULTS.serviceName,
    sampleRatio: raw.sampleRatio ?? TRACING_DEFAULTS.sampleRatio,
    urlPath: raw.urlPath ?? TRACING_DEFAULTS.urlPath,
    exporter: Object.freeze({
      endpoint: e.endpoint,
      shownEndpoint,
      headers: Object.freeze(headers),
      timeoutMs: e.timeoutMs ?? TRACING_DEFAULTS['exporter.timeoutMs'],
      maxQueueSpans,
      maxBatchSpans,
      intervalMs: e.intervalMs ?? TRACING_DEFAULTS['exporter.intervalMs'],
      flushTimeoutMs: drainTimeoutMs,
    }),
  });
}
