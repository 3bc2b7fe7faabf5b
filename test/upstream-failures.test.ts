// Upstreams that are down, silent, slow, broken or rude: each failure maps to a precise status and
// reason code, the client never sees upstream internals, every exchange is audited once, and a
// client that goes away is recorded as an abort.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead, type RawResponse, type WireOptions } from './harness/raw-client.js';
import { freePort } from './harness/free-port.js';

/** One request on a raw socket; as before, a complete reply ends it at once unless `settleMs` says otherwise. */
const send = (port: number, request: string, options: WireOptions = {}): Promise<RawResponse> => rawRequest(port, request, { settleMs: 0, ...options });

const get = (path: string): string => requestHead('GET', path);

// ---------------------------------------------------------------------------------------------
// Misbehaving upstreams, each a tiny TCP or HTTP server on a free port.

/** A TCP server that runs `onSocket` for each connection; keeps sockets so they can be destroyed. */
async function tcpServer(onSocket: (socket: Socket) => void): Promise<{ server: Server; url: string; sockets: Set<Socket>; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, sockets, port };
}

/** Calls `handler` once the request head has arrived on the socket. */
function onRequestHead(socket: Socket, handler: (head: string) => void): void {
  let buffered = '';
  let seen = false;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    if (!seen && buffered.includes('\r\n\r\n')) { seen = true; handler(buffered); }
  });
}

async function closeTcp(s: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const socket of s.sockets) socket.destroy();
  await new Promise<void>((done) => s.server.close(() => done()));
}

async function httpServer(handler: Parameters<typeof createHttpServer>[1]): Promise<{ server: HttpServer; url: string }> {
  const server = createHttpServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function closeHttp(s: { server: HttpServer }): Promise<void> {
  await new Promise<void>((done) => { s.server.close(() => done()); s.server.closeAllConnections(); });
}


// ---------------------------------------------------------------------------------------------

const TIMEOUT_MS = 400;
const BODY_TIMEOUT_MS = 400;

type Tcp = Awaited<ReturnType<typeof tcpServer>>;
type Http = Awaited<ReturnType<typeof httpServer>>;

let gw: TestGateway;
let echo: EchoUpstream;
let downPort: number;
let silent: Tcp;
let stall: Tcp;
let reset: Tcp;
let garbage: Tcp;
let rude: Tcp;
let slow: Http;
let rrA: Http;
let rrB: Http;
/** Internals that must never appear in what a client sees. */
let internals: string[];

before(async () => {
  echo = await startEchoUpstream();
  downPort = await freePort();
  silent = await tcpServer(() => undefined); // accepts, reads, never answers
  stall = await tcpServer((socket) => onRequestHead(socket, () => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial body');
  }));
  reset = await tcpServer((socket) => onRequestHead(socket, () => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial body', () => {
      setTimeout(() => socket.resetAndDestroy(), 50);
    });
  }));
  garbage = await tcpServer((socket) => onRequestHead(socket, () => {
    socket.end('THIS IS NOT HTTP\r\n\r\nat Object.<anonymous> (/srv/secret/app.js:1:1)\r\n');
  }));
  rude = await tcpServer((socket) => onRequestHead(socket, () => {
    const body = 'relayed';
    socket.end(
      'HTTP/1.1 200 OK\r\n' +
      'Connection: close, X-Foo\r\n' +
      'X-Foo: secret-hop\r\n' +
      'Keep-Alive: timeout=999, max=7\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'Proxy-Authenticate: Basic realm="upstream"\r\n' +
      'Trailer: X-Checksum\r\n' +
      'X-Bar: end-to-end\r\n' +
      'Content-Type: text/plain\r\n' +
      `Content-Length: ${body.length}\r\n\r\n${body}`);
  }));
  slow = await httpServer((_req, res) => {
    const timer = setTimeout(() => res.end('late'), 1500);
    res.on('close', () => clearTimeout(timer));
  });
  rrA = await httpServer((_req, res) => res.end('A'));
  rrB = await httpServer((_req, res) => res.end('B'));
  const upstream = (url: string): Record<string, unknown> => ({ targets: [url], timeoutMs: TIMEOUT_MS, bodyTimeoutMs: BODY_TIMEOUT_MS, connectTimeoutMs: 1000 });
  const routes = ['down', 'silent', 'stall', 'reset', 'garbage', 'rude', 'slow', 'echo'].map((name) => ({
    name, match: { path: `/${name}/**` }, upstream: name, public: true,
  }));
  routes.push({ name: 'rr', match: { path: '/rr/**' }, upstream: 'rr', public: true });
  gw = await startGateway({
    upstreams: {
      down: upstream(`http://127.0.0.1:${downPort}`),
      silent: upstream(silent.url),
      stall: upstream(stall.url),
      reset: upstream(reset.url),
      garbage: upstream(garbage.url),
      rude: upstream(rude.url),
      slow: { targets: [slow.url], timeoutMs: 5000 },
      echo: upstream(echo.url),
      rr: { targets: [rrA.url, rrB.url] },
    },
    routes,
  });
  internals = ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR', 'undici', 'HPE_', 'socket', 'Error:', '    at ', '/srv/secret', String(downPort),
    String(silent.port), String(stall.port), String(reset.port), String(garbage.port), '127.0.0.1:'];
});

after(async () => {
  await gw.close();
  await Promise.all([closeTcp(silent), closeTcp(stall), closeTcp(reset), closeTcp(garbage), closeTcp(rude), closeHttp(slow), closeHttp(rrA), closeHttp(rrB), echo.close()]);
});

const recordFor = (path: string): Promise<AuditRecord> => oneAuditRecordFor(gw, path);

function assertNoInternals(reply: RawResponse): void {
  const headersText = Object.entries(reply.headers).map(([k, v]) => `${k}: ${v}`).join('\n');
  for (const secret of internals) {
    assert.ok(!reply.body.includes(secret), `client body leaks "${secret}": ${reply.body}`);
    assert.ok(!headersText.includes(secret), `client headers leak "${secret}": ${headersText}`);
  }
}

/** A problem+json reply (see `assertProblem`) that leaks no upstream internals; returns its requestId. */
function assertCleanProblem(reply: RawResponse, status: number, code: string): string {
  const doc = assertProblem(reply, status, code);
  assertNoInternals(reply);
  return doc.requestId;
}

let counter = 0;
const path = (route: string): string => `/${route}/${++counter}`;

void describe('upstream failures', () => {
  void test('an upstream that is down (closed port) gives 502 upstream_unreachable without internals', async () => {
    const p = path('down');
    const reply = await send(gw.port, get(p));
    const requestId = assertCleanProblem(reply, 502, 'upstream_unreachable');
    const record = await recordFor(p);
    assert.equal(record.requestId, requestId);
    assert.equal(record.status, 502);
    assert.equal(record.decision, 'error');
    assert.equal(record.reason, 'upstream_unreachable');
    assert.match(record.detail ?? '', /ECONNREFUSED/, 'the audit record keeps the precise cause');
    assert.equal(record.upstreamStatus, undefined, 'the upstream never answered');
  });

  void test('an upstream that accepts but never answers gives 504 upstream_timeout within timeoutMs', async () => {
    const p = path('silent');
    const reply = await send(gw.port, get(p));
    const requestId = assertCleanProblem(reply, 504, 'upstream_timeout');
    assert.ok(reply.elapsedMs >= TIMEOUT_MS - 50, `answered after ${Math.round(reply.elapsedMs)} ms, before timeoutMs`);
    assert.ok(reply.elapsedMs < TIMEOUT_MS + 1500, `answered after ${Math.round(reply.elapsedMs)} ms`);
    const record = await recordFor(p);
    assert.equal(record.requestId, requestId);
    assert.equal(record.decision, 'error');
    assert.equal(record.reason, 'upstream_timeout');
  });

  void test('an upstream that stalls its body beyond bodyTimeoutMs: the client response is cut short and audited as error', async () => {
    const p = path('stall');
    const reply = await send(gw.port, get(p), { timeoutMs: 4000 });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '100');
    assert.ok(!reply.complete, 'the truncated response must not look complete');
    assert.ok(reply.closed, 'the client connection must be closed');
    assert.ok(reply.elapsedMs < BODY_TIMEOUT_MS + 1500, `cut after ${Math.round(reply.elapsedMs)} ms`);
    assertNoInternals(reply);
    const record = await recordFor(p);
    assert.equal(record.requestId, reply.headers['x-request-id']);
    assert.equal(record.decision, 'error', JSON.stringify(record));
    assert.equal(record.upstreamStatus, 200);
    assert.ok(record.reason !== undefined && record.reason !== 'client_aborted', `reason ${String(record.reason)}`);
    assert.match(record.detail ?? '', /timeout/i);
  });

  void test('an upstream that resets the socket mid-body: the client response is aborted and audited as error', async () => {
    const p = path('reset');
    const reply = await send(gw.port, get(p));
    assert.equal(reply.status, 200);
    assert.ok(!reply.complete, 'the truncated response must not look complete');
    assert.ok(reply.closed, 'the client connection must be closed');
    assertNoInternals(reply);
    const record = await recordFor(p);
    assert.equal(record.requestId, reply.headers['x-request-id']);
    assert.equal(record.decision, 'error', JSON.stringify(record));
    assert.equal(record.upstreamStatus, 200);
    assert.ok(record.reason !== undefined && record.reason !== 'client_aborted', `reason ${String(record.reason)}`);
  });

  void test('an upstream that answers invalid HTTP gives 502 upstream_error without internals', async () => {
    const p = path('garbage');
    const reply = await send(gw.port, get(p));
    const requestId = assertCleanProblem(reply, 502, 'upstream_error');
    const record = await recordFor(p);
    assert.equal(record.requestId, requestId);
    assert.equal(record.decision, 'error');
    assert.equal(record.reason, 'upstream_error');
  });

  void test('hop-by-hop headers in the upstream response are not relayed; end-to-end ones are', async () => {
    const p = path('rude');
    const reply = await send(gw.port, get(p), { settleMs: 200 });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'relayed');
    assert.equal(reply.headers['x-bar'], 'end-to-end');
    assert.equal(reply.headers['x-foo'], undefined, 'a header listed in the upstream Connection was relayed');
    assert.equal(reply.headers['proxy-connection'], undefined);
    assert.equal(reply.headers['proxy-authenticate'], undefined);
    assert.equal(reply.headers.trailer, undefined);
    assert.doesNotMatch(reply.headers['keep-alive'] ?? '', /999|max=7/, 'the upstream Keep-Alive was relayed');
    assert.doesNotMatch(reply.headers.connection ?? '', /close|x-foo/i, 'the upstream Connection was relayed');
    assert.ok(!reply.closed, 'the upstream closing its connection must not close the client\'s');
    const record = await recordFor(p);
    assert.equal(record.decision, 'allow');
    assert.equal(record.upstreamStatus, 200);
  });

  void test('round robin alternates between two targets', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const reply = await send(gw.port, get(path('rr')));
      assert.equal(reply.status, 200);
      seen.push(reply.body);
    }
    assert.deepEqual(new Set(seen), new Set(['A', 'B']));
    for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `not alternating: ${seen.join('')}`);
  });
});

void describe('clients that go away', () => {
  void test('a client aborting mid-upload is audited as abort and nothing complete reaches the upstream', async () => {
    const p = path('echo');
    const before = echo.received.length;
    const reply = await send(gw.port, `POST ${p} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`, { abortAfterMs: 100 });
    assert.equal(reply.status, 0, 'no response is expected for an unfinished upload');
    const record = await recordFor(p);
    assert.equal(record.decision, 'abort');
    assert.equal(record.reason, 'client_aborted');
    assert.equal(record.status, 499);
    await echo.settled(p); // the forwarded start of the upload, if any, is over: cut, or whole
    assert.equal(echo.received.length, before, 'the upstream received a complete request');
  });

  void test('a client aborting while the upstream is still working is audited as abort', async () => {
    const p = path('slow');
    const reply = await send(gw.port, get(p), { abortAfterMs: 150 });
    assert.equal(reply.status, 0);
    const record = await recordFor(p);
    assert.equal(record.decision, 'abort');
    assert.equal(record.reason, 'client_aborted');
    assert.equal(record.status, 499);
    assert.equal(record.route, 'slow');
  });

  void test('a client aborting mid-response is audited as abort', async () => {
    // The stall upstream sends headers and part of the body, then nothing: the client leaves first.
    const p = path('stall');
    const reply = await send(gw.port, get(p), { abortAfterMs: 100 });
    assert.equal(reply.status, 200);
    assert.ok(!reply.complete);
    const record = await recordFor(p);
    assert.equal(record.decision, 'abort');
    assert.equal(record.reason, 'client_aborted');
    assert.equal(record.upstreamStatus, 200);
  });
});
