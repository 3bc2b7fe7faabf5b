// Tokens for upstreams (upstreams.<name>.auth.clientCredentials), against a real authorization
// server (oidc-provider) and real upstreams on loopback: the upstream sees the gateway's own token
// and never the client's Authorization; one token call however many requests arrive cold; renewal
// ahead of expiry on an injected clock; a token endpoint that is down, slow, refusing or answering
// garbage is a precise 503 with nothing forwarded; an upstream 401 is retried once with a renewed
// token when the request can be sent again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { startAuthorizationServer, type TestAuthorizationServer } from './harness/authorization-server.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { assertProblem, oneAuditRecordFor, waitUntil } from './harness/assertions.js';
import { rawRequest, requestHead } from './harness/raw-client.js';
import { ManualClock } from './harness/manual-clock.js';
import { MIN_TOKEN_AGE_FOR_RENEWAL_MS } from '../src/proxy/upstream-token.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';

/** What an upstream received: its Authorization fields (every copy, as sent) and body. */
interface Seen {
  readonly method: string;
  readonly path: string;
  readonly authorization: readonly string[];
  readonly body: string;
}

interface Recorder {
  readonly url: string;
  readonly seen: Seen[];
  /** Decides the status of the n-th request (0-based) from what it saw; default 200. */
  respond: (seen: Seen, n: number) => number;
  /** Bytes of padding added to the response body of a status (default none). */
  padding: (status: number) => number;
  close(): Promise<void>;
}

async function recorder(): Promise<Recorder> {
  const seen: Seen[] = [];
  const rec: Recorder = {
    url: '',
    seen,
    respond: () => 200,
    padding: () => 0,
    close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const authorization: string[] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if ((req.rawHeaders[i] ?? '').toLowerCase() === 'authorization') authorization.push(req.rawHeaders[i + 1] ?? '');
      }
      const s: Seen = { method: req.method ?? '', path: req.url ?? '', authorization, body: Buffer.concat(chunks).toString('utf8') };
      const n = seen.length;
      seen.push(s);
      const status = rec.respond(s, n);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status, n, padding: ' '.repeat(rec.padding(status)) }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(rec, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

/** A token endpoint of our own, for answers a real authorization server never gives. */
async function hostileEndpoint(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => { req.resume(); req.on('end', () => handler(req, res)); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}

const bearer = (value: string | undefined): string => {
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(value ?? '');
  assert.ok(m?.[1] !== undefined, `a Bearer token, not ${JSON.stringify(value)}`);
  return m[1];
};

let as: TestAuthorizationServer;
let idpKey: TestKey;

before(async () => {
  as = await startAuthorizationServer({ resources: [{ audience: 'https://billing.test', format: 'jwt', scope: 'billing:write' }] });
  idpKey = await testKey('ES256', 'idp-1');
});
after(async () => { await as.close(); });

/** The `service` client's setup at the real provider, with overrides. */
const serviceCredentials = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  tokenEndpoint: `${as.issuer}/token`, clientId: as.service.clientId, clientSecret: as.service.clientSecret, scope: 'orders:read', ...extra,
});

/** One upstream with client credentials, a public route and a JWT-authenticated route to it. */
function config(upstreamUrl: string, clientCredentials: Record<string, unknown>, more: ConfigObject = {}): ConfigObject {
  return {
    authenticators: { users: { type: 'jwt', issuer: 'https://idp.test', audience: 'api', algorithms: ['ES256'], publicKeys: [{ pem: idpKey.pem, kid: idpKey.kid }] } },
    upstreams: { billing: { targets: [upstreamUrl], auth: { clientCredentials } } },
    routes: [
      { name: 'open', match: { path: '/open/**' }, upstream: 'billing', public: true },
      { name: 'users', match: { path: '/api/**' }, upstream: 'billing', authenticate: ['users'] },
    ],
    ...more,
  };
}

describe('the upstream receives the gateway\'s token, never the client\'s Authorization', () => {
  let up: Recorder;
  let gw: TestGateway;
  before(async () => {
    up = await recorder();
    gw = await startGateway(config(up.url, serviceCredentials()));
  });
  after(async () => { await gw.close(); await up.close(); });

  test('a caller authenticated with its own Bearer JWT: the upstream gets one Authorization, the provider\'s token for the gateway', async () => {
    const userToken = await mint(idpKey, { iss: 'https://idp.test', aud: 'api', sub: 'alice' });
    const res = await fetch(`${gw.url}/api/invoices`, { headers: { authorization: `Bearer ${userToken}` } });
    assert.equal(res.status, 200);
    const last = up.seen.at(-1);
    assert.equal(last?.authorization.length, 1);
    const token = bearer(last?.authorization[0]);
    assert.notEqual(token, userToken);
    const info = await as.introspect(token);
    assert.equal(info.active, true, 'the provider issued it');
    assert.equal(info.client_id, 'service');
    assert.equal(info.scope, 'orders:read');
  });

  test('duplicated, odd-cased and non-Bearer Authorization fields of the client are all removed', async () => {
    const before = up.seen.length;
    const res = await rawRequest(gw.port, requestHead('GET', '/open/x', [
      'Authorization: Bearer client-token-1', 'AUTHORIZATION: Basic Y2xpZW50OnNlY3JldA==', 'aUtHoRiZaTiOn: Bearer client-token-2', 'Connection: close',
    ]));
    assert.equal(res.status, 200, res.raw);
    assert.equal(up.seen.length, before + 1);
    const seen = up.seen.at(-1);
    assert.equal(seen?.authorization.length, 1, JSON.stringify(seen?.authorization));
    assert.doesNotMatch(seen?.authorization[0] ?? '', /client-token|Basic/);
    bearer(seen?.authorization[0]);
  });

  test('a client naming Authorization in its Connection header cannot remove the gateway\'s token', async () => {
    const res = await rawRequest(gw.port, requestHead('GET', '/open/hop', ['Authorization: Bearer client-token', 'Connection: close, Authorization']));
    assert.equal(res.status, 200, res.raw);
    const seen = up.seen.at(-1);
    assert.equal(seen?.authorization.length, 1);
    assert.doesNotMatch(seen?.authorization[0] ?? '', /client-token/);
    bearer(seen?.authorization[0]);
  });

  test('an invalid caller token is refused (401) and nothing reaches the upstream', async () => {
    const before = up.seen.length;
    const res = await rawRequest(gw.port, requestHead('GET', '/api/x', ['Authorization: Bearer not.a.jwt', 'Connection: close']));
    assertProblem(res, 401, 'invalid_credential');
    assert.equal(up.seen.length, before);
  });
});

test('a resource-indicator token (RFC 8707) is a JWT for that audience, issued to the gateway\'s client', async () => {
  const up = await recorder();
  const gw = await startGateway(config(up.url, serviceCredentials({ scope: 'billing:write', resource: 'https://billing.test' })));
  try {
    const res = await fetch(`${gw.url}/open/a`);
    assert.equal(res.status, 200);
    const claims = decodeJwt(bearer(up.seen[0]?.authorization[0]));
    assert.equal(claims.aud, 'https://billing.test');
    assert.equal(claims.client_id, 'service');
    assert.equal(claims.iss, as.issuer);
    assert.equal(claims.scope, 'billing:write');
  } finally {
    await gw.close();
    await up.close();
  }
});

test('50 concurrent requests on a cold cache make exactly one token call and all carry its token', async () => {
  const up = await recorder();
  const gw = await startGateway(config(up.url, serviceCredentials()));
  try {
    const calls = as.calls('/token');
    const statuses = await Promise.all(Array.from({ length: 50 }, async (_, i) => (await fetch(`${gw.url}/open/${i}`)).status));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(as.calls('/token') - calls, 1);
    assert.equal(new Set(up.seen.map((s) => s.authorization[0])).size, 1);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^portcullis_upstream_token_requests_total\{upstream="billing",outcome="ok"\} 1$/m);
    assert.match(metrics, /^portcullis_upstream_token_expiry_timestamp_seconds\{upstream="billing"\} \d{10}$/m);
  } finally {
    await gw.close();
    await up.close();
  }
});

test('the token is renewed ahead of expiry in the background, and a request after expiry waits for a new one', async () => {
  // The provider issues 600 s tokens; refreshBeforeMs 60 s: renewal from 540 s, no longer sent from 595 s.
  const clock = new ManualClock(Date.now());
  const up = await recorder();
  const gw = await startGateway(config(up.url, serviceCredentials({ refreshBeforeMs: 60_000 })), { clock });
  try {
    const calls = as.calls('/token');
    const get = async (): Promise<string> => {
      const res = await fetch(`${gw.url}/open/r`);
      assert.equal(res.status, 200);
      return bearer(up.seen.at(-1)?.authorization[0]);
    };
    const first = await get();
    clock.advance(500_000);
    assert.equal(await get(), first, 'cached');
    assert.equal(as.calls('/token') - calls, 1);
    clock.advance(50_000); // 550 s: in the refresh window
    assert.equal(await get(), first, 'the current token is still sent while the renewal runs');
    await waitUntil('the background renewal reached the provider', () => as.calls('/token') - calls === 2);
    let renewed = first;
    await waitUntil('requests carry the renewed token', async () => { renewed = await get(); return renewed !== first; });
    assert.equal(as.calls('/token') - calls, 2, 'one renewal');
    clock.advance(700_000); // past the renewed token's lifetime: the next request waits for a third
    const third = await get();
    assert.notEqual(third, renewed);
    assert.equal(as.calls('/token') - calls, 3);
    assert.equal((await as.introspect(third)).active, true);
  } finally {
    await gw.close();
    await up.close();
  }
});

test('a renewal that fails keeps the still-valid token in use; once it expires, 503 and nothing forwarded', async () => {
  const clock = new ManualClock(Date.now());
  const up = await recorder();
  const gw = await startGateway(config(up.url, serviceCredentials({ refreshBeforeMs: 60_000 })), { clock });
  try {
    assert.equal((await fetch(`${gw.url}/open/a`)).status, 200);
    const token = up.seen.at(-1)?.authorization[0];
    await as.stop();
    try {
      clock.advance(550_000); // in the refresh window: a renewal starts and fails
      assert.equal((await fetch(`${gw.url}/open/b`)).status, 200);
      assert.equal(up.seen.at(-1)?.authorization[0], token);
      await waitUntil('the failed renewal is counted', async () => /outcome="unreachable"\} 1$/m.test(await (await fetch(`${gw.adminUrl}/metrics`)).text()));
      clock.advance(2_000); // past the retry delay: the next request tries again, and is still served
      assert.equal((await fetch(`${gw.url}/open/c`)).status, 200);
      assert.equal(up.seen.at(-1)?.authorization[0], token);
      clock.advance(60_000); // past the token's lifetime
      const seen = up.seen.length;
      const res = await rawRequest(gw.port, requestHead('GET', '/open/expired', ['Connection: close']));
      assertProblem(res, 503, 'upstream_credentials_unavailable');
      assert.equal(up.seen.length, seen);
    } finally {
      await as.start();
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

test('a reload that keeps the setup keeps the token; one that changes the secret gets a new one', async () => {
  const up = await recorder();
  const first = config(up.url, serviceCredentials());
  const gw = await startGateway(first);
  try {
    const calls = as.calls('/token');
    assert.equal((await fetch(`${gw.url}/open/1`)).status, 200);
    const token = up.seen.at(-1)?.authorization[0];
    await gw.writeConfig({ ...first, responseHeaders: { frameOptions: 'SAMEORIGIN' } });
    assert.equal((await gw.gateway.reload()).ok, true);
    assert.equal((await fetch(`${gw.url}/open/2`)).status, 200);
    assert.equal(up.seen.at(-1)?.authorization[0], token, 'same setup, same token');
    assert.equal(as.calls('/token') - calls, 1);
    // The same client with a wrong secret: a new source, whose call the provider refuses.
    await gw.writeConfig(config(up.url, serviceCredentials({ clientSecret: 'a-wrong-secret-0123456789abcdef' })));
    assert.equal((await gw.gateway.reload()).ok, true);
    const res = await rawRequest(gw.port, requestHead('GET', '/open/3', ['Connection: close']));
    assertProblem(res, 503, 'upstream_credentials_unavailable');
    assert.match((await oneAuditRecordFor(gw, '/open/3')).detail ?? '', /refused.*answered 401 invalid_client/);
  } finally {
    await gw.close();
    await up.close();
  }
});

test('private_key_jwt (issuer discovery) and client_secret_post both obtain tokens for their own client', async () => {
  const up = await recorder();
  const gw = await startGateway({
    upstreams: {
      keyed: { targets: [up.url], auth: { clientCredentials: { issuer: as.issuer, clientId: as.gatewayKeyJwt.clientId, privateKeyJwt: { file: 'cc.pem', kid: as.gatewayKeyJwt.kid } } } },
      posted: { targets: [up.url], auth: { clientCredentials: { tokenEndpoint: `${as.issuer}/token`, clientId: as.gatewayPost.clientId, clientSecret: '${POST_SECRET}', clientAuth: 'client_secret_post' } } },
      // Without an issuer the assertion's audience is the token endpoint URL (RFC 7523 §3).
      keyedDirect: { targets: [up.url], auth: { clientCredentials: { tokenEndpoint: `${as.issuer}/token`, clientId: as.gatewayKeyJwt.clientId, privateKeyJwt: { file: 'cc.pem', kid: as.gatewayKeyJwt.kid }, scope: 'orders:write' } } },
    },
    routes: [
      { name: 'keyed', match: { path: '/keyed' }, upstream: 'keyed', public: true },
      { name: 'posted', match: { path: '/posted' }, upstream: 'posted', public: true },
      { name: 'keyedDirect', match: { path: '/keyed-direct' }, upstream: 'keyedDirect', public: true },
    ],
  }, { env: { POST_SECRET: as.gatewayPost.clientSecret }, beforeStart: (dir) => writeFile(join(dir, 'cc.pem'), as.gatewayKeyJwt.privateKeyPem) });
  try {
    assert.equal((await fetch(`${gw.url}/keyed`)).status, 200);
    assert.equal((await as.introspect(bearer(up.seen.at(-1)?.authorization[0]))).client_id, 'gateway-key');
    assert.equal((await fetch(`${gw.url}/posted`)).status, 200);
    assert.equal((await as.introspect(bearer(up.seen.at(-1)?.authorization[0]))).client_id, 'gateway-post');
    assert.equal((await fetch(`${gw.url}/keyed-direct`)).status, 200);
    const direct = await as.introspect(bearer(up.seen.at(-1)?.authorization[0]));
    assert.equal(direct.client_id, 'gateway-key');
    assert.equal(direct.scope, 'orders:write');
  } finally {
    await gw.close();
    await up.close();
  }
});

test('the token endpoint down with no token cached: 503 upstream_credentials_unavailable, nothing forwarded, one audit record without secrets', async () => {
  const up = await recorder();
  const gw = await startGateway(config(up.url, serviceCredentials()));
  try {
    await as.stop();
    try {
      const res = await rawRequest(gw.port, requestHead('GET', '/open/down', ['Authorization: Bearer client-secret-token', 'Connection: close']));
      assertProblem(res, 503, 'upstream_credentials_unavailable');
      assert.match(res.headers['retry-after'] ?? '', /^[1-9]\d*$/);
      assert.doesNotMatch(res.body, /127\.0\.0\.1|ECONNREFUSED|token/i, 'no internals to the client');
      const record = await oneAuditRecordFor(gw, '/open/down');
      assert.equal(record.reason, 'upstream_credentials_unavailable');
      assert.equal(record.stage, 'upstream-credential');
      assert.ok(record.upstreamStatus == null, 'no upstream status');
      assert.match(record.detail ?? '', /unreachable.*ECONNREFUSED/);
      assert.ok(!JSON.stringify(record).includes(as.service.clientSecret));
      assert.ok(!gw.logs.join('\n').includes(as.service.clientSecret));
      // A second request within a second is answered at once, without another call.
      const calls = as.calls('/token');
      const again = await rawRequest(gw.port, requestHead('GET', '/open/down2', ['Connection: close']));
      assertProblem(again, 503, 'upstream_credentials_unavailable');
      assert.equal(as.calls('/token'), calls);
      assert.equal(up.seen.length, 0, 'the upstream received nothing');
      assert.match(await (await fetch(`${gw.adminUrl}/metrics`)).text(), /^portcullis_upstream_token_requests_total\{upstream="billing",outcome="unreachable"\} 1$/m);
    } finally {
      await as.start();
    }
    // Back up: the gateway calls again once the retry delay is over.
    await waitUntil('the gateway gets a token again', async () => (await fetch(`${gw.url}/open/up`)).status === 200);
    assert.equal(up.seen.length, 1);
  } finally {
    await gw.close();
    await up.close();
  }
});

test('a token without expires_in is used for 300 s at most, and tokens are asked for with the configured parameters', async () => {
  const clock = new ManualClock(Date.now());
  const forms: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      forms.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ access_token: `opaque-${forms.length}`, token_type: 'bearer' }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const up = await recorder();
  const gw = await startGateway(config(up.url, {
    tokenEndpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, clientId: 'gw', clientSecret: 'endpoint-secret-0123456789',
    clientAuth: 'client_secret_post', scope: 'a b', audience: 'https://api.test', resource: 'https://billing.test',
  }), { clock });
  try {
    assert.equal((await fetch(`${gw.url}/open/1`)).status, 200);
    assert.deepEqual(up.seen.at(-1)?.authorization, ['Bearer opaque-1']);
    const form = Object.fromEntries(forms[0] ?? []);
    assert.deepEqual(form, {
      grant_type: 'client_credentials', client_id: 'gw', client_secret: 'endpoint-secret-0123456789', scope: 'a b', audience: 'https://api.test', resource: 'https://billing.test',
    });
    clock.advance(290_000); // within refreshBeforeMs of its 300 s: renewal in the background, the current token still sent
    assert.equal((await fetch(`${gw.url}/open/2`)).status, 200);
    assert.deepEqual(up.seen.at(-1)?.authorization, ['Bearer opaque-1']);
    await waitUntil('the renewal', () => forms.length === 2);
    clock.advance(300_000); // the renewed token is past its 300 s too: the next request waits for a third
    assert.equal((await fetch(`${gw.url}/open/3`)).status, 200);
    assert.deepEqual(up.seen.at(-1)?.authorization, ['Bearer opaque-3']);
  } finally {
    await gw.close();
    await up.close();
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  }
});

describe('hostile token endpoints: each a precise 503, nothing forwarded, the reason in the audit record', () => {
  const cases: { name: string; handler: (req: IncomingMessage, res: ServerResponse) => void; detail: RegExp }[] = [
    { name: 'html', detail: /refused.*answered 500/, handler: (_q, res) => { res.writeHead(500, { 'content-type': 'text/html' }); res.end('<html><body>Internal error</body></html>'); } },
    { name: 'refusing', detail: /refused.*answered 401 invalid_client/, handler: (_q, res) => { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"error":"invalid_client"}'); } },
    { name: 'garbage', detail: /invalid.*unusable/, handler: (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"access_token": 42'); } },
    { name: 'huge', detail: /invalid.*maxResponseBytes/, handler: (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(Buffer.alloc(10 * 1024 * 1024, 0x20)); } },
    { name: 'mac', detail: /invalid.*token_type is mac/, handler: (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"access_token":"abc","token_type":"mac","expires_in":60}'); } },
    { name: 'crlf', detail: /invalid.*cannot carry/, handler: (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ access_token: 'abc\r\nX-Admin: 1', token_type: 'Bearer', expires_in: 60 })); } },
    { name: 'redirect', detail: /refused.*answered 302/, handler: (_q, res) => { res.writeHead(302, { location: 'http://127.0.0.1:1/token' }); res.end(); } },
    { name: 'slow', detail: /timeout.*within 300 ms/, handler: () => undefined },
  ];
  const endpoints: { url: string; close(): Promise<void> }[] = [];
  let up: Recorder;
  let gw: TestGateway;
  before(async () => {
    up = await recorder();
    for (const c of cases) endpoints.push(await hostileEndpoint(c.handler));
    gw = await startGateway({
      upstreams: Object.fromEntries(cases.map((c, i) => [c.name, { targets: [up.url], auth: { clientCredentials: { tokenEndpoint: endpoints[i]?.url, clientId: 'gw', clientSecret: 'hostile-secret-0123456789', timeoutMs: 300 } } }])),
      routes: cases.map((c) => ({ name: c.name, match: { path: `/${c.name}` }, upstream: c.name, public: true })),
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
    for (const e of endpoints) await e.close();
  });
  for (const c of cases) {
    test(c.name, async () => {
      const res = await rawRequest(gw.port, requestHead('GET', `/${c.name}`, ['Connection: close']));
      assertProblem(res, 503, 'upstream_credentials_unavailable');
      const record = await oneAuditRecordFor(gw, `/${c.name}`);
      assert.match(record.detail ?? '', c.detail);
      assert.ok(!(record.detail ?? '').includes('hostile-secret'));
      assert.equal(up.seen.length, 0);
    });
  }
});

describe('an upstream 401 is retried once with a renewed token, when the request can be sent again', () => {
  // Tokens younger than MIN_TOKEN_AGE_FOR_RENEWAL_MS are not renewed for a 401: the clock moves past it.
  const clock = new ManualClock(Date.now());
  const age = (): void => clock.advance(MIN_TOKEN_AGE_FOR_RENEWAL_MS);
  let up: Recorder;
  let gw: TestGateway;
  before(async () => {
    up = await recorder();
    gw = await startGateway(config(up.url, serviceCredentials()), { clock });
  });
  after(async () => { await gw.close(); await up.close(); });

  test('401 once to a buffered POST: one renewal, the body sent again with the new token, the client gets the second answer', async () => {
    assert.equal((await fetch(`${gw.url}/open/warm`)).status, 200);
    age();
    const calls = as.calls('/token');
    const rejected = up.seen.at(-1)?.authorization[0];
    up.respond = (s) => (s.authorization[0] === rejected ? 401 : 201);
    const from = up.seen.length;
    const res = await fetch(`${gw.url}/open/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":42}' });
    assert.equal(res.status, 201);
    const seen = up.seen.slice(from);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen.map((s) => s.body), ['{"amount":42}', '{"amount":42}']);
    assert.equal(seen[0]?.authorization[0], rejected);
    assert.notEqual(seen[1]?.authorization[0], rejected);
    assert.equal(as.calls('/token') - calls, 1);
    const record = await oneAuditRecordFor(gw, '/open/orders');
    assert.equal(record.status, 201);
    assert.match(record.detail ?? '', /retried once/);
  });

  test('a large 401 body is not read to its end: the connection is dropped and the request retried', async () => {
    up.respond = () => 200;
    assert.equal((await fetch(`${gw.url}/open/warm3`)).status, 200);
    age();
    const rejected = up.seen.at(-1)?.authorization[0];
    up.respond = (s) => (s.authorization[0] === rejected ? 401 : 200);
    up.padding = (status) => (status === 401 ? 1024 * 1024 : 0);
    try {
      const from = up.seen.length;
      const res = await fetch(`${gw.url}/open/large`);
      assert.equal(res.status, 200);
      assert.equal((await res.json() as { status: number }).status, 200);
      assert.equal(up.seen.length - from, 2);
    } finally {
      up.padding = () => 0;
    }
  });

  test('concurrent 401s for the same token cause one renewal', async () => {
    up.respond = () => 200;
    assert.equal((await fetch(`${gw.url}/open/warm2`)).status, 200);
    age();
    const rejected = up.seen.at(-1)?.authorization[0];
    up.respond = (s) => (s.authorization[0] === rejected ? 401 : 200);
    const calls = as.calls('/token');
    const statuses = await Promise.all(Array.from({ length: 10 }, async (_, i) => (await fetch(`${gw.url}/open/c${i}`)).status));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(as.calls('/token') - calls, 1);
  });

  test('401 forever: the client gets the 401 after exactly one retry', async () => {
    age();
    up.respond = () => 401;
    const from = up.seen.length;
    const calls = as.calls('/token');
    const res = await fetch(`${gw.url}/open/never`);
    assert.equal(res.status, 401);
    assert.equal(up.seen.length - from, 2);
    assert.equal(as.calls('/token') - calls, 1);
  });

  test('a 401 to a token younger than 5 s is relayed: no renewal, no retry, however many requests', async () => {
    up.respond = () => 200;
    assert.equal((await fetch(`${gw.url}/open/fresh`)).status, 200);
    age(); // renew once, so the token in use is brand new
    up.respond = () => 401;
    assert.equal((await fetch(`${gw.url}/open/renew`)).status, 401);
    const from = up.seen.length;
    const calls = as.calls('/token');
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${gw.url}/open/again${i}`)).status, 401);
    assert.equal(up.seen.length - from, 5, 'one upstream request each');
    assert.equal(as.calls('/token'), calls, 'no token call');
  });

  test('a streamed (chunked) body is not retried: the 401 is relayed', async () => {
    age();
    up.respond = () => 401;
    const from = up.seen.length;
    const calls = as.calls('/token');
    const res = await rawRequest(gw.port, [
      requestHead('POST', '/open/stream', ['Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Connection: close']),
      '5\r\nhello\r\n0\r\n\r\n',
    ]);
    assert.equal(res.status, 401);
    assert.equal(up.seen.length - from, 1);
    assert.equal(up.seen.at(-1)?.body, 'hello');
    assert.equal(as.calls('/token') - calls, 0);
  });
});
