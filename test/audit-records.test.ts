// One precise audit record per request, whatever decided it: every denial family of the request
// path through a real gateway with real upstreams (an echo server, a port nobody listens on, a
// server that accepts and never answers). Each record names the deciding stage and code, keeps
// the facts known at that point (the key id of a revoked key, the subject of an expired but
// genuinely signed token), and leaves out what does not apply (`upstream` when nothing was
// forwarded). The last test reads the raw bytes of every file of the trail for every secret used.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { newKey } from '../src/authn/api-key/key-format.js';
import { assertProblem, waitUntil } from './harness/assertions.js';
import { admin, ADMIN_TOKEN, ADMIN_TOKEN_HASH, createKey, type IssuedKeyReply } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { craft } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

const ISS = 'https://issuer.test/';
const JWT_SECRET = 'records-test-hmac-secret-0123456789abcdef';
const UPSTREAM_TIMEOUT_MS = 300;
const BODY_IDLE_MS = 200;

/** A TCP server that accepts connections and reads, but never answers: a hung upstream. */
interface SilentUpstream { readonly url: string; readonly received: () => number; close(): Promise<void> }

async function startSilentUpstream(): Promise<SilentUpstream> {
  const sockets = new Set<Socket>();
  let bytes = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => { bytes += chunk.length; });
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => bytes,
    async close() { for (const s of sockets) s.destroy(); await new Promise<void>((done) => server.close(() => done())); },
  };
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** An HS256 token for the `users` authenticator, signed with `secret` (the right one unless told). */
function token(claims: Record<string, unknown>, nowSec: number, secret = JWT_SECRET): string {
  const payload = { iss: ISS, aud: 'orders-api', sub: 'alice', iat: nowSec, exp: nowSec + 300, ...claims };
  return craft('{"alg":"HS256","typ":"JWT"}', JSON.stringify(payload), { hmac: secret });
}

/** What one request's record must say. `identity`: the subject and key id, or null for none. */
interface Expected {
  readonly what: string;
  readonly status: number;
  readonly stage: string;
  readonly reason: string | undefined;
  readonly decision?: string;
  readonly identity?: { readonly subject: string; readonly keyId?: string; readonly tenant?: string } | null;
  /** The upstream's name when the request was dispatched to it; absent otherwise. */
  readonly upstream?: string;
  readonly limit?: string;
  readonly detail?: RegExp;
}

describe('complete, precise audit records', () => {
  const clock = new ManualClock(Date.now());
  let echo: EchoUpstream;
  let silent: SilentUpstream;
  let hang: SilentUpstream;
  let gw: TestGateway;
  /** Every secret a request of this file carried; none may reach the trail. */
  const secrets = new Set<string>([ADMIN_TOKEN]);
  /** Request id → what its record must say; checked together once the trail has caught up. */
  const expected = new Map<string, Expected>();
  let ipCounter = 0;
  /** A fresh client address per request (via the trusted loopback proxy): no count of one case spills into another. */
  const freshIp = (): string => `10.77.${Math.floor(++ipCounter / 250)}.${(ipCounter % 250) + 1}`;

  const nowSec = (): number => Math.floor(clock.now() / 1000);
  const secret = (value: string): string => { if (value.length >= 4) secrets.add(value); return value; };
  const keySecret = (key: string): string => key.split('_')[3] ?? key;
  const useKey = (key: IssuedKeyReply | string): string => {
    const text = typeof key === 'string' ? key : key.key;
    secret(text);
    secret(keySecret(text));
    return text;
  };
  const useToken = (jwt: string): string => {
    secret(jwt);
    secret(jwt.slice(jwt.lastIndexOf('.') + 1));
    return jwt;
  };

  /** Sends one request on its own connection and remembers what its record must say. */
  async function expectRecord(exp: Expected, method: string, target: string, lines: readonly string[] = [], body = ''): Promise<RawResponse> {
    const head = [`${method} ${target} HTTP/1.1`, 'Host: gw.test', `X-Forwarded-For: ${freshIp()}`, ...lines,
      ...(body === '' ? [] : [`Content-Length: ${Buffer.byteLength(body)}`])].join('\r\n') + '\r\n\r\n';
    const res = await rawRequest(gw.port, head + body, { settleMs: 0 });
    assert.equal(res.status, exp.status, `${exp.what}: ${res.raw.slice(0, 300)}`);
    const id = res.headers['x-request-id'] ?? '';
    assert.notEqual(id, '', `${exp.what}: answered with a request id`);
    expected.set(id, exp);
    return res;
  }

  function check(record: AuditRecord, exp: Expected): void {
    const m = exp.what;
    assert.equal(record.status, exp.status, m);
    assert.equal(record.stage, exp.stage, `${m}: stage (${JSON.stringify(record)})`);
    assert.equal(record.reason, exp.reason, `${m}: reason`);
    if (exp.decision !== undefined) assert.equal(record.decision, exp.decision, `${m}: decision`);
    if (exp.identity === null) assert.equal(record.identity, undefined, `${m}: no identity`);
    else if (exp.identity !== undefined) {
      assert.equal(record.identity?.subject, exp.identity.subject, `${m}: subject`);
      assert.equal(record.identity.keyId, exp.identity.keyId, `${m}: key id`);
      if (exp.identity.tenant !== undefined) assert.equal(record.tenant, exp.identity.tenant, `${m}: tenant`);
    }
    assert.equal(record.upstream, exp.upstream, `${m}: upstream only when forwarded`);
    if (exp.upstream === undefined) assert.equal(record.upstreamStatus, undefined, `${m}: no upstream status`);
    assert.equal(record.limit, exp.limit, `${m}: limit`);
    if (exp.detail !== undefined) assert.match(record.detail ?? '', exp.detail, m);
    if (record.decision === 'allow') {
      assert.equal(record.reason, undefined, `${m}: an allowed record has no reason`);
      assert.equal(record.detail, undefined, `${m}: an allowed record has no detail`);
    }
    for (const [name, value] of Object.entries(record)) assert.notEqual(value, null, `${m}: ${name} is null instead of absent`);
  }

  before(async () => {
    echo = await startEchoUpstream();
    silent = await startSilentUpstream();
    hang = await startSilentUpstream();
    const down = await closedPort();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      trustedProxies: ['127.0.0.1/32'],
      apiKeys: { environment: 'live' },
      upstreams: {
        echo: { targets: [echo.url] },
        down: { targets: [`http://127.0.0.1:${down}`] },
        silent: { targets: [silent.url], timeoutMs: UPSTREAM_TIMEOUT_MS, connections: 1, maxQueued: 0 },
        hang: { targets: [hang.url], timeoutMs: 30_000 },
      },
      authenticators: {
        machines: { type: 'apiKey' },
        users: { type: 'jwt', issuer: ISS, secret: JWT_SECRET, audience: 'orders-api', algorithms: ['HS256'], claims: { roles: 'roles', tenant: 'tenant_id' } },
      },
      rateLimits: { once: { algorithm: 'fixed-window', limit: 1, per: '60s', by: ['ip'] } },
      quotas: { daily: { limit: 1, period: 'day', by: ['ip'] } },
      rateLimiting: { bruteForce: { maxFailures: 3, within: '1m', blockFor: '1m' } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true },
        { name: 'orders', match: { path: '/api/{tenant}/orders/**' }, upstream: 'echo', authenticate: ['machines', 'users'], authorize: { scopes: ['orders:read'], tenant: { param: 'tenant' } } },
        { name: 'ops', match: { path: '/ops/**' }, upstream: 'echo', authenticate: ['machines', 'users'], authorize: { roles: { anyOf: ['ops'] } } },
        { name: 'query', match: { path: '/q/**' }, upstream: 'echo', authenticate: ['machines'], apiKeyInQuery: true },
        { name: 'limited', match: { path: '/limited/**' }, upstream: 'echo', public: true, rateLimit: 'once' },
        { name: 'metered', match: { path: '/metered/**' }, upstream: 'echo', public: true, quota: 'daily' },
        { name: 'small', match: { path: '/small/**', methods: ['POST'] }, upstream: 'echo', public: true, limits: { maxBodyBytes: 8, contentTypes: ['application/json'], bodyIdleTimeoutMs: BODY_IDLE_MS } },
        { name: 'down', match: { path: '/down/**' }, upstream: 'down', public: true },
        { name: 'silent', match: { path: '/silent/**' }, upstream: 'silent', public: true },
        { name: 'hang', match: { path: '/hang/**' }, upstream: 'hang', public: true },
      ],
    }, { clock });
  });
  after(async () => {
    await gw.close();
    await echo.close();
    await silent.close();
    await hang.close();
  });

  it('edge and listener refusals: one record each, with the deciding stage, and no upstream', async () => {
    await expectRecord({ what: 'allowed', status: 200, stage: 'forward', reason: undefined, decision: 'allow', identity: null, upstream: 'echo' },
      'GET', '/open/a', [`Cookie: session=${secret('cookie-secret-5a1e')}`, `Proxy-Authorization: Basic ${secret('cHJveHk6cHJveHktc2VjcmV0LTk5')}`]);
    await expectRecord({ what: 'route not found', status: 404, stage: 'route', reason: 'route_not_found', identity: null }, 'GET', '/nowhere');
    await expectRecord({ what: 'method not allowed', status: 405, stage: 'route', reason: 'method_not_allowed' }, 'GET', '/small/x');
    await expectRecord({ what: 'encoded slash', status: 400, stage: 'target', reason: 'ambiguous_path' }, 'GET', '/open/a%2Fb');
    await expectRecord({ what: 'upgrade offer', status: 400, stage: 'upgrade', reason: 'upgrade_refused' }, 'GET', '/open/ws', ['Connection: Upgrade', 'Upgrade: websocket']);
    await expectRecord({ what: 'absolute-form with userinfo', status: 400, stage: 'target', reason: 'invalid_target' },
      'GET', `http://user:${secret('userinfo-pw-77c3')}@gw.test/open/x?access_token=${secret('query-token-3b9d')}`);

    await expectRecord({ what: 'several Host headers', status: 400, stage: 'host', reason: 'invalid_header' }, 'GET', '/open/c', ['Host: a', 'Host: b']);
    await expectRecord({ what: 'unknown expectation', status: 417, stage: 'expect', reason: 'expectation_failed' }, 'GET', '/open/d', ['Expect: teapot']);
    await expectRecord({ what: 'basic credentials on a public route', status: 200, stage: 'forward', reason: undefined, identity: null, upstream: 'echo' },
      'GET', '/open/e', [`Authorization: Basic ${secret(Buffer.from(`user:${secret('basic-pw-31d7')}`).toString('base64'))}`]);

    // A denial that closes the connection: the request pipelined behind it is not processed, and recorded once.
    const pipelined = await rawRequest(gw.port, [
      requestHead('GET', '/open/closing', ['Expect: teapot']),
      requestHead('GET', '/open/pipelined-behind'),
    ], { settleMs: 0 });
    expected.set(assertProblem(pipelined, 417, 'expectation_failed').requestId, { what: 'closing denial', status: 417, stage: 'expect', reason: 'expectation_failed' });
    const [discarded] = await gw.auditWhere((r) => r.path === '/open/pipelined-behind');
    assert.ok(discarded !== undefined);
    expected.set(discarded.requestId, { what: 'pipelined behind a closing denial', status: 499, stage: 'listener', reason: 'pipeline_discarded', decision: 'abort' });

    // Refused by the HTTP parser and by the listener: no exchange, still one record.
    const huge = await rawRequest(gw.port, requestHead('GET', '/open/f', [`X-Big: ${'b'.repeat(70_000)}`]), { settleMs: 0 });
    expected.set(assertProblem(huge, 431, 'headers_too_large').requestId, { what: 'headers too large', status: 431, stage: 'listener', reason: 'headers_too_large', identity: null });
    const framing = await rawRequest(gw.port, requestHead('POST', '/open/x', ['Content-Length: 1', 'Content-Length: 2']), { settleMs: 0 });
    expected.set(assertProblem(framing, 400, 'bad_request').requestId, { what: 'duplicate Content-Length', status: 400, stage: 'listener', reason: 'bad_request', identity: null });
    const tunnel = await rawRequest(gw.port, `CONNECT user:${secret('connect-pw-12ab')}@example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n`, { settleMs: 0 });
    expected.set(assertProblem(tunnel, 400, 'invalid_target').requestId, { what: 'CONNECT', status: 400, stage: 'listener', reason: 'invalid_target' });
  });

  it('authentication: missing, bad tokens and every API key refusal; a verified credential names its owner', async () => {
    const reader = await createKey(gw.adminUrl, { name: 'billing-service', tenant: 'acme', scopes: ['orders:read'] });
    const revoked = await createKey(gw.adminUrl, { name: 'revoked-service', tenant: 'acme', scopes: ['orders:read'] });
    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${revoked.id}/revoke`)).status, 200);
    const expiring = await createKey(gw.adminUrl, { name: 'short-lived', tenant: 'acme', scopes: ['orders:read'], expires: '1s' });
    const rotating = await createKey(gw.adminUrl, { name: 'rotating-service', tenant: 'acme', scopes: ['orders:read'] });
    const rotated = await admin(gw.adminUrl, 'POST', `/admin/keys/${rotating.id}/rotate`, { grace: '1s' });
    assert.equal(rotated.status, 201, rotated.body);
    useKey((JSON.parse(rotated.body) as IssuedKeyReply).key);
    const office = await createKey(gw.adminUrl, { name: 'office-only', tenant: 'acme', scopes: ['orders:read'], allowedCidrs: ['192.0.2.0/24'] });
    clock.advance(1100);
    await gw.gateway.config.apiKeys?.directory.sync();

    const orders = '/api/acme/orders/1';
    const apiKey = (key: IssuedKeyReply | string): string => `X-API-Key: ${useKey(key)}`;
    const bearer = (jwt: string): string => `Authorization: Bearer ${useToken(jwt)}`;
    const refused = { status: 401, stage: 'authenticate', reason: 'invalid_credential' } as const;

    await expectRecord({ what: 'key accepted', status: 200, stage: 'forward', reason: undefined, identity: { subject: 'billing-service', keyId: reader.id }, upstream: 'echo' }, 'GET', orders, [apiKey(reader)]);
    await expectRecord({ what: 'key in the query', status: 200, stage: 'forward', reason: undefined, identity: { subject: 'billing-service', keyId: reader.id }, upstream: 'echo' },
      'GET', `/q/x?api_key=${useKey(reader)}&access_token=${secret('another-query-secret-e4')}`);
    await expectRecord({ what: 'no credential', status: 401, stage: 'authenticate', reason: 'unauthenticated', identity: null }, 'GET', orders);
    await expectRecord({ ...refused, what: 'unknown key', identity: null, detail: /api_key_unknown/ }, 'GET', orders, [apiKey(newKey('live'))]);
    await expectRecord({ ...refused, what: 'right id, wrong secret', identity: null, detail: /api_key_secret_mismatch/ }, 'GET', orders, [apiKey(newKey('live', reader.id))]);
    await expectRecord({ ...refused, what: 'malformed key', identity: null, detail: /api_key_malformed/ }, 'GET', orders, [`X-API-Key: ${secret('not-a-key-secret-0f')}`]);
    await expectRecord({ ...refused, what: 'revoked key', identity: { subject: 'revoked-service', keyId: revoked.id, tenant: 'acme' }, detail: /api_key_revoked/ }, 'GET', orders, [apiKey(revoked)]);
    await expectRecord({ ...refused, what: 'expired key', identity: { subject: 'short-lived', keyId: expiring.id }, detail: /api_key_expired/ }, 'GET', orders, [apiKey(expiring)]);
    await expectRecord({ ...refused, what: 'superseded key', identity: { subject: 'rotating-service', keyId: rotating.id }, detail: /api_key_superseded/ }, 'GET', orders, [apiKey(rotating)]);
    await expectRecord({ what: 'key from another network', status: 403, stage: 'authenticate', reason: 'ip_not_allowed', identity: { subject: 'office-only', keyId: office.id } }, 'GET', orders, [apiKey(office)]);
    await expectRecord({ ...refused, what: 'key as ApiKey authorization, revoked', identity: { subject: 'revoked-service', keyId: revoked.id } }, 'GET', orders, [`Authorization: ApiKey ${useKey(revoked)}`]);

    const now = nowSec();
    await expectRecord({ what: 'token accepted', status: 200, stage: 'forward', reason: undefined, identity: { subject: 'alice' }, upstream: 'echo' },
      'GET', orders, [bearer(token({ scope: 'orders:read', tenant_id: 'acme' }, now))]);
    await expectRecord({ ...refused, what: 'bad signature', identity: null, detail: /signature_invalid/ }, 'GET', orders, [bearer(token({ sub: 'mallory' }, now, 'another-secret-of-the-same-length-0123'))]);
    await expectRecord({ ...refused, what: 'alg none', identity: null, detail: /alg_none/ },
      'GET', orders, [bearer(craft('{"alg":"none"}', JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'mallory', exp: now + 60 }), { signature: '' }))]);
    await expectRecord({ ...refused, what: 'malformed token', identity: null, detail: /malformed/ }, 'GET', orders, [bearer(`${secret('garbage')}.token.${secret('sig-part-77')}`)]);
    await expectRecord({ ...refused, what: 'expired, genuinely signed', identity: { subject: 'bob', tenant: 'initech' }, detail: /expired/ }, 'GET', orders, [bearer(token({ sub: 'bob', tenant_id: 'initech', iat: now - 600, exp: now - 300 }, now))]);
    await expectRecord({ ...refused, what: 'another audience, genuinely signed', identity: { subject: 'carol' }, detail: /audience_mismatch/ }, 'GET', orders, [bearer(token({ sub: 'carol', aud: 'billing-api' }, now))]);
    await expectRecord({ ...refused, what: 'two credentials', identity: null }, 'GET', orders, ['Authorization: Bearer a', 'Authorization: Bearer b']);
  });

  it('authorization, limits, quotas and the brute-force guard: the deciding stage, the limit by name, the identity kept', async () => {
    const reader = await createKey(gw.adminUrl, { name: 'reader', tenant: 'acme', scopes: ['orders:read'] });
    const noScope = await createKey(gw.adminUrl, { name: 'no-scope', tenant: 'acme', scopes: ['orders:list'] });
    const apiKey = (key: IssuedKeyReply): string => `X-API-Key: ${useKey(key)}`;
    await expectRecord({ what: 'missing scope', status: 403, stage: 'authorize', reason: 'insufficient_scope', identity: { subject: 'no-scope', keyId: noScope.id } }, 'GET', '/api/acme/orders/2', [apiKey(noScope)]);
    await expectRecord({ what: 'other tenant', status: 403, stage: 'authorize', reason: 'tenant_mismatch', identity: { subject: 'reader', keyId: reader.id } }, 'GET', '/api/globex/orders/2', [apiKey(reader)]);
    await expectRecord({ what: 'missing role', status: 403, stage: 'authorize', reason: 'insufficient_role', identity: { subject: 'dave' } },
      'GET', '/ops/x', [`Authorization: Bearer ${useToken(token({ sub: 'dave', roles: ['reader'] }, nowSec()))}`]);

    // Limits count per address: these requests share one.
    const ip = '10.99.0.1';
    const limited = async (path: string): Promise<RawResponse> => rawRequest(gw.port, requestHead('GET', path, [`X-Forwarded-For: ${ip}`]), { settleMs: 0 });
    assert.equal((await limited('/limited/1')).status, 200);
    const tooMany = await limited('/limited/2');
    expected.set(assertProblem(tooMany, 429, 'rate_limited').requestId, { what: 'rate limited', status: 429, stage: 'rate-limit', reason: 'rate_limited', limit: 'once', identity: null });
    assert.equal((await limited('/metered/1')).status, 200);
    const overQuota = await limited('/metered/2');
    expected.set(assertProblem(overQuota, 429, 'quota_exceeded').requestId, { what: 'over quota', status: 429, stage: 'rate-limit', reason: 'quota_exceeded', limit: 'daily', identity: null });

    // Guesses from one address: the guard blocks it; the refusal that blocked and those after name it.
    const guesser = '10.99.0.2';
    let last: RawResponse | undefined;
    for (let i = 0; i < 4; i++) {
      last = await rawRequest(gw.port, requestHead('GET', '/api/acme/orders/3', [`X-Forwarded-For: ${guesser}`, `X-API-Key: ${useKey(newKey('live'))}`]), { settleMs: 0 });
    }
    const blocked = assertProblem(last, 429, 'too_many_failures');
    expected.set(blocked.requestId, { what: 'blocked by the brute-force guard', status: 429, stage: 'brute-force-gate', reason: 'too_many_failures', limit: 'bruteForce', identity: null });
  });

  it('body limits, timeouts, upstream failures and a client that leaves: upstream named only once the request was dispatched', async () => {
    await expectRecord({ what: 'declared body too large', status: 413, stage: 'request-limits', reason: 'body_too_large' }, 'POST', '/small/a', ['Content-Type: application/json'], '{"a":"0123456789"}');
    await expectRecord({ what: 'media type', status: 415, stage: 'request-limits', reason: 'unsupported_media_type' }, 'POST', '/small/b', ['Content-Type: text/plain'], 'x');
    await expectRecord({ what: 'body on GET', status: 400, stage: 'request-limits', reason: 'body_not_allowed' }, 'GET', '/open/b', [], 'abc');

    // A body that stops arriving: 408 before anything is dispatched.
    const idle = await rawRequest(gw.port, requestHead('POST', '/small/idle', ['Content-Type: application/json', 'Content-Length: 8', `X-Forwarded-For: ${freshIp()}`]) + '{"a"', { settleMs: 0, timeoutMs: 4000 });
    expected.set(assertProblem(idle, 408, 'request_timeout').requestId, { what: 'idle body', status: 408, stage: 'forward', reason: 'request_timeout' });

    await expectRecord({ what: 'upstream down', status: 502, stage: 'forward', reason: 'upstream_unreachable', decision: 'error', upstream: 'down', detail: /ECONNREFUSED/ }, 'GET', '/down/a');

    // One connection to the silent upstream, no queue: a second request meanwhile is refused before dispatch.
    const holding = rawRequest(gw.port, requestHead('GET', '/silent/held', [`X-Forwarded-For: ${freshIp()}`]), { settleMs: 0, timeoutMs: 4000 });
    await waitUntil('the first request reached the silent upstream', () => silent.received() > 0, 3000);
    await expectRecord({ what: 'upstream busy', status: 503, stage: 'forward', reason: 'upstream_busy', decision: 'error' }, 'GET', '/silent/second');
    const timedOut = await holding;
    expected.set(assertProblem(timedOut, 504, 'upstream_timeout').requestId, { what: 'upstream timeout', status: 504, stage: 'forward', reason: 'upstream_timeout', upstream: 'silent' });

    // A client that leaves while its request is at the upstream.
    const socket = connect({ port: gw.port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(requestHead('GET', '/hang/abandoned', [`X-Forwarded-For: ${freshIp()}`]));
    await waitUntil('the request reached the upstream', () => hang.received() > 0, 3000);
    socket.destroy();
    const [gone] = await gw.auditWhere((r) => r.path === '/hang/abandoned');
    assert.ok(gone !== undefined);
    expected.set(gone.requestId, { what: 'client left', status: 499, stage: 'forward', reason: 'client_aborted', decision: 'abort', upstream: 'hang' });
  });

  it('every request above has exactly one record, saying what it must', async () => {
    const records = await gw.audit();
    const byId = new Map<string, AuditRecord[]>();
    for (const r of records) byId.set(r.requestId, [...(byId.get(r.requestId) ?? []), r]);
    assert.ok(expected.size >= 40, `${expected.size} requests checked`);
    for (const [id, exp] of expected) {
      const mine = byId.get(id) ?? [];
      assert.equal(mine.length, 1, `${exp.what}: ${mine.length} records for request ${id}`);
      check(mine[0] as AuditRecord, exp);
    }
    // Every record of the trail, the admin API's included, leaves out what does not apply.
    for (const r of records) for (const [name, value] of Object.entries(r)) assert.notEqual(value, null, `${r.requestId}: ${name} is null`);
    const userinfo = records.find((r) => expected.get(r.requestId)?.what === 'absolute-form with userinfo');
    assert.equal(userinfo?.path, 'http://gw.test/open/x', 'the userinfo and the query are cut from a rejected target');
  });

  it('the whole trail, byte for byte, holds none of the secrets the requests carried', async () => {
    await gw.auditBarrier();
    const dir = join(gw.gateway.config.dataDir, dirname(gw.gateway.config.audit.file));
    const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    assert.ok(files.length > 0, 'the trail has files');
    let bytes = 0;
    for (const file of files) {
      const raw = await readFile(file);
      bytes += raw.length;
      const text = raw.toString('latin1');
      for (const s of secrets) assert.ok(!text.includes(s), `${file} contains a secret (${s.length} characters, starting ${s.slice(0, 4)})`);
    }
    assert.ok(bytes > 10_000, 'the trail was read');
    assert.ok(secrets.size > 30, `${secrets.size} secrets looked for`);
  });

  it('caps and escapes what the client controls, so no record forges a line or drives a terminal', async () => {
    // U+202E (a bidirectional override) on the wire as UTF-8, read by node:http as latin1: its 0x80 is a C1 control.
    const agent = `evil\u202e${'x'.repeat(600)}`;
    await expectRecord({ what: 'hostile user agent', status: 404, stage: 'route', reason: 'route_not_found' }, 'GET', `/${'p'.repeat(3000)}`, [`User-Agent: ${agent}`]);
    const records = await gw.audit();
    const record = records.find((r) => r.path.startsWith('/ppp'));
    assert.ok(record !== undefined);
    assert.ok((record.userAgent ?? '').length <= 256 && (record.userAgent ?? '').includes('[truncated: '), 'user agent capped');
    assert.ok(record.path.length <= 1024 && record.path.endsWith('[truncated: 3001 chars]'), 'path capped');
    assert.ok(!/[\u0080-\u009f]/.test(record.userAgent ?? ''), 'C1 controls escaped in the value');
    assert.match(record.userAgent ?? '', /\\x80/);
  });
});
