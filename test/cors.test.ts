// CORS at the gateway: preflights answered (never forwarded, before authentication), the route's
// policy the one truth on every response (the gateway's own denials included), and every hostile
// spelling of an origin decided precisely.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileOrigins, originAllowed } from '../src/cors/origin.js';
import { explain } from '../src/explain/explain.js';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { startHeaderUpstream, type HeaderUpstream } from './harness/header-upstream.js';
import { testKey } from './harness/jwt.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';
import { configProblems } from './harness/config.js';
import { toYaml } from './harness/gateway.js';

const APP = 'https://app.example.com';
let echo: EchoUpstream;
let noisy: HeaderUpstream;
let gw: TestGateway;
let counter = 0;

before(async () => {
  const key = await testKey('ES256', 'cors');
  echo = await startEchoUpstream();
  noisy = await startHeaderUpstream({
    'access-control-allow-origin': '*',
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': 'X-Internal-Debug',
    'access-control-allow-methods': 'GET, POST, PUT, DELETE, PATCH',
    'Access-Control-Max-Age': '86400',
    vary: 'Accept-Encoding',
  });
  gw = await startGateway({
    upstreams: { echo: { targets: [echo.url] }, noisy: { targets: [noisy.url] } },
    authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
    // A bucket of one that refills once a day: the second request is refused whenever the test runs (no window edge between the two).
    rateLimits: { once: { algorithm: 'token-bucket', limit: 1, per: '1d', by: ['route'] } },
    cors: {
      app: {
        origins: [APP, 'https://*.example.com', 'http://localhost:3000'],
        methods: ['GET', 'POST', 'PUT', 'DELETE'],
        requestHeaders: ['Authorization', 'Content-Type'],
        exposeHeaders: ['X-Order-Total'],
        credentials: true,
        maxAgeSeconds: 300,
      },
      anyone: { origins: ['*'] },
    },
    routes: [
      { name: 'orders', match: { path: '/api/orders/**', methods: ['GET', 'PUT', 'DELETE'] }, upstream: 'echo', authenticate: ['users'], cors: 'app' },
      { name: 'public', match: { path: '/public/**', methods: ['GET', 'POST'] }, upstream: 'echo', public: true, cors: 'app' },
      { name: 'limited', match: { path: '/limited/**', methods: ['GET'] }, upstream: 'echo', public: true, rateLimit: 'once', cors: 'app' },
      { name: 'small', match: { path: '/small/**', methods: ['POST'] }, upstream: 'echo', public: true, limits: { maxBodyBytes: 10 }, cors: 'app' },
      { name: 'noisy', match: { path: '/noisy/**', methods: ['GET'] }, upstream: 'noisy', public: true, cors: 'app' },
      { name: 'raw', match: { path: '/raw/**', methods: ['GET', 'OPTIONS'] }, upstream: 'noisy', public: true },
      { name: 'anything', match: { path: '/anything/**' }, upstream: 'echo', public: true, cors: 'app' },
      { name: 'open', match: { path: '/open/**', methods: ['GET'] }, upstream: 'echo', public: true, cors: 'anyone' },
      { name: 'override', match: { path: '/override/**', methods: ['POST', 'PATCH', 'DELETE'] }, upstream: 'echo', public: true, allowMethodOverride: true, cors: 'app' },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
  await noisy.close();
});

/** A fresh path under `prefix`, so each request's audit record and upstream traces are its own. */
function fresh(prefix: string): string {
  counter++;
  return `${prefix}/${counter}`;
}

function send(method: string, path: string, lines: readonly string[], body = ''): Promise<RawResponse> {
  const head = requestHead(method, path, [...lines, ...(body === '' ? [] : [`Content-Length: ${Buffer.byteLength(body)}`]), 'Connection: close']);
  return rawRequest(gw.port, head + body, { timeoutMs: 3000, settleMs: 0 });
}

function preflight(path: string, origin: string, method: string, headers?: string): Promise<RawResponse> {
  return send('OPTIONS', path, [`Origin: ${origin}`, `Access-Control-Request-Method: ${method}`, ...(headers === undefined ? [] : [`Access-Control-Request-Headers: ${headers}`])]);
}

function forwarded(path: string): boolean {
  return echo.received.some((r) => r.url === path) || noisy.received.some((r) => r.url === path);
}

function allowHeaders(res: RawResponse): string[] {
  return Object.keys(res.headers).filter((h) => h.startsWith('access-control-allow-'));
}

function vary(res: RawResponse): string[] {
  return (res.headers.vary ?? '').split(',').map((v) => v.trim().toLowerCase()).filter((v) => v !== '');
}

describe('preflights', () => {
  it('answers a preflight itself with 204 and the policy, before authentication, on a route whose methods do not list OPTIONS; nothing is forwarded; one audit record', async () => {
    const path = fresh('/api/orders');
    const res = await preflight(path, APP, 'PUT', 'Authorization, content-type');
    assert.equal(res.status, 204, res.raw);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-length'], undefined, 'RFC 9110 §8.6: no Content-Length on a 204');
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-methods'], 'GET, PUT, DELETE', 'the policy\'s methods within the route\'s');
    assert.equal(res.headers['access-control-allow-headers'], 'authorization, content-type');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-max-age'], '300');
    assert.equal(res.headers['access-control-expose-headers'], undefined, 'expose headers belong to actual responses');
    assert.deepEqual(vary(res), ['origin', 'access-control-request-method', 'access-control-request-headers']);
    assert.ok(res.headers['x-request-id'] !== undefined);
    assert.equal(forwarded(path), false, 'the upstream saw nothing');
    const record = await oneAuditRecordFor(gw, path);
    assert.equal(record.status, 204);
    assert.equal(record.decision, 'allow');
    assert.equal(record.reason, 'cors_preflight');
    assert.equal(record.stage, 'cors-preflight');
    assert.equal(record.route, 'orders');
    assert.equal(record.upstreamStatus ?? null, null, 'no upstream answered');
  });

  // On a route that takes any method, so the policy alone decides.
  for (const [what, origin, method, headers] of [
    ['an origin the policy does not list', 'https://evil.test', 'GET', undefined],
    ['a method the policy does not list', APP, 'PATCH', undefined],
    ['a method that is not a token', APP, 'G(E)T', undefined],
    ['a request header the policy does not list', APP, 'PUT', 'Content-Type, X-Secret'],
    ['a request header list with a malformed name', APP, 'PUT', 'Content-Type, X Secret'],
    ['more request headers than a preflight may ask for', APP, 'PUT', Array.from({ length: 65 }, () => 'content-type').join(',')],
  ] as const) {
    it(`refuses a preflight with ${what}: 403 cors_preflight_refused without Access-Control-Allow-*, nothing forwarded, one audit record`, async () => {
      const path = fresh('/anything');
      const res = await preflight(path, origin, method, headers);
      assertProblem(res, 403, 'cors_preflight_refused');
      assert.deepEqual(allowHeaders(res), []);
      assert.equal(res.headers['access-control-expose-headers'], undefined);
      assert.ok(vary(res).includes('origin'));
      assert.equal(forwarded(path), false);
      const record = await oneAuditRecordFor(gw, path);
      assert.equal(record.reason, 'cors_preflight_refused');
      assert.equal(record.stage, 'cors-preflight');
      assert.match(record.detail ?? '', /^cors app: /);
      assert.equal(record.route, 'anything');
    });
  }

  it('answers a preflight for a method no route at the path accepts with the usual 405, whatever the policy allows', async () => {
    const path = fresh('/api/orders');
    const res = await preflight(path, APP, 'POST');
    assertProblem(res, 405, 'method_not_allowed');
    assert.deepEqual(allowHeaders(res), []);
    assert.equal((await preflight(fresh('/api/orders'), APP, 'PATCH')).status, 405);
    assertProblem(res, 405, 'method_not_allowed');
    assert.deepEqual(allowHeaders(res), []);
    assert.equal(forwarded(path), false);
  });

  it('forwards a plain OPTIONS (no Access-Control-Request-Method) like any request, and a preflight on a route without a policy', async () => {
    const plain = fresh('/raw');
    assert.equal((await send('OPTIONS', plain, [`Origin: ${APP}`])).status, 200);
    assert.ok(forwarded(plain));
    const path = fresh('/raw');
    const res = await preflight(path, APP, 'GET');
    assert.equal(res.status, 200);
    assert.ok(forwarded(path), 'a route without a policy leaves CORS to its upstream');
    assert.equal(res.headers['access-control-allow-origin'], '*', 'the upstream\'s own answer, relayed');
  });

  it('answers "*" for a policy that allows every origin without credentials', async () => {
    const res = await preflight(fresh('/open'), 'https://anywhere.test', 'GET');
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  });

  it('explain shows the preflight answered by the cors-preflight stage, never authenticated or forwarded', async () => {
    const e = await explain(gw.gateway.config, {
      method: 'OPTIONS', target: '/api/orders/7', from: '192.0.2.1',
      headers: [['Host', 'gw.test'], ['Origin', APP], ['Access-Control-Request-Method', 'DELETE']],
    });
    assert.equal(e.route?.name, 'orders');
    const last = e.stages.at(-1);
    assert.deepEqual([last?.stage, last?.outcome, last?.status, last?.code], ['cors-preflight', 'respond', 204, 'cors_preflight']);
    assert.equal(e.stages.some((s) => s.stage === 'authenticate'), false);
    assert.deepEqual(e.result, { status: 204, code: 'cors_preflight', forwarded: false });
  });
});

describe('actual requests', () => {
  it('gives an allowed origin its own origin, credentials, the exposed headers and Vary: Origin; the upstream gets the Origin as sent', async () => {
    const path = fresh('/public');
    const res = await send('GET', path, [`Origin: ${APP}`]);
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.deepEqual(res.headers['access-control-expose-headers']?.split(', '),
      ['X-Order-Total', 'X-Request-Id', 'RateLimit', 'RateLimit-Policy', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'Retry-After', 'WWW-Authenticate']);
    assert.ok(vary(res).includes('origin'));
    assert.equal(echo.received.find((r) => r.url === path)?.headers.origin, APP);
  });

  it('forwards a request from an origin the policy does not allow, with no Access-Control-* in the answer (the browser keeps it from the page)', async () => {
    const path = fresh('/public');
    const res = await send('GET', path, ['Origin: https://evil.test']);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.headers).filter((h) => h.startsWith('access-control-')), []);
    assert.ok(vary(res).includes('origin'), 'a cache must not serve this answer to an allowed origin, or the reverse');
    assert.ok(forwarded(path));
  });

  it('sends no CORS headers to a request without Origin, but still Vary: Origin', async () => {
    const res = await send('GET', fresh('/public'), []);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.ok(vary(res).includes('origin'));
  });

  it('puts the CORS headers on the gateway\'s own denials: 401, 429 and 413 are readable by an allowed origin', async () => {
    const unauthenticated = await send('GET', fresh('/api/orders'), [`Origin: ${APP}`]);
    assertProblem(unauthenticated, 401, 'unauthenticated');
    assert.equal(unauthenticated.headers['access-control-allow-origin'], APP);
    assert.match(unauthenticated.headers['access-control-expose-headers'] ?? '', /WWW-Authenticate/);
    assert.ok(unauthenticated.headers['www-authenticate'] !== undefined);

    assert.equal((await send('GET', fresh('/limited'), [`Origin: ${APP}`])).status, 200);
    const limited = await send('GET', fresh('/limited'), [`Origin: ${APP}`]);
    assertProblem(limited, 429, 'rate_limited');
    assert.equal(limited.headers['access-control-allow-origin'], APP);
    assert.equal(limited.headers['access-control-allow-credentials'], 'true');
    assert.match(limited.headers['access-control-expose-headers'] ?? '', /Retry-After/);

    const path = fresh('/small');
    const tooLarge = await send('POST', path, [`Origin: ${APP}`, 'Content-Type: text/plain'], 'x'.repeat(100));
    assertProblem(tooLarge, 413, 'body_too_large');
    assert.equal(tooLarge.headers['access-control-allow-origin'], APP);
    assert.equal(forwarded(path), false);
  });

  it('puts no CORS headers on a denial for an origin the policy does not allow', async () => {
    const res = await send('GET', fresh('/api/orders'), ['Origin: https://evil.test']);
    assertProblem(res, 401, 'unauthenticated');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  it('replaces every CORS header an upstream sent with the policy\'s, and keeps its Vary', async () => {
    const allowed = await send('GET', fresh('/noisy'), [`Origin: ${APP}`]);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], APP);
    assert.equal(allowed.headers['access-control-allow-methods'], undefined);
    assert.equal(allowed.headers['access-control-max-age'], undefined);
    assert.doesNotMatch(allowed.headers['access-control-expose-headers'] ?? '', /X-Internal-Debug/);
    assert.deepEqual(vary(allowed), ['accept-encoding', 'origin']);

    const refused = await send('GET', fresh('/noisy'), ['Origin: https://evil.test']);
    assert.deepEqual(Object.keys(refused.headers).filter((h) => h.startsWith('access-control-')), [], 'the upstream\'s "*" and credentials never reach a disallowed origin');
  });

  it('relays an upstream\'s CORS headers unchanged on a route without a policy', async () => {
    const res = await send('GET', fresh('/raw'), ['Origin: https://evil.test']);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['access-control-expose-headers'], 'X-Internal-Debug');
  });

  it('answers "*" without credentials or Vary: Origin for a policy of every origin', async () => {
    const res = await send('GET', fresh('/open'), ['Origin: null']);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.equal(vary(res).includes('origin'), false);
  });

  it('refuses two Origin fields as ambiguous (400) before anything is forwarded', async () => {
    const path = fresh('/public');
    const res = await send('GET', path, [`Origin: ${APP}`, 'Origin: https://evil.test']);
    assertProblem(res, 400, 'ambiguous_header');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(forwarded(path), false);
    const preflightPath = fresh('/public');
    const twice = await send('OPTIONS', preflightPath, [`Origin: ${APP}`, 'Access-Control-Request-Method: GET', 'Access-Control-Request-Method: POST']);
    assertProblem(twice, 400, 'ambiguous_header');
  });
});

describe('method override under a CORS policy', () => {
  it('lets a browser\'s request become only a method the policy allows: a form POST cannot turn into what a preflight would refuse', async () => {
    // PATCH is a method of the route, not of the policy: a preflight for it is refused, so an
    // override that needs none must be too.
    for (const spelling of ['X-HTTP-Method-Override: PATCH', null] as const) {
      const path = fresh('/override/patch');
      const target = spelling === null ? `${path}?_method=PATCH` : path;
      const res = await send('POST', target, [`Origin: ${APP}`, 'Content-Type: application/x-www-form-urlencoded', ...(spelling === null ? [] : [spelling])], 'a=1');
      assertProblem(res, 405, 'method_not_allowed');
      assert.equal(forwarded(path) || forwarded(target), false);
      const record = await oneAuditRecordFor(gw, path);
      assert.match(record.detail ?? '', /CORS policy app does not allow it/);
    }
    // DELETE is the policy's: allowed from the browser; PATCH without Origin (no browser) too.
    const del = fresh('/override/delete');
    assert.equal((await send('POST', `${del}?_method=DELETE`, [`Origin: ${APP}`], 'a=1')).status, 200);
    const tool = fresh('/override/tool');
    assert.equal((await send('POST', tool, ['X-HTTP-Method-Override: PATCH'], 'a=1')).status, 200);
  });
});

describe('hostile origins', () => {
  // [Origin as sent, allowed?]: only a canonical serialised origin the policy lists, or one label under a pattern.
  const cases: readonly (readonly [string, boolean, string])[] = [
    [APP, true, 'listed exactly'],
    ['https://shop.example.com', true, 'one label under https://*.example.com'],
    ['https://xn--bcher-kva.example.com', true, 'a punycode label'],
    ['http://localhost:3000', true, 'listed with its port'],
    ['https://example.com', false, 'the pattern\'s bare domain'],
    ['https://a.b.example.com', false, 'two labels under the pattern'],
    ['https://evil.com.example.com', false, 'a dotted "label" under the pattern'],
    ['https://example.com.evil.test', false, 'the pattern\'s domain as a prefix'],
    ['https://evilexample.com', false, 'the pattern\'s domain as a suffix without the dot'],
    ['https://a_b.example.com', false, 'a label with "_"'],
    ['http://app.example.com', false, 'another scheme'],
    ['null', false, 'null (sandboxed frames, file: pages, redirects)'],
    ['https://APP.example.com', false, 'an upper-case host'],
    ['HTTPS://app.example.com', false, 'an upper-case scheme'],
    ['https://app.example.com.', false, 'a trailing dot'],
    ['https://app.example.com:443', false, 'the default port spelled out'],
    ['https://app.example.com:8443', false, 'another port'],
    ['http://localhost:3001', false, 'another port than the listed one'],
    ['https://app.example.com/', false, 'a path "/"'],
    ['https://app.example.com/path', false, 'a path'],
    ['https://user@app.example.com', false, 'user information'],
    [`${APP}, https://evil.test`, false, 'two origins in one field'],
    [`${APP} `, false, 'trailing white space inside the value is trimmed by HTTP, so this is the listed origin'],
    ['https://' + 'a'.repeat(40) + '.example.com' + '0'.repeat(400), false, 'a very long origin'],
    ['https://' + 'a'.repeat(64) + '.example.com', false, 'a label longer than 63 characters'],
  ];
  for (const [origin, allowed, why] of cases) {
    // HTTP strips the white space around a field value, so the padded one arrives as APP itself.
    const expected = origin === `${APP} ` ? true : allowed;
    it(`${expected ? 'allows' : 'refuses'} ${why}: ${JSON.stringify(origin.length > 60 ? `${origin.slice(0, 60)}…` : origin)}`, async () => {
      const actual = await send('GET', fresh('/public'), [`Origin: ${origin}`]);
      assert.equal(actual.status, 200);
      assert.equal(actual.headers['access-control-allow-origin'], expected ? origin.trim() : undefined);
      const pre = await preflight(fresh('/public'), origin, 'GET');
      assert.equal(pre.status, expected ? 204 : 403, pre.raw);
      assert.equal(pre.headers['access-control-allow-origin'], expected ? origin.trim() : undefined);
    });
  }
});

describe('origin matching without a gateway', () => {
  const set = compileOrigins(['http://[::1]:8080', 'http://127.0.0.1:3000', 'https://*.example.co.uk:8443'], (i, m) => assert.fail(`origin ${i}: ${m}`));
  for (const [origin, allowed] of [
    ['http://[::1]:8080', true],
    ['http://[0:0:0:0:0:0:0:1]:8080', false],
    ['http://[::1]', false],
    ['http://[zz::1]:8080', false],
    ['http://127.0.0.1:3000', true],
    ['http://127.0.0.1:03000', false],
    ['http://127.0.0.1:3000:3000', false],
    ['https://shop.example.co.uk:8443', true],
    ['https://shop.example.co.uk', false],
    ['https://.example.co.uk:8443', false],
    ['https://-x.example.co.uk:8443', false],
    ['', false],
  ] as const) {
    it(`${allowed ? 'allows' : 'refuses'} ${JSON.stringify(origin)}`, () => assert.equal(originAllowed(set, origin), allowed));
  }
});

describe('cors config errors, located', () => {
  const base = (cors: unknown, route: Record<string, unknown> = {}): string => toYaml({
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    cors: { web: cors },
    routes: [{ name: 'r', match: { path: '/r/**', methods: ['GET', 'POST'] }, upstream: 'app', public: true, cors: 'web', ...route }],
  });
  const cases: readonly (readonly [string, unknown, RegExp, Record<string, unknown>?])[] = [
    ['credentials with "*"', { origins: ['*'], credentials: true }, /cors\.web\.credentials: credentials cannot go with the origin "\*"/],
    ['"*" beside other origins', { origins: ['*', 'https://a.example.com'] }, /cors\.web\.origins\[0\]: "\*" allows every origin already/],
    ['a pattern with "*" inside a label', { origins: ['https://*example.com'] }, /cors\.web\.origins\[0\]: .*"\*" the whole first label/],
    ['a pattern with "*" further in', { origins: ['https://app.*.example.com'] }, /cors\.web\.origins\[0\]: .*"\*" the whole first label/],
    ['a pattern under a top-level domain', { origins: ['https://*.com'] }, /cors\.web\.origins\[0\]: .*top-level domain/],
    ['an origin with a path', { origins: ['https://a.example.com/app'] }, /cors\.web\.origins\[0\]: .*has a path/],
    ['an upper-case origin', { origins: ['https://A.example.com'] }, /cors\.web\.origins\[0\]: .*write https:\/\/a\.example\.com/],
    ['an origin with the default port', { origins: ['https://a.example.com:443'] }, /cors\.web\.origins\[0\]: .*default port: browsers leave it out, write https:\/\/a\.example\.com$/],
    ['an origin with a trailing dot', { origins: ['https://a.example.com.'] }, /cors\.web\.origins\[0\]: .*dot/],
    ['"null"', { origins: ['null'] }, /cors\.web\.origins\[0\]: "null" is the origin of sandboxed frames/],
    ['a scheme other than http and https', { origins: ['ftp://a.example.com'] }, /cors\.web\.origins\[0\]: .*not an http or https origin/],
    ['an unknown method', { origins: ['https://a.example.com'], methods: ['GET', 'FETCH'] }, /cors\.web\.methods\[1\]: unknown method FETCH/],
    ['a forbidden method', { origins: ['https://a.example.com'], methods: ['TRACE'] }, /cors\.web\.methods\[0\]: TRACE is a method browsers never send/],
    ['a lower-case method', { origins: ['https://a.example.com'], methods: ['get'] }, /cors\.web\.methods\[0\]: must be an HTTP method in upper case/],
    ['a request header that is not a token', { origins: ['https://a.example.com'], requestHeaders: ['Content Type'] }, /cors\.web\.requestHeaders\[0\]: must be an HTTP header name/],
    ['an exposed header with a colon', { origins: ['https://a.example.com'], exposeHeaders: ['X-A:'] }, /cors\.web\.exposeHeaders\[0\]: must be an HTTP header name/],
    ['a wildcard request header', { origins: ['https://a.example.com'], requestHeaders: ['*'] }, /cors\.web\.requestHeaders\[0\]: "\*" is not supported/],
    ['a policy none of whose methods the route accepts', { origins: ['https://a.example.com'], methods: ['PUT'] }, /routes\[0\]\.cors: cors policy "web" allows PUT, none of which this route accepts/],
    ['an unknown policy name', { origins: ['https://a.example.com'] }, /routes\[0\]\.cors: unknown cors policy "wbe"; did you mean "web"\?/, { cors: 'wbe' }],
  ];
  for (const [what, policy, expected, route] of cases) {
    it(`reports ${what} at its line`, () => {
      const problems = configProblems(base(policy, route));
      assert.ok(problems.some((p) => /^gateway\.yaml:\d+:\d+: /.test(p) && expected.test(p)), `expected ${expected} in:\n${problems.join('\n')}`);
    });
  }

  it('accepts exact origins, ports, IPv6 literals and one-label patterns', () => {
    assert.deepEqual(configProblems(base({ origins: ['https://a.example.com', 'http://localhost:3000', 'http://[::1]:8080', 'https://*.example.co.uk', 'https://*.example.com:8443'] })), []);
  });
});
