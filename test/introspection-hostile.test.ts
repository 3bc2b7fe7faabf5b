// The introspection authenticator against an endpoint that misbehaves: down, slow, garbage, HTML,
// a 10 MB body, redirects, duplicated members, `active` as a string or missing, active answers for
// another audience or issuer or already expired, and 500s that open the circuit breaker. Each
// request gets a precise status and problem+json, nothing reaches the upstream, and one audit
// record names the precise reason.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertProblem, oneAuditRecordFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { getWithBearer, type BearerReply } from './harness/introspection.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { freePort } from './harness/free-port.js';
import { b64, nowSec } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';

type Answer = (req: IncomingMessage, res: ServerResponse, form: URLSearchParams) => void;

/** An introspection endpoint whose every answer the test chooses; counts the calls and checks the gateway's client authentication. */
class HostileEndpoint {
  calls = 0;
  answer: Answer = (_req, res) => json(res, { active: true, sub: 'someone' });
  lastForm: URLSearchParams | null = null;
  private constructor(readonly server: Server, readonly origin: string) {}

  static async start(): Promise<HostileEndpoint> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const endpoint = new HostileEndpoint(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        endpoint.calls++;
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        endpoint.lastForm = form;
        // RFC 6749 §2.3.1: id and secret are form-encoded, then joined and base64-encoded.
        const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString('utf8').split(':').map((p) => decodeURIComponent(p.replace(/\+/g, ' ')));
        if (id !== 'gateway' || secret !== 'hostile-secret') { res.writeHead(401, { 'www-authenticate': 'Basic realm="as"' }).end(); return; }
        endpoint.answer(req, res, form);
      });
    });
    return endpoint;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((done) => this.server.close(() => done()));
  }
}

function json(res: ServerResponse, body: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body));
}

const get = getWithBearer;
type Reply = BearerReply;

let counter = 0;
const freshToken = (): string => `opaque-${process.pid}-${++counter}-${'x'.repeat(24)}`;

describe('introspection against a hostile endpoint', () => {
  let endpoint: HostileEndpoint;
  let echo: EchoUpstream;
  let gw: TestGateway;

  const authenticator = (origin: string, extra: Record<string, unknown> = {}) => ({
    type: 'introspection', issuer: origin, introspectionEndpoint: `${origin}/introspect`, clientId: 'gateway', clientSecret: 'hostile-secret',
    audience: 'orders-api', timeoutMs: 300, maxResponseBytes: 4096, breaker: { failures: 1000 }, ...extra,
  });
  const config = (origin: string, extra: Record<string, unknown> = {}) => ({
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { opaque: authenticator(origin, extra) },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['opaque'] }],
  });

  before(async () => {
    endpoint = await HostileEndpoint.start();
    echo = await startEchoUpstream();
    gw = await startGateway(config(endpoint.origin, { jwtIssuers: ['https://jwt-issuer.test'] }));
  });
  after(async () => {
    await gw.close();
    await echo.close();
    await endpoint.close();
  });

  /** One request with a new token: the status and code, nothing forwarded, one audit record whose detail matches. */
  async function expect(path: string, status: number, code: string, detail: RegExp, token = freshToken()): Promise<Reply> {
    const forwarded = echo.received.length;
    const res = await get(gw, path, token);
    assertProblem(res, status, code);
    assert.equal(echo.received.length, forwarded, 'nothing forwarded');
    const record = await oneAuditRecordFor(gw, path);
    assert.equal(record.reason, code);
    assert.match(record.detail ?? '', detail);
    assert.ok(!(record.detail ?? '').includes(token), 'the token is not in the audit record');
    return res;
  }

  it('a well-formed active answer authenticates, with the token sent as the form parameter and the hint', async () => {
    endpoint.answer = (_req, res) => json(res, { active: true, sub: 'ok-user', aud: 'orders-api', iss: endpoint.origin, token_type: 'Bearer', exp: nowSec() + 60 });
    const token = freshToken();
    const res = await get(gw, '/orders/ok', token);
    assert.equal(res.status, 200, res.body);
    assert.equal(endpoint.lastForm?.get('token'), token);
    assert.equal(endpoint.lastForm?.get('token_type_hint'), 'access_token');
  });

  const CASES: [string, Answer, number, string, RegExp][] = [
    ['garbage', (_q, res) => json(res, '{"active": tru'), 503, 'authentication_unavailable', /not an RFC 7662 response/],
    ['an HTML page with 200', (_q, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'), 503, 'authentication_unavailable', /not an RFC 7662 response/],
    ['active as the string "true"', (_q, res) => json(res, { active: 'true', sub: 'x', aud: 'orders-api' }), 503, 'authentication_unavailable', /active/],
    ['no active member', (_q, res) => json(res, { sub: 'x', aud: 'orders-api' }), 503, 'authentication_unavailable', /active/],
    ['a duplicated member', (_q, res) => json(res, '{"active":false,"sub":"x","aud":"orders-api","active":true}'), 503, 'authentication_unavailable', /member "active" twice/],
    ['a redirect', (_q, res) => res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end(), 503, 'authentication_unavailable', /redirect/],
    ['HTTP 500', (_q, res) => json(res, { error: 'server_error' }, 500), 503, 'authentication_unavailable', /HTTP 500/],
    ['a 10 MB body with content-length', (_q, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 << 20) }); res.end(Buffer.alloc(10 << 20, 0x20)); }, 503, 'authentication_unavailable', /maxResponseBytes/],
    ['a 10 MB streamed body', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 << 10, 0x20);
      let sent = 0;
      const push = (): void => { while (sent < 160) { sent++; if (!res.write(chunk)) { res.once('drain', push); return; } } res.end(); };
      res.on('error', () => undefined);
      push();
    }, 503, 'authentication_unavailable', /maxResponseBytes/],
    ['inactive', (_q, res) => json(res, { active: false }), 401, 'invalid_credential', /inactive/],
    ['active for another audience', (_q, res) => json(res, { active: true, sub: 'x', aud: 'billing-api' }), 401, 'invalid_credential', /audience mismatch/],
    ['active without an audience', (_q, res) => json(res, { active: true, sub: 'x' }), 401, 'invalid_credential', /audience mismatch/],
    ['active for another issuer', (_q, res) => json(res, { active: true, sub: 'x', aud: 'orders-api', iss: 'https://evil.test' }), 401, 'invalid_credential', /issuer mismatch/],
    ['active but expired', (_q, res) => json(res, { active: true, sub: 'x', aud: 'orders-api', exp: nowSec() - 3600 }), 401, 'invalid_credential', /expired/],
    ['active but not yet valid', (_q, res) => json(res, { active: true, sub: 'x', aud: 'orders-api', nbf: nowSec() + 3600 }), 401, 'invalid_credential', /not yet valid/],
    ['active with exp as a string', (_q, res) => json(res, { active: true, sub: 'x', aud: 'orders-api', exp: String(nowSec() + 60) }), 401, 'invalid_credential', /exp is not a number/],
    ['a refresh token', (_q, res) => json(res, { active: true, sub: 'x', aud: 'orders-api', token_type: 'refresh_token' }), 401, 'invalid_credential', /token_type/],
    ['active for several audiences without azp', (_q, res) => json(res, { active: true, sub: 'x', aud: ['billing-api', 'orders-api'] }), 401, 'invalid_credential', /authorized_party_missing: aud has 2 values/],
    ['a subject with a line break', (_q, res) => json(res, { active: true, sub: 'x\r\nX-Admin: 1', aud: 'orders-api' }), 401, 'invalid_credential', /subject/],
  ];
  CASES.forEach(([name, answer, status, code, detail], i) => {
    it(`${name}: ${status} ${code}`, async () => {
      endpoint.answer = answer;
      const started = performance.now();
      await expect(`/orders/case-${i}`, status, code, detail);
      assert.ok(performance.now() - started < 2500, 'answered promptly');
    });
  });

  it('50 concurrent requests with one new token while the endpoint takes its time: one call, every request answered', async () => {
    endpoint.answer = (_q, res) => { setTimeout(() => json(res, { active: true, sub: 'flight', aud: 'orders-api' }), 150); };
    const token = freshToken();
    const calls = endpoint.calls;
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => get(gw, `/orders/flight-${i}`, token)));
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [200]);
    assert.equal(endpoint.calls, calls + 1);
  });

  it('a flood of distinct tokens from one client while the endpoint is slow: at most 64 calls in flight, every request answered, none forwarded', async () => {
    let inFlight = 0;
    let most = 0;
    endpoint.answer = (_q, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      // A call the gateway gave up on (timeoutMs) is no longer in flight for it: counted out when its connection closes.
      let open = true;
      const done = (): void => { if (open) { open = false; inFlight--; } };
      res.on('close', done);
      setTimeout(() => { done(); json(res, { active: false }); }, 100);
    };
    const forwarded = echo.received.length;
    const replies = await Promise.all(Array.from({ length: 400 }, (_, i) => get(gw, `/orders/flood-${i}`, freshToken())));
    assert.ok(most <= 64, `at most 64 calls of one client address in flight (saw ${most})`);
    for (const r of replies) assert.ok(r.status === 401 || r.status === 503, r.body);
    assert.equal(echo.received.length, forwarded);
    await gw.auditBarrier();
    const records = (await gw.audit()).filter((r) => r.path.startsWith('/orders/flood-'));
    assert.equal(records.length, 400, 'one record each');
    // Past 64 in flight for one client address (256 in all) a call is refused at once, named as such.
    for (const r of records.filter((x) => x.status === 503)) assert.match(r.detail ?? '', /introspections in flight|did not answer within/);
    if (most === 64) assert.ok(records.some((r) => /64 introspections in flight for this client address/.test(r.detail ?? '')));
  });

  it('slow (beyond timeoutMs): 503 after about timeoutMs', async () => {
    endpoint.answer = (_q, res) => { const t = setTimeout(() => json(res, { active: true, sub: 'late', aud: 'orders-api' }), 2000); res.on('close', () => clearTimeout(t)); };
    const started = performance.now();
    await expect('/orders/slow', 503, 'authentication_unavailable', /did not answer within timeoutMs 300/);
    assert.ok(performance.now() - started < 1500);
  });

  it('a token longer than maxTokenBytes or not a single bearer token is 401 without a call', async () => {
    const calls = endpoint.calls;
    await expect('/orders/long', 401, 'invalid_credential', /maxTokenBytes/, 'a'.repeat(5000));
    assert.equal(endpoint.calls, calls);
  });

  it('JWT-shaped tokens: introspected for jwtIssuers, absent for other issuers', async () => {
    endpoint.answer = (_q, res) => json(res, { active: true, sub: 'jwt-user', aud: 'orders-api' });
    const jwt = (iss: string) => `${b64('{"alg":"ES256","typ":"at+jwt"}')}.${b64(JSON.stringify({ iss, sub: 'jwt-user', exp: nowSec() + 60 }))}.${b64('signature')}`;
    const calls = endpoint.calls;
    assert.equal((await get(gw, '/orders/jwt-listed', jwt('https://jwt-issuer.test'))).status, 200);
    assert.equal(endpoint.calls, calls + 1);
    assertProblem(await get(gw, '/orders/jwt-other', jwt('https://other.test')), 401, 'unauthenticated');
    assert.equal(endpoint.calls, calls + 1);
  });

  it('down (connection refused): 503 at once', async () => {
    const port = await freePort();
    const down = await startGateway(config(`http://127.0.0.1:${port}`));
    try {
      const res = await get(down, '/orders/down', freshToken());
      assertProblem(res, 503, 'authentication_unavailable');
      const record = await oneAuditRecordFor(down, '/orders/down');
      assert.match(record.detail ?? '', /unreachable: ECONNREFUSED/);
    } finally {
      await down.close();
    }
  });

  it('500s open the breaker: then 503 without calling the endpoint until openMs passed, then one probe closes it', async () => {
    const clock = new ManualClock(Date.now());
    const gw2 = await startGateway(config(endpoint.origin, { breaker: { failures: 3, openMs: 10_000 } }), { clock });
    const metric = async (name: string) => new RegExp(`^${name}\\{authenticator="opaque"\\} (\\d+)$`, 'm').exec(await (await fetch(`${gw2.adminUrl}/metrics`)).text())?.[1];
    try {
      endpoint.answer = (_q, res) => json(res, { error: 'server_error' }, 500);
      const calls = endpoint.calls;
      for (let i = 0; i < 3; i++) assertProblem(await get(gw2, `/orders/b-${i}`, freshToken()), 503, 'authentication_unavailable');
      assert.equal(endpoint.calls, calls + 3);
      assert.equal(await metric('portcullis_introspection_breaker_open'), '1');
      const open = await get(gw2, '/orders/b-open', freshToken());
      assertProblem(open, 503, 'authentication_unavailable');
      assert.equal(open.headers['retry-after'], '10');
      assert.equal(endpoint.calls, calls + 3, 'not called while open');
      assert.match((await oneAuditRecordFor(gw2, '/orders/b-open')).detail ?? '', /circuit open/);
      endpoint.answer = (_q, res) => json(res, { active: true, sub: 'back', aud: 'orders-api' });
      clock.advance(10_001);
      assert.equal((await get(gw2, '/orders/b-probe', freshToken())).status, 200);
      assert.equal(endpoint.calls, calls + 4, 'one probe');
      assert.equal(await metric('portcullis_introspection_breaker_open'), '0');
      assert.equal((await get(gw2, '/orders/b-after', freshToken())).status, 200);
    } finally {
      await gw2.close();
    }
  });
});
