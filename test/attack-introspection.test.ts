// Attacks on the introspection authenticator from outside: answers whose meaning depends on who
// reads them (a duplicated member under a content type that is not JSON's), answers nested deeper
// than the gateway can write them again, answers trickled in under the per-chunk timeout but over
// the whole, and shared answers rewritten in Redis by whoever can write there. Each request gets a
// precise status and problem+json, nothing reaches the upstream, one audit record.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { IntrospectionAuthenticator, type IntrospectionAuthenticatorSpec } from '../src/authn/introspection/introspection-authenticator.js';
import { MAX_IN_FLIGHT_PER_CLIENT } from '../src/authn/introspection/introspection-endpoint.js';
import { assertProblem, oneAuditRecordFor, waitUntil } from './harness/assertions.js';
import type { TestAuthorizationServer } from './harness/authorization-server.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { getWithBearer, hostileEndpointConfig, startSharedCacheGateways, type SharedCacheSetup } from './harness/introspection.js';
import { redisCall, redisGet, redisKeys, type TestRedis } from './harness/redis.js';

type Answer = (req: IncomingMessage, res: ServerResponse, form: URLSearchParams) => void;

/** An introspection endpoint whose answers the test chooses (no client authentication check: the attack is on the answer). */
async function hostileEndpoint(): Promise<{ server: Server; origin: string; calls: () => number; answer: (a: Answer) => void }> {
  let answer: Answer = (_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":false}'); };
  let calls = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => { calls++; answer(req, res, new URLSearchParams(Buffer.concat(chunks).toString('utf8'))); });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls, answer: (a) => { answer = a; } };
}

const get = getWithBearer;

let counter = 0;
const freshToken = (): string => `attack-${process.pid}-${++counter}-${'y'.repeat(24)}`;

describe('introspection answers built to be read two ways', () => {
  let endpoint: Awaited<ReturnType<typeof hostileEndpoint>>;
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    endpoint = await hostileEndpoint();
    echo = await startEchoUpstream();
    gw = await startGateway(hostileEndpointConfig(endpoint.origin, echo.url, { timeoutMs: 400 }));
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

  for (const [name, answer] of [
    ['204 No Content', (_q: IncomingMessage, res: ServerResponse) => { res.writeHead(204).end(); }],
    ['304 Not Modified', (_q: IncomingMessage, res: ServerResponse) => { res.writeHead(304).end(); }],
    ['a 64 KiB response header', (_q: IncomingMessage, res: ServerResponse) => { res.writeHead(200, { 'content-type': 'application/json', 'x-pad': 'p'.repeat(64 << 10) }).end('{"active":true,"aud":"orders-api","sub":"x"}'); }],
    ['chunked garbage (a chunk size that is not hex)', (q: IncomingMessage) => { q.socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{"active":true}\r\n0\r\n\r\n'); }],
  ] as const) {
    it(`${name}: 503, not an answer`, async () => {
      endpoint.answer(answer);
      await refused(`/orders/odd-status-${name.replace(/\W/g, '')}`, 503, 'authentication_unavailable', /./);
    });
  }

  it('103 Early Hints before the answer: the answer decides', async () => {
    endpoint.answer((_q, res) => {
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":false}');
    });
    await refused('/orders/early-hints', 401, 'invalid_credential', /inactive/);
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

  it('a token revoked while its introspection is under way is refused when the answer comes, and its answer is not kept', async () => {
    endpoint.answer((_q, res) => { setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"aud":"orders-api","sub":"late"}'); }, 300); });
    const token = freshToken();
    const forwarded = echo.received.length;
    const calls = endpoint.calls();
    const pending = Promise.all([get(gw, '/orders/revoked-in-flight-1', token), get(gw, '/orders/revoked-in-flight-2', token)]);
    for (let i = 0; i < 100 && endpoint.calls() === calls; i++) await new Promise((r) => setTimeout(r, 5));
    const spec = specOf(gw);
    const digest = spec.oauth.digester.ofToken(token);
    await spec.oauth.revocations.revoke(digest, Date.now() + 60_000);
    for (const res of await pending) assertProblem(res, 401, 'invalid_credential');
    assert.equal(echo.received.length, forwarded, 'nothing forwarded after the revocation');
    assert.match((await oneAuditRecordFor(gw, '/orders/revoked-in-flight-1')).detail ?? '', /revoked/);
    assert.equal(spec.cache.fresh(digest, Date.now()), undefined, 'the answer is not cached');
  });

  it('tokens outside RFC 6750 b64token, or smuggled beside the scheme, are 401 without a call', async () => {
    const calls = endpoint.calls();
    for (const [i, value] of ['Bearer a,b', 'Bearer a;b', 'Bearer a b', 'Bearer a"b', 'Bearer =abc', 'Bearer a\\b', 'Bearer a\tb'].entries()) {
      const res = await request(`${gw.url}/orders/b64-${i}`, { headers: { authorization: value } });
      const body = await res.body.text();
      assert.equal(res.statusCode, 401, `${JSON.stringify(value)}: ${body}`);
    }
    assert.equal(endpoint.calls(), calls, 'the endpoint was not asked');
  });

  it('two authenticators on one endpoint with different checks: an answer accepted by one is judged again by the other', async () => {
    const auth = (extra: Record<string, unknown>) => ({ type: 'introspection', issuer: endpoint.origin, introspectionEndpoint: `${endpoint.origin}/introspect`, clientId: 'gateway', clientSecret: 'secret', ...extra });
    const two = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        orders: auth({ audience: 'orders-api' }),
        billing: auth({ audience: ['orders-api', 'billing-api'], authorizedParties: ['billing-web'], requiredClaimValues: { plan: 'pro' } }),
      },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['orders'] },
        { name: 'billing', match: { path: '/billing/**' }, upstream: 'echo', authenticate: ['billing'] },
      ],
    });
    try {
      endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"aud":"orders-api","sub":"u","client_id":"orders-web","plan":"free"}'); });
      const token = freshToken();
      assert.equal((await get(two, '/orders/x', token)).status, 200);
      assertProblem(await get(two, '/billing/x', token), 401, 'invalid_credential');
      assert.match((await oneAuditRecordFor(two, '/billing/x')).detail ?? '', /authorized_party_mismatch/);
      assert.equal((await get(two, '/orders/y', token)).status, 200, 'and the first still accepts it');
    } finally {
      await two.close();
    }
  });

  it('an endpoint that echoes the token in its error code or challenge does not put it in the audit record', async () => {
    for (const [i, answer] of ([
      (_q, res, form) => { res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `bad ${form.get('token') ?? ''}` })); },
      (_q, res, form) => { res.writeHead(401, { 'www-authenticate': `Bearer error="${form.get('token') ?? ''}"` }).end(); },
      (_q, res, form) => { res.writeHead(200, { 'content-type': 'application/json' }).end(`{"active": ${form.get('token') ?? ''}}`); },
    ] satisfies Answer[]).entries()) {
      endpoint.answer(answer);
      const token = freshToken();
      assertProblem(await get(gw, `/orders/echoed-${i}`, token), 503, 'authentication_unavailable');
      const record = await oneAuditRecordFor(gw, `/orders/echoed-${i}`);
      assert.match(record.detail ?? '', /answered HTTP 40[01]|not an RFC 7662 response/);
      // Not even a part of it (a JSON parser's message quotes the text around the error).
      assert.ok(!JSON.stringify(record).includes(token.slice(0, 8)), `the token is not in the audit record: ${record.detail ?? ''}`);
    }
  });

  it('__proto__ and constructor members give no subject, roles or audience', async () => {
    endpoint.answer((_q, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"__proto__":{"aud":"orders-api","sub":"admin"},"constructor":{"sub":"admin"}}'); });
    await refused('/orders/proto', 401, 'invalid_credential', /audience mismatch/);
  });
});

describe('the circuit breaker is the endpoint\'s, not one token\'s', () => {
  let endpoint: Awaited<ReturnType<typeof hostileEndpoint>>;
  let echo: EchoUpstream;
  let gw: TestGateway;
  const BAD = 'a-token-whose-answer-is-unusable-0123456789';

  before(async () => {
    endpoint = await hostileEndpoint();
    echo = await startEchoUpstream();
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        opaque: {
          type: 'introspection', issuer: endpoint.origin, introspectionEndpoint: `${endpoint.origin}/introspect`, clientId: 'gateway', clientSecret: 'secret',
          audience: 'orders-api', timeoutMs: 400, maxResponseBytes: 4096, breaker: { failures: 3, openMs: 60_000 },
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

  for (const [name, unusable] of [
    ['larger than maxResponseBytes (a user in thousands of groups)', JSON.stringify({ active: true, aud: 'orders-api', sub: 'big', groups: Array.from({ length: 600 }, (_, i) => `group-${i}`) })],
    ['with a duplicated member', '{"active":true,"aud":"orders-api","sub":"dup","name":"a","name":"b"}'],
  ] as const) {
    it(`one token whose answer is ${name}, sent again and again, does not open the breaker for everyone`, async () => {
      endpoint.answer((_q, res, form) => {
        const body = form.get('token') === BAD ? unusable : '{"active":true,"aud":"orders-api","sub":"someone-else"}';
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      });
      for (let i = 0; i < 5; i++) assertProblem(await get(gw, `/orders/bad-${i}`, BAD), 503, 'authentication_unavailable');
      const other = await get(gw, '/orders/someone-else', freshToken());
      assert.equal(other.status, 200, other.body);
    });
  }
});

describe('one client cannot take every introspection slot', () => {
  let endpoint: Awaited<ReturnType<typeof hostileEndpoint>>;
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    endpoint = await hostileEndpoint();
    echo = await startEchoUpstream();
    gw = await startGateway(hostileEndpointConfig(endpoint.origin, echo.url, { timeoutMs: 3000 }, { trustedProxies: ['127.0.0.1/32'] }));
  });
  after(async () => {
    await gw.close();
    await echo.close();
    endpoint.server.closeAllConnections();
    await new Promise((done) => endpoint.server.close(done));
  });

  for (const [name, address] of [
    ['one address', (): string => '203.0.113.66'],
    ['the addresses of one IPv6 /64', (i: number) => `2001:db8:0:66::${(i + 1).toString(16)}`],
  ] as const) {
    it(`a flood of made-up tokens from ${name} while the endpoint is slow leaves room for another client's token`, async () => {
      const GOOD = `the-good-token-of-another-client-${name.length}-0123456789`;
      endpoint.answer((_q, res, form) => {
        const body = form.get('token') === GOOD ? '{"active":true,"aud":"orders-api","sub":"good"}' : '{"active":false}';
        setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }).end(body); }, form.get('token') === GOOD ? 0 : 800);
      });
      const from = async (client: string, path: string, token: string): Promise<number> => {
        const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': client } });
        await res.body.dump();
        return res.statusCode;
      };
      const calls = endpoint.calls();
      const flood = Promise.all(Array.from({ length: 300 }, (_, i) => from(address(i), `/orders/flood-${name.length}-${i}`, freshToken())));
      // The flooding client has filled its share of calls in flight (answers take 800 ms): only then does the other client ask.
      await waitUntil('the flood holds its share of calls in flight', () => endpoint.calls() >= calls + MAX_IN_FLIGHT_PER_CLIENT, 5000);
      assert.equal(await from('198.51.100.7', `/orders/good-${name.length}`, GOOD), 200, 'the other client is served');
      const statuses = await flood;
      for (const status of statuses) assert.ok(status === 401 || status === 503, String(status));
    });
  }
});

describe('shared introspection answers rewritten by whoever can write Redis', () => {
  let redis: TestRedis | string = 'not started';
  let as: TestAuthorizationServer;
  let echo: EchoUpstream;
  const gateways: TestGateway[] = [];

  let setup: SharedCacheSetup | string = 'not started';

  before(async () => {
    setup = await startSharedCacheGateways('attack-token-hash-key-0123456789abcdef');
    if (typeof setup === 'string') { redis = setup; return; } // each test skips with the reason (under CI=true it throws instead)
    ({ redis, as, echo } = setup);
    gateways.push(...setup.gateways);
  });
  after(async () => {
    if (typeof setup !== 'string') await setup.close();
  });

  it('an answer whose claims were changed in Redis is not served: the other gateway asks the endpoint', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a, b] = gateways as [TestGateway, TestGateway];
    const token = await as.userToken('mallory', { claims: { roles: ['reader'] } });
    assert.equal((await get(a, '/orders/r1', token)).status, 200);
    const digest = specOf(a).oauth.digester.ofToken(token);
    let key = '';
    for (let i = 0; i < 50 && key === ''; i++) {
      key = (await redisKeys(redis, `*:introspection:*:${digest}`)).find((l) => l.endsWith(digest)) ?? '';
      if (key === '') await new Promise((r) => setTimeout(r, 10));
    }
    assert.notEqual(key, '', 'the answer is shared');
    const stored = (await redisGet(redis, key)) ?? '';
    // The attacker sees their own token's entry appear and rewrites who it says they are.
    const forged = stored.replace('"sub":"mallory"', '"sub":"admin"').replace('"reader"', '"admin"');
    assert.notEqual(forged, stored);
    await redisCall(redis, 'SET', key, forged, 'PX', '60000');
    const calls = as.calls('/token/introspection');
    assert.equal((await get(b, '/orders/r2', token)).status, 200);
    const seen = echo.received.at(-1);
    assert.equal(seen?.headers['x-user-id'], 'mallory', 'the forged subject is not used');
    assert.equal(as.calls('/token/introspection'), calls + 1, 'the forged answer read as a miss');
  });

  it('an answer moved under another token\'s key in Redis is not served for that token', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const [a, b] = gateways as [TestGateway, TestGateway];
    const admin = await as.userToken('admin-user');
    assert.equal((await get(a, '/orders/m1', admin)).status, 200);
    const adminDigest = specOf(a).oauth.digester.ofToken(admin);
    let adminKey = '';
    for (let i = 0; i < 50 && adminKey === ''; i++) {
      adminKey = (await redisKeys(redis, `*:introspection:*:${adminDigest}`)).find((l) => l.endsWith(adminDigest)) ?? '';
      if (adminKey === '') await new Promise((r) => setTimeout(r, 10));
    }
    const stored = (await redisGet(redis, adminKey)) ?? '';
    // A made-up token of the attacker's: its digest needs the key, but a digest the gateway wrote for a failed one can be learnt the same way.
    const made = freshToken();
    const madeDigest = specOf(a).oauth.digester.ofToken(made);
    await redisCall(redis, 'SET', adminKey.replace(adminDigest, madeDigest), stored, 'PX', '60000');
    assertProblem(await get(b, '/orders/m2', made), 401, 'invalid_credential');
  });
});

function specOf(gw: TestGateway): IntrospectionAuthenticatorSpec {
  const authenticator = gw.gateway.config.authenticators.get('opaque');
  assert.ok(authenticator instanceof IntrospectionAuthenticator);
  return (authenticator as unknown as { spec: IntrospectionAuthenticatorSpec }).spec;
}

/** One command on a fresh connection (RESP), the raw reply. */
