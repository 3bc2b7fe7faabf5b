import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { startGateway, startGatewayProcess, type ConfigObject } from './harness/gateway.js';
import { startEchoUpstream } from './harness/echo.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH } from './harness/api-keys.js';

/** Admin operations (reload included) are off without a token, so these configs carry one. */
function routesTo(target: string, names: string[]): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [target] } },
    routes: names.map((name) => ({ name, match: { methods: ['GET'], path: `/${name}/**` }, upstream: 'echo', public: true })),
  };
}

/** POST /admin/reload as an operator sends it: the token, and a JSON content type (never a CORS-simple request). */
function postReload(adminUrl: string): Promise<Response> {
  return fetch(`${adminUrl}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } });
}

interface HeldUpstream {
  readonly url: string;
  /** Resolves once a request arrived (and is being held). */
  readonly arrived: Promise<void>;
  /** Answers every held request, and those that come later, with 'slow done'. */
  release(): void;
  close(): Promise<void>;
}

/** An upstream that holds requests in flight until the test releases them. */
async function heldUpstream(): Promise<HeldUpstream> {
  let arrive: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => { arrive = resolve; });
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => { release = resolve; });
  const server = createServer((_req, res) => {
    arrive();
    void released.then(() => res.end('slow done'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived,
    release,
    close: () => new Promise((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}

describe('config reload', () => {
  it('POST /admin/reload swaps in a new config atomically and reports its version', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(routesTo(echo.url, ['a']));
    t.after(async () => { await gw.close(); await echo.close(); });
    const before = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { configVersion: string };
    assert.equal((await fetch(`${gw.url}/b/x`)).status, 404);

    await gw.writeConfig(routesTo(echo.url, ['a', 'b']));
    const reload = await postReload(gw.adminUrl);
    assert.equal(reload.status, 200);
    const result = await reload.json() as { ok: boolean; version: string; changed: boolean };
    assert.deepEqual([result.ok, result.changed], [true, true]);
    assert.notEqual(result.version, before.configVersion);

    const res = await fetch(`${gw.url}/b/x`);
    assert.equal(res.status, 200);
    const after = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { configVersion: string };
    assert.equal(after.configVersion, result.version);
    const records = await gw.auditFor(res.headers.get('x-request-id') ?? '');
    assert.equal(records[0]?.configVersion, result.version);
  });

  it('rejects an invalid config with file:line errors and keeps serving the old one', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(routesTo(echo.url, ['a']));
    t.after(async () => { await gw.close(); await echo.close(); });
    const version = gw.gateway.config.version;
    await gw.writeConfig({ ...routesTo(echo.url, ['a']), upstreams: {}, bogus: true });
    const reload = await postReload(gw.adminUrl);
    assert.equal(reload.status, 422);
    const result = await reload.json() as { ok: boolean; errors: string[] };
    assert.equal(result.ok, false);
    assert.ok(result.errors.some((e) => e.startsWith(`${gw.configFile}:`) && e.includes('bogus: is not a known option')), result.errors.join('\n'));
    assert.equal(gw.gateway.config.version, version);
    assert.equal((await fetch(`${gw.url}/a/x`)).status, 200);
    // The refused operation is audited as refused, with its code, not as an allowed one.
    const [record] = await gw.auditFor(reload.headers.get('x-request-id') ?? '');
    assert.equal(record?.kind, 'admin');
    assert.equal(record?.decision, 'deny');
    assert.equal(record?.reason, 'reload_rejected');
    assert.equal(record?.status, 422);
  });

  it('lets in-flight requests finish on the config they started with', async (t) => {
    const slow = await heldUpstream();
    const gw = await startGateway(routesTo(slow.url, ['a']));
    t.after(async () => { await gw.close(); await slow.close(); });
    const oldVersion = gw.gateway.config.version;
    const inFlight = fetch(`${gw.url}/a/x`);
    await slow.arrived;
    await gw.writeConfig(routesTo(slow.url, ['b']));
    const reload = await (await postReload(gw.adminUrl)).json() as { ok: boolean };
    assert.equal(reload.ok, true);
    slow.release();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'slow done');
    const [record] = await gw.auditFor(res.headers.get('x-request-id') ?? '');
    assert.equal(record?.configVersion, oldVersion);
    assert.equal(record.route, 'a');
    assert.equal((await fetch(`${gw.url}/a/x`)).status, 404, 'the new config no longer has route a');
  });

  it('SIGHUP reloads a running gateway process', async (t) => {
    const echo = await startEchoUpstream();
    const proc = await startGatewayProcess(routesTo(echo.url, ['a']));
    t.after(async () => { await proc.stop(); await echo.close(); });
    assert.equal((await fetch(`${proc.url}/b/x`)).status, 404);
    await proc.writeConfig(routesTo(echo.url, ['b']));
    proc.child.kill('SIGHUP');
    await proc.logged('"config reloaded"');
    const status = (await fetch(`${proc.url}/b/x`)).status;
    assert.equal(status, 200);
    assert.ok(proc.stdout.some((l) => l.includes('"config reloaded"')));
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM drains in-flight requests, flushes the audit trail and exits 0', async (t) => {
    const slow = await heldUpstream();
    t.after(() => slow.close());
    const proc = await startGatewayProcess(routesTo(slow.url, ['a']));
    const inFlight = fetch(`${proc.url}/a/x`);
    await slow.arrived;
    proc.child.kill('SIGTERM');
    // The gateway drains from the moment it says so; only then does the upstream answer.
    await proc.logged('"shutting down"');
    slow.release();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'slow done');
    const code = await proc.exited;
    assert.equal(code, 0);
    const records = await proc.audit(1); // the process has exited: its trail is flushed
    assert.equal(records.filter((r) => r.requestId === res.headers.get('x-request-id')).length, 1);
    await assert.rejects(fetch(`${proc.url}/a/x`), 'the listener is closed');
    await proc.stop();
  });
});

describe('admin listener', () => {
  it('serves health, readiness with the config version, and Prometheus metrics', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(routesTo(echo.url, ['a']));
    t.after(async () => { await gw.close(); await echo.close(); });
    await fetch(`${gw.url}/a/x`);
    await fetch(`${gw.url}/nowhere`);
    assert.deepEqual(await (await fetch(`${gw.adminUrl}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json() as { configVersion: string }).configVersion, gw.gateway.config.version);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /portcullis_requests_total\{route="a",status="200",decision="allow"\} 1/);
    assert.match(metrics, /portcullis_requests_total\{route="",status="404",decision="deny"\} 1/);
    assert.match(metrics, /portcullis_denials_total\{route="",reason="route_not_found"\} 1/);
    assert.match(metrics, /portcullis_upstream_latency_seconds_count\{upstream="echo"\} 1/);
    assert.match(metrics, new RegExp(`portcullis_config_info\\{version="${gw.gateway.config.version}"\\} 1`));
  });

  it('requires the admin token for reload when tokenHash is set, compared by hash', async (t) => {
    const echo = await startEchoUpstream();
    const token = 'correct horse battery staple';
    const gw = await startGateway({ ...routesTo(echo.url, ['a']), admin: { tokenHash: `sha256:${createHash('sha256').update(token).digest('hex')}` } });
    t.after(async () => { await gw.close(); await echo.close(); });
    const none = await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST' });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('content-type'), 'application/problem+json');
    const wrong = await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers: { authorization: 'Bearer wrong' } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    assert.equal(right.status, 200);
    assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200, 'health stays open for probes');
  });
});

describe('audit trail fails closed', { skip: existsSync('/dev/full') ? false : 'needs /dev/full to simulate a full disk' }, () => {
  it('refuses requests with 503 once the audit trail cannot be written, and reports not ready', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway({ ...routesTo(echo.url, ['a']), audit: { file: '/dev/full' } });
    t.after(async () => { await gw.close(); await echo.close(); });
    await fetch(`${gw.url}/a/x`);
    const deadline = Date.now() + 3000;
    let res = await fetch(`${gw.url}/a/x`);
    while (res.status !== 503 && Date.now() < deadline) {
      // Once the records so far have met the full disk, the next request is refused.
      await gw.gateway.auditFlushed();
      res = await fetch(`${gw.url}/a/x`);
    }
    assert.equal(res.status, 503);
    assert.equal((await res.json() as { type: string }).type, 'urn:portcullis:error:audit_unavailable');
    const forwarded = echo.received.length;
    assert.equal((await fetch(`${gw.url}/a/y`)).status, 503);
    assert.equal(echo.received.length, forwarded, 'nothing forwarded while unaudited');
    assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 503);
  });
});

describe('limits on reload', () => {
  it('applies a changed header count limit to the running server, so no field is silently dropped', async (t) => {
    const echo = await startEchoUpstream();
    const base = routesTo(echo.url, ['a']);
    const gw = await startGateway({ ...base, limits: { maxHeaderCount: 10 } });
    t.after(async () => { await gw.close(); await echo.close(); });
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20; i++) headers[`x-extra-${i}`] = String(i);
    assert.equal((await fetch(`${gw.url}/a/x`, { headers })).status, 431);
    await gw.writeConfig({ ...base, limits: { maxHeaderCount: 50 } });
    assert.equal((await (await postReload(gw.adminUrl)).json() as { ok: boolean }).ok, true);
    const res = await fetch(`${gw.url}/a/x`, { headers });
    assert.equal(res.status, 200);
    assert.equal(echo.received.at(-1)?.headers['x-extra-19'], '19', 'the last field reached the upstream');
  });
});
