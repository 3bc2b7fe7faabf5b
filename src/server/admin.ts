import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { AdminSettings } from '../config/compile.js';
import { DENIALS, deny, type Denial } from '../pipeline/denials.js';
import { problemBody, sendProblem } from '../pipeline/problem.js';
import type { Gateway } from './gateway.js';
import { keysDisabled, serveKeys, type AdminOutcome, type RequestId } from './admin-keys.js';
import { adminRequestRefusal } from './admin-request-guard.js';

/**
 * Probe endpoints: open without a token so probes and scrapers work, and not audited when answered
 * (they change nothing, and a probe every few seconds would bury the trail). Refused probe
 * requests (foreign Host or Origin, wrong method) are audited like every other admin request.
 */
const PROBES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

function json(res: ServerResponse, status: number, body: unknown, id: RequestId | null = null): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store',
    ...(id === null ? {} : { [id.header]: id.value }),
  });
  res.end(text);
}

/** Sends a denial (public text only) and returns the outcome the audit record shows. */
function refuse(res: ServerResponse, denial: Denial, id: RequestId): AdminOutcome {
  sendProblem(res, denial, id.value, id.header);
  return { status: DENIALS[denial.code].status, code: denial.code, detail: denial.reason, keyId: null };
}

/** `Authorization: Bearer <token>` whose SHA-256 equals admin.tokenHash, compared in constant time. */
function authorised(req: IncomingMessage, tokenHash: string): boolean {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ') || header.length > 4096) return false;
  const presented = createHash('sha256').update(header.slice(7)).digest();
  return timingSafeEqual(presented, Buffer.from(tokenHash, 'hex'));
}

/**
 * A request a browser can send cross-site without a CORS preflight (a form post, `text/plain`,
 * no content type) must never mutate (the CSRF defence of the Fetch standard's "CORS-safelisted
 * request-header" rules): mutations need `Content-Type: application/json`, which forces a
 * preflight the admin listener never grants.
 */
function isJson(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase() === 'application/json';
}

/**
 * The admin listener: /healthz, /readyz, /metrics, POST /admin/reload, /admin/keys. Bound to
 * 127.0.0.1 by default. Its settings (token, names, origins) are read once here: they change on
 * restart only. Every request except an answered probe gets exactly one audit record.
 */
export function createAdminServer(gateway: Gateway): Server {
  const settings = gateway.config.admin;
  /** Connections with a request being handled: a parse error there ends that request, audited once by its handler. */
  const busy = new WeakSet<Socket>();
  // Host is checked here, so a request without one is answered (and audited) by us, not by node.
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, requireHostHeader: false }, (req, res) => {
    const socket = req.socket;
    busy.add(socket);
    res.once('close', () => busy.delete(socket));
    void handleAdmin(gateway, settings, req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (busy.has(socket)) socket.destroy();
    else rejectSocket(gateway, err, socket);
  });
  return server;
}

async function handleAdmin(gateway: Gateway, settings: AdminSettings, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const id: RequestId = { value: randomUUID(), header: gateway.config.requestIdHeader };
  const caller = { authenticated: false };
  let outcome: AdminOutcome | null;
  try {
    outcome = await serveAdmin(gateway, settings, req, res, id, caller);
  } catch (err) {
    // A body broken off or malformed on the wire (the parser destroyed the request) is the client's doing.
    const clientFault = req.destroyed && !req.complete;
    if (!clientFault) gateway.logger.error({ err, requestId: id.value }, 'admin request failed');
    const denial = clientFault ? deny('bad_request', `request body broken off or malformed: ${(err as Error).message}`)
      : deny('internal_error', `unexpected error: ${(err as Error).message}`);
    if (res.headersSent || clientFault) { res.destroy(); outcome = { status: DENIALS[denial.code].status, code: denial.code, detail: denial.reason, keyId: null }; }
    else outcome = refuse(res, denial, id);
  }
  if (outcome !== null) gateway.auditAdmin(req, req.socket, id.value, outcome, caller.authenticated, performance.now() - started);
}

/** Answers one admin request; returns what its audit record says, or null for an answered probe. */
async function serveAdmin(
  gateway: Gateway, settings: AdminSettings, req: IncomingMessage, res: ServerResponse, id: RequestId, caller: { authenticated: boolean },
): Promise<AdminOutcome | null> {
  const refusal = adminRequestRefusal(req, settings);
  if (refusal !== null) return refuse(res, deny('admin_origin_refused', refusal), id);
  const path = (req.url ?? '').split('?', 1)[0] ?? '';
  const method = req.method ?? '';

  if (PROBES.has(path)) {
    if (method !== 'GET') return refuse(res, deny('method_not_allowed', `${method} ${path}`, { allow: 'GET' }), id);
    await serveProbe(gateway, path, res, id);
    return null;
  }
  const isReload = path === '/admin/reload';
  if (!isReload && path !== '/admin/keys' && !path.startsWith('/admin/keys/')) {
    return refuse(res, deny('route_not_found', 'no admin endpoint at this path'), id);
  }
  const tokenHash = settings.tokenHash;
  // Without a token there is no admin API to speak of: a loopback listener is not an authentication
  // (any local process, and any browser page through DNS rebinding, can reach it). SIGHUP reloads.
  if (tokenHash === null) return keysDisabled(res, id, 'admin operations need admin.tokenHash in the config');
  if (!authorised(req, tokenHash)) {
    return refuse(res, deny('admin_unauthorized', 'bad or missing admin token', { 'www-authenticate': 'Bearer realm="portcullis-admin"' }), id);
  }
  caller.authenticated = true;
  if (method === 'POST' && !isJson(req)) {
    return refuse(res, deny('invalid_admin_request', `mutating admin request with Content-Type ${req.headers['content-type'] ?? '(none)'}; send application/json`), id);
  }
  // An operation that could not be recorded is not performed (invariant 7).
  if (!gateway.auditHealthy()) return refuse(res, deny('audit_unavailable', 'audit trail is not accepting records'), id);

  if (isReload) {
    if (method !== 'POST') return refuse(res, deny('method_not_allowed', 'reload needs POST', { allow: 'POST' }), id);
    const result = await gateway.reload();
    json(res, result.ok ? 200 : 422, result, id);
    return result.ok
      ? { status: 200, code: null, detail: result.changed ? `reloaded config version ${result.version}` : `config unchanged (version ${result.version})`, keyId: null }
      : { status: 422, code: null, detail: `reload rejected: ${result.errors.length} problem(s), the running config keeps serving`, keyId: null };
  }
  const apiKeys = gateway.config.apiKeys;
  if (apiKeys === null) return keysDisabled(res, id, 'the config has no apiKeys section and no apiKey authenticator');
  return serveKeys(apiKeys, req, res, path, id);
}

async function serveProbe(gateway: Gateway, path: string, res: ServerResponse, id: RequestId): Promise<void> {
  const config = gateway.config;
  if (path === '/healthz') return json(res, 200, { status: 'ok' }, id);
  if (path === '/readyz') {
    const ready = gateway.ready();
    return json(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'not ready', audit: gateway.auditState(), draining: gateway.draining, configVersion: config.version, routes: config.routes.length,
    }, id);
  }
  const text = await gateway.metrics.registry.metrics();
  res.writeHead(200, { 'content-type': gateway.metrics.registry.contentType, 'cache-control': 'no-store', [id.header]: id.value });
  res.end(text);
}

/** Requests the HTTP parser refused on the admin listener: answered 400 (431, 408) and audited. */
function rejectSocket(gateway: Gateway, err: NodeJS.ErrnoException, socket: Socket): void {
  const code = err.code ?? '';
  // The peer closed, mid-request or between requests: nobody is left to answer.
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'HPE_INVALID_EOF_STATE') { socket.destroy(); return; }
  const denial = code === 'HPE_HEADER_OVERFLOW' ? deny('headers_too_large', 'admin request headers too large')
    : code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT' ? deny('request_timeout', code)
      : deny('bad_request', `${code}: ${err.message}`);
  const requestId = randomUUID();
  const entry = DENIALS[denial.code];
  if (socket.writable) {
    const body = problemBody(denial, requestId);
    socket.end(`HTTP/1.1 ${entry.status} ${entry.title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `${gateway.config.requestIdHeader}: ${requestId}\r\nconnection: close\r\n\r\n${body}`);
  }
  socket.destroySoon();
  gateway.auditAdmin(null, socket, requestId, { status: entry.status, code: denial.code, detail: denial.reason, keyId: null }, false, 0);
}
