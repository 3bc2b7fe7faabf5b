// The admin listener against browsers and local attackers: DNS rebinding (foreign Host), foreign
// Origin, CORS-simple requests that try to mutate (CSRF), operations without a token — every
// admin request answered precisely and audited exactly once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH, admin, call } from './harness/api-keys.js';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { rawRequest, type RawResponse } from './harness/raw-client.js';

function config(echo: EchoUpstream, adminExtra: ConfigObject = { tokenHash: ADMIN_TOKEN_HASH }): ConfigObject {
  return {
    admin: { hosts: ['gw-1.internal'], origins: ['https://ops.example.com'], ...adminExtra },
    apiKeys: { environment: 'live' },
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'a', match: { methods: ['GET'], path: '/a/**' }, upstream: 'echo', public: true }],
  };
}

const adminPort = (gw: TestGateway): number => Number(new URL(gw.adminUrl).port);

/** A raw admin request: the request line, then `headers` verbatim (no Host unless given). */
function raw(gw: TestGateway, requestLine: string, headers: string[], body = ''): Promise<RawResponse> {
  const head = [requestLine, ...headers, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'].join('\r\n');
  return rawRequest(adminPort(gw), `${head}\r\n\r\n${body}`, { settleMs: 0 });
}

/** Exactly one audit record for the request id of a problem response; returns it. */
async function oneRecord(gw: TestGateway, requestId: string): Promise<AuditRecord> {
  const records = await gw.auditFor(requestId);
  // Records are written in order: once a request sent after this one has its record, no second
  // record for this one is still pending.
  const marker = await raw(gw, 'GET /admin/audit-order-marker HTTP/1.1', ['Host: 127.0.0.1']);
  assert.equal(marker.status, 404);
  await gw.auditFor(marker.headers['x-request-id'] ?? '');
  const all = (await gw.audit()).filter((r) => r.requestId === requestId);
  assert.equal(records.length, 1);
  assert.equal(all.length, 1, `exactly one record for ${requestId}: ${JSON.stringify(all)}`);
  const record = all[0] as AuditRecord;
  assert.equal(record.kind, 'admin');
  assert.equal(record.route, undefined, 'the admin API is no route: the record has no route member');
  return record;
}

async function keyCount(gw: TestGateway): Promise<number> {
  const res = await admin(gw.adminUrl, 'GET', '/admin/keys');
  assert.equal(res.status, 200, res.body);
  return (JSON.parse(res.body) as { keys: unknown[] }).keys.length;
}

describe('admin listener security', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway(config(echo));
  });
  after(async () => { await gw.close(); await echo.close(); });

  it('refuses a DNS-rebinding Host on every admin path, probes included, and audits each refusal once', async () => {
    const port = adminPort(gw);
    const refused: [string, string[]][] = [
      ['GET /healthz HTTP/1.1', ['Host: attacker.example']],
      ['GET /metrics HTTP/1.1', [`Host: attacker.example:${port}`]],
      ['POST /admin/reload HTTP/1.1', ['Host: rebind.attacker.example', `Authorization: Bearer ${ADMIN_TOKEN}`, 'Content-Type: application/json']],
      ['GET /admin/keys HTTP/1.1', ['Host: localhost.attacker.example', `Authorization: Bearer ${ADMIN_TOKEN}`]],
      ['GET /readyz HTTP/1.1', [`Host: 127.0.0.1:${port === 1 ? 2 : 1}`]],
      ['GET /healthz HTTP/1.1', ['Host: 127.0.0.1', 'Host: attacker.example']],
      ['GET /healthz HTTP/1.0', []],
    ];
    for (const [line, headers] of refused) {
      const doc = assertProblem(await raw(gw, line, headers), 403, 'admin_origin_refused');
      const record = await oneRecord(gw, doc.requestId);
      assert.deepEqual([record.status, record.reason, record.decision, record.identity], [403, 'admin_origin_refused', 'deny', undefined], `${line} ${headers.join(' | ')}`);
    }
    for (const host of ['localhost', `localhost:${port}`, '127.0.0.1', `127.0.0.1:${port}`, `[::1]:${port}`, 'gw-1.internal', `GW-1.internal.:${port}`]) {
      assert.equal((await raw(gw, 'GET /healthz HTTP/1.1', [`Host: ${host}`])).status, 200, host);
    }
  });

  it('refuses a foreign Origin and cross-site fetch metadata before the token is looked at', async () => {
    const auth = `Authorization: Bearer ${ADMIN_TOKEN}`;
    const refused: string[][] = [
      ['Origin: http://evil.example'],
      ['Origin: null'],
      [`Origin: http://127.0.0.1:${adminPort(gw)}.evil.example`],
      ['Origin: https://ops.example.com', 'Origin: http://evil.example'],
      ['Sec-Fetch-Site: cross-site'],
      ['Sec-Fetch-Site: same-site'],
    ];
    for (const headers of refused) {
      const doc = assertProblem(await raw(gw, 'GET /admin/keys HTTP/1.1', ['Host: 127.0.0.1', auth, ...headers]), 403, 'admin_origin_refused');
      assert.equal((await oneRecord(gw, doc.requestId)).reason, 'admin_origin_refused', headers.join(' | '));
    }
    const allowed = await raw(gw, 'GET /admin/keys HTTP/1.1', ['Host: 127.0.0.1', auth, 'Origin: https://ops.example.com', 'Sec-Fetch-Site: cross-site']);
    assert.equal(allowed.status, 200, 'an origin listed in admin.origins is accepted');
  });

  it('never mutates on a CORS-simple request: form, multipart and text/plain posts are refused', async () => {
    const before = await keyCount(gw);
    const auth = `Authorization: Bearer ${ADMIN_TOKEN}`;
    const simple: [string, string][] = [
      ['application/x-www-form-urlencoded', 'name=csrf'],
      ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\ncsrf\r\n--x--\r\n'],
      ['text/plain', '{"name":"csrf"}'],
      ['text/plain;charset=UTF-8', '{"name":"csrf"}'],
    ];
    for (const [type, body] of simple) {
      for (const path of ['/admin/keys', '/admin/reload']) {
        const doc = assertProblem(await raw(gw, `POST ${path} HTTP/1.1`, ['Host: 127.0.0.1', auth, `Content-Type: ${type}`], body), 400, 'invalid_admin_request');
        const record = await oneRecord(gw, doc.requestId);
        assert.equal(record.reason, 'invalid_admin_request', `${path} ${type}`);
        assert.equal(record.identity?.authMethod, 'adminToken');
      }
    }
    const none = assertProblem(await raw(gw, 'POST /admin/keys HTTP/1.1', ['Host: 127.0.0.1', auth], '{"name":"csrf"}'), 400, 'invalid_admin_request');
    await oneRecord(gw, none.requestId);
    // What a page actually sends cross-site carries its Origin: refused before anything else.
    const page = assertProblem(await raw(gw, 'POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Origin: http://evil.example', 'Content-Type: text/plain'], '{}'), 403, 'admin_origin_refused');
    await oneRecord(gw, page.requestId);
    assert.equal(await keyCount(gw), before, 'no key was created');
    assert.ok(!(await gw.audit()).some((r) => r.kind === 'admin' && r.status === 200 && r.method === 'POST'), 'no reload happened');
  });

  it('audits failed authentication, unknown paths, wrong methods and operations once each, and not answered probes', async () => {
    const cases: [Promise<RawResponse>, number, string | undefined][] = [
      [raw(gw, 'POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Content-Type: application/json']), 401, 'admin_unauthorized'],
      [raw(gw, 'POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', 'Authorization: Bearer wrong', 'Content-Type: application/json']), 401, 'admin_unauthorized'],
      [raw(gw, 'GET /admin/nothing-here?token=q-secret HTTP/1.1', ['Host: 127.0.0.1']), 404, 'route_not_found'],
      [raw(gw, 'DELETE /healthz HTTP/1.1', ['Host: 127.0.0.1']), 405, 'method_not_allowed'],
      [raw(gw, 'GET /admin/reload HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`]), 405, 'method_not_allowed'],
      [raw(gw, 'POST /admin/reload HTTP/1.1', ['Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_TOKEN}`, 'Content-Type: application/json']), 200, undefined],
    ];
    for (const [pending, status, reason] of cases) {
      const res = await pending;
      assert.equal(res.status, status, res.raw.slice(0, 300));
      const requestId = res.headers['x-request-id'] ?? '';
      const record = await oneRecord(gw, requestId);
      assert.deepEqual([record.status, record.reason], [status, reason]);
      assert.doesNotMatch(JSON.stringify(record), /secret|wrong/, 'neither the query nor the presented token is recorded');
    }
    const probe = await raw(gw, 'GET /readyz HTTP/1.1', ['Host: 127.0.0.1']);
    assert.equal(probe.status, 200);
    // Records are written in order: once a later audited request is on disk, the probe's would be too.
    const later = await raw(gw, 'GET /admin/nothing-here HTTP/1.1', ['Host: 127.0.0.1']);
    await gw.auditFor(later.headers['x-request-id'] ?? '');
    assert.equal((await gw.audit()).filter((r) => r.requestId === probe.headers['x-request-id']).length, 0, 'answered probes are not audited');

    // A request the HTTP parser refuses on the admin listener is answered and audited too.
    const malformed = await rawRequest(adminPort(gw), 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n', { settleMs: 0 });
    const doc = assertProblem(malformed, 400, 'bad_request');
    assert.equal((await oneRecord(gw, doc.requestId)).reason, 'bad_request');
  });
});

describe('admin operations without a token', () => {
  it('are off (403 admin_disabled, audited), while a reload through the process still works', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(config(echo, {}));
    t.after(async () => { await gw.close(); await echo.close(); });
    const version = gw.gateway.config.version;
    await gw.writeConfig({ ...config(echo, {}), routes: [{ name: 'b', match: { methods: ['GET'], path: '/b/**' }, upstream: 'echo', public: true }] });
    for (const [method, path] of [['POST', '/admin/reload'], ['POST', '/admin/keys'], ['GET', '/admin/keys']] as const) {
      const res = await call(`${gw.adminUrl}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body: {} } : {}) });
      const doc = assertProblem(res, 403, 'admin_disabled');
      const record = await oneRecord(gw, doc.requestId);
      assert.deepEqual([record.reason, record.identity], ['admin_disabled', undefined], `${method} ${path}`);
    }
    assert.equal(gw.gateway.config.version, version, 'the admin API did not reload');
    const reloaded = await gw.gateway.reload(); // what SIGHUP calls
    assert.equal(reloaded.ok && reloaded.changed, true);
    assert.equal((await fetch(`${gw.url}/b/x`)).status, 200);
  });
});
