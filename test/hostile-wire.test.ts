// Hostile bytes on the wire: framing ambiguities, malformed request lines and headers, protocol
// upgrades and slow clients. Each case is sent on a raw socket and must be answered precisely
// (status, problem+json), never forwarded upstream, audited exactly once, and — where the framing
// of the connection can no longer be trusted — followed by the connection being closed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { PROBLEM_TYPE_BASE } from '../src/pipeline/problem.js';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { wire, type WireData, type WireOptions, type WireResult } from './harness/raw-client.js';

// ---------------------------------------------------------------------------------------------
// Shared gateway and assertions.

const LIMITS = { maxHeaderBytes: 4096, maxHeaderCount: 30, headersTimeoutMs: 500, requestTimeoutMs: 1500 };

let echo: EchoUpstream;
let gw: TestGateway;
/** Requests the echo upstream started to receive (headers arrived), complete or not. */
let upstreamStarted = 0;

before(async () => {
  echo = await startEchoUpstream();
  echo.server.on('request', () => { upstreamStarted++; });
  gw = await startGateway({
    limits: LIMITS,
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'all', match: { path: '/**' }, upstream: 'echo', public: true }],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
});

interface Snapshot { readonly audit: number; readonly received: number; readonly started: number }

async function snapshot(): Promise<Snapshot> {
  // Let records of earlier tests land first, so the delta belongs to this test alone.
  await gw.auditBarrier();
  return { audit: (await gw.audit()).length, received: echo.received.length, started: upstreamStarted };
}

/** Waits for this test's audit records and asserts there is exactly one. */
async function oneAuditRecord(before: Snapshot): Promise<AuditRecord> {
  await gw.audit(before.audit + 1);
  await gw.auditBarrier(); // a second record (e.g. an abort after a denial) would be written before the barrier's
  const fresh = (await gw.audit()).slice(before.audit);
  assert.equal(fresh.length, 1, `expected exactly one audit record, got ${fresh.length}: ${JSON.stringify(fresh)}`);
  return fresh[0] as AuditRecord;
}

function assertNothingForwarded(before: Snapshot, options: { allowStarted?: boolean } = {}): void {
  assert.equal(echo.received.length, before.received, 'the upstream received a request');
  if (options.allowStarted !== true) assert.equal(upstreamStarted, before.started, 'the upstream saw the start of a request');
}

/**
 * The common shape of a rejected hostile request: one response with `status`/`code`, nothing
 * forwarded, one audit record with that reason, and (when `closes`) the connection closed.
 */
async function expectRejected(
  data: WireData, status: number, code: string,
  options: { closes?: boolean; wire?: WireOptions; allowStarted?: boolean } = {},
): Promise<{ result: WireResult; record: AuditRecord }> {
  const snap = await snapshot();
  const result = await wire(gw.port, data, options.wire);
  assert.ok(result.responses.length >= 1, `no response; raw: ${JSON.stringify(result.raw)}`);
  assert.equal(result.responses.length, 1, `exactly one response expected; raw: ${JSON.stringify(result.raw)}`);
  const doc = assertProblem(result.responses[0], status, code);
  if (options.closes !== false) assert.ok(result.closed, 'the connection stays open after a malformed request');
  const record = await oneAuditRecord(snap);
  assert.equal(record.reason, code);
  assert.equal(record.status, status);
  assert.equal(record.decision, status >= 500 ? 'error' : 'deny');
  assert.equal(record.requestId, doc.requestId);
  assert.equal(record.clientIp, '127.0.0.1');
  assertNothingForwarded(snap, options.allowStarted === true ? { allowStarted: true } : {});
  return { result, record };
}

const OK_GET = 'GET /ok HTTP/1.1\r\nHost: gw.test\r\n\r\n';

// ---------------------------------------------------------------------------------------------

void describe('hostile wire input', () => {
  void test('sanity: a well-formed request is forwarded and answered 200', async () => {
    const snap = await snapshot();
    const result = await wire(gw.port, OK_GET);
    assert.equal(result.responses[0]?.status, 200);
    assert.equal(echo.received.length, snap.received + 1);
    const record = await oneAuditRecord(snap);
    assert.equal(record.decision, 'allow');
  });

  void describe('message framing (request smuggling)', () => {
    void test('rejects duplicate Content-Length with different values with 400 and forwards nothing', async () => {
      await expectRejected('POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\nhello world', 400, 'bad_request');
    });

    void test('rejects duplicate Content-Length with the same value with 400 and forwards nothing', async () => {
      await expectRejected('POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400, 'bad_request');
    });

    void test('a zero Content-Length in any spelling (0, 00, 000) declares no body: a GET is forwarded, and the connection carries the next request', async () => {
      for (const zero of ['0', '00', '000']) {
        const snap = await snapshot();
        const result = await wire(gw.port, `GET /zero HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${zero}\r\n\r\n` + OK_GET, { expect: 2 });
        assert.deepEqual(result.responses.map((r) => r.status), [200, 200], `Content-Length: ${zero}`);
        assert.deepEqual(echo.received.slice(snap.received).map((r) => r.url), ['/zero', '/ok']);
      }
    });

    void test('rejects a comma-joined Content-Length list with 400 and forwards nothing', async () => {
      await expectRejected('POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\nhello', 400, 'bad_request');
    });

    void test('rejects Content-Length together with Transfer-Encoding: chunked with 400 and forwards nothing', async () => {
      await expectRejected(
        'POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
        400, 'bad_request');
    });

    void test('rejects a Transfer-Encoding other than a final chunked with 400 and forwards nothing', async () => {
      await expectRejected('POST /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects an obs-fold header continuation with 400 and forwards nothing', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nHost: gw.test\r\nX-Folded: first\r\n  second\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects a header line without a colon with 400 and forwards nothing', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nHost: gw.test\r\nThisIsNotAHeader\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects whitespace between a header name and its colon with 400 and forwards nothing', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects invalid chunked encoding (bad chunk size) with 400, forwards no complete request, audits once', async () => {
      await expectRejected('POST /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n', 400, 'bad_request', { allowStarted: true });
    });

    void test('rejects invalid chunked encoding arriving after the headers with 400 and audits once', async () => {
      await expectRejected(
        ['POST /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhelloXX\r\n0\r\n\r\n'],
        // The pause puts the bad chunk after the headers were read: nothing else separates the two on one connection.
        400, 'bad_request', { wire: { gapMs: 100 }, allowStarted: true });
    });
  });

  void describe('header limits', () => {
    void test('answers headers larger than maxHeaderBytes with 431 and closes the connection', async () => {
      const big = `X-Big: ${'a'.repeat(LIMITS.maxHeaderBytes + 100)}\r\n`;
      await expectRejected(`GET /x HTTP/1.1\r\nHost: gw.test\r\n${big}\r\n`, 431, 'headers_too_large');
    });

    void test('answers more header fields than maxHeaderCount with 431 and closes the connection', async () => {
      let headers = '';
      for (let i = 0; i < LIMITS.maxHeaderCount + 5; i++) headers += `X-H${i}: v\r\n`;
      await expectRejected(`GET /x HTTP/1.1\r\nHost: gw.test\r\n${headers}\r\n`, 431, 'headers_too_large');
    });

    void test('accepts exactly maxHeaderCount header fields', async () => {
      let headers = '';
      for (let i = 0; i < LIMITS.maxHeaderCount - 1; i++) headers += `X-H${i}: v\r\n`;
      const snap = await snapshot();
      const result = await wire(gw.port, `GET /x HTTP/1.1\r\nHost: gw.test\r\n${headers}\r\n`);
      assert.equal(result.responses[0]?.status, 200);
      assert.equal(echo.received.length, snap.received + 1);
      await oneAuditRecord(snap);
    });
  });

  void describe('request target', () => {
    void test('rejects absolute-form `GET http://evil/` with 400 invalid_target and forwards nothing', async () => {
      await expectRejected('GET http://evil/ HTTP/1.1\r\nHost: gw.test\r\n\r\n', 400, 'invalid_target', { closes: false });
    });

    void test('rejects authority-form `CONNECT a:443` with 400 invalid_target, audited, never tunnelled', async () => {
      const { result } = await expectRejected('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 400, 'invalid_target');
      assert.doesNotMatch(result.raw, /^HTTP\/1\.1 200/);
    });

    void test('rejects asterisk-form `OPTIONS *` with 400 invalid_target and forwards nothing', async () => {
      await expectRejected('OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n', 400, 'invalid_target', { closes: false });
    });

    void test('rejects a NUL byte in the target with 400 and forwards nothing', async () => {
      await expectRejected('GET /a\x00b HTTP/1.1\r\nHost: gw.test\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects a bare CR in the target with 400 and forwards nothing', async () => {
      await expectRejected('GET /a\rb HTTP/1.1\r\nHost: gw.test\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects a tab in the target with 400 and forwards nothing', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, 'GET /a\tb HTTP/1.1\r\nHost: gw.test\r\n\r\n');
      // The parser may refuse the line (bad_request) or hand the target to the gateway (invalid_target).
      const res = result.responses[0];
      assert.ok(res !== undefined, 'no response');
      const code = res.body.includes(PROBLEM_TYPE_BASE + 'bad_request') ? 'bad_request' : 'invalid_target';
      const doc = assertProblem(res, 400, code);
      const record = await oneAuditRecord(snap);
      assert.equal(record.requestId, doc.requestId);
      assert.ok(record.reason === 'bad_request' || record.reason === 'invalid_target', `reason ${String(record.reason)}`);
      assertNothingForwarded(snap);
    });

    void test('rejects a space inside the target with 400 and forwards nothing', async () => {
      await expectRejected('GET /a b HTTP/1.1\r\nHost: gw.test\r\n\r\n', 400, 'bad_request');
    });

    void test('rejects raw non-ASCII bytes in the path with 400 invalid_target and forwards nothing', async () => {
      const request = Buffer.concat([Buffer.from('GET /caf'), Buffer.from([0xc3, 0xa9]), Buffer.from(' HTTP/1.1\r\nHost: gw.test\r\n\r\n')]);
      const snap = await snapshot();
      const result = await wire(gw.port, request);
      const res = result.responses[0];
      assert.ok(res !== undefined, 'no response');
      const code = res.body.includes(PROBLEM_TYPE_BASE + 'invalid_target') ? 'invalid_target' : 'bad_request';
      const doc = assertProblem(res, 400, code);
      const record = await oneAuditRecord(snap);
      assert.equal(record.reason, code);
      assert.equal(record.requestId, doc.requestId);
      assertNothingForwarded(snap);
    });

    void test('rejects a raw 0xFF byte in the path with 400 and forwards nothing', async () => {
      const request = Buffer.concat([Buffer.from('GET /a'), Buffer.from([0xff]), Buffer.from(' HTTP/1.1\r\nHost: gw.test\r\n\r\n')]);
      const snap = await snapshot();
      const result = await wire(gw.port, request);
      assert.equal(result.responses[0]?.status, 400);
      const record = await oneAuditRecord(snap);
      assert.equal(record.status, 400);
      assertNothingForwarded(snap);
    });
  });

  void describe('Host header', () => {
    void test('rejects two Host headers with 400 invalid_header and forwards nothing', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\n\r\n', 400, 'invalid_header', { closes: false });
    });

    void test('rejects a missing Host header with a 400 problem document and an audit record', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nUser-Agent: t\r\n\r\n', 400, 'invalid_header', { closes: false });
    });

    void test('accepts Host names with `_` (Compose and Kubernetes service names are valid reg-names)', async () => {
      for (const host of ['orders_api', 'orders_api:8080', 'my_svc.internal_net', '_acme-challenge.example.com']) {
        const result = await wire(gw.port, `GET /host-underscore HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.equal(result.responses[0]?.status, 200, `${host}: ${JSON.stringify(result.raw)}`);
        assert.equal(echo.received.at(-1)?.headers['x-forwarded-host'], host);
      }
    });

    void test('rejects a malformed Host value with 400 invalid_header and forwards nothing', async () => {
      await expectRejected('GET /x HTTP/1.1\r\nHost: evil.test/../x@y\r\n\r\n', 400, 'invalid_header', { closes: false });
      // Two trailing dots would survive the one the gateway removes and dodge host-specific routes.
      await expectRejected('GET /x HTTP/1.1\r\nHost: admin.example.com..\r\n\r\n', 400, 'invalid_header', { closes: false });
    });
  });

  void describe('protocol upgrades', () => {
    for (const [label, head] of [
      ['with `Connection: Upgrade, HTTP2-Settings`', 'GET /h2c-offer HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'],
      ['without `Connection: Upgrade`', 'GET /h2c-offer HTTP/1.1\r\nHost: gw.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'],
    ] as const) {
      void test(`ignores an \`Upgrade: h2c\` offer ${label}: answers over HTTP/1.1, forwards no upgrade headers, never tunnels`, async () => {
        const snap = await snapshot();
        const result = await wire(gw.port, head);
        assert.equal(result.responses.length, 1, JSON.stringify(result.raw));
        assert.equal(result.responses[0]?.status, 200);
        assert.doesNotMatch(result.raw, /\b101\b/);
        // The parser stops reading after an upgrade offer, so the gateway closes once it has answered.
        assert.ok(result.closed, 'the connection stays open');
        assert.equal(echo.received.length, snap.received + 1);
        const seen = echo.received.at(-1);
        assert.ok(seen !== undefined);
        assert.ok(!seen.rawHeaders.some((h) => /^(upgrade|http2-settings)$/i.test(h)), `upgrade headers forwarded: ${JSON.stringify(seen.rawHeaders)}`);
        const record = await oneAuditRecord(snap);
        assert.equal(record.decision, 'allow');
      });
    }

    void test('refuses a WebSocket upgrade when no route declares websocket, and never tunnels', async () => {
      const { result } = await expectRejected(
        'GET /socket HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        400, 'upgrade_refused');
      assert.doesNotMatch(result.raw, /\b101\b/);
      assert.doesNotMatch(result.raw, /Sec-WebSocket-Accept/i);
    });
  });

  void describe('slow clients', () => {
    void test('slowloris: headers trickled slower than headersTimeoutMs get 408 and the connection is closed promptly', async () => {
      const lines = ['GET /x HTTP/1.1\r\n', 'Host: gw.test\r\n'];
      for (let i = 0; i < 12; i++) lines.push(`X-Slow-${i}: ${i}\r\n`);
      lines.push('\r\n');
      const snap = await snapshot();
      const result = await wire(gw.port, lines, { gapMs: 200, timeoutMs: 5000 });
      assert.ok(result.closed, 'connection not closed');
      // headersTimeoutMs + the server's check interval, with margin; the client would need 2.6 s.
      assert.ok(result.elapsedMs < LIMITS.headersTimeoutMs * 2 + 700, `closed only after ${Math.round(result.elapsedMs)} ms`);
      assert.equal(result.responses.length, 1, `raw: ${JSON.stringify(result.raw)}`);
      const doc = assertProblem(result.responses[0], 408, 'request_timeout');
      const record = await oneAuditRecord(snap);
      assert.equal(record.reason, 'request_timeout');
      assert.equal(record.requestId, doc.requestId);
      assertNothingForwarded(snap);
    });

    void test('an idle connection that never sends a byte is closed without hanging', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, [], { timeoutMs: 5000 });
      assert.ok(result.closed, 'idle connection not closed');
      assert.ok(result.elapsedMs < LIMITS.headersTimeoutMs * 2 + 700, `closed only after ${Math.round(result.elapsedMs)} ms`);
      assertNothingForwarded(snap);
    });

    void test('a body trickled beyond requestTimeoutMs gets 408, the connection closes and no complete request reaches the upstream', async () => {
      const chunks: string[] = ['POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n'];
      for (let i = 0; i < 40; i++) chunks.push('a');
      const snap = await snapshot();
      const result = await wire(gw.port, chunks, { gapMs: 100, timeoutMs: 6000 });
      assert.ok(result.closed, 'connection not closed');
      assert.ok(result.elapsedMs < LIMITS.requestTimeoutMs + 1500, `closed only after ${Math.round(result.elapsedMs)} ms`);
      assert.equal(result.responses.length, 1, `raw: ${JSON.stringify(result.raw)}`);
      const doc = assertProblem(result.responses[0], 408, 'request_timeout');
      const record = await oneAuditRecord(snap);
      assert.equal(record.reason, 'request_timeout');
      assert.equal(record.requestId, doc.requestId);
      assertNothingForwarded(snap, { allowStarted: true });
    });
  });

  void describe('keep-alive', () => {
    void test('a valid request followed by a malformed one on the same socket gets 200, then 400, then close', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, [OK_GET, 'GET /y HTTP/1.1\r\nHost: gw.test\r\nNoColonHere\r\n\r\n'], { inTurn: true, expect: 2 });
      assert.deepEqual(result.responses.map((r) => r.status), [200, 400], `raw: ${JSON.stringify(result.raw)}`);
      const doc = assertProblem(result.responses[1], 400, 'bad_request');
      assert.ok(result.closed, 'connection not closed after the malformed request');
      assert.equal(echo.received.length, snap.received + 1);
      await gw.audit(snap.audit + 2);
      await gw.auditBarrier();
      const fresh = (await gw.audit()).slice(snap.audit);
      assert.deepEqual(fresh.map((r) => r.decision).sort(), ['allow', 'deny']);
      assert.equal(fresh.find((r) => r.decision === 'deny')?.requestId, doc.requestId);
    });

    void test('pipelined: a valid request and a malformed one in one write get 200 then 400, in order', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, OK_GET + 'GET /y HTTP/1.1\r\nHost: gw.test\r\nNoColonHere\r\n\r\n', { expect: 2 });
      assert.deepEqual(result.responses.map((r) => r.status), [200, 400], `raw: ${JSON.stringify(result.raw)}`);
      assert.ok(result.closed, 'connection not closed after the malformed request');
      await gw.audit(snap.audit + 2);
      await gw.auditBarrier();
      const fresh = (await gw.audit()).slice(snap.audit);
      assert.deepEqual(fresh.map((r) => r.decision).sort(), ['allow', 'deny']);
    });

    /**
     * Sends `data` and expects one refusal with `code`, then a closed connection, with the
     * pipelined rest never forwarded, and each request of it the parser read audited as discarded.
     */
    async function expectPipelineCut(data: string, code: string, discarded: number): Promise<void> {
      const snap = await snapshot();
      const result = await wire(gw.port, data, { expect: 1, settleMs: 300 });
      assert.equal(result.responses.length, 1, `raw: ${JSON.stringify(result.raw)}`);
      assertProblem(result.responses[0], 400, code);
      assert.ok(result.closed, 'connection not closed after the denial');
      assertNothingForwarded(snap);
      await gw.audit(snap.audit + 1 + discarded);
      await gw.auditBarrier();
      const fresh = (await gw.audit()).slice(snap.audit);
      assert.deepEqual(fresh.map((r) => r.reason), [code, ...Array<string>(discarded).fill('pipeline_discarded')], JSON.stringify(fresh));
      for (const r of fresh.slice(1)) assert.equal(r.decision, 'abort');
    }

    void test('HTTP/1.0 with Transfer-Encoding is a framing error: 400, close, and what follows is never processed', async () => {
      await expectPipelineCut('POST /a HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n', 'bad_request', 1);
    });

    void test('after a denial that closes the connection, pipelined requests are not processed or forwarded, and are audited as discarded', async () => {
      await expectPipelineCut('GET /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /c HTTP/1.1\r\nHost: gw.test\r\n\r\n', 'body_not_allowed', 2);
    });

    void test('pipelined requests are answered one at a time, in order', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, OK_GET + 'GET /two HTTP/1.1\r\nHost: gw.test\r\n\r\n' + 'GET /three HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n', { expect: 3 });
      assert.deepEqual(result.responses.map((r) => r.status), [200, 200, 200]);
      assert.deepEqual(echo.received.slice(snap.received).map((r) => r.url), ['/ok', '/two', '/three']);
    });

    void test('a request rejected by the gateway does not desynchronise the next request on the connection', async () => {
      const snap = await snapshot();
      const result = await wire(gw.port, ['GET http://evil/ HTTP/1.1\r\nHost: gw.test\r\n\r\n', OK_GET], { inTurn: true, expect: 2 });
      assert.ok(result.responses.length >= 1);
      assertProblem(result.responses[0], 400, 'invalid_target');
      // Either the connection was closed after the 400, or the next request is answered normally.
      if (result.responses.length > 1) assert.equal(result.responses[1]?.status, 200);
      else assert.ok(result.closed);
      assert.ok(echo.received.length <= snap.received + 1);
      assert.ok(echo.received.slice(snap.received).every((r) => r.url === '/ok'));
    });
  });
});
