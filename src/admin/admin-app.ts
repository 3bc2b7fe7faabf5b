import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { AdminSettings } from '../config/compile.js';
import { writeProblem } from '../pipeline/problem.js';
import type { RequestInProgress, SocketRejection } from '../server/listener.js';
import { adminFacts, connectionFacts, DISCARDED, type AuditFacts } from '../audit/record-builder.js';
import { DENIALS } from '../pipeline/denials.js';
import { hasAdminToken, isJson } from './admin-auth.js';
import { adminDeny, adminEntry, type AdminDenial } from './admin-errors.js';
import type { Logger } from '../observability/logger.js';
import type { AdminHost, AdminOperation, AdminOutcome, ReloadResult } from './admin-host.js';
import { keysDisabled, serveKeys, type RequestId } from './admin-keys.js';
import { adminRequestRefusal } from './admin-request-guard.js';
import { serveRevocations } from './admin-revocations.js';
import { systemClock } from '../lib/clock.js';
import { jwksResponse } from '../stages/served/identity-jwks.js';

/** One admin request being answered. */
interface AdminCall {
  readonly host: AdminHost;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  readonly method: string;
  readonly id: RequestId;
}

/**
 * One admin endpoint. `probe` endpoints are open without a token so probes and scrapers work,
 * and not audited when answered (they change nothing, and a probe every few seconds would bury
 * the trail); refused probe requests are audited like every other admin request. `operation`
 * endpoints need the admin token. `methods` null: the endpoint tells its methods apart itself.
 */
interface AdminRoute {
  readonly path: string;
  /** Whether paths below `path/` belong to this endpoint too. */
  readonly below: boolean;
  readonly access: 'probe' | 'operation';
  readonly methods: readonly string[] | null;
  /** Answers the call; returns what its audit record says, or null for an answered probe. */
  readonly serve: (call: AdminCall) => Promise<AdminOutcome | null>;
}

/** The admin API: every endpoint, its access and its methods. Anything else is 404. */
const ROUTES: readonly AdminRoute[] = [
  { path: '/healthz', below: false, access: 'probe', methods: ['GET'], serve: healthz },
  { path: '/readyz', below: false, access: 'probe', methods: ['GET'], serve: readyz },
  { path: '/metrics', below: false, access: 'probe', methods: ['GET'], serve: metrics },
  { path: '/.well-known/jwks.json', below: false, access: 'probe', methods: ['GET', 'HEAD'], serve: identityJwks },
  { path: '/admin/reload', below: false, access: 'operation', methods: ['POST'], serve: reload },
  { path: '/admin/keys', below: true, access: 'operation', methods: null, serve: keys },
  { path: '/admin/revocations', below: false, access: 'operation', methods: ['POST'], serve: revocations },
];

function findRoute(path: string): AdminRoute | undefined {
  return ROUTES.find((r) => path === r.path || (r.below && path.startsWith(`${r.path}/`)));
}

function json(res: ServerResponse, status: number, body: unknown, id: RequestId): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', [id.header]: id.value });
  res.end(text);
}

/** Sends a refusal (public text only) and returns the outcome the audit record shows. */
function refuse(res: ServerResponse, denial: AdminDenial, id: RequestId): AdminOutcome {
  const entry = adminEntry(denial.code);
  writeProblem(res, denial.code, entry, { requestId: id.value, requestIdHeader: id.header, headers: denial.headers });
  return { status: entry.status, code: denial.code, detail: denial.reason, keyId: null };
}

/** The admin application, served on the admin listener. */
export interface AdminApp {
  /** Answers one request; every one except an answered probe gets exactly one audit record. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The admin request being answered on a connection: a parse error there ends it, audited once by its handler. */
  inProgress(socket: Socket): RequestInProgress | undefined;
}

/**
 * The admin API: /healthz, /readyz, /metrics, /.well-known/jwks.json (the identity assertion
 * keys), POST /admin/reload, /admin/keys. Its settings
 * (token, names, origins) are read once here: they change on restart only.
 */
export function createAdminApp(host: AdminHost): AdminApp {
  const settings = host.config.admin;
  const busy = new WeakMap<Socket, RequestInProgress>();
  return {
    handle(req, res) {
      const socket = req.socket;
      // Its own handler records the request; the connection just goes when it breaks.
      busy.set(socket, { req, res, get responseClosed() { return res.closed; }, clientClosed() { /* the handler sees the request end */ }, refuse() { socket.destroy(); } });
      res.once('close', () => busy.delete(socket));
      void handleAdmin(host, settings, req, res);
    },
    inProgress: (socket) => busy.get(socket),
  };
}

async function handleAdmin(host: AdminHost, settings: AdminSettings, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  // Taken now: a request refused before its body was read may lose its socket by the time it is recorded.
  const socket = req.socket;
  // Every admin request gets a fresh id, on every answer it gets and in its record. A request id
  // the caller sends is not taken: the admin listener has no trusted proxies, and a chosen id could
  // pass an operation off as another's in the trail.
  const id: RequestId = { value: randomUUID(), header: host.config.requestIdHeader };
  res.setHeader(id.header, id.value);
  const caller = { authenticated: false };
  let outcome: AdminOutcome | null;
  try {
    outcome = await serveAdmin(host, settings, req, res, id, caller);
  } catch (err) {
    // A body broken off or malformed on the wire (the parser destroyed the request) is the client's doing.
    const clientFault = req.destroyed && !req.complete;
    if (!clientFault) host.logger.error({ err, requestId: id.value }, 'admin request failed');
    const denial = clientFault ? adminDeny('bad_request', `request body broken off or malformed: ${(err as Error).message}`)
      : adminDeny('internal_error', `unexpected error: ${(err as Error).message}`);
    if (res.headersSent || clientFault) { res.destroy(); outcome = { status: adminEntry(denial.code).status, code: denial.code, detail: denial.reason, keyId: null }; }
    else outcome = refuse(res, denial, id);
  }
  if (outcome !== null) {
    host.auditAdmin({ req, socket, requestId: id.value, outcome, authenticated: caller.authenticated, latencyMs: performance.now() - started });
  }
}

/** Routes one admin request: guard, endpoint, token, CSRF and audit checks, in that order. */
async function serveAdmin(
  host: AdminHost, settings: AdminSettings, req: IncomingMessage, res: ServerResponse, id: RequestId, caller: { authenticated: boolean },
): Promise<AdminOutcome | null> {
  const refusal = adminRequestRefusal(req, settings);
  if (refusal !== null) return refuse(res, adminDeny('admin_origin_refused', refusal), id);
  const path = (req.url ?? '').split('?', 1)[0] ?? '';
  const method = req.method ?? '';
  const route = findRoute(path);
  if (route === undefined) return refuse(res, adminDeny('route_not_found', 'no admin endpoint at this path'), id);
  const notAllowed = (methods: readonly string[]): AdminOutcome =>
    refuse(res, adminDeny('method_not_allowed', `${method} ${path}`, { allow: methods.join(', ') }), id);

  if (route.access === 'operation') {
    const tokenHash = settings.tokenHash;
    // Without a token there is no admin API to speak of: a loopback listener is not an authentication
    // (any local process, and any browser page through DNS rebinding, can reach it). SIGHUP reloads.
    if (tokenHash === null) return keysDisabled(res, id, 'admin operations need admin.tokenHash in the config');
    if (!hasAdminToken(req, tokenHash)) {
      return refuse(res, adminDeny('admin_unauthorized', 'bad or missing admin token', { 'www-authenticate': 'Bearer realm="portcullis-admin"' }), id);
    }
    caller.authenticated = true;
    if (method === 'POST' && !isJson(req)) {
      return refuse(res, adminDeny('invalid_admin_request', `mutating admin request with Content-Type ${req.headers['content-type'] ?? '(none)'}; send application/json`), id);
    }
    // An operation that could not be recorded is not performed (invariant 7).
    if (!host.auditHealthy()) return refuse(res, adminDeny('audit_unavailable', 'audit trail is not accepting records'), id);
  }
  if (route.methods !== null && !route.methods.includes(method)) return notAllowed(route.methods);
  return route.serve({ host, req, res, path, method, id });
}

async function healthz(call: AdminCall): Promise<null> {
  json(call.res, 200, { status: 'ok' }, call.id);
  return Promise.resolve(null);
}

/**
 * 200 when every component is ready, else 503; the same body either way: `ready`, the version in
 * effect, each component with why it is not ready, the restart-only options waiting for a restart
 * (and the file's version), and the older summary fields (`status`, `configVersion`, `audit`, `draining`).
 */
async function readyz({ host, res, id }: AdminCall): Promise<null> {
  const r = await host.readiness();
  const workers = host.workers();
  json(res, r.ready ? 200 : 503, {
    ready: r.ready, version: r.version, components: r.components, restartRequired: r.restartRequired,
    ...(r.pendingVersion === undefined ? {} : { pendingVersion: r.pendingVersion }),
    status: r.ready ? 'ready' : host.reloading ? 'reloading' : 'not ready', audit: host.auditState(), draining: host.draining,
    configVersion: r.version, routes: host.config.routes.length,
    ...(workers === null ? {} : { workers }),
  }, id);
  return null;
}

async function metrics({ host, res, id }: AdminCall): Promise<null> {
  const { contentType, text } = await host.metricsText();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', [id.header]: id.value });
  res.end(text);
  return null;
}

/** The identity assertion key set of the running config (a reload that rotates keys changes it at once). */
function identityJwks({ host, res, id }: AdminCall): Promise<AdminOutcome | null> {
  const signer = host.config.identityAssertion;
  if (signer === null) return Promise.resolve(refuse(res, adminDeny('route_not_found', 'no identityAssertion section: no key set to publish'), id));
  const answer = jwksResponse(signer);
  res.writeHead(200, { ...answer.headers, 'content-length': Buffer.byteLength(answer.body), [id.header]: id.value });
  res.end(answer.body);
  return Promise.resolve(null);
}

async function reload({ host, res, id }: AdminCall): Promise<AdminOutcome> {
  const result = await host.reload();
  json(res, result.ok ? 200 : 422, result, id);
  return result.ok
    ? { status: 200, code: null, detail: reloadDetail(result), keyId: null }
    : { status: 422, code: 'reload_rejected', detail: `reload rejected: ${result.errors.length} problem(s), the running config keeps serving`, keyId: null };
}

/** The audit detail of a reload that was taken: the version in effect, and what waits for a restart. */
function reloadDetail(result: Extract<ReloadResult, { ok: true }>): string {
  const what = result.changed ? `reloaded config version ${result.version}` : `config unchanged (version ${result.version})`;
  return result.restartRequired.length === 0 ? what
    : `${what}; file version ${result.pendingVersion ?? '?'} needs a restart for ${result.restartRequired.join(', ')}`;
}

async function keys({ host, req, res, path, id }: AdminCall): Promise<AdminOutcome> {
  const apiKeys = host.keyAdmin();
  if (apiKeys === null) return keysDisabled(res, id, 'the config has no apiKeys section and no apiKey authenticator');
  return serveKeys(apiKeys, req, res, path, id);
}

async function revocations({ host, req, res, id }: AdminCall): Promise<AdminOutcome> {
  return serveRevocations(host, host.clock ?? systemClock, req, res, id);
}

/** node:http limits of the admin listener (fixed: its callers are operators and probes). */
export const ADMIN_LISTENER_LIMITS = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000 } as const;

/** A successful change through the admin API goes to the operational log too (the audit trail has it in full). */
export function logAdminOperation(logger: Logger, { req, requestId, outcome }: AdminOperation): void {
  if (outcome.code === null && req?.method === 'POST') logger.info({ requestId, keyId: outcome.keyId, detail: outcome.detail }, 'admin operation');
}

/**
 * The audit facts of a connection-level refusal on the admin listener: a request the parser
 * refused, or bytes after a message that closed the connection.
 */
export function adminRejectionFacts(rejection: SocketRejection, configVersion: string): AuditFacts {
  const socket = rejection.socket;
  if (rejection.kind === 'discarded') {
    return { ...connectionFacts(socket, null, randomUUID(), DISCARDED, configVersion), kind: 'admin' };
  }
  const { req, denial, requestId } = rejection;
  const outcome = { status: DENIALS[denial.code].status, code: denial.code, detail: denial.reason };
  return adminFacts({ req, socket, requestId, outcome, authenticated: false, latencyMs: 0 }, configVersion);
}
