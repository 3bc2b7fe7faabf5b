import type { Decision } from '../pipeline/exchange.js';
import type { RecordText } from './chain.js';
import { boundOptional, boundText } from './bounded-text.js';

/**
 * What a record describes: a request to the proxy listener (`request`: forwarded, denied, or
 * refused by the listener) or a request to the admin listener (`admin`). A separate field rather
 * than a reserved route name, so no route of the config can pass for the admin API.
 */
export type AuditKind = 'request' | 'admin';

/**
 * One audit record of a request or admin operation, as the record builder makes it. Never holds a
 * secret: no query string, no userinfo, no credentials, no cookies. A member that is null (or
 * undefined) does not apply or is not known, and is absent from the written line; the chain adds
 * `seq`, `prev` and `hash` (see chain.ts).
 */
export interface AuditRecord {
  readonly time: string;
  readonly kind: AuditKind;
  readonly requestId: string;
  readonly method: string;
  /** The canonical path (or the raw target without query and userinfo when it was rejected); never the query. */
  readonly path: string;
  /** The matched route's name; null when none matched, and on admin records. */
  readonly route: string | null;
  /** The step that decided: a request-path stage (`forward` when the upstream answered), `listener` or `admin`. */
  readonly stage: string | null;
  readonly status: number;
  readonly latencyMs: number;
  readonly decision: Decision;
  /** Reason code from the denial catalogue, or null when allowed. */
  readonly reason: string | null;
  /** The precise private explanation. */
  readonly detail: string | null;
  readonly identity: { readonly subject: string; readonly authMethod: string; readonly keyId: string | null } | null;
  readonly tenant: string | null;
  readonly clientIp: string;
  readonly userAgent: string | null;
  readonly upstream: string | null;
  readonly upstreamStatus: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly configVersion: string;
  /** The rate limit, quota or guard that refused the request, by name; absent otherwise. */
  readonly limit?: string | null;
  /** The attribute rule (`when`) that refused the request, by name; absent otherwise. */
  readonly rule?: string | null;
  /** The request's HTTP version as received (`1.0`, `1.1`, `2.0`); absent when no request was read, and on admin records. */
  readonly httpVersion?: string | null;
  /** The request's W3C trace id (32 hex digits) when tracing is on; absent otherwise, and on admin records. */
  readonly traceId?: string | null;
}

/**
 * The most characters each text field of a record keeps (docs/operations.md lists the same caps).
 * Every field is capped, not only the ones known to carry client input today: a detail message
 * that starts quoting a header tomorrow stays bounded. With every field at its cap a record is
 * under 10 KiB of JSON (`MAX_RECORD_BYTES`), however hostile the request.
 */
export const FIELD_MAX_CHARS = Object.freeze({
  time: 32,
  requestId: 128,
  method: 32,
  path: 1024,
  route: 128,
  stage: 64,
  reason: 64,
  detail: 512,
  subject: 256,
  authMethod: 32,
  keyId: 64,
  tenant: 128,
  clientIp: 64,
  userAgent: 256,
  upstream: 128,
  configVersion: 64,
  limit: 128,
  rule: 64,
  httpVersion: 8,
  traceId: 32,
});

/**
 * Upper bound on one serialised record, newline included: the caps above in UTF-16 units, times 3
 * for UTF-8 (non-ASCII survives only as itself, at most 3 bytes per unit), plus field names,
 * numbers and punctuation, and the chain's `seq`, `prev` and `hash`.
 */
export const MAX_RECORD_BYTES = 3 * Object.values(FIELD_MAX_CHARS).reduce((a, b) => a + b, 0) + 512 + 192;

/** An object with its null and undefined members left out: what a record's line holds. */
function present<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as T;
}

/**
 * The record as its line holds it, with every text field escaped and capped (see boundText) and
 * every null member left out: JSON that cannot forge another record, carries no terminal escapes
 * and has a known maximum size. `serialiseRecord` writes the same canonical JSON without building
 * this object; it is kept as the reference the serialiser is tested against.
 */
export function boundRecord(record: AuditRecord): AuditRecord {
  const c = FIELD_MAX_CHARS;
  const identity = record.identity;
  return present<AuditRecord>({
    time: boundText(record.time, c.time),
    kind: record.kind,
    requestId: boundText(record.requestId, c.requestId),
    method: boundText(record.method, c.method),
    path: boundText(record.path, c.path),
    route: boundOptional(record.route, c.route),
    stage: boundOptional(record.stage, c.stage),
    status: finite(record.status) ?? 0,
    latencyMs: finite(record.latencyMs) ?? 0,
    decision: record.decision,
    reason: boundOptional(record.reason, c.reason),
    detail: boundOptional(record.detail, c.detail),
    identity: identity === null ? null : present({
      subject: boundText(identity.subject, c.subject),
      authMethod: boundText(identity.authMethod, c.authMethod),
      keyId: boundOptional(identity.keyId, c.keyId),
    }),
    tenant: boundOptional(record.tenant, c.tenant),
    clientIp: boundText(record.clientIp, c.clientIp),
    userAgent: boundOptional(record.userAgent, c.userAgent),
    upstream: boundOptional(record.upstream, c.upstream),
    upstreamStatus: finite(record.upstreamStatus),
    bytesIn: finite(record.bytesIn) ?? 0,
    bytesOut: finite(record.bytesOut) ?? 0,
    configVersion: boundText(record.configVersion, c.configVersion),
    limit: boundOptional(record.limit, c.limit),
    rule: boundOptional(record.rule, c.rule),
    httpVersion: boundOptional(record.httpVersion, c.httpVersion),
    traceId: boundOptional(record.traceId, c.traceId),
  });
}

/** A number JSON can hold; a non-finite one is not known (null). -0 is written as 0. */
function finite(value: number | null): number | null {
  return value !== null && Number.isFinite(value) ? value : null;
}

/**
 * Printable ASCII without `"` and `\`: text that JSON writes as itself and boundText leaves alone.
 * Almost every value of a real record is such text, and is written without a copy or a scan by
 * JSON.stringify.
 */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A bounded text field as JSON. */
function text(value: string, maxChars: number): string {
  return value.length <= maxChars && PLAIN.test(value) ? `"${value}"` : JSON.stringify(boundText(value, maxChars));
}

/** `,"name":value` for a member that is present, else nothing. */
function member(name: string, value: string | null | undefined, maxChars: number): string {
  return value === undefined || value === null ? '' : `,"${name}":${text(value, maxChars)}`;
}

/** A number as JSON writes it; a non-finite one as 0 (the members that must be present). */
function num(value: number): string {
  return Number.isFinite(value) ? String(value) : '0';
}

/**
 * The record as canonical JSON (RFC 8785: members in key order, no whitespace), bounded and
 * escaped, in the four pieces the chain links (chain.ts, RecordText): exactly the canonical JSON of
 * `boundRecord(record)`, written member by member on the request path's hot end.
 */
export function serialiseRecord(record: AuditRecord): RecordText {
  const c = FIELD_MAX_CHARS;
  const identity = record.identity;
  // Members in UTF-16 key order; `hash` falls after `detail`, `prev` after `path`, `seq` after `route` and `rule`.
  const version = record.httpVersion;
  const a = `{"bytesIn":${num(record.bytesIn)},"bytesOut":${num(record.bytesOut)},"clientIp":${text(record.clientIp, c.clientIp)}`
    + `,"configVersion":${text(record.configVersion, c.configVersion)},"decision":${JSON.stringify(record.decision)}${member('detail', record.detail, c.detail)}`;
  const who = identity === null ? ''
    : `"identity":{"authMethod":${text(identity.authMethod, c.authMethod)}${member('keyId', identity.keyId, c.keyId)},"subject":${text(identity.subject, c.subject)}},`;
  const http = version === undefined || version === null ? '' : `"httpVersion":${text(version, c.httpVersion)},`;
  const b = `${http}${who}"kind":${JSON.stringify(record.kind)},"latencyMs":${num(record.latencyMs)}${member('limit', record.limit, c.limit)}`
    + `,"method":${text(record.method, c.method)},"path":${text(record.path, c.path)}`;
  const reason = record.reason === null ? '' : `"reason":${text(record.reason, c.reason)},`;
  const cc = `${reason}"requestId":${text(record.requestId, c.requestId)}${member('route', record.route, c.route)}${member('rule', record.rule, c.rule)}`;
  const stage = record.stage === null ? '' : `"stage":${text(record.stage, c.stage)},`;
  const upstreamStatus = record.upstreamStatus !== null && Number.isFinite(record.upstreamStatus) ? `,"upstreamStatus":${record.upstreamStatus}` : '';
  const d = `${stage}"status":${num(record.status)}${member('tenant', record.tenant, c.tenant)},"time":${text(record.time, c.time)}`
    + `${member('traceId', record.traceId, c.traceId)}${member('upstream', record.upstream, c.upstream)}${upstreamStatus}${member('userAgent', record.userAgent, c.userAgent)}}`;
  return [a, b, cc, d];
}
