// Headers other servers believe a proxy set (client address, original URL, method override, client
// certificate, another proxy's identity), `_` spellings, headers a stage decides on, and credential
// carriers: what a client sends of them never reaches the upstream by accident.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PROXY_ASSERTED_EXACT, PROXY_ASSERTED_PREFIXES } from '../src/http/header-families.js';
import { readInboundHeaders, type HeaderPolicy } from '../src/http/headers.js';
import { auditRecordsFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

const UNTRUSTED = '127.0.0.2';

let echo: EchoUpstream;
let gw: TestGateway;
let key: TestKey;
let counter = 0;

before(async () => {
  key = await testKey('ES256', 'hygiene');
  echo = await startEchoUpstream();
  gw = await startGateway({
    trustedProxies: ['127.0.0.1/32'],
    limits: { maxHeaderCount: 200 },
    headers: { fromTrustedProxies: ['Client-Cert', 'CF-Connecting-IP'] },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: {
      users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }], claims: { tenant: 'tenant_id' } },
      partners: { type: 'apiKey', header: 'X-API-Key', queryParam: 'key' },
      guests: { type: 'anonymous' },
    },
    rateLimits: { perOrg: { algorithm: 'fixed-window', limit: 1000, per: '60s', by: ['header:X-Org-Key'] } },
    routes: [
      { name: 'tenant-by-header', match: { path: '/org/**' }, upstream: 'echo', authenticate: ['users'], authorize: { tenant: { header: 'X-Org' } } },
      { name: 'json-only', match: { path: '/json', methods: ['POST'] }, upstream: 'echo', public: true, limits: { contentTypes: ['application/json'] } },
      { name: 'limited', match: { path: '/limited' }, upstream: 'echo', public: true, rateLimit: 'perOrg' },
      { name: 'forwarding-auth', match: { path: '/fwd' }, upstream: 'echo', authenticate: ['users'], forwardAuthorization: true },
      { name: 'forwarding-auth-or-guest', match: { path: '/fwd-guest' }, upstream: 'echo', authenticate: ['users', 'guests'], forwardAuthorization: true },
      { name: 'override', match: { path: '/override', methods: ['POST', 'PATCH'] }, upstream: 'echo', public: true, allowMethodOverride: true },
      { name: 'delete-body', match: { path: '/bulk', methods: ['DELETE'] }, upstream: 'echo', public: true, limits: { allowBodyOn: ['DELETE'] } },
      { name: 'all', match: { path: '/**' }, upstream: 'echo', public: true },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
});

function send(method: string, path: string, lines: readonly string[], options: { localAddress?: string; body?: string } = {}): Promise<RawResponse> {
  const head = requestHead(method, path, [...lines, 'Connection: close']);
  return rawRequest(gw.port, head + (options.body ?? ''), { timeoutMs: 3000, settleMs: 0, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) });
}

function fold(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

function received(path: string): EchoedRequest {
  const seen = echo.received.find((r) => r.url === path || r.url.startsWith(`${path}?`));
  assert.ok(seen !== undefined, `the upstream did not receive ${path}`);
  return seen;
}

function namesSeen(seen: EchoedRequest): string[] {
  return seen.rawHeaders.filter((_, i) => i % 2 === 0).map(fold);
}

/** A sample member of every proxy-asserted family, in dash and underscore spellings. */
const FAMILY_SAMPLES: readonly string[] = [
  ...PROXY_ASSERTED_EXACT.keys(),
  ...PROXY_ASSERTED_PREFIXES.map(([prefix]) => `${prefix}sample`),
  'X-Forwarded-Port', 'X-Forwarded-Prefix', 'X-Forwarded-Server', 'X-Forwarded-Ssl', 'X-Forwarded-Scheme', 'X-Forwarded-Uri',
  'X-Forwarded-User', 'X-Forwarded-Email', 'X-Forwarded-Groups', 'X-Forwarded-Access-Token', 'X-Forwarded-Client-Cert',
  'X-SSL-Client-Cert', 'X-SSL-Client-Verify', 'X-Client-Cert', 'X-Envoy-Original-Path', 'X-Envoy-Internal',
  'X-Auth-Request-User', 'X-Auth-Request-Email', 'Remote-User', 'X-WEBAUTH-USER', 'X-Consumer-Username', 'X-Consumer-ID',
  'CF-Connecting-IP', 'CF-Visitor', 'CloudFront-Viewer-Address', 'Fly-Client-IP', 'X-AppEngine-Remote-Addr', 'iv-user',
  'Tailscale-User-Login', 'X-Middleware-Subrequest', 'X-Sendfile-Type', 'X-Accel-Mapping',
];

void describe('headers other servers believe a proxy set', () => {
  for (const [label, localAddress] of [['an untrusted peer', UNTRUSTED], ['a trusted proxy', undefined]] as const) {
    void test(`every proxy-asserted family is removed when sent by ${label}`, async () => {
      const path = `/families/${++counter}`;
      const lines = FAMILY_SAMPLES.map((name, i) => `${name}: spoof-${i}`);
      const reply = await send('GET', path, lines, localAddress === undefined ? {} : { localAddress });
      assert.equal(reply.status, 200, reply.body);
      const seen = received(path);
      const leaked = seen.rawHeaders.filter((v, i) => i % 2 === 1 && v.startsWith('spoof-'));
      // From a trusted proxy exactly the two configured names pass.
      const expected = localAddress === undefined ? ['client-cert', 'cf-connecting-ip'].sort() : [];
      const passed = namesSeen(seen).filter((n) => FAMILY_SAMPLES.map(fold).includes(n) && !['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'].includes(n));
      assert.deepEqual(passed.sort(), expected, `forwarded: ${JSON.stringify(seen.rawHeaders)}`);
      assert.equal(leaked.length, expected.length);
    });
  }

  void test('headers named in fromTrustedProxies still do not pass from an untrusted peer', async () => {
    const path = `/families/${++counter}`;
    await send('GET', path, ['Client-Cert: :MIIB:', 'CF-Connecting-IP: 6.6.6.6'], { localAddress: UNTRUSTED });
    assert.deepEqual(namesSeen(received(path)).filter((n) => n === 'client-cert' || n === 'cf-connecting-ip'), []);
  });

  void test('header names with `_` are removed (gunicorn reads SCRIPT_NAME as the mount point)', async () => {
    const path = `/underscore/${++counter}`;
    const reply = await send('GET', path, ['SCRIPT_NAME: /admin', 'X_User: admin', 'My_Header: x', 'X-Ok: 1']);
    assert.equal(reply.status, 200);
    const names = namesSeen(received(path));
    assert.ok(!received(path).rawHeaders.some((h, i) => i % 2 === 0 && h.includes('_')), JSON.stringify(received(path).rawHeaders));
    assert.ok(names.includes('x-ok'));
  });

  void test('a method override is removed on routes that do not allow one', async () => {
    const path = `/plain/${++counter}`;
    await send('POST', path, ['X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: DELETE', 'X-Method-Override: DELETE', 'Content-Length: 0']);
    assert.deepEqual(namesSeen(received(path)).filter((n) => n.includes('method')), []);
  });

  void test('on a route that allows overrides, one to a method the route accepts is forwarded', async () => {
    const before = echo.received.length;
    const reply = await send('POST', '/override', ['X-HTTP-Method-Override: PATCH', 'Content-Length: 0']);
    assert.equal(reply.status, 200, reply.body);
    const seen = echo.received[before];
    assert.ok(seen !== undefined);
    assert.equal(seen.headers['x-http-method-override'], 'PATCH');
  });

  void test('on a route that allows overrides, one to a method the route does not accept is 405', async () => {
    const before = echo.received.length;
    for (const method of ['DELETE', 'GET', 'patch', 'PATCH, DELETE']) {
      const reply = await send('POST', '/override', [`X-HTTP-Method-Override: ${method}`, 'Content-Length: 0']);
      assert.equal(reply.status, 405, `${method}: ${reply.body}`);
      assert.equal(reply.headers.allow, 'PATCH, POST');
    }
    const twice = await send('POST', '/override', ['X-HTTP-Method-Override: PATCH', 'X-Method-Override: DELETE', 'Content-Length: 0']);
    assert.equal(twice.status, 400);
    assert.match(twice.body, /ambiguous_header/);
    assert.equal(echo.received.length, before, 'forwarded');
  });
});

void describe('a header a stage decides on is read once and forwarded as read', () => {
  const token = (): Promise<string> => mint(key, { tenant_id: 'acme' });

  void test('the tenant header, checked once, reaches the upstream with exactly the checked value', async () => {
    const path = `/org/${++counter}`;
    const reply = await send('GET', path, [`Authorization: Bearer ${await token()}`, 'X-Org: acme']);
    assert.equal(reply.status, 200, reply.body);
    const seen = received(path);
    const values = seen.rawHeaders.filter((_, i) => i > 0 && fold(seen.rawHeaders[i - 1] ?? '') === 'x-org' && i % 2 === 1);
    assert.deepEqual(values, ['acme']);
  });

  const ambiguous: readonly [string, readonly string[]][] = [
    ['a repeated tenant header', ['X-Org: acme', 'X-Org: globex']],
    ['a repeated tenant header with equal values', ['X-Org: acme', 'x-org: acme']],
    ['the `_` twin after the checked header', ['X-Org: acme', 'X_Org: globex']],
    ['the `_` twin before the checked header', ['x_org: globex', 'X-Org: acme']],
    ['Connection naming the checked header', ['X-Org: acme', 'Connection: x-org']],
    ['Connection naming its `_` spelling', ['X-Org: acme', 'Connection: keep-alive, X_Org']],
  ];
  for (const [label, lines] of ambiguous) {
    void test(`${label} is refused with 400 ambiguous_header and nothing is forwarded`, async () => {
      const path = `/org/${++counter}`;
      const before = echo.received.length;
      const reply = await rawRequest(gw.port, requestHead('GET', path, [`Authorization: Bearer ${await token()}`, ...lines, ...(lines.some((l) => /^connection/i.test(l)) ? [] : ['Connection: close'])]), { timeoutMs: 3000, settleMs: 0 });
      assert.equal(reply.status, 400, reply.body);
      assert.match(reply.body, /ambiguous_header/);
      assert.equal(echo.received.length, before, 'forwarded');
      const records = await auditRecordsFor(gw, path);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.reason, 'ambiguous_header');
    });
  }

  for (const [label, lines] of [
    ['two Content-Type headers', ['Content-Type: application/json', 'Content-Type: text/xml']],
    ['a Content_Type twin', ['Content-Type: application/json', 'Content_Type: text/xml']],
    ['Connection naming Content-Type', ['Content-Type: application/json', 'Connection: content-type']],
  ] as const) {
    void test(`the content-type allow-list: ${label} is refused`, async () => {
      const before = echo.received.length;
      const reply = await rawRequest(gw.port, requestHead('POST', '/json', [...lines, 'Content-Length: 2', ...(lines.some((l) => /^connection/i.test(l)) ? [] : ['Connection: close'])]) + '{}', { timeoutMs: 3000, settleMs: 0 });
      assert.equal(reply.status, 400, reply.body);
      assert.match(reply.body, /ambiguous_header/);
      assert.equal(echo.received.length, before);
    });
  }

  void test('a header: rate-limit key sent twice or with a `_` twin is refused', async () => {
    for (const lines of [['X-Org-Key: a', 'X-Org-Key: b'], ['X-Org-Key: a', 'X_Org_Key: b']]) {
      const before = echo.received.length;
      const reply = await send('GET', '/limited', lines);
      assert.equal(reply.status, 400, reply.body);
      assert.match(reply.body, /ambiguous_header/);
      assert.equal(echo.received.length, before);
    }
    const ok = await send('GET', '/limited', ['X-Org-Key: a']);
    assert.equal(ok.status, 200);
  });
});

void describe('credential carriers are never forwarded by accident', () => {
  void test('forwardAuthorization forwards Authorization only, never an API key header', async () => {
    const before = echo.received.length;
    const token = await mint(key, {});
    const reply = await send('GET', '/fwd', [`Authorization: Bearer ${token}`, 'X-API-Key: pk_live_secret', 'X_API_KEY: pk_live_secret2']);
    assert.equal(reply.status, 200, reply.body);
    const seen = echo.received[before];
    assert.ok(seen !== undefined);
    assert.equal(seen.headers.authorization, `Bearer ${token}`);
    assert.ok(!seen.rawHeaders.some((v) => v.includes('pk_live_secret')), JSON.stringify(seen.rawHeaders));
  });

  void test('an API key header sent to a public route is not forwarded', async () => {
    const path = `/public/${++counter}`;
    await send('GET', path, ['X-API-Key: pk_live_secret', 'x-api-key: pk_live_again']);
    assert.ok(!received(path).rawHeaders.some((v) => v.includes('pk_live')));
  });

  const queries: readonly [string, string][] = [
    ['?a=1&access_token=abc&b=2', '?a=1&b=2'],
    ['?access_token=abc', ''],
    ['?ACCESS_TOKEN=abc&x=1', '?x=1'],
    ['?access%5Ftoken=abc&x=1', '?x=1'],
    ['?access_token', ''],
    ['?x=1&key=pk_live_abc', '?x=1'],
    ['?x=1;access_token=abc&y=2', '?y=2'],
    ['?access+token=abc&keep=1', '?keep=1'], // PHP reads `access token` and `access.token` as access_token
    ['?access.token=abc&keep=1', '?keep=1'],
    ['?Key=pk_live_abc', ''],
    ['?access_token[]=abc&k=1', '?k=1'], // PHP and Rack arrays
    ['?access_token[x]=abc', ''],
    ['?access[token=abc', ''], // PHP reads an unmatched [ as _
    ['?access_token%00=abc&k=1', '?k=1'], // a name cut at NUL
    ['?_method=DELETE&a=1', '?a=1'], // a method override where the route allows none
    ['?_METHOD=delete', ''],
    ['?%', '?%'],
    ['?tokens=1&access_token_x=2', '?tokens=1&access_token_x=2'],
  ];
  for (const [query, expected] of queries) {
    void test(`credential query parameters are removed on every route: ${query} → ${expected === '' ? '(none)' : expected}`, async () => {
      const path = `/q/${++counter}`;
      const reply = await send('GET', path + query, []);
      assert.equal(reply.status, 200, reply.body);
      const seen = received(path);
      assert.equal(seen.url, path + expected);
    });
  }

  void test('an API key in `Authorization: ApiKey` is never forwarded, on public routes either', async () => {
    const path = `/public/${++counter}`;
    await send('GET', path, ['Authorization: ApiKey pk_live_secret']);
    assert.ok(!received(path).rawHeaders.some((v) => v.includes('pk_live')), JSON.stringify(received(path).rawHeaders));
  });

  void test('forwardAuthorization forwards Authorization only when it carried the verified bearer token', async () => {
    for (const value of ['JWT forged.token.here', 'Bearer\tforged.token.here', 'Token forged', 'Bearer,forged']) {
      const before = echo.received.length;
      const reply = await send('GET', '/fwd-guest', [`Authorization: ${value}`]);
      assert.equal(reply.status, 200, `${value}: ${reply.body}`);
      const seen = echo.received[before];
      assert.ok(seen !== undefined);
      assert.equal(seen.headers['x-auth-method'], 'anonymous');
      assert.equal(seen.headers.authorization, undefined, `${value} was forwarded although another authenticator decided`);
    }
    const token = await mint(key, {});
    const before = echo.received.length;
    assert.equal((await send('GET', '/fwd-guest', [`Authorization: Bearer ${token}`])).status, 200);
    assert.equal(echo.received[before]?.headers.authorization, `Bearer ${token}`);
  });

  void test('a method override in the query: removed where not allowed, checked where allowed', async () => {
    let before = echo.received.length;
    const allowed = await send('POST', '/override?_method=PATCH', ['Content-Length: 0']);
    assert.equal(allowed.status, 200, allowed.body);
    assert.equal(echo.received[before]?.url, '/override?_method=PATCH');
    before = echo.received.length;
    for (const query of ['?_method=DELETE', '?_method=PATCH&_method=DELETE', '?_method[]=DELETE']) {
      const refused = await send('POST', `/override${query}`, ['Content-Length: 0']);
      assert.equal(refused.status, query.includes('&') ? 400 : 405, `${query}: ${refused.body}`);
    }
    assert.equal(echo.received.length, before, 'forwarded');
  });

  void test('a bearer token in the query of an authenticated route is removed too', async () => {
    const token = await mint(key, { tenant_id: 'acme' });
    const path = `/org/${++counter}`;
    const reply = await send('GET', `${path}?access_token=${token}&v=1`, [`Authorization: Bearer ${token}`, 'X-Org: acme']);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(received(path).url, `${path}?v=1`);
  });
});

void describe('bodies on methods without body semantics', () => {
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS']) {
    for (const [label, lines, body] of [
      ['Content-Length', ['Content-Length: 5'], 'hello'],
      ['chunked', ['Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'],
    ] as const) {
      void test(`${method} with a ${label} body is refused with 400 body_not_allowed and nothing is forwarded`, async () => {
        const path = `/bodyless/${++counter}`;
        const before = echo.received.length;
        const reply = await rawRequest(gw.port, requestHead(method, path, [...lines, 'Connection: close']) + body, { timeoutMs: 3000, settleMs: 0 });
        assert.equal(reply.status, 400);
        if (method !== 'HEAD') assert.match(reply.body, /body_not_allowed/);
        assert.equal(echo.received.length, before, 'forwarded');
        const records = await auditRecordsFor(gw, path);
        assert.equal(records[0]?.reason, 'body_not_allowed');
      });
    }
  }

  void test('Content-Length: 0 on GET is not a body', async () => {
    const reply = await send('GET', `/bodyless/${++counter}`, ['Content-Length: 0']);
    assert.equal(reply.status, 200);
  });

  void test('a route may allow a body on DELETE', async () => {
    const before = echo.received.length;
    const reply = await send('DELETE', '/bulk', ['Content-Length: 5'], { body: 'hello' });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(echo.received[before]?.bodyBytes, 5);
  });
});

void describe('headers.allowUnderscores', () => {
  const policy = (allowUnderscores: boolean): HeaderPolicy => ({
    protectedNames: new Set(['x-user-id', 'x-request-id']), requestIdHeader: 'x-request-id', decisionHeaders: new Set(['content-type', 'x-org']),
    credentialHeaders: new Set(['x-api-key']), strippedAuthorizationSchemes: new Set(['apikey']), fromTrustedProxies: new Set(), allowUnderscores,
  });
  const raw = ['Host', 'gw.test', 'My_Header', 'kept', 'X_User_Id', 'spoof', 'X_API_KEY', 'pk_live_x', 'X_Forwarded_Prefix', '/admin', 'SCRIPT_NAME', '/admin'];

  void test('on: plain `_` names pass, but protected, credential and proxy-asserted names are still removed in their `_` spelling', () => {
    const forwarded = readInboundHeaders(raw, undefined, false, policy(true)).forward.filter((_, i) => i % 2 === 0);
    assert.deepEqual(forwarded, ['My_Header', 'SCRIPT_NAME']);
  });

  void test('off (the default): every `_` name is removed', () => {
    assert.deepEqual(readInboundHeaders(raw, undefined, false, policy(false)).forward, []);
  });

  void test('a `_` twin of a decision header is ambiguous either way', () => {
    for (const allow of [true, false]) {
      assert.match(readInboundHeaders(['X-Org', 'acme', 'X_Org', 'globex'], undefined, false, policy(allow)).ambiguous ?? '', /x-org/);
    }
  });
});
