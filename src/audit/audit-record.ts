import type { Decision } from '../pipeline/exchange.js';
import { boundOptional, boundText } from './bounded-text.js';

/**
 * What a record describes: a request to the proxy listener (`request`: forwarded, denied, or
 * refused by the listener) or a request to the admin listener (`admin`). A separate field rather
 * than a reserved route name, so no route of the config can pass for the admin API.
 */
export type AuditKind = 'request' | 'admin';

/** One audit record (a JSON line). Never holds a secret: no query string, no userinfo, no credentials, no cookies. */
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
});

/**
 * Upper bound on one serialised record, newline included: the caps above in UTF-16 units, times 3
 * for UTF-8 (non-ASCII survives only as itself, at most 3 bytes per unit), plus field names,
 * numbers and punctuation.
 */
export const MAX_RECORD_BYTES = 3 * Object.values(FIELD_MAX_CHARS).reduce((a, b) => a + b, 0) + 512;

/**
 * The record with every text field escaped and capped (see boundText): a single JSON line that
 * cannot forge another record, carries no terminal escapes and has a known maximum size.
 * `serialiseRecord` writes the same JSON without building this object; it is kept as the
 * reference the serialiser is tested against.
 */
export function boundRecord(record: AuditRecord): AuditRecord {
  const c = FIELD_MAX_CHARS;
  const identity = record.identity;
  const bounded: AuditRecord = {
    time: boundText(record.time, c.time),
    kind: record.kind,
    requestId: boundText(record.requestId, c.requestId),
    method: boundText(record.method, c.method),
    path: boundText(record.path, c.path),
    route: boundOptional(record.route, c.route),
    stage: boundOptional(record.stage, c.stage),
    status: record.status,
    latencyMs: record.latencyMs,
    decision: record.decision,
    reason: boundOptional(record.reason, c.reason),
    detail: boundOptional(record.detail, c.detail),
    identity: identity === null ? null : {
      subject: boundText(identity.subject, c.subject),
      authMethod: boundText(identity.authMethod, c.authMethod),
      keyId: boundOptional(identity.keyId, c.keyId),
    },
    tenant: boundOptional(record.tenant, c.tenant),
    clientIp: boundText(record.clientIp, c.clientIp),
    userAgent: boundOptional(record.userAgent, c.userAgent),
    upstream: boundOptional(record.upstream, c.upstream),
    upstreamStatus: record.upstreamStatus,
    bytesIn: record.bytesIn,
    bytesOut: record.bytesOut,
    configVersion: boundText(record.configVersion, c.configVersion),
  };
  return record.limit === undefined ? bounded : { ...bounded, limit: boundOptional(record.limit, c.limit) };
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

function optional(value: string | null | undefined, maxChars: number): string {
  return value === undefined || value === null ? 'null' : text(value, maxChars);
}

/** A number as JSON writes it (a non-finite one is null). */
function num(value: number | null): string {
  return value !== null && Number.isFinite(value) ? String(value) : 'null';
}

/**
 * The JSON line for a record, bounded and escaped: exactly `JSON.stringify(boundRecord(record))`
 * and a newline, written field by field on the request path's hot end.
 */
export function serialiseRecord(record: AuditRecord): string {
  const c = FIELD_MAX_CHARS;
  const identity = record.identity;
  const who = identity === null ? 'null'
    : `{"subject":${text(identity.subject, c.subject)},"authMethod":${text(identity.authMethod, c.authMethod)},"keyId":${optional(identity.keyId, c.keyId)}}`;
  return `{"time":${text(record.time, c.time)},"kind":${JSON.stringify(record.kind)},"requestId":${text(record.requestId, c.requestId)},"method":${text(record.method, c.method)}`
    + `,"path":${text(record.path, c.path)},"route":${optional(record.route, c.route)},"stage":${optional(record.stage, c.stage)}`
    + `,"status":${num(record.status)},"latencyMs":${num(record.latencyMs)},"decision":${JSON.stringify(record.decision)}`
    + `,"reason":${optional(record.reason, c.reason)},"detail":${optional(record.detail, c.detail)},"identity":${who}`
    + `,"tenant":${optional(record.tenant, c.tenant)},"clientIp":${text(record.clientIp, c.clientIp)},"userAgent":${optional(record.userAgent, c.userAgent)}`
    + `,"upstream":${optional(record.upstream, c.upstream)},"upstreamStatus":${num(record.upstreamStatus)}`
    + `,"bytesIn":${num(record.bytesIn)},"bytesOut":${num(record.bytesOut)},"configVersion":${text(record.configVersion, c.configVersion)}`
    + (record.limit === undefined ? '}\n' : `,"limit":${optional(record.limit, c.limit)}}\n`);
}
