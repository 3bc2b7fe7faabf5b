import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { normaliseIp } from '../lib/ip.js';
import { peerAddress } from '../lib/peer-address.js';
import { DENIALS } from '../pipeline/denials.js';
import type { Decision, Exchange } from '../pipeline/exchange.js';
import type { AuditKind, AuditRecord } from './audit-record.js';
import { auditTarget } from './audit-target.js';

/**
 * What is known about one request or operation when its record is written. Everything but the
 * outcome is optional: a field that is not known (or does not apply) is null here and absent from
 * the written record.
 */
export interface AuditFacts {
  /** Absent: `request`. */
  readonly kind?: AuditKind;
  readonly requestId: string;
  readonly method?: string;
  readonly path: string;
  readonly route?: string | null;
  /** The stage that decided: a pipeline stage, `listener` for socket-level rejections, `admin`. */
  readonly stage: string | null;
  readonly status: number;
  readonly latencyMs?: number;
  readonly decision: Decision;
  /** A code from a catalogue (or an abort reason), null when allowed. */
  readonly reason: string | null;
  readonly detail?: string | null;
  readonly identity?: AuditRecord['identity'];
  readonly tenant?: string | null;
  readonly clientIp: string;
  readonly userAgent?: string | null;
  readonly upstream?: string | null;
  readonly upstreamStatus?: number | null;
  readonly bytesIn?: number;
  readonly bytesOut?: number;
  readonly configVersion: string;
  /** Present only for requests that went through limits. */
  readonly limit?: string | null;
  /** The attribute rule that refused the request; present only then. */
  readonly rule?: string | null;
  /** The HTTP version of a request the gateway read (`1.1`, `2.0`). */
  readonly httpVersion?: string | null;
  /** The request's trace id, when tracing is on. */
  readonly traceId?: string | null;
}

/** The last time formatted, and its text: a busy gateway writes many records in the same millisecond. */
let lastTime = Number.NaN;
let lastTimeText = '';

function timeText(now: number): string {
  if (now !== lastTime) {
    // Formatted first: a time that cannot be formatted throws and leaves the cache as it was.
    lastTimeText = new Date(now).toISOString();
    lastTime = now;
  }
  return lastTimeText;
}

/** The one builder of audit records: every outcome, admin operations and socket-level rejections. */
export function auditRecord(facts: AuditFacts, now: number): AuditRecord {
  // One object, with `limit` only where it applies (records outside a route have no such field).
  const record: { -readonly [K in keyof AuditRecord]: AuditRecord[K] } = {
    time: timeText(now),
    kind: facts.kind ?? 'request',
    requestId: facts.requestId,
    method: facts.method ?? '',
    path: facts.path,
    route: facts.route ?? null,
    stage: facts.stage,
    status: facts.status,
    latencyMs: Math.round((facts.latencyMs ?? 0) * 1000) / 1000,
    decision: facts.decision,
    reason: facts.reason,
    detail: facts.detail === undefined || facts.detail === '' ? null : facts.detail,
    identity: facts.identity ?? null,
    tenant: facts.tenant ?? null,
    clientIp: facts.clientIp,
    userAgent: facts.userAgent ?? null,
    upstream: facts.upstream ?? null,
    upstreamStatus: facts.upstreamStatus ?? null,
    bytesIn: facts.bytesIn ?? 0,
    bytesOut: facts.bytesOut ?? 0,
    configVersion: facts.configVersion,
  };
  if (facts.limit !== undefined) record.limit = facts.limit;
  if (facts.rule !== undefined && facts.rule !== null) record.rule = facts.rule;
  if (facts.httpVersion !== undefined && facts.httpVersion !== null) record.httpVersion = facts.httpVersion;
  if (facts.traceId !== undefined && facts.traceId !== null) record.traceId = facts.traceId;
  return record;
}

/**
 * The facts of a finished exchange. A response that never started is 499 (client closed request)
 * unless a denial decided its status; an allowed exchange whose response did not finish was
 * abandoned by the client.
 *
 * Known facts are kept on denials too: the identity is the authenticated one, or else the one a
 * refused credential verifiably belongs to (a revoked API key whose secret matched, an expired
 * token whose signature verified), never claims nobody vouched for. Facts that do not apply are
 * left out: `upstream` only when the request was dispatched to it, `upstreamStatus` only when it
 * answered, `limit` only when a limit decided.
 */
export function exchangeFacts(ex: Exchange, configVersion: string): AuditFacts {
  const res = ex.wire.res;
  if (!res.writableFinished && ex.decision === 'allow') { ex.decision = 'abort'; ex.detail ||= 'client closed the connection'; }
  const status = res.headersSent ? res.statusCode : ex.denial !== null ? DENIALS[ex.denial.code].status : ex.response?.status ?? 499;
  const reason = ex.denial?.code ?? ex.response?.code
    ?? (ex.decision === 'allow' ? null : ex.decision === 'abort' ? (ex.discarded ? 'pipeline_discarded' : 'client_aborted') : 'upstream_aborted');
  const identity = ex.identity ?? ex.refusedIdentity;
  return {
    requestId: ex.requestId,
    method: ex.req.method ?? '',
    path: ex.target?.path ?? auditTarget(ex.req.url),
    route: ex.route?.name ?? null,
    stage: ex.stage,
    status,
    latencyMs: performance.now() - ex.startedAt,
    decision: ex.decision,
    reason,
    detail: ex.detail,
    identity: identity === null ? null : { subject: identity.subject, authMethod: identity.method, keyId: identity.keyId },
    tenant: identity?.tenant ?? null,
    clientIp: ex.clientIp,
    userAgent: ex.req.headers['user-agent'] ?? null,
    upstream: ex.forwardedAt !== 0 ? ex.route?.upstream?.name ?? null : null,
    upstreamStatus: ex.upstreamStatus,
    bytesIn: ex.bytesIn,
    bytesOut: ex.wire.bytesOut,
    httpVersion: ex.req.httpVersion,
    configVersion,
    limit: ex.limitName,
    traceId: ex.trace?.traceId ?? null,
    rule: ex.rule,
  };
}

/** The outcome of bytes after a message that closed the connection: read, never processed. */
export const DISCARDED = Object.freeze({ status: 499, decision: 'abort', reason: 'pipeline_discarded', detail: 'bytes after a message that closed the connection were not processed' } as const);

/** The facts of a connection the listener refused or closed before any exchange began. */
export function connectionFacts(
  socket: Socket, req: IncomingMessage | null, requestId: string, outcome: { status: number; decision: Decision; reason: string; detail: string }, configVersion: string,
): AuditFacts {
  return {
    requestId,
    method: req?.method ?? '',
    path: auditTarget(req?.url),
    stage: 'listener',
    status: outcome.status,
    decision: outcome.decision,
    reason: outcome.reason,
    detail: outcome.detail,
    clientIp: normaliseIp(peerAddress(socket)),
    userAgent: req?.headers['user-agent'] ?? null,
    configVersion,
    httpVersion: req?.httpVersion ?? null,
  };
}

/**
 * The facts of a TLS handshake that failed on a listener: no request, no HTTP answer; the reason,
 * the server name asked for and the sampling summary are in `detail`.
 */
export function handshakeFailureFacts(failure: { readonly clientIp: string; readonly detail: string }, requestId: string, configVersion: string): AuditFacts {
  return {
    requestId, method: '', path: '', stage: 'listener', status: DENIALS.tls_handshake_failed.status, decision: 'deny',
    reason: 'tls_handshake_failed', detail: failure.detail, clientIp: normaliseIp(failure.clientIp), userAgent: null, configVersion,
  };
}

/** One admin request as its audit record tells it. */
export interface AdminFactsInput {
  /** Null for a request the HTTP parser refused. */
  readonly req: IncomingMessage | null;
  readonly socket: Socket;
  readonly requestId: string;
  readonly outcome: { readonly status: number; readonly code: string | null; readonly detail: string };
  /** Whether the caller presented the admin token. */
  readonly authenticated: boolean;
  readonly latencyMs: number;
}

/** The facts of an admin request (never the token, never a key's secret), for whichever process serves the admin API. */
export function adminFacts({ req, socket, requestId, outcome, authenticated, latencyMs }: AdminFactsInput, configVersion: string): AuditFacts {
  return {
    kind: 'admin', requestId, method: req?.method ?? '', path: auditTarget(req?.url), route: null, stage: 'admin',
    status: outcome.status, latencyMs, decision: adminDecision(outcome), reason: outcome.code, detail: outcome.detail,
    identity: authenticated ? { subject: 'admin', authMethod: 'adminToken', keyId: null } : null,
    clientIp: normaliseIp(peerAddress(socket)), userAgent: req?.headers['user-agent'] ?? null, configVersion,
  };
}

/** Allowed when it succeeded, an error when the gateway failed (5xx), else denied. */
export function adminDecision(outcome: { readonly status: number; readonly code: string | null }): Decision {
  if (outcome.status >= 500) return 'error';
  return outcome.code === null && outcome.status < 400 ? 'allow' : 'deny';
}
