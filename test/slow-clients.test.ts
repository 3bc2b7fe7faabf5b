// Slow clients cannot monopolise an upstream: the wait for an upstream connection is bounded in
// time and length (503 upstream_busy), a client that stops sending its body gets 408 and frees
// what it held, a client that stops reading its response loses its connection and frees the
// upstream's, and one upstream's slow clients never delay another upstream's requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { AuditRecord } from '../src/audit/audit-log.js';
import type { Admission } from '../src/proxy/admission.js';
import { assertProblem, auditRecordsFor, oneAuditRecordFor, waitUntil } from './harness/assertions.js';
import { MAX_PIPELINED } from '../src/server/connection-order.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

const CONNECTIONS = 2;
const QUEUE_TIMEOUT_MS = 300;
const MAX_QUEUED = 2;
const BODY_IDLE_MS = 400;
const WRITE_IDLE_MS = 300;
const BUFFER_BODY_BYTES = 1024;

/**
 * Upstream A: counts the connections it accepts, holds `/a/hold/…` until released, streams an
 * endless response (with backpressure) on `/a/big/…`, reads the whole body of anything else and
 * answers it. Remembers which requests it saw start and which ended before their response did.
 */
interface UpstreamA {
  readonly server: Server;
  readonly url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Request targets, in order of arrival of their heads. */
  readonly started: string[];
  /** Request targets whose request body arrived whole. */
  readonly completed: string[];
  /** Request targets whose exchange closed before the response was finished. */
  readonly aborted: string[];
  releaseHeld(): void;
}

async function startUpstreamA(): Promise<UpstreamA> {
  const held: ServerResponse[] = [];
  const state = {
    connections: 0,
    open: 0,
    started: [] as string[],
    completed: [] as string[],
    aborted: [] as string[],
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    state.started.push(url);
    res.on('close', () => { if (!res.writableFinished) state.aborted.push(url); });
    req.on('error', () => undefined);
    req.resume();
    req.on('end', () => {
      state.completed.push(url);
      if (url.startsWith('/a/hold/')) { held.push(res); return; }
      if (url.startsWith('/a/big/')) { streamForever(res); return; }
      res.end('a');
    });
  });
  server.on('connection', (socket: Socket) => {
    state.connections++;
    state.open++;
    socket.on('close', () => { state.open--; });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(state, {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    releaseHeld() { for (const res of held.splice(0)) res.end('released'); },
  });
}

/** Writes 64 KiB chunks while the gateway keeps reading, until the exchange closes. */
function streamForever(res: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

/** A client on a raw socket that sends its request head and then trickles the body, for as long as the test wants. */
function trickle(port: number, path: string, contentLength: number, everyMs: number): { socket: Socket; stop(): void } {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  socket.write(requestHead('POST', path, ['Content-Type: text/plain', `Content-Length: ${contentLength}`]) + 'x'.repeat(100));
  const timer = setInterval(() => { if (!socket.destroyed) socket.write('x'.repeat(10)); }, everyMs);
  return { socket, stop() { clearInterval(timer); socket.destroy(); } };
}


let gw: TestGateway;
let a: UpstreamA;
let echo: EchoUpstream;
let counter = 0;
const path = (route: string): string => `/${route}/${++counter}`;
const get = (p: string): string => requestHead('GET', p);
const admissionOf = (name: string): Admission => {
  const upstream = gw.gateway.config.upstreamPools.get(name);
  assert.ok(upstream !== undefined);
  return upstream.admission;
};
/** Every slot of upstream A is free and nobody waits: the tests leave the gateway as they found it. */
const idle = (): Promise<void> => waitUntil('upstream a is idle', () => admissionOf('a').active === 0 && admissionOf('a').waiting === 0, 3000);

before(async () => {
  a = await startUpstreamA();
  echo = await startEchoUpstream();
  gw = await startGateway({
    upstreams: {
      a: { targets: [a.url], connections: CONNECTIONS, queueTimeoutMs: QUEUE_TIMEOUT_MS, maxQueued: MAX_QUEUED, timeoutMs: 10_000, bodyTimeoutMs: 10_000 },
      b: { targets: [echo.url] },
    },
    limits: { bodyIdleTimeoutMs: BODY_IDLE_MS, writeIdleTimeoutMs: WRITE_IDLE_MS, bufferBodyBytes: BUFFER_BODY_BYTES },
    routes: [
      { name: 'a', match: { path: '/a/**' }, upstream: 'a', public: true },
      { name: 'b', match: { path: '/b/**' }, upstream: 'b', public: true },
      { name: 'rate', match: { path: '/rate/**' }, upstream: 'a', public: true, limits: { minBodyBytesPerSecond: 1000 } },
    ],
  });
});

after(async () => {
  a.releaseHeld();
  await gw.close();
  a.server.closeAllConnections();
  a.server.close();
  await echo.close();
});

void describe('the wait for an upstream connection is bounded', () => {
  void test('with every connection busy, queued requests get 503 upstream_busy with Retry-After after queueTimeoutMs, and past maxQueued at once', async () => {
    const holds = [path('a/hold'), path('a/hold')];
    const holding = holds.map((p) => rawRequest(gw.port, get(p), { timeoutMs: 8000, settleMs: 0 }));
    await waitUntil('both held requests reached the upstream', () => holds.every((p) => a.started.includes(p)), 3000);

    const queued = [path('a/q'), path('a/q')];
    const waiting = queued.map((p) => rawRequest(gw.port, get(p), { timeoutMs: 4000, settleMs: 0 }));
    await waitUntil('both requests are queued', () => admissionOf('a').waiting === MAX_QUEUED, 3000);
    const overflow = path('a/q');
    const refused = await rawRequest(gw.port, get(overflow), { timeoutMs: 4000, settleMs: 0 });
    assertProblem(refused, 503, 'upstream_busy');
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(admissionOf('a').waiting, MAX_QUEUED, 'the refused request was answered while the others still waited');

    for (const reply of await Promise.all(waiting)) {
      assertProblem(reply, 503, 'upstream_busy');
      assert.equal(reply.headers['retry-after'], '1');
      assert.ok(reply.elapsedMs >= QUEUE_TIMEOUT_MS - 20, `answered after ${Math.round(reply.elapsedMs)} ms, before queueTimeoutMs`);
    }
    for (const p of [...queued, overflow]) {
      const record = await oneAuditRecordFor(gw, p);
      assert.equal(record.status, 503);
      assert.equal(record.reason, 'upstream_busy');
      assert.equal(record.upstreamStatus, undefined);
      assert.equal(record.upstream, undefined, 'nothing was forwarded');
      assert.match(record.detail ?? '', p === overflow ? /maxQueued/ : /queueTimeoutMs/);
    }
    assert.ok(![...queued, overflow].some((p) => a.started.includes(p)), 'a refused request reached the upstream');

    a.releaseHeld();
    for (const reply of await Promise.all(holding)) assert.equal(reply.status, 200);
    await idle();
    const next = await rawRequest(gw.port, get(path('a/after')), { settleMs: 0 });
    assert.equal(next.status, 200, 'the freed connections serve new requests');
    assert.ok(a.open <= CONNECTIONS, `${a.open} upstream connections open for a pool of ${CONNECTIONS}`);
  });

  void test('a freed connection goes to the oldest waiter, which is then answered by the upstream', async () => {
    const hold = [path('a/hold'), path('a/hold')];
    const holding = hold.map((p) => rawRequest(gw.port, get(p), { timeoutMs: 8000, settleMs: 0 }));
    await waitUntil('both held requests reached the upstream', () => hold.every((p) => a.started.includes(p)), 3000);
    const waiter = path('a/w');
    const waiting = rawRequest(gw.port, get(waiter), { timeoutMs: 4000, settleMs: 0 });
    await waitUntil('the request is queued', () => admissionOf('a').waiting === 1, 3000);
    a.releaseHeld();
    assert.equal((await waiting).status, 200);
    for (const reply of await Promise.all(holding)) assert.equal(reply.status, 200);
    await idle();
  });

  void test('a client that leaves while queued gives up its place and is audited as abort', async () => {
    const hold = [path('a/hold'), path('a/hold')];
    const holding = hold.map((p) => rawRequest(gw.port, get(p), { timeoutMs: 8000, settleMs: 0 }));
    await waitUntil('both held requests reached the upstream', () => hold.every((p) => a.started.includes(p)), 3000);
    const leaver = path('a/leave');
    const left = rawRequest(gw.port, get(leaver), { abortAfterMs: 50, timeoutMs: 2000 });
    await waitUntil('the request is queued', () => admissionOf('a').waiting === 1, 3000);
    assert.equal((await left).status, 0);
    await waitUntil('the queue is empty again', () => admissionOf('a').waiting === 0, QUEUE_TIMEOUT_MS);
    const record = await oneAuditRecordFor(gw, leaver);
    assert.equal(record.decision, 'abort');
    assert.equal(record.reason, 'client_aborted');
    assert.equal(record.status, 499);
    a.releaseHeld();
    await Promise.all(holding);
    await idle();
    assert.ok(!a.started.includes(leaver));
  });
});

void describe('slow uploads', () => {
  void test('a client that stops sending a small body gets 408 request_timeout and nothing reaches the upstream', async () => {
    const p = path('a/small');
    const connectionsBefore = a.connections;
    const reply = await rawRequest(gw.port, requestHead('POST', p, ['Content-Type: text/plain', 'Content-Length: 200']) + 'x'.repeat(20), { timeoutMs: 4000 });
    assertProblem(reply, 408, 'request_timeout');
    assert.ok(reply.closed, 'the connection must be closed: the rest of the body is unread');
    const record = await oneAuditRecordFor(gw, p);
    assert.equal(record.reason, 'request_timeout');
    assert.equal(record.decision, 'deny');
    assert.match(record.detail ?? '', /no request body bytes for 400 ms \(after 20 bytes\)/);
    assert.ok(!a.started.includes(p), 'a small body still being received was forwarded');
    assert.equal(a.connections, connectionsBefore, 'an upstream connection was opened for a body that never came');
    await idle();
  });

  void test('a client that stops mid-way through a streamed body gets 408, the upstream request is aborted and its connection freed', async () => {
    const paths = [path('a/large'), path('a/large')];
    const head = (p: string): string => requestHead('POST', p, ['Content-Type: text/plain', 'Content-Length: 5000']) + 'y'.repeat(2000);
    const replies = await Promise.all(paths.map((p) => rawRequest(gw.port, head(p), { timeoutMs: 4000 })));
    for (const [i, reply] of replies.entries()) {
      // The upstream request was under way; the 408 still reaches the client before the close.
      assertProblem(reply, 408, 'request_timeout');
      assert.ok(reply.closed);
      const record = await oneAuditRecordFor(gw, paths[i] ?? '');
      assert.equal(record.reason, 'request_timeout');
      assert.match(record.detail ?? '', /upstream request aborted/);
    }
    for (const p of paths) assert.ok(a.started.includes(p) && !a.completed.includes(p), 'the upstream got a complete request');
    await idle();
    const next = await Promise.all([get(path('a/after')), get(path('a/after'))].map((r) => rawRequest(gw.port, r, { settleMs: 0 })));
    assert.deepEqual(next.map((r) => r.status), [200, 200], 'the connections the slow uploads held are free again');
  });

  void test('trickling small bodies hold no upstream connection: other requests to the same upstream are served meanwhile', async () => {
    const slow = [0, 1, 2].map(() => trickle(gw.port, path('a/trickle'), 800, 40));
    try {
      await waitUntil('nothing holds upstream a', () => admissionOf('a').active === 0, 3000);
      // They keep trickling for a whole idle timeout, still inside it: the duration is what is tested.
      await delay(BODY_IDLE_MS);
      const reply = await rawRequest(gw.port, get(path('a/fast')), { settleMs: 0, timeoutMs: 2000 });
      assert.equal(reply.status, 200);
      assert.ok(!a.started.some((u) => u.startsWith('/a/trickle/')), 'a body still being received was forwarded');
    } finally {
      for (const s of slow) s.stop();
    }
    await idle();
  });
});

void describe('minimum upload rate', () => {
  void test('a route with minBodyBytesPerSecond answers 408 to a client that keeps sending, but too slowly, and frees the upstream', async () => {
    const p = path('rate');
    // 10 bytes every 40 ms is about 250 bytes/s: never idle, but under the route's 1000 bytes/s.
    const slow = trickle(gw.port, p, 100_000, 40);
    const chunks: Buffer[] = [];
    slow.socket.on('data', (c: Buffer) => chunks.push(c));
    try {
      await once(slow.socket, 'close');
      assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 408 /);
      const record = await oneAuditRecordFor(gw, p);
      assert.equal(record.reason, 'request_timeout');
      assert.match(record.detail ?? '', /less than 400 request body bytes in 400 ms/);
      assert.ok(!a.completed.includes(p));
    } finally {
      slow.stop();
    }
    await idle();
  });
});

void describe('slow readers', () => {
  void test('a client that stops reading loses its connection after writeIdleTimeoutMs and the upstream request is aborted', async () => {
    const p = path('a/big');
    const socket = connect({ port: gw.port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    socket.write(get(p));
    socket.pause(); // never read: the response fills the socket buffers and stays there
    try {
      const record: AuditRecord = await oneAuditRecordFor(gw, p);
      assert.equal(record.decision, 'abort');
      assert.equal(record.reason, 'client_aborted');
      assert.equal(record.status, 200, 'the response had started');
      assert.equal(record.upstreamStatus, 200);
      assert.match(record.detail ?? '', /did not read the response for 300 ms/);
      await waitUntil('the upstream saw its request aborted', () => a.aborted.includes(p), 3000);
      await idle();
    } finally {
      socket.destroy();
    }
  });
});

void describe('isolation', () => {
  void test('while slow uploads hold every connection of upstream a, upstream b answers at once and a answers 503 after its queue timeout', async () => {
    const slow = [0, 1].map(() => trickle(gw.port, path('a/hog'), 1_000_000, 40));
    try {
      await waitUntil('the slow uploads hold both connections of a', () => admissionOf('a').active === CONNECTIONS, 3000);
      const other = path('b/x');
      const b = await rawRequest(gw.port, get(other), { settleMs: 0, timeoutMs: 2000 });
      assert.equal(b.status, 200);
      assert.ok(echo.received.some((r) => r.url === other));
      const blocked = path('a/x');
      const reply = await rawRequest(gw.port, get(blocked), { settleMs: 0, timeoutMs: 3000 });
      assertProblem(reply, 503, 'upstream_busy');
      assert.ok(a.open <= CONNECTIONS, `${a.open} upstream connections open for a pool of ${CONNECTIONS}`);
      assert.ok(!a.started.includes(blocked));
    } finally {
      for (const s of slow) s.stop();
    }
    await idle();
    assert.equal((await rawRequest(gw.port, get(path('a/y')), { settleMs: 0 })).status, 200, 'a serves again once the slow clients are gone');
  });
});

void describe('reload', () => {
  void test('a request queued for an upstream that a reload retires is still served once a connection frees up', async (t) => {
    const upstream = await startUpstreamA();
    const config = (queueTimeoutMs: number): Record<string, unknown> => ({
      upstreams: { a: { targets: [upstream.url], connections: 1, queueTimeoutMs, maxQueued: 4 } },
      routes: [{ name: 'a', match: { path: '/a/**' }, upstream: 'a', public: true }],
    });
    const g = await startGateway(config(3000));
    t.after(async () => {
      upstream.releaseHeld();
      await g.close();
      upstream.server.closeAllConnections();
      upstream.server.close();
    });
    const retiring = g.gateway.config.upstreamPools.get('a')?.admission;
    assert.ok(retiring !== undefined);
    const held = path('a/hold');
    const holding = rawRequest(g.port, get(held), { timeoutMs: 6000, settleMs: 0 });
    await waitUntil('the held request reached the upstream', () => upstream.started.includes(held), 3000);
    const queued = path('a/q');
    const waiting = rawRequest(g.port, get(queued), { timeoutMs: 6000, settleMs: 0 });
    await waitUntil('the request is queued', () => retiring.waiting === 1, 3000);
    await g.writeConfig(config(2500)); // a changed upstream: the running one is retired
    const reloaded = await g.gateway.reload();
    assert.ok(reloaded.ok && reloaded.changed);
    upstream.releaseHeld();
    assert.equal((await holding).status, 200);
    const reply = await waiting;
    assert.equal(reply.status, 200, `the queued request was not served by the retired upstream: ${reply.body}`);
    assert.equal(reply.body, 'a');
  });
});

void describe('pipelined requests behind a slow one', () => {
  void test('a client that leaves with requests pipelined behind a held one: none of them is forwarded, each is audited once, nothing stays in flight', async () => {
    const first = path('a/hold');
    const behind = [path('b/pipelined'), path('b/pipelined'), path('a/pipelined')];
    const socket = connect({ port: gw.port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(get(first) + behind.map(get).join(''));
    await waitUntil('the first request reached the upstream', () => a.started.includes(first), 3000);
    socket.destroy();
    for (const p of behind) {
      const record = await oneAuditRecordFor(gw, p);
      assert.equal(record.decision, 'abort');
      assert.equal(record.upstream, undefined, 'nothing was forwarded');
      assert.equal(record.upstreamStatus, undefined);
    }
    a.releaseHeld();
    const held = await oneAuditRecordFor(gw, first);
    assert.equal(held.decision, 'abort');
    await delay(100); // the absence of a late forward: no event says a request will never be sent
    assert.ok(!echo.received.some((r) => r.url.includes('/pipelined')), 'a pipelined request reached upstream b after the client left');
    assert.ok(!behind.some((p) => a.started.includes(p)), 'a pipelined request reached upstream a after the client left');
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^portcullis_requests_in_flight 0$/m);
    await idle();
  });
});

void describe('pipelining depth', () => {
  void test(`a connection with more than ${MAX_PIPELINED} requests waiting is closed; nothing behind the limit is forwarded, and every request read is audited once`, { timeout: 20_000 }, async () => {
    const first = path('a/hold');
    const behind = Array.from({ length: MAX_PIPELINED + 10 }, () => path('b/deep'));
    const socket = connect({ port: gw.port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(get(first));
    await waitUntil('the first request reached the upstream', () => a.started.includes(first), 3000);
    const closed = once(socket, 'close');
    socket.write(behind.map(get).join(''));
    await closed;
    a.releaseHeld();
    const records = await Promise.all([first, ...behind].map((p) => auditRecordsFor(gw, p)));
    const missing = records.filter((r) => r.length > 1);
    assert.deepEqual(missing, [], 'a request audited twice');
    const audited = records.filter((r) => r.length === 1).length;
    assert.ok(audited >= MAX_PIPELINED, `only ${audited} requests audited`);
    assert.ok(!echo.received.some((r) => r.url.startsWith('/b/deep')), 'a request behind the limit was forwarded');
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^portcullis_requests_in_flight 0$/m);
    await idle();
  });
});
