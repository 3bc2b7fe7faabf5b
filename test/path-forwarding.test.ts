import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertProblem } from './harness/assertions.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { rawRequest } from './harness/raw-client.js';

// Invariant 2: the path policy was evaluated on is byte for byte the path sent upstream.
// [raw target, path the gateway matches and forwards, route that must take it]
const ACCEPTED: [string, string, string][] = [
  ['/api/orders', '/api/orders', 'orders'],
  ['/api/orders/./', '/api/orders/', 'api'],
  ['/api/x/../orders', '/api/orders', 'orders'],
  ['/api/%6Frders', '/api/orders', 'orders'],
  ['/api/%2e%2E/api/orders', '/api/orders', 'orders'],
  ['//api///orders', '/api/orders', 'orders'],
  ['/api/orders/42?x=%2F..&y', '/api/orders/42?x=%2F..&y', 'order'],
  ['/api/%252e%252e/admin', '/api/%252e%252e/admin', 'api'],
  ['/api/caf%c3%a9', '/api/caf%C3%A9', 'api'],
  ['/api/a%20b', '/api/a%20b', 'api'],
  ['/api/admin.', '/api/admin.', 'api'],
  ['/api/...', '/api/...', 'api'],
  ['/public/../admin/panel', '/admin/panel', 'admin'],
];

// Targets rejected before routing: 400 (or 414), nothing forwarded.
const REJECTED: [string, number, string][] = [
  ['/public/..%2Fadmin', 400, 'ambiguous_path'],
  ['/public/%2e%2e%2fadmin', 400, 'ambiguous_path'],
  ['/public/..%5Cadmin', 400, 'ambiguous_path'],
  ['/public/..\\admin', 400, 'ambiguous_path'],
  ['/public/..;/admin', 400, 'ambiguous_path'],
  ['/admin;x=1', 400, 'ambiguous_path'],
  ['/../admin', 400, 'ambiguous_path'],
  ['/public/%00', 400, 'invalid_target'],
  ['/public/%C0%AE%C0%AE/admin', 400, 'invalid_target'],
  ['/public/%ZZ', 400, 'invalid_target'],
  ['http://127.0.0.1/admin', 400, 'invalid_target'],
  ['/public/' + 'a'.repeat(300), 414, 'uri_too_long'],
];

describe('the upstream receives exactly the path the gateway matched', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      limits: { maxUrlBytes: 256 },
      upstreams: { echo: { targets: [echo.url] } },
      routes: [
        { name: 'orders', match: { methods: ['GET'], path: '/api/orders' }, upstream: 'echo', public: true },
        { name: 'order', match: { methods: ['GET'], path: '/api/orders/{id}' }, upstream: 'echo', public: true },
        { name: 'api', match: { path: '/api/**' }, upstream: 'echo', public: true },
        { name: 'public', match: { path: '/public/**' }, upstream: 'echo', public: true },
        { name: 'admin', match: { path: '/admin/**' }, upstream: 'echo', public: true },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const [raw, forwarded, route] of ACCEPTED) {
    it(`forwards ${raw} as ${forwarded} via route ${route}`, async () => {
      const before = echo.received.length;
      const res = await rawRequest(gw.port, `GET ${raw} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
      assert.equal(res.status, 200, res.raw);
      assert.equal(echo.received.length, before + 1);
      assert.equal(echo.received.at(-1)?.url, forwarded);
      const records = await gw.auditFor(res.headers['x-request-id'] ?? '');
      assert.equal(records.length, 1);
      const record = records[0];
      assert.equal(record?.route, route);
      assert.equal(record.path + (forwarded.includes('?') ? forwarded.slice(forwarded.indexOf('?')) : ''), forwarded, 'audited path is the forwarded path');
    });
  }

  for (const [raw, status, code] of REJECTED) {
    it(`rejects ${raw.slice(0, 40)} with ${status} ${code} and forwards nothing`, async () => {
      const before = echo.received.length;
      const res = await rawRequest(gw.port, `GET ${raw} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
      const body = assertProblem(res, status, code);
      assert.equal(res.headers['content-type'], 'application/problem+json');
      assert.equal(body.type, `urn:portcullis:error:${code}`);
      assert.equal(echo.received.length, before, 'nothing forwarded');
      const records = await gw.auditFor(body.requestId);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.reason, code);
      assert.equal(records[0]?.decision, 'deny');
    });
  }
});
