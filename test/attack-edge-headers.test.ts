// Hostile input against the security response headers: X-Forwarded-Proto repeated by a client in
// front of an appending proxy, and an upstream's own Strict-Transport-Security on a request the
// gateway does not know arrived over TLS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { startHeaderUpstream, type HeaderUpstream } from './harness/header-upstream.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

let echo: EchoUpstream;
let hsts: HeaderUpstream;
let gw: TestGateway;
let counter = 0;

before(async () => {
  echo = await startEchoUpstream();
  // An upstream that clears the browser's HSTS memory, as a framework's default or a misconfiguration would.
  hsts = await startHeaderUpstream({ 'Strict-Transport-Security': 'max-age=0' });
  gw = await startGateway({
    trustedProxies: ['127.0.0.1/32'],
    upstreams: { echo: { targets: [echo.url] }, hsts: { targets: [hsts.url] } },
    routes: [
      { name: 'echo', match: { path: '/echo/**' }, upstream: 'echo', public: true },
      { name: 'hsts', match: { path: '/hsts/**' }, upstream: 'hsts', public: true },
      { name: 'kept', match: { path: '/kept/**' }, upstream: 'hsts', public: true, responseHeaders: { keepUpstream: ['strict-transport-security'] } },
      { name: 'off', match: { path: '/off/**' }, upstream: 'hsts', public: true, responseHeaders: { strictTransportSecurity: false } },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
  await hsts.close();
});

function send(path: string, lines: readonly string[] = []): Promise<RawResponse> {
  return rawRequest(gw.port, requestHead('GET', path, [...lines, 'Connection: close']), { timeoutMs: 3000, settleMs: 0 });
}

function forwardedProto(path: string): string | string[] | undefined {
  return echo.received.find((r) => r.url === path)?.headers['x-forwarded-proto'];
}

describe('X-Forwarded-Proto from a trusted proxy, repeated', () => {
  it('believes neither of two fields (the client\'s first, the proxy\'s appended), as with the same list in one field', async () => {
    // A plain-HTTP client sends `https`; a trusted proxy that appends its own field adds `http`.
    for (const lines of [
      ['X-Forwarded-Proto: https', 'X-Forwarded-Proto: http'],
      ['X-Forwarded-Proto: https, http'],
      ['X-Forwarded-Proto: https', 'X-Forwarded-Proto: https'],
    ]) {
      const path = `/echo/${++counter}`;
      const res = await send(path, lines);
      assert.equal(res.status, 200, lines.join(' | '));
      assert.equal(res.headers['strict-transport-security'], undefined, `no HSTS on a repeated claim: ${lines.join(' | ')}`);
      assert.equal(forwardedProto(path), 'http', `the upstream is told the gateway's own scheme: ${lines.join(' | ')}`);
    }
  });

  it('still believes one field with one scheme', async () => {
    const path = `/echo/${++counter}`;
    const res = await send(path, ['X-Forwarded-Proto: https']);
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(forwardedProto(path), 'https');
  });
});

describe('an upstream\'s Strict-Transport-Security', () => {
  it('is not relayed on a response to a plain-HTTP request: the gateway\'s value (none there) replaces it', async () => {
    const res = await send(`/hsts/${++counter}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['strict-transport-security'], undefined);
  });

  it('is replaced by the gateway\'s value when a trusted proxy says the client used https', async () => {
    const res = await send(`/hsts/${++counter}`, ['X-Forwarded-Proto: https']);
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
  });

  it('is relayed where keepUpstream names it, or where the route sends none of its own (false)', async () => {
    assert.equal((await send(`/kept/${++counter}`)).headers['strict-transport-security'], 'max-age=0');
    assert.equal((await send(`/off/${++counter}`)).headers['strict-transport-security'], 'max-age=0');
  });
});
