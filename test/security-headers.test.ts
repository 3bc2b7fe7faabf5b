// Security response headers: the defaults on relayed and generated responses, per-route overrides
// member by member, upstream Server / X-Powered-By removed, and Strict-Transport-Security only on
// responses to requests that reached the gateway over TLS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { request as httpsRequest } from 'node:https';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { syntheticExchange } from '../src/explain/explain.js';
import type { Exchange } from '../src/pipeline/exchange.js';
import { requestPath } from '../src/pipeline/request-path.js';
import { openExchange } from '../src/server/handle-request.js';
import { issueCertificate, issueCertificateAuthority } from '../src/tls/issue-certificates.js';
import { assertProblem } from './harness/assertions.js';
import { configProblems } from './harness/config.js';
import { startGateway, toYaml, type TestGateway } from './harness/gateway.js';
import { startHeaderUpstream, type HeaderUpstream } from './harness/header-upstream.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

const UNTRUSTED = '127.0.0.2';
let upstream: HeaderUpstream;
let gw: TestGateway;

const UPSTREAM_HEADERS: OutgoingHttpHeaders = {
  server: 'Apache/2.4.41 (Ubuntu)',
  'X-Powered-By': 'Express',
  'x-frame-options': 'ALLOWALL',
  'content-security-policy': "default-src 'self'",
  'x-aspnet-version': '4.0.30319',
};

before(async () => {
  upstream = await startHeaderUpstream(UPSTREAM_HEADERS);
  gw = await startGateway({
    trustedProxies: ['127.0.0.1/32'],
    upstreams: { app: { targets: [upstream.url] } },
    responseHeaders: { removeUpstream: ['Server', 'X-Powered-By', 'X-AspNet-Version'] },
    routes: [
      { name: 'plain', match: { path: '/plain/**' }, upstream: 'app', public: true },
      {
        name: 'page', match: { path: '/page/**' }, upstream: 'app', public: true,
        responseHeaders: {
          frameOptions: 'SAMEORIGIN', keepUpstream: ['content-security-policy'], removeUpstream: [], referrerPolicy: 'strict-origin-when-cross-origin',
          strictTransportSecurity: { maxAgeSeconds: 63072000, includeSubDomains: true, preload: true },
        },
      },
      { name: 'bare', match: { path: '/bare/**' }, upstream: 'app', public: true, responseHeaders: { contentTypeOptions: false, frameOptions: false, referrerPolicy: false, strictTransportSecurity: false } },
    ],
  });
});

after(async () => {
  await gw.close();
  await upstream.close();
});

function send(path: string, lines: readonly string[] = [], localAddress?: string): Promise<RawResponse> {
  return rawRequest(gw.port, requestHead('GET', path, [...lines, 'Connection: close']), { timeoutMs: 3000, settleMs: 0, ...(localAddress === undefined ? {} : { localAddress }) });
}

describe('security response headers through a gateway', () => {
  it('sets the defaults on a relayed response, replacing the upstream\'s values, and removes the upstream\'s Server and X-Powered-By', async () => {
    const res = await send('/plain/a');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['content-security-policy'], "frame-ancestors 'none'");
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    assert.equal(res.headers.server, undefined);
    assert.equal(res.headers['x-powered-by'], undefined);
    assert.equal(res.headers['x-aspnet-version'], undefined, 'the top-level removeUpstream list');
    assert.equal(res.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  });

  it('sets the same on the gateway\'s own answers, which never carry Server or X-Powered-By', async () => {
    const res = await send('/nowhere');
    assertProblem(res, 404, 'route_not_found');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['content-security-policy'], "frame-ancestors 'none'");
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers.server, undefined);
    assert.equal(res.headers['x-powered-by'], undefined);
  });

  it('answers a request it cannot parse (refused on the connection, before any route) with no-store and nosniff, and no Server', async () => {
    const res = await rawRequest(gw.port, requestHead('POST', '/plain/a', ['Content-Length: 1', 'Content-Length: 2', 'Connection: close']) + 'xy', { timeoutMs: 3000, settleMs: 0 });
    assertProblem(res, 400, 'bad_request');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers.server, undefined);
    assert.equal(upstream.received.some((r) => r.method === 'POST'), false, 'nothing forwarded');
  });

  it('takes a route\'s members over the top-level ones, member by member, and keeps the upstream values it is told to', async () => {
    const res = await send('/page/a');
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
    assert.equal(res.headers['content-security-policy'], "default-src 'self'", 'the upstream\'s own policy, kept');
    assert.equal(res.headers['referrer-policy'], 'strict-origin-when-cross-origin');
    assert.equal(res.headers['x-content-type-options'], 'nosniff', 'inherited default');
    assert.equal(res.headers.server, 'Apache/2.4.41 (Ubuntu)', 'an empty removeUpstream keeps them');
    assert.equal(res.headers['x-powered-by'], 'Express');
  });

  it('sets none of the headers a route turns off, relaying what the upstream sent of them', async () => {
    const res = await send('/bare/a');
    for (const name of ['x-content-type-options', 'referrer-policy']) assert.equal(res.headers[name], undefined, name);
    assert.equal(res.headers['x-frame-options'], 'ALLOWALL', 'without the gateway\'s value, the upstream\'s is relayed');
    assert.equal(res.headers['content-security-policy'], "default-src 'self'");
    const secure = await send('/bare/a', ['X-Forwarded-Proto: https']);
    assert.equal(secure.headers['strict-transport-security'], undefined);
  });

  it('sends Strict-Transport-Security when a trusted proxy says the client used https, and never on an untrusted peer\'s word', async () => {
    const trusted = await send('/plain/a', ['X-Forwarded-Proto: https']);
    assert.equal(trusted.headers['strict-transport-security'], 'max-age=31536000');
    const page = await send('/page/a', ['X-Forwarded-Proto: https']);
    assert.equal(page.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains; preload');
    const denied = await send('/nowhere', ['X-Forwarded-Proto: https']);
    assert.equal(denied.headers['strict-transport-security'], 'max-age=31536000', 'the gateway\'s own answers too');
    const spoofed = await send('/plain/a', ['X-Forwarded-Proto: https'], UNTRUSTED);
    assert.equal(spoofed.status, 200);
    assert.equal(spoofed.headers['strict-transport-security'], undefined);
    const plain = await send('/plain/a', ['X-Forwarded-Proto: http']);
    assert.equal(plain.headers['strict-transport-security'], undefined);
  });
});

describe('the secure fact and the response stage', () => {
  const config = compileConfig(loadConfigText(toYaml({
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    routes: [{ name: 'r', match: { path: '/**' }, upstream: 'app', public: true }],
  }), 'gateway.yaml', {}));
  const path = requestPath(config, () => true);

  function headersFor(ex: Exchange, generated: boolean, upstreamSent: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = { ...upstreamSent };
    ex.finishHeaders(out, generated);
    return out;
  }

  it('adds Strict-Transport-Security exactly when the exchange is secure', () => {
    const ex = syntheticExchange(config, path, { method: 'GET', target: '/x', headers: [], from: '192.0.2.1' });
    assert.equal(ex.secure, false, 'an exchange on a plain socket');
    assert.equal(headersFor(ex, false)['strict-transport-security'], undefined);
    ex.secure = true;
    assert.equal(headersFor(ex, false)['strict-transport-security'], 'max-age=31536000');
    assert.equal(headersFor(ex, true)['strict-transport-security'], 'max-age=31536000');
    assert.equal(headersFor(ex, false, { 'strict-transport-security': 'max-age=0' })['strict-transport-security'], 'max-age=31536000', 'the upstream\'s value is overridden');
  });

  it('marks an exchange opened on a real TLS connection secure', async () => {
    const ca = await issueCertificateAuthority('test ca');
    const leaf = await issueCertificate({ commonName: 'localhost', ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, ca);
    let seen: boolean | null = null;
    const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      seen = openExchange(config, path, req, res).secure;
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/', ca: ca.cert, agent: false }, (res) => { res.resume(); res.on('end', resolve); });
        req.on('error', reject);
        req.end();
      });
      assert.equal(seen, true);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('response header config errors, located', () => {
  const base = (responseHeaders: unknown, route?: unknown): string => toYaml({
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    responseHeaders,
    routes: [{ name: 'r', match: { path: '/**' }, upstream: 'app', public: true, ...(route === undefined ? {} : { responseHeaders: route }) }],
  });
  const cases: readonly (readonly [string, string, RegExp])[] = [
    ['preload without includeSubDomains', base({ strictTransportSecurity: { preload: true } }), /responseHeaders\.strictTransportSecurity\.preload: browsers preload only with includeSubDomains/],
    ['preload with a short max-age, on a route', base({}, { strictTransportSecurity: { preload: true, includeSubDomains: true, maxAgeSeconds: 600 } }), /routes\[0\]\.responseHeaders\.strictTransportSecurity\.preload: /],
    ['frameAncestors beside a policy with its own frame-ancestors', base({ contentSecurityPolicy: "default-src 'none'; frame-ancestors 'self'", frameAncestors: ['https://a.example.com'] }), /responseHeaders\.frameAncestors: contentSecurityPolicy has a frame-ancestors directive already/],
    ["'none' with other sources", base({ frameAncestors: ["'none'", "'self'"] }), /responseHeaders\.frameAncestors: 'none' allows no ancestor/],
    ['a frame-ancestors source with a semicolon', base({ frameAncestors: ["'self'; script-src *"] }), /responseHeaders\.frameAncestors\[0\]: must be a frame-ancestors source/],
    ['a policy with a line break', base({ contentSecurityPolicy: "default-src 'none'\r\nX-Injected: 1" }), /responseHeaders\.contentSecurityPolicy: must be a Content-Security-Policy of up to 4096 printable ASCII characters/],
    ['a policy too long', base({ contentSecurityPolicy: `default-src ${'a'.repeat(5000)}` }), /responseHeaders\.contentSecurityPolicy: must be a Content-Security-Policy/],
    ['an unknown frameOptions', base({ frameOptions: 'ALLOW-FROM https://a.example.com' }), /responseHeaders\.frameOptions: /],
    ['an unknown referrerPolicy', base({ referrerPolicy: 'never' }), /responseHeaders\.referrerPolicy: /],
    ['removing a framing header', base({ removeUpstream: ['Server', 'Content-Length'] }), /responseHeaders\.removeUpstream\[1\]: content-length frames or encodes the response body/],
    ['keeping a header the gateway does not set', base({}, { keepUpstream: ['Server'] }), /routes\[0\]\.responseHeaders\.keepUpstream\[0\]: server is not a security header the gateway sets/],
    ['a header name that is not a token', base({ removeUpstream: ['X Powered By'] }), /responseHeaders\.removeUpstream\[0\]: must be an HTTP header name/],
  ];
  for (const [what, text, expected] of cases) {
    it(`reports ${what} at its line`, () => {
      const problems = configProblems(text);
      assert.ok(problems.some((p) => /^gateway\.yaml:\d+:\d+: /.test(p) && expected.test(p)), `expected ${expected} in:\n${problems.join('\n')}`);
    });
  }

  it('reports a top-level problem once, not again for each route that overrides other members', () => {
    const problems = configProblems(base({ strictTransportSecurity: { preload: true } }, { frameOptions: 'SAMEORIGIN' }));
    assert.equal(problems.filter((p) => p.includes('preload')).length, 1, problems.join('\n'));
  });
});
