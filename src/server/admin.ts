import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { deny } from '../pipeline/denials.js';
import { sendProblem } from '../pipeline/problem.js';
import type { Gateway } from './gateway.js';
import { keysDisabled, serveKeys, type AdminOutcome } from './admin-keys.js';

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Admin requests other than health and metrics need `Authorization: Bearer <token>` whose SHA-256
 * matches admin.tokenHash (constant-time). Without a tokenHash the listener is loopback-only
 * (config compilation enforces it), and the local machine is trusted.
 */
function authorised(req: IncomingMessage, tokenHash: string | null): boolean {
  if (tokenHash === null) return true;
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ') || header.length > 4096) return false;
  const presented = createHash('sha256').update(header.slice(7)).digest();
  return timingSafeEqual(presented, Buffer.from(tokenHash, 'hex'));
}

/** The admin listener: /healthz, /readyz, /metrics, POST /admin/reload, /admin/keys. Bound to 127.0.0.1 by default. */
export function createAdminServer(gateway: Gateway): Server {
  return createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    void serveAdmin(gateway, req, res).catch((err: unknown) => {
      gateway.logger.error({ err }, 'admin request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
    });
  });
}

async function serveAdmin(gateway: Gateway, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?', 1)[0];
  const config = gateway.config;
  if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
  if (req.method === 'GET' && path === '/readyz') {
    const ready = gateway.ready();
    return json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', configVersion: config.version, routes: config.routes.length });
  }
  if (req.method === 'GET' && path === '/metrics') {
    const text = await gateway.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': gateway.metrics.registry.contentType });
    res.end(text);
    return;
  }
  const requestId = 'admin';
  if (path === '/admin/reload') {
    if (!authorised(req, config.admin.tokenHash)) {
      return sendProblem(res, deny('admin_unauthorized', 'bad or missing admin token', { 'www-authenticate': 'Bearer realm="portcullis-admin"' }), requestId, config.requestIdHeader);
    }
    if (req.method !== 'POST') return sendProblem(res, deny('method_not_allowed', 'reload needs POST', { allow: 'POST' }), requestId, config.requestIdHeader);
    const result = await gateway.reload();
    return json(res, result.ok ? 200 : 422, result);
  }
  if (path === '/admin/keys' || path?.startsWith('/admin/keys/') === true) {
    // Key management always needs the admin token, even on loopback: it mints credentials.
    const started = performance.now();
    const id = { value: randomUUID(), header: config.requestIdHeader };
    let outcome: AdminOutcome;
    const authenticated = config.admin.tokenHash !== null && authorised(req, config.admin.tokenHash);
    if (config.admin.tokenHash === null) outcome = keysDisabled(res, id, 'key management needs admin.tokenHash in the config');
    else if (!authenticated) {
      sendProblem(res, deny('admin_unauthorized', 'bad or missing admin token', { 'www-authenticate': 'Bearer realm="portcullis-admin"' }), id.value, config.requestIdHeader);
      outcome = { status: 401, code: 'admin_unauthorized', detail: 'bad or missing admin token', keyId: null };
    } else if (config.apiKeys === null) outcome = keysDisabled(res, id, 'the config has no apiKeys section and no apiKey authenticator');
    else outcome = await serveKeys(config.apiKeys, req, res, path, id);
    gateway.auditAdmin(req, id.value, path, outcome, authenticated, performance.now() - started);
    return;
  }
  sendProblem(res, deny('route_not_found', `admin path ${path ?? ''}`), requestId, config.requestIdHeader);
}
