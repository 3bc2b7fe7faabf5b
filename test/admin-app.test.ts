// The admin API as its own application: its router, token check and error catalogue, run on a
// Listener with a minimal AdminHost and no gateway. Every refusal is answered with the same
// problem document as before and audited once; answered probes are not audited.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createAdminApp } from '../src/admin/admin-app.js';
import type { AdminHost, AdminOperation, ReloadResult } from '../src/admin/admin-host.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { createLogger } from '../src/observability/logger.js';
import { Listener, type SocketRejection } from '../src/server/listener.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH } from './harness/api-keys.js';
import { assertProblem } from './harness/assertions.js';
import { rawRequest, type RawResponse } from './harness/raw-client.js';

const CONFIG = `
admin: { host: 127.0.0.1, port: 0, tokenHash: "${ADMIN_TOKEN_HASH}" }
upstreams: { echo: { targets: ["http://127.0.0.1:9"] } }
routes:
  - { name: a, match: { path: "/a/**" }, upstream: echo, public: true }
`;

/** The least a gateway must provide: records what the admin API asks of it. */
function minimalHost(): AdminHost & { readonly audited: AdminOperation[]; reloads: number } {
  const config = compileConfig(loadConfigText(CONFIG, 'gateway.yaml', {}));
  const audited: AdminOperation[] = [];
  return {
    config,
    logger: createLogger('error', new PassThrough()),
    draining: false,
    audited,
    reloads: 0,
    reloading: false,
    workers: () => null,
    readiness: () => ({ ready: true, version: config.version, components: {}, restartRequired: [] }),
    auditHealthy: () => true,
    auditState: () => 'ok',
    reload(): Promise<ReloadResult> { this.reloads++; return Promise.resolve({ ok: true, version: config.version, changed: false, restartRequired: [] }); },
    metricsText: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4', text: 'up 1\n' }),
    keyAdmin: () => null,
    revokeToken: () => Promise.resolve(null),
    auditAdmin: (operation) => { audited.push(operation); },
  };
}

describe('admin application without a gateway', () => {
  const host = minimalHost();
  const rejections: SocketRejection[] = [];
  const app = createAdminApp(host);
  const listener = new Listener({ name: 'admin', port: 0, host: '127.0.0.1', limits: { headersTimeoutMs: 5000, requestTimeoutMs: 10_000 }, handlerAnswersExpect: false }, {
    handle: (req, res) => app.handle(req, res),
    inProgress: (socket) => app.inProgress(socket),
    recordRejection: (rejection) => { rejections.push(rejection); },
    requestIdHeader: () => host.config.requestIdHeader,
  });
  let port = 0;
  before(async () => { port = (await listener.listen()).port; });
  after(async () => { await listener.close(); });

  function send(requestLine: string, headers: string[]): Promise<RawResponse> {
    return rawRequest(port, `${[requestLine, ...headers, 'Content-Length: 0', 'Connection: close'].join('\r\n')}\r\n\r\n`, { settleMs: 0 });
  }

  /** The one audit operation for a request id. */
  function oneOperation(requestId: string): AdminOperation {
    const operations = host.audited.filter((o) => o.requestId === requestId);
    assert.equal(operations.length, 1, `exactly one audit record for ${requestId}`);
    return operations[0] as AdminOperation;
  }

  const refusals: [string, string, string[], number, string, Record<string, string>][] = [
    ['an unknown path', 'GET /admin/nothing-here HTTP/1.1', ['Host: 127.0.0.1'], 404, 'route_not_found', {}],
    ['a path below a probe', 'GET /healthz/x HTTP/1.1', ['Host: 127.0.0.1'], 404, 'route_not_found', {}],
    ['a wrong method on a probe', 'DELETE /healthz HTTP/1.1', ['Host: 127.0.0.1'], 405, 'method_not_allowed', { allow: 'GET' }],
    ['a wrong method on an operation, with the token', 'GET /admin/reload HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`], 405, 'method_not_allowed', { allow: 'POST' }],
    ['a missing token', 'POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Content-Type: application/json'], 401, 'admin_unauthorized', { 'www-authenticate': 'Bearer realm="portcullis-admin"' }],
    ['a wrong token, before the method is looked at', 'GET /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Authorization: Bearer wrong'], 401, 'admin_unauthorized', {}],
    ['a foreign Host', 'GET /healthz HTTP/1.1', ['Host: attacker.example'], 403, 'admin_origin_refused', {}],
    ['a foreign Host on an unknown path', 'GET /nothing HTTP/1.1', ['Host: attacker.example'], 403, 'admin_origin_refused', {}],
    ['a form post', 'POST /admin/keys HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`, 'Content-Type: text/plain'], 400, 'invalid_admin_request', {}],
  ];
  for (const [name, line, headers, status, code, extra] of refusals) {
    it(`answers ${name} with ${status} ${code}, audited once`, async () => {
      const res = await send(line, headers);
      const doc = assertProblem(res, status, code);
      for (const [header, value] of Object.entries(extra)) assert.equal(res.headers[header], value, header);
      const operation = oneOperation(doc.requestId);
      assert.deepEqual([operation.outcome.status, operation.outcome.code], [status, code]);
    });
  }

  it('writes the same problem documents as before, byte for byte', async () => {
    const unauthorized = await send('POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Content-Type: application/json']);
    const id = unauthorized.headers['x-request-id'] ?? '';
    assert.equal(unauthorized.body, `{"type":"urn:portcullis:error:admin_unauthorized","title":"Unauthorized","status":401,"detail":"A valid admin token is required.","requestId":"${id}"}`);
    const disabled = await send('GET /admin/keys HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`]);
    const disabledId = disabled.headers['x-request-id'] ?? '';
    assert.equal(disabled.status, 403);
    assert.equal(disabled.body, '{"type":"urn:portcullis:error:admin_disabled","title":"Forbidden","status":403,'
      + '"detail":"This admin operation needs an admin token: set admin.tokenHash.",'
      + `"errors":["the config has no apiKeys section and no apiKey authenticator"],"requestId":"${disabledId}"}`);
    assert.equal(oneOperation(disabledId).authenticated, true);
  });

  it('answers probes without a token and does not audit them', async () => {
    const before = host.audited.length;
    const health = await send('GET /healthz HTTP/1.1', ['Host: localhost']);
    assert.deepEqual([health.status, health.body], [200, '{"status":"ok"}']);
    const ready = await send('GET /readyz HTTP/1.1', ['Host: localhost']);
    assert.equal(ready.status, 200);
    assert.equal((JSON.parse(ready.body) as { status: string }).status, 'ready');
    const metrics = await send('GET /metrics HTTP/1.1', ['Host: localhost']);
    assert.deepEqual([metrics.status, metrics.body], [200, 'up 1\n']);
    assert.equal(host.audited.length, before);
  });

  it('performs an operation through the host once the token is presented, audited as the admin', async () => {
    const reloadsBefore = host.reloads;
    const res = await send('POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`, 'Content-Type: application/json']);
    assert.equal(res.status, 200, res.body);
    assert.equal(host.reloads, reloadsBefore + 1);
    const operation = oneOperation(res.headers['x-request-id'] ?? '');
    assert.deepEqual([operation.outcome.code, operation.authenticated], [null, true]);
  });

  it('hands a request the HTTP parser refuses to the listener host, not to the admin audit', async () => {
    const before = host.audited.length;
    const res = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n', { settleMs: 0 });
    const doc = assertProblem(res, 400, 'bad_request');
    assert.equal(host.audited.length, before);
    const rejection = rejections.find((r) => r.kind === 'refused' && r.requestId === doc.requestId);
    assert.equal(rejection?.listener, 'admin');
  });
});
