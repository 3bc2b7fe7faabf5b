// Deny by default across routes: when the most specific route matches a request's path but not its
// method, the answer is 405 from that route, never a less specific route with a weaker policy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { auditRecordsFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { testKey } from './harness/jwt.js';

let echo: EchoUpstream;
let gw: TestGateway;

before(async () => {
  const key = await testKey('ES256', 'fallthrough');
  echo = await startEchoUpstream();
  gw = await startGateway({
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
    routes: [
      { name: 'admin-read', match: { path: '/api/admin/**', methods: ['GET'] }, upstream: 'echo', authenticate: ['users'], authorize: { roles: { anyOf: ['admin'] } } },
      { name: 'user', match: { path: '/api/users/{id}', methods: ['GET', 'PUT'] }, upstream: 'echo', authenticate: ['users'] },
      { name: 'tenant-host', match: { path: '/api/reports/**', methods: ['GET'], host: 'internal.example.com' }, upstream: 'echo', authenticate: ['users'] },
      { name: 'catch-all', match: { path: '/api/**' }, upstream: 'echo', public: true },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
});

void describe('no fall-through to a weaker route', () => {
  const cases: readonly [string, string, string, string][] = [
    ['DELETE', '/api/admin/users/1', 'gw.test', 'GET'],
    ['POST', '/api/admin', 'gw.test', 'GET'],
    ['PATCH', '/api/users/7', 'gw.test', 'GET, PUT'],
    ['DELETE', '/api/reports/2024', 'internal.example.com', 'GET'],
  ];
  for (const [method, path, host, allow] of cases) {
    test(`${method} ${path} on ${host} is 405 from the specific route, not forwarded through the public catch-all`, async () => {
      const before = echo.received.length;
      const res = await request(`${gw.url}${path}`, { method: method as 'GET', headers: { host } });
      const body = await res.body.text();
      assert.equal(res.statusCode, 405, body);
      assert.equal(res.headers.allow, allow);
      assert.equal(echo.received.length, before, 'forwarded');
      const record = (await auditRecordsFor(gw, path)).find((r) => r.method === method);
      assert.equal(record?.reason, 'method_not_allowed');
    });
  }

  test('paths the specific routes do not cover still reach the catch-all', async () => {
    const res = await request(`${gw.url}/api/other/thing`, { method: 'DELETE' });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    const onOtherHost = await request(`${gw.url}/api/reports/2024`, { method: 'DELETE', headers: { host: 'public.example.com' } });
    await onOtherHost.body.dump();
    assert.equal(onOtherHost.statusCode, 200, 'a host-specific route does not cover other hosts');
  });
});
