// Names that cannot collide: an admin request is told apart from a proxied one by its record's
// `kind`, never by a name a config could also use; every admin request has an id of its own, sent
// on every answer and written in its record, whatever id the caller sends; and the one name the
// trail reserves (`bruteForce`, the guard's `limit`) cannot be given to a rate limit or quota.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH, call, type Reply } from './harness/api-keys.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest } from './harness/raw-client.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('admin records and request ids', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      // Routes named as the admin API, and as what metrics and records could use for "none".
      routes: ['admin', 'listener', 'unmatched', 'none', 'request'].map((name) => ({ name, match: { path: `/${name}/**` }, upstream: 'echo', public: true })),
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  const operator = (extra: Record<string, string> = {}): Record<string, string> => ({ authorization: `Bearer ${ADMIN_TOKEN}`, ...extra });

  it('gives every admin answer a fresh UUID in X-Request-Id, the one in its record, whatever id the caller sends', async () => {
    const forged = { 'x-request-id': 'admin' };
    const answers: [string, Reply][] = [
      ['probe', await call(`${gw.adminUrl}/healthz`, { headers: forged })],
      ['readiness', await call(`${gw.adminUrl}/readyz`, { headers: forged })],
      ['metrics', await call(`${gw.adminUrl}/metrics`, { headers: forged })],
      ['unknown path', await call(`${gw.adminUrl}/nowhere`, { headers: forged })],
      ['no token', await call(`${gw.adminUrl}/admin/keys`, { headers: forged })],
      ['keys listed', await call(`${gw.adminUrl}/admin/keys`, { headers: operator(forged) })],
      ['key created', await call(`${gw.adminUrl}/admin/keys`, { headers: operator(forged), body: { name: 'ids' } })],
      ['reloaded', await call(`${gw.adminUrl}/admin/reload`, { headers: operator(forged), body: {} })],
      ['wrong method', await call(`${gw.adminUrl}/admin/reload`, { method: 'GET', headers: operator(forged) })],
    ];
    const ids = answers.map(([what, res]) => {
      const id = res.headers['x-request-id'] ?? '';
      assert.match(id, UUID, `${what}: ${res.status} ${JSON.stringify(res.headers)}`);
      return id;
    });
    assert.equal(new Set(ids).size, ids.length, 'one id per request');

    // A caller that replays an earlier id gets a new one: the trail keeps one record per id.
    const replay = await call(`${gw.adminUrl}/admin/keys`, { headers: operator({ 'x-request-id': ids[5] ?? '' }) });
    assert.equal(replay.status, 200);
    assert.notEqual(replay.headers['x-request-id'], ids[5]);

    const records = await gw.audit();
    // Answered probes are not recorded; every other admin request is, under the id it was answered with.
    for (const [i, [what, res]] of answers.entries()) {
      const mine = records.filter((r) => r.requestId === ids[i]);
      if (['probe', 'readiness', 'metrics'].includes(what)) { assert.equal(mine.length, 0, what); continue; }
      assert.equal(mine.length, 1, what);
      const record = mine[0] as AuditRecord;
      assert.equal(record.kind, 'admin', what);
      assert.equal(record.route, undefined, what);
      assert.equal(record.stage, 'admin', what);
      assert.equal(record.status, res.status, what);
    }
    assert.equal(records.filter((r) => r.requestId === 'admin').length, 0, 'the forged id is in no record');
  });

  it('records requests to routes named as the admin API or as "none" as requests, apart from admin records', async () => {
    const sent: string[] = [];
    for (const name of ['admin', 'listener', 'unmatched', 'none', 'request']) {
      const res = await fetch(`${gw.url}/${name}/reload`, { headers: { 'x-request-id': 'admin' } });
      assert.equal(res.status, 200, name);
      const id = res.headers.get('x-request-id') ?? '';
      assert.match(id, UUID, 'an untrusted client does not choose its request id either');
      sent.push(id);
    }
    const adminCall = await call(`${gw.adminUrl}/admin/keys`, { headers: operator() });
    const records = await gw.audit();
    for (const [i, name] of ['admin', 'listener', 'unmatched', 'none', 'request'].entries()) {
      const record = records.find((r) => r.requestId === sent[i]);
      assert.equal(record?.kind, 'request', name);
      assert.equal(record.route, name);
    }
    const adminRecord = records.find((r) => r.requestId === adminCall.headers['x-request-id']);
    assert.equal(adminRecord?.kind, 'admin');
    // What a reader filtering on the new field gets: admin records only, none of the route named admin.
    const adminOnly = records.filter((r) => r.kind === 'admin');
    assert.ok(adminOnly.length > 0);
    assert.ok(adminOnly.every((r) => r.route === undefined && r.stage === 'admin'));
    assert.ok(records.filter((r) => r.route === 'admin').every((r) => r.kind === 'request'));
    // Every record says its kind.
    assert.ok(records.every((r) => r.kind === 'request' || r.kind === 'admin'));
  });

  it('marks requests the HTTP parser refused with the kind of the listener that refused them', async () => {
    const adminPort = Number(new URL(gw.adminUrl).port);
    const onAdmin = await rawRequest(adminPort, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    const onProxy = await rawRequest(gw.port, 'GET /admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    for (const res of [onAdmin, onProxy]) assert.equal(res.status, 400);
    const records = await gw.audit();
    const adminRecord = records.find((r) => r.requestId === onAdmin.headers['x-request-id']);
    const proxyRecord = records.find((r) => r.requestId === onProxy.headers['x-request-id']);
    assert.equal(adminRecord?.kind, 'admin');
    assert.equal(adminRecord.route, undefined);
    assert.equal(proxyRecord?.kind, 'request');
    assert.equal(proxyRecord.stage, 'listener');
  });
});

describe('reserved names', () => {
  const base = (extra: string): string => `
upstreams: { echo: { targets: ["http://127.0.0.1:9"] } }
${extra}
routes:
  - { name: admin, match: { path: "/a/**" }, upstream: echo, public: true }
`;

  it('refuses a rate limit or a quota named bruteForce, at its line, saying what to do', () => {
    const limit = configProblems(base('rateLimits:\n  bruteForce: { algorithm: fixed-window, limit: 10, per: 1m, by: [ip] }'));
    assert.equal(limit.length, 1, limit.join('\n'));
    assert.match(limit[0] ?? '', /^gateway\.yaml:4:\d+: rateLimits\.bruteForce: "bruteForce" is reserved for the brute-force guard .*another name, such as "bruteForceLimit"$/);
    const quota = configProblems(base('quotas:\n  bruteForce: { limit: 10, period: day, by: [ip] }'));
    assert.equal(quota.length, 1, quota.join('\n'));
    assert.match(quota[0] ?? '', /^gateway\.yaml:4:\d+: quotas\.bruteForce: "bruteForce" is reserved/);
  });

  it('accepts names that only look alike, and routes named as the admin API or as "none"', () => {
    assert.deepEqual(configProblems(base('rateLimits:\n  bruteforce: { algorithm: fixed-window, limit: 10, per: 1m, by: [ip] }\n  bruteForce2: { algorithm: fixed-window, limit: 10, per: 1m, by: [ip] }')), []);
  });
});
