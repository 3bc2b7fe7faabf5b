// Hostile input against the response headers: X-Forwarded-Proto repeated by a client in front of an
// appending proxy, an upstream's own Strict-Transport-Security on a request the gateway does not
// know arrived over TLS, and upstream headers named hop-by-hop in a repeated Connection field.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { startHeaderUpstream, type HeaderUpstream } from './harness/header-upstream.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

let echo: EchoUpstream;
let hsts: HeaderUpstream;
let gw: TestGateway;
let counter = 0;
/** An upstream writing its response head byte for byte (`Connection` repeated, as a server or proxy may send it). */
let raw: Server;

/** The response head `raw` sends for a request to `/hop/<n>/<case>`. */
const HOP_HEADS: Readonly<Record<string, readonly string[]>> = {
  repeated: ['Connection: keep-alive', 'Connection: X-Internal-Token', 'X-Internal-Token: secret', 'X-Kept: yes'],
  listed: ['Connection: keep-alive, X-Internal-Token', 'X-Internal-Token: secret', 'X-Kept: yes'],
  cased: ['Connection: keep-alive', 'connection: x-INTERNAL-token, Keep-Alive', 'X-Internal-Token: secret', 'X-Kept: yes'],
};

before(async () => {
  raw = createServer((socket) => {
    socket.once('data', (chunk: Buffer) => {
      const kind = /^GET \/hop\/[0-9]+\/([a-z]+) /.exec(chunk.toString('latin1'))?.[1] ?? '';
      const body = 'ok';
      socket.end(['HTTP/1.1 200 OK', ...(HOP_HEADS[kind] ?? []), `Content-Length: ${body.length}`, '', body].join('\r\n'));
    });
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  echo = await startEchoUpstream();
  // An upstream that clears the browser's HSTS memory, as a framework's default or a misconfiguration would.
  hsts = await startHeaderUpstream({ 'Strict-Transport-Security': 'max-age=0' });
  gw = await startGateway({
    trustedProxies: ['127.0.0.1/32'],
    upstreams: { echo: { targets: [echo.url] }, hsts: { targets: [hsts.url] }, raw: { targets: [`http://127.0.0.1:${(raw.address() as AddressInfo).port}`] } },
    routes: [
      { name: 'hop', match: { path: '/hop/**' }, upstream: 'raw', public: true },
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
  await new Promise<void>((done) => raw.close(() => done()));
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

describe('upstream headers named in Connection', () => {
  for (const kind of Object.keys(HOP_HEADS)) {
    it(`are not relayed, however the Connection field is written: ${kind}`, async () => {
      const res = await send(`/hop/${++counter}/${kind}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-internal-token'], undefined);
      assert.equal(res.headers['x-kept'], 'yes', 'the other headers are relayed');
    });
  }
});
