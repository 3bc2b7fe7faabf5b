// A Listener on its own, with a trivial host: what it answers on hostile bytes (malformed framing,
// oversized headers, CONNECT, bytes after a closing message, a slow head), and that each
// socket-level rejection is recorded exactly once, through the host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Listener, type ListenerHost, type ListenerSettings, type RequestInProgress, type SocketRejection } from '../src/server/listener.js';
import { assertProblem } from './harness/assertions.js';
import { wire } from './harness/raw-client.js';

/** Answers every request 200 `ok` and keeps what the listener reported. */
class TrivialHost implements ListenerHost {
  readonly rejections: SocketRejection[] = [];
  readonly handled: string[] = [];
  private readonly busy = new Map<Socket, RequestInProgress>();

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.handled.push(`${req.method ?? ''} ${req.url ?? ''} expect=${req.headers.expect ?? ''}`);
    const socket = req.socket;
    const entry: RequestInProgress = {
      req, res, get responseClosed() { return res.closed; }, clientClosed: () => undefined, refuse: () => { socket.destroy(); },
    };
    this.busy.set(socket, entry);
    res.once('close', () => { if (this.busy.get(socket) === entry) this.busy.delete(socket); });
    req.resume();
    req.once('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    });
  }

  inProgress(socket: Socket): RequestInProgress | undefined {
    return this.busy.get(socket);
  }

  recordRejection(rejection: SocketRejection): void {
    this.rejections.push(rejection);
  }

  requestIdHeader(): string {
    return 'x-request-id';
  }

  reset(): void {
    this.rejections.length = 0;
    this.handled.length = 0;
  }
}

const SETTINGS: ListenerSettings = {
  name: 'test',
  port: 0,
  host: '127.0.0.1',
  limits: { maxHeaderBytes: 1024, headersTimeoutMs: 300, requestTimeoutMs: 2000, keepAliveTimeoutMs: 2000, maxHeaderCount: 20, connectionsCheckingIntervalMs: 50 },
  handlerAnswersExpect: true,
};

/** The one rejection recorded; asserts there is exactly one. */
function oneRejection(host: TrivialHost): SocketRejection {
  assert.equal(host.rejections.length, 1, `exactly one rejection: ${JSON.stringify(host.rejections.map((r) => r.kind === 'refused' ? r.denial : r.kind))}`);
  return host.rejections[0] as SocketRejection;
}

describe('listener', () => {
  const host = new TrivialHost();
  let factoryCalls = 0;
  const listener = new Listener(SETTINGS, host, (options, handler) => { factoryCalls++; return createServer(options, handler); });
  let port = 0;
  before(async () => { port = (await listener.listen()).port; });
  after(async () => { await listener.close(); });

  it('makes its server with the factory it was given', () => {
    assert.equal(factoryCalls, 1);
    assert.equal(listener.listening, true);
    assert.equal(listener.address()?.port, port);
  });

  const refusals: [string, string, number, string][] = [
    ['a header line without a colon', 'GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n', 400, 'bad_request'],
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request'],
    ['headers above maxHeaderBytes', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(2000)}\r\n\r\n`, 431, 'headers_too_large'],
    ['CONNECT', 'CONNECT upstream.example:443 HTTP/1.1\r\nHost: upstream.example:443\r\n\r\n', 400, 'invalid_target'],
  ];
  for (const [name, bytes, status, code] of refusals) {
    it(`refuses ${name} with ${status} ${code}, closes the connection and records it once`, async () => {
      host.reset();
      const result = await wire(port, bytes, { settleMs: 2000 });
      const doc = assertProblem(result.responses[0], status, code);
      assert.equal(result.responses.length, 1);
      assert.ok(result.closed, 'connection closed');
      assert.deepEqual(host.handled, [], 'the handler never saw it');
      const rejection = oneRejection(host);
      assert.equal(rejection.kind, 'refused');
      if (rejection.kind !== 'refused') return;
      assert.deepEqual([rejection.listener, rejection.denial.code, rejection.requestId], ['test', code, doc.requestId]);
      assert.equal(rejection.req?.method, code === 'invalid_target' ? 'CONNECT' : undefined);
    });
  }

  it('answers a head that does not arrive within headersTimeoutMs with 408, recorded once', async () => {
    host.reset();
    const result = await wire(port, 'GET / HTTP/1.1\r\nHost: a\r\n', { settleMs: 2000 });
    assertProblem(result.responses[0], 408, 'request_timeout');
    assert.ok(result.closed);
    const rejection = oneRejection(host);
    assert.equal(rejection.kind === 'refused' ? rejection.denial.code : rejection.kind, 'request_timeout');
  });

  it('answers the message before bytes that follow Connection: close, then discards them with one record', async () => {
    host.reset();
    const result = await wire(port, 'GET /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n', { settleMs: 2000 });
    assert.deepEqual(result.responses.map((r) => [r.status, r.body]), [[200, 'ok']]);
    assert.ok(result.closed);
    assert.deepEqual(host.handled, ['GET /first expect='], 'the bytes after the closing message were never handled');
    assert.equal(oneRejection(host).kind, 'discarded');
  });

  it('answers a malformed pipelined request only after the response to the one before it, recorded once', async () => {
    host.reset();
    const result = await wire(port, 'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n', { expect: 2, settleMs: 2000 });
    assert.deepEqual(result.responses.map((r) => r.status), [200, 400]);
    assertProblem(result.responses[1], 400, 'bad_request');
    assert.ok(result.closed);
    assert.equal(oneRejection(host).kind, 'refused');
  });

  it('hands Expect requests to the handler when it answers them, with no 100 Continue from node:http', async () => {
    host.reset();
    const result = await wire(port, 'POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', { settleMs: 2000 });
    assert.deepEqual(result.responses.map((r) => r.status), [200]);
    assert.deepEqual(host.handled, ['POST /upload expect=100-continue']);
    assert.deepEqual(host.rejections, []);
  });
});

describe('listener whose application lets node:http answer Expect', () => {
  const host = new TrivialHost();
  const listener = new Listener({ ...SETTINGS, handlerAnswersExpect: false }, host);
  let port = 0;
  before(async () => { port = (await listener.listen()).port; });
  after(async () => { await listener.close(); });

  it('sends 100 Continue before the handler runs', async () => {
    const result = await wire(port, ['POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n', 'hi'],
      { awaitContinue: true, settleMs: 2000 });
    assert.deepEqual(result.responses.map((r) => r.status), [100, 200]);
    assert.deepEqual(host.handled, ['POST /upload expect=100-continue']);
  });
});

describe('listener close', () => {
  it('stops accepting and ends kept-alive connections', async () => {
    const listener = new Listener(SETTINGS, new TrivialHost());
    const { port } = await listener.listen();
    const socket = connect({ port, host: '127.0.0.1' });
    socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await once(socket, 'data'); // answered; the connection stays open (keep-alive)
    const closed = once(socket, 'close');
    await listener.close();
    await closed;
    assert.equal(listener.listening, false);
    assert.equal(listener.address(), null);
  });
});
