// listen.http.mode: redirect answers every plain request 308 to the same target on the HTTPS
// listener, built only from a checked Host and the canonical target (no open redirect); off opens no
// plain listener at all.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest } from './harness/raw-client.js';
import { httpsGet, testPki, withServerCertificate, type TestPki } from './harness/tls.js';

const head = (target: string, lines: readonly string[], method = 'GET'): string => [`${method} ${target} HTTP/1.1`, ...lines].join('\r\n') + '\r\n\r\n';


describe('listen.http.mode: redirect', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  let httpsPort: number;
  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    gw = await startGateway({
      listen: { http: { mode: 'redirect' }, https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: withServerCertificate(pki) });
    httpsPort = Number(new URL(gw.httpsUrl ?? '').port);
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('answers 308 to the same path and query on the HTTPS port, with one audit record and nothing forwarded', async () => {
    const res = await rawRequest(gw.port, head('/open/a?b=1&c=%20', ['Host: LocalHost:8080']));
    assert.equal(res.status, 308);
    assert.equal(res.headers.location, `https://localhost:${httpsPort}/open/a?b=1&c=%20`);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.match(res.body, /urn:portcullis:error:https_required/);
    const requestId = res.headers['x-request-id'] ?? '';
    const [record] = await gw.auditFor(requestId);
    assert.equal(record?.reason, 'https_required');
    assert.equal(record?.status, 308);
    assert.equal(record?.route ?? null, null, "no route ran");
    const followed = await httpsGet(res.headers.location ?? '', pki.ca.cert, { servername: 'localhost' });
    assert.equal(followed.status, 200, 'the Location serves');
    assert.equal(upstream.received.filter((r) => r.url === '/open/a?b=1&c=%20').length, 1, 'forwarded once, over HTTPS only');
  });

  it('builds the Location from the canonical target: dot segments, merged slashes, IP literals', async () => {
    const cases: [string, string, string][] = [
      ['/open/x/../y', 'localhost', `https://localhost:${httpsPort}/open/y`],
      ['//evil.example/x', 'localhost', `https://localhost:${httpsPort}/evil.example/x`],
      ['/', '127.0.0.1:80', `https://127.0.0.1:${httpsPort}/`],
      ['/v6', '[::1]', `https://[::1]:${httpsPort}/v6`],
      ['/trail.', 'gw.example.', `https://gw.example:${httpsPort}/trail.`],
    ];
    for (const [target, host, location] of cases) {
      const res = await rawRequest(gw.port, head(target, [`Host: ${host}`]));
      assert.equal(res.status, 308, `${target} ${host}`);
      assert.equal(res.headers.location, location, `${target} ${host}`);
    }
  });

  it('never redirects on a hostile Host or target: each is refused with its own error', async () => {
    const before = upstream.received.length;
    const cases: [string, readonly string[], number, string][] = [
      ['/a', ['Host: evil.example@gw.test'], 400, 'invalid_header'],
      ['/a', ['Host: evil.example/x'], 400, 'invalid_header'],
      ['/a', ['Host: gw.test', 'Host: evil.example'], 400, 'invalid_header'],
      ['/a', [], 400, 'invalid_header'],
      ['/a', ['Host: gw.test:99999x'], 400, 'invalid_header'],
      ['http://evil.example/a', ['Host: gw.test'], 400, 'invalid_target'],
      ['/a%0d%0aSet-Cookie:%20x=1', ['Host: gw.test'], 400, 'invalid_target'],
      ['/a\\\\evil.example', ['Host: gw.test'], 400, 'ambiguous_path'],
    ];
    for (const [target, lines, status, code] of cases) {
      const res = await rawRequest(gw.port, head(target, lines));
      assert.equal(res.status, status, `${target} ${lines.join(' | ')}: ${res.raw.slice(0, 200)}`);
      assert.equal(res.headers.location, undefined, `${target}: no Location`);
      assert.match(res.body, new RegExp(`error:${code}`), target);
    }
    // A raw CR inside the request line is a framing error for the parser, answered before any stage.
    const cr = await rawRequest(gw.port, 'GET /a\rLocation: https://evil.example HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    assert.equal(cr.status, 400);
    assert.equal(cr.headers.location, undefined);
    assert.equal(upstream.received.length, before, 'nothing forwarded');
  });

  it('redirects a request with a body without reading it, and closes the connection', async () => {
    const res = await rawRequest(gw.port, head('/open/post', ['Host: gw.test', 'Content-Length: 5'], 'POST') + 'hello');
    assert.equal(res.status, 308);
    assert.equal(res.headers.location, `https://gw.test:${httpsPort}/open/post`);
    assert.equal(res.headers.connection, 'close');
    assert.equal(upstream.received.filter((r) => r.url === '/open/post').length, 0);
  });
});

describe('listen.http.mode: off', () => {
  let upstream: EchoUpstream;
  let pki: TestPki;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    pki = await testPki();
    gw = await startGateway({
      listen: { http: { mode: 'off' }, https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: withServerCertificate(pki) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('opens no plain listener: its address is null, and HTTPS serves', async () => {
    assert.equal(gw.gateway.addresses().http, null);
    const readiness = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { components: Record<string, unknown> };
    assert.equal(readiness.components['listener:http'], undefined);
    const res = await httpsGet(`${gw.httpsUrl}/open/x`, pki.ca.cert);
    assert.equal(res.status, 200);
  });
});
