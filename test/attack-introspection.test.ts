// Attacks on the introspection authenticator from outside: answers whose meaning depends on who
// reads them (a duplicated member under a content type that is not JSON's), answers nested deeper
// than the gateway can write them again, answers trickled in under the per-chunk timeout but over
// the whole. Each request gets a
// precise status and problem+json, nothing reaches the upstream, one audit record.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

/** An introspection endpoint whose answers the test chooses (no client authentication check: the attack is on the answer). */
async function hostileEndpoint(): Promise<{ server: Server; origin: string; calls: () => number; answer: (a: Answer) => void }> {
  let answer: Answer = (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":false}'); };
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => { calls++; answer(req, res); });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls, answer: (a) => { answer = a; } };
}

interface Reply { status: number; headers: Record<string, string>; body: string; complete: true }

async function get(gw: TestGateway, path: string, token: string): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

let counter = 0;
const freshToken = (): string => `attack-${process.pid}-${++counter}-${'y'.repeat(24)}`;

describe('introspection answers built to be read two ways', () => {
  let endpoint: Awaited<ReturnType<typeof hostileEndpoint>>;
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    endpoint = await hostileEndpoint();
    echo = await startEchoUpstream();
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        opaque: {
          type: 'introspection', issuer: endpoint.origin, introspectionEndpoint: `${endpoint.origin}/introspect`, clientId: 'gateway', clientSecret: 'secret',
          audience: 'orders-api', timeoutMs: 400, breaker: { failures: 1000 },
        },
      },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['opaque'] }],
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
    endpoint.server.closeAllConnections();
    await new Promise((done) => endpoint.server.close(done));
  });

  async function refused(path: string, status: number, code: string, detail: RegExp): Promise<void> {
    const forwarded = echo.received.length;
    const token = freshToken();
    const started = performance.now();
    const res = await get(gw, path, token);
    assertProblem(res, status, code);
    assert.ok(performance.now() - started < 2000, 'answered promptly');
    assert.equal(echo.received.length, forwarded, 'nothing forwarded');
    const record = await oneAuditRecordFor(gw, path);
    assert.equal(record.reason, code);
    assert.match(record.detail ?? '', detail);
  }

  const DUPLICATE = '{"active":false,"sub":"x","aud":"orders-api","active":true}';
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
    it(`a duplicated "active" under content-type ${type ?? '(none)'} is refused like under application/json`, async () => {
      endpoint.answer((_q, res) => { res.writeHead(200, type === undefined ? {} : { 'content-type': type }).end(DUPLICATE); });
      await refused(`/orders/dup-${type ?? 'none'}`, 503, 'authentication_unavailable', /member "active" twice|not an RFC 7662 response/);
    });
  }

  it('a duplicated member nested inside a claim is refused too (the claim would read differently elsewhere)', async () => {
    endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"aud":"orders-api","sub":"x","realm_access":{"roles":["user"],"roles":["admin"]}}'); });
    await refused('/orders/dup-nested', 503, 'authentication_unavailable', /member "roles" twice/);
  });

  it('an answer nested deeper than the gateway reads (thousands of arrays inside 64 KiB) is malformed, not a crash', async () => {
    const deep = `${'['.repeat(30_000)}1${']'.repeat(30_000)}`;
    endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(`{"active":true,"aud":"orders-api","sub":"deep","junk":${deep}}`); });
    await refused('/orders/deep', 503, 'authentication_unavailable', /nested deeper than/);
  });

  it('a slowloris answer (a byte every 100 ms, under the per-chunk bound, over timeoutMs in total) is 503 after about timeoutMs', async () => {
    endpoint.answer((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const body = '{"active":true,"aud":"orders-api","sub":"slow"}';
      let i = 0;
      const timer = setInterval(() => { if (i < body.length) res.write(body[i++]); else { clearInterval(timer); res.end(); } }, 100);
      res.on('close', () => clearInterval(timer));
    });
    const started = performance.now();
    await refused('/orders/slowloris', 503, 'authentication_unavailable', /did not answer within timeoutMs 400/);
    assert.ok(performance.now() - started < 1200, 'the whole exchange is bounded');
  });

  it('a gzip-encoded answer is not inflated: malformed, not read as the bomb it may be', async () => {
    const { gzipSync } = await import('node:zlib');
    const bomb = gzipSync(Buffer.alloc(50 << 20, 0x20));
    endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(bomb); });
    await refused('/orders/gzip', 503, 'authentication_unavailable', /not an RFC 7662 response|maxResponseBytes/);
  });

  for (const [name, body] of [
    ['exp 1e400 (Infinity)', '{"active":true,"aud":"orders-api","sub":"x","exp":1e400}'],
    ['active 1', '{"active":1,"aud":"orders-api","sub":"x"}'],
    ['a BOM before a duplicated member', '\ufeff{"active":false,"aud":"orders-api","sub":"x","active":true}'],
  ] as const) {
    it(`${name}: never authenticates`, async () => {
      endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(body); });
      const forwarded = echo.received.length;
      const res = await get(gw, `/orders/odd-${name.replace(/\W/g, '')}`, freshToken());
      assert.ok(res.status === 401 || res.status === 503, res.body);
      assert.equal(echo.received.length, forwarded);
    });
  }

  it('__proto__ and constructor members give no subject, roles or audience', async () => {
    endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"__proto__":{"aud":"orders-api","sub":"admin"},"constructor":{"sub":"admin"}}'); });
    await refused('/orders/proto', 401, 'invalid_credential', /audience mismatch/);
  });
});
