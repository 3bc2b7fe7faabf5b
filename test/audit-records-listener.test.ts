// A malformed request that follows, on the same connection, an exchange whose response has closed
// but whose record is not yet written (the request path has not returned): the listener answers
// and records it at once, instead of waiting for a 'close' the earlier response already emitted.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, it } from 'node:test';
import { Listener, type ListenerHost, type RequestInProgress, type SocketRejection } from '../src/server/listener.js';
import { requestHead, wire } from './harness/raw-client.js';

/** Answers every request 200 and keeps it "in progress" after its response closed, as an exchange not yet recorded is. */
class UnsettledHost implements ListenerHost {
  readonly rejections: SocketRejection[] = [];
  private readonly busy = new Map<Socket, RequestInProgress>();

  handle(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.busy.set(socket, { req, res, get responseClosed() { return res.closed; }, clientClosed: () => undefined, refuse: () => { socket.destroy(); } });
    req.resume();
    req.once('end', () => { res.writeHead(200, { 'content-length': 2 }); res.end('ok'); });
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
}

const host = new UnsettledHost();
const listener = new Listener({
  name: 'test', port: 0, host: '127.0.0.1', handlerAnswersExpect: true,
  limits: { maxHeaderBytes: 1024, headersTimeoutMs: 2000, requestTimeoutMs: 4000, keepAliveTimeoutMs: 4000, connectionsCheckingIntervalMs: 50 },
}, host);
let port = 0;

before(async () => { port = (await listener.listen()).port; });
after(() => listener.close());

it('answers and records a malformed request after a closed response whose exchange is still open', async () => {
  const result = await wire(port, [
    requestHead('GET', '/first'),
    requestHead('POST', '/second', ['Content-Length: 1', 'Content-Length: 2']),
  ], { inTurn: true, expect: 2, settleMs: 0, timeoutMs: 3000 });
  assert.deepEqual(result.responses.map((r) => r.status), [200, 400], result.raw.slice(0, 400));
  assert.ok(result.elapsedMs < 2000, `answered after ${Math.round(result.elapsedMs)} ms, not when a timeout closed the connection`);
  assert.equal(host.rejections.length, 1, 'one record for the refused request');
  const [rejection] = host.rejections;
  assert.equal(rejection?.kind, 'refused');
  if (rejection?.kind === 'refused') assert.equal(rejection.denial.code, 'bad_request');
});
