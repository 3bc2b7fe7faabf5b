import type { ConfigSource } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import type { RawConfig } from './schema.js';
import { parseDuration } from '../lib/duration.js';
import type { SinkFailureMode } from '../audit/sinks/sink.js';

/** `audit.nats`, compiled. `servers` carries no credentials; `user`/`pass`/`token` carry them apart. */
export interface NatsSinkOptions {
  /** `nats://host:port` without userinfo, query or fragment: safe to log and show. */
  readonly servers: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly stream: string;
  readonly subject: string;
  readonly createStream: boolean;
  readonly duplicateWindowMs: number;
  readonly spoolMaxBytes: number;
  readonly ackTimeoutMs: number;
  readonly maxInFlight: number;
  readonly onFailure: SinkFailureMode;
}

/** `audit.http`, compiled. `url` is the whole URL (it may carry a secret); `shownUrl` is what logs show. */
export interface HttpSinkOptions {
  readonly url: string;
  readonly shownUrl: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly batchRecords: number;
  readonly batchIntervalMs: number;
  readonly timeoutMs: number;
  readonly maxQueueBytes: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly onFailure: SinkFailureMode;
}

export const NATS_SINK_DEFAULTS = Object.freeze({
  stream: 'PORTCULLIS_AUDIT',
  subject: 'portcullis.audit',
  createStream: true,
  duplicateWindow: '2m',
  spoolMaxBytes: 64 * 1024 * 1024,
  ackTimeoutMs: 5000,
  maxInFlight: 256,
});

export const HTTP_SINK_DEFAULTS = Object.freeze({
  batchRecords: 500,
  batchIntervalMs: 1000,
  timeoutMs: 10_000,
  maxQueueBytes: 16 * 1024 * 1024,
  retryInitialMs: 500,
  retryMaxMs: 60_000,
});

/**
 * Headers the sink writes itself: a configured value would corrupt the request (framing, the body's
 * type) or let a collector's de-duplication key be forged.
 */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'transfer-encoding', 'connection', 'host', 'x-portcullis-batch', 'expect', 'upgrade', 'te', 'keep-alive']);

/** Control characters in a header value would split the request (CWE-113). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A sink's default: the trail's `audit.onFailure`. */
function failureMode(raw: Pick<RawConfig, 'audit'>): SinkFailureMode {
  return raw.audit?.onFailure ?? 'failClosed';
}

function parsedUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** A NATS URL's server and credentials, apart; or, when it is not one, what is wrong (never quoting it: it may hold a secret). */
export function parseNatsUrl(text: string): { servers: string; user?: string; pass?: string; token?: string } | string {
  const url = parsedUrl(text);
  if (url === null) return 'must be a URL like nats://host:4222 (it could not be parsed)';
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') return `must be a nats:// or tls:// URL, not ${url.protocol}//`;
  if (url.hostname === '') return 'must name a host: nats://host:4222';
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') return 'must be only nats://[user:password@]host[:port], without a path, query or fragment';
  const servers = `${url.protocol}//${url.host}`;
  if (url.username !== '' && url.password !== '') return { servers, user: decoded(url.username), pass: decoded(url.password) };
  if (url.username !== '') return { servers, token: decoded(url.username) };
  return { servers };
}

function compileNats(raw: Pick<RawConfig, 'audit'>, loaded: ConfigSource, problems: ConfigProblem[]): NatsSinkOptions | null {
  const n = raw.audit?.nats;
  if (n === undefined) return null;
  const at = (...path: (string | number)[]) => ['audit', 'nats', ...path];
  const parsed = parseNatsUrl(n.url);
  if (typeof parsed === 'string') problems.push(loaded.problem(at('url'), parsed));
  const { servers, ...credentials } = typeof parsed === 'string' ? { servers: '' } : parsed;
  const windowMs = parseDuration(n.duplicateWindow ?? NATS_SINK_DEFAULTS.duplicateWindow) ?? 120_000;
  return Object.freeze({
    servers,
    ...credentials,
    stream: n.stream ?? NATS_SINK_DEFAULTS.stream,
    subject: n.subject ?? NATS_SINK_DEFAULTS.subject,
    createStream: n.createStream ?? NATS_SINK_DEFAULTS.createStream,
    duplicateWindowMs: windowMs,
    spoolMaxBytes: n.spool?.maxBytes ?? NATS_SINK_DEFAULTS.spoolMaxBytes,
    ackTimeoutMs: n.ackTimeoutMs ?? NATS_SINK_DEFAULTS.ackTimeoutMs,
    maxInFlight: n.maxInFlight ?? NATS_SINK_DEFAULTS.maxInFlight,
    onFailure: n.onFailure ?? failureMode(raw),
  });
}

function compileHttp(raw: Pick<RawConfig, 'audit'>, loaded: ConfigSource, problems: ConfigProblem[]): HttpSinkOptions | null {
  const h = raw.audit?.http;
  if (h === undefined) return null;
  const at = (...path: (string | number)[]) => ['audit', 'http', ...path];
  const url = parsedUrl(h.url);
  let shownUrl = '';
  if (url === null) problems.push(loaded.problem(at('url'), 'must be a URL like https://collector.example/ingest (it could not be parsed)'));
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(loaded.problem(at('url'), `must be an http:// or https:// URL, not ${url.protocol}//`));
  else if (url.hostname === '') problems.push(loaded.problem(at('url'), 'must name a host'));
  // fetch refuses such a URL, and its error quotes the URL, password and all: every batch would fail and log it.
  else if (url.username !== '' || url.password !== '') problems.push(loaded.problem(at('url'), 'must not carry a user name or password; send credentials in audit.http.headers (Authorization)'));
  else shownUrl = `${url.protocol}//${url.host}${url.pathname}`;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(h.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) problems.push(loaded.problem(at('headers', name), `${name} is set by the sink itself; remove it`, true));
    else if (!HEADER_VALUE.test(value)) problems.push(loaded.problem(at('headers', name), 'must not contain control characters such as line breaks'));
    else headers[name] = value;
  }
  const retryInitialMs = h.retry?.initialMs ?? HTTP_SINK_DEFAULTS.retryInitialMs;
  const retryMaxMs = h.retry?.maxMs ?? Math.max(HTTP_SINK_DEFAULTS.retryMaxMs, retryInitialMs);
  if (retryMaxMs < retryInitialMs) problems.push(loaded.problem(at('retry', 'maxMs'), `must be at least retry.initialMs (${retryInitialMs})`));
  return Object.freeze({
    url: h.url,
    shownUrl,
    headers: Object.freeze(headers),
    batchRecords: h.batchRecords ?? HTTP_SINK_DEFAULTS.batchRecords,
    batchIntervalMs: h.batchIntervalMs ?? HTTP_SINK_DEFAULTS.batchIntervalMs,
    timeoutMs: h.timeoutMs ?? HTTP_SINK_DEFAULTS.timeoutMs,
    maxQueueBytes: h.maxQueueBytes ?? HTTP_SINK_DEFAULTS.maxQueueBytes,
    retryInitialMs,
    retryMaxMs,
    onFailure: h.onFailure ?? failureMode(raw),
  });
}

/** `audit.nats` and `audit.http`; each is null when it is not configured. Problems are located at the option. */
export function compileAuditSinks(raw: Pick<RawConfig, 'audit'>, loaded: ConfigSource, problems: ConfigProblem[]): { nats: NatsSinkOptions | null; http: HttpSinkOptions | null } {
  return { nats: compileNats(raw, loaded, problems), http: compileHttp(raw, loaded, problems) };
}
