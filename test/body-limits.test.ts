// Request body limits and media types: an oversized body is refused before it costs the upstream
// anything, a streamed body is cut off at the limit, a body exactly at the limit passes, and
// `Expect: 100-continue` is answered honestly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { requestHead, wire, type WireOptions, type WireResult } from './harness/raw-client.js';

/** Raw exchanges with this file's gateway; 300 ms to see whether it closes after a final response. */
const send = (chunks: readonly string[], options: WireOptions = {}): Promise<WireResult> => wire(gw.port, chunks, { settleMs: 300, ...options });

function chunk(data: string): string {
  return `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
}

// ---------------------------------------------------------------------------------------------

const LIMIT = 1024;
const GLOBAL_LIMIT = 2048;

let echo: EchoUpstream;
let gw: TestGateway;
let upstreamStarted = 0;
let counter = 0;

before(async () => {
  echo = await startEchoUpstream();
  echo.server.on('request', () => { upstreamStarted++; });
  gw = await startGateway({
    limits: { maxBodyBytes: GLOBAL_LIMIT },
    upstreams: { echo: { targets: [echo.url] } },
    routes: [
      { name: 'limited', match: { path: '/limited/**' }, upstream: 'echo', public: true, limits: { maxBodyBytes: LIMIT } },
      { name: 'json', match: { path: '/json/**' }, upstream: 'echo', public: true, limits: { maxBodyBytes: LIMIT, contentTypes: ['application/json'] } },
      { name: 'default', match: { path: '/default/**' }, upstream: 'echo', public: true },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
});

const path = (route: string): string => `/${route}/${++counter}`;

const post = (p: string, headers: readonly string[]): string => requestHead('POST', p, headers);

const recordFor = (p: string): Promise<AuditRecord> => oneAuditRecordFor(gw, p);

/** A denied request: one final response, audited once with `code`, nothing reaching the upstream. */
async function expectDenied(p: string, result: WireResult, status: number, code: string, options: { started?: number; closes?: boolean } = {}): Promise<AuditRecord> {
  const finals = result.responses.filter((r) => r.status >= 200);
  assert.equal(finals.length, 1, `raw: ${JSON.stringify(result.raw.slice(0, 500))}`);
  const { requestId } = assertProblem(finals[0], status, code);
  if (options.closes === true) assert.ok(result.closed, 'the connection stays open with an unread body on it');
  const record = await recordFor(p);
  assert.equal(record.requestId, requestId);
  assert.equal(record.status, status);
  assert.equal(record.decision, 'deny');
  assert.equal(record.reason, code);
  assert.ok(!echo.received.some((r) => r.url === p), 'the upstream received the request');
  if (options.started !== undefined) assert.equal(upstreamStarted, options.started, 'the upstream saw the start of the request');
  return record;
}

void describe('declared body size (Content-Length)', () => {
  void test('Content-Length above the route limit gets 413 before anything is forwarded, and the connection closes', async () => {
    const p = path('limited');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', `Content-Length: ${LIMIT * 2}`]) + 'x'.repeat(LIMIT * 2)]);
    await expectDenied(p, result, 413, 'body_too_large', { started, closes: true });
  });

  void test('Content-Length above the limit is refused from the headers alone, without waiting for the body', async () => {
    const p = path('limited');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', `Content-Length: ${10 * 1024 * 1024}`])], { timeoutMs: 2000 });
    await expectDenied(p, result, 413, 'body_too_large', { started, closes: true });
  });

  void test('Content-Length of limit + 1 gets 413', async () => {
    const p = path('limited');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', `Content-Length: ${LIMIT + 1}`]) + 'x'.repeat(LIMIT + 1)]);
    await expectDenied(p, result, 413, 'body_too_large', { started, closes: true });
  });

  void test('a body of exactly the route limit passes and arrives whole', async () => {
    const p = path('limited');
    const result = await send([post(p, ['Content-Type: text/plain', `Content-Length: ${LIMIT}`, 'Connection: close']) + 'x'.repeat(LIMIT)]);
    assert.equal(result.responses[0]?.status, 200, result.raw.slice(0, 300));
    assert.equal(echo.received.find((r) => r.url === p)?.bodyBytes, LIMIT);
    const record = await recordFor(p);
    assert.equal(record.decision, 'allow');
  });

  void test('routes without their own limit use the global maxBodyBytes', async () => {
    const ok = path('default');
    const okResult = await send([post(ok, ['Content-Type: text/plain', `Content-Length: ${GLOBAL_LIMIT}`, 'Connection: close']) + 'x'.repeat(GLOBAL_LIMIT)]);
    assert.equal(okResult.responses[0]?.status, 200);
    const big = path('default');
    const started = upstreamStarted;
    const bigResult = await send([post(big, ['Content-Type: text/plain', `Content-Length: ${GLOBAL_LIMIT + 1}`]) + 'x'.repeat(GLOBAL_LIMIT + 1)]);
    await expectDenied(big, bigResult, 413, 'body_too_large', { started, closes: true });
  });
});

void describe('streamed body size (chunked)', () => {
  void test('a chunked body growing past the limit gets 413 and the upstream never receives a complete request', async () => {
    const p = path('limited');
    const chunks = [post(p, ['Content-Type: text/plain', 'Transfer-Encoding: chunked'])];
    for (let i = 0; i < 6; i++) chunks.push(chunk('y'.repeat(400)));
    chunks.push('0\r\n\r\n');
    // Paced so the body arrives as a stream, chunk by chunk: the pacing is what the test sends.
    const result = await send(chunks, { gapMs: 40 });
    // The upload may be cut before the client reads the 413; what must never happen is a forwarded whole body.
    const finals = result.responses.filter((r) => r.status >= 200);
    if (finals.length > 0) await expectDenied(p, result, 413, 'body_too_large', { closes: true });
    else {
      assert.ok(result.closed, 'the upload was neither answered nor cut');
      const record = await recordFor(p);
      assert.equal(record.reason, 'body_too_large');
    }
    await echo.settled(p);
    assert.ok(!echo.received.some((r) => r.url === p), 'the upstream received a complete over-limit request');
  });

  void test('an over-limit chunked body sent in one write gets 413 and nothing complete is forwarded', async () => {
    const p = path('limited');
    const result = await send([post(p, ['Content-Type: text/plain', 'Transfer-Encoding: chunked']) + chunk('z'.repeat(LIMIT + 200)) + '0\r\n\r\n']);
    await expectDenied(p, result, 413, 'body_too_large', { closes: true });
    await echo.settled(p);
    assert.ok(!echo.received.some((r) => r.url === p));
  });

  void test('a chunked body of exactly the limit passes and arrives whole', async () => {
    const p = path('limited');
    // Paced so the two chunks arrive in separate reads, as a streamed body does.
    const result = await send([
      post(p, ['Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Connection: close']),
      chunk('a'.repeat(LIMIT / 2)), chunk('b'.repeat(LIMIT / 2)) + '0\r\n\r\n',
    ], { gapMs: 20 });
    assert.equal(result.responses[0]?.status, 200, result.raw.slice(0, 300));
    assert.equal(echo.received.find((r) => r.url === p)?.bodyBytes, LIMIT);
    const record = await recordFor(p);
    assert.equal(record.decision, 'allow');
  });
});

void describe('content types', () => {
  void test('a content type not in the route\'s contentTypes gets 415 and forwards nothing', async () => {
    const p = path('json');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', 'Content-Length: 2']) + 'hi']);
    await expectDenied(p, result, 415, 'unsupported_media_type', { started });
  });

  void test('a body without a content type on a route with contentTypes gets 415', async () => {
    const p = path('json');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Length: 2']) + '{}']);
    await expectDenied(p, result, 415, 'unsupported_media_type', { started });
  });

  void test('a near-miss media type (application/json-patch+json, application/jsonx) gets 415', async () => {
    for (const type of ['application/json-patch+json', 'application/jsonx', 'text/json']) {
      const p = path('json');
      const started = upstreamStarted;
      const result = await send([post(p, [`Content-Type: ${type}`, 'Content-Length: 2']) + '{}']);
      await expectDenied(p, result, 415, 'unsupported_media_type', { started });
    }
  });

  void test('415 is answered before an unsent body, and the connection is closed', async () => {
    const p = path('json');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', 'Content-Length: 500'])], { timeoutMs: 2000 });
    await expectDenied(p, result, 415, 'unsupported_media_type', { started, closes: true });
  });

  void test('an accepted media type with parameters and in any case passes', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
      const p = path('json');
      const result = await send([post(p, [`Content-Type: ${type}`, 'Content-Length: 2', 'Connection: close']) + '{}']);
      assert.equal(result.responses[0]?.status, 200, `${type}: ${result.raw.slice(0, 300)}`);
      assert.equal(echo.received.find((r) => r.url === p)?.bodyBytes, 2);
    }
  });

  void test('a request without a body needs no content type', async () => {
    const p = path('json');
    const result = await send([`GET ${p} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`]);
    assert.equal(result.responses[0]?.status, 200);
  });
});

void describe('Expect: 100-continue', () => {
  void test('a too-large Content-Length with Expect: 100-continue gets 413 without a 100 Continue', async () => {
    const p = path('limited');
    const started = upstreamStarted;
    const result = await send([
      post(p, ['Content-Type: text/plain', `Content-Length: ${LIMIT * 4}`, 'Expect: 100-continue']),
      'x'.repeat(LIMIT * 4),
    ], { awaitContinue: true });
    assert.doesNotMatch(result.raw, /HTTP\/1\.1 100/);
    await expectDenied(p, result, 413, 'body_too_large', { started, closes: true });
  });

  void test('a wrong content type with Expect: 100-continue gets 415 without a 100 Continue', async () => {
    const p = path('json');
    const started = upstreamStarted;
    const result = await send([
      post(p, ['Content-Type: text/plain', 'Content-Length: 10', 'Expect: 100-continue']), '0123456789',
    ], { awaitContinue: true });
    assert.doesNotMatch(result.raw, /HTTP\/1\.1 100/);
    await expectDenied(p, result, 415, 'unsupported_media_type', { started });
  });

  void test('a body at the limit with Expect: 100-continue gets 100 Continue, then 200, and arrives whole', async () => {
    const p = path('limited');
    const result = await send([
      post(p, ['Content-Type: text/plain', `Content-Length: ${LIMIT}`, 'Expect: 100-continue', 'Connection: close']),
      'x'.repeat(LIMIT),
    ], { awaitContinue: true });
    assert.deepEqual(result.responses.map((r) => r.status), [100, 200], result.raw.slice(0, 400));
    assert.equal(echo.received.find((r) => r.url === p)?.bodyBytes, LIMIT);
    const forwarded = echo.received.find((r) => r.url === p);
    assert.equal(forwarded?.headers.expect, undefined, 'Expect is hop-by-hop for the gateway: not forwarded');
    const record = await recordFor(p);
    assert.equal(record.decision, 'allow');
  });

  void test('an Expect value other than 100-continue gets a 417 problem document and an audit record', async () => {
    const p = path('limited');
    const started = upstreamStarted;
    const result = await send([post(p, ['Content-Type: text/plain', 'Content-Length: 2', 'Expect: teapot']) + 'hi']);
    const finals = result.responses.filter((r) => r.status >= 200);
    assert.equal(finals.length, 1, result.raw);
    const res = finals[0];
    assert.ok(res !== undefined);
    assert.equal(res.status, 417);
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
    const record = await recordFor(p);
    assert.equal(record.status, 417);
    assert.equal(record.decision, 'deny');
    assert.ok(!echo.received.some((r) => r.url === p));
    assert.equal(upstreamStarted, started);
  });
});
