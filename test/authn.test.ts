// Authentication at the edge: authenticator selection (present credential decides, no fall-through),
// JWT against a real JWKS server, identity propagation, and the failure modes of the key source.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { craft, JwksServer, mint, nowSec, testKey, type TestKey } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

const ISS = 'https://issuer.test/';
const PARTNER_SECRET = 'partners-shared-secret-0123456789abcdef';

interface Reply { status: number; headers: Record<string, string>; body: string; complete: true }

/** GET through the gateway with optional bearer token and extra headers. */
async function get(gw: TestGateway, path: string, token?: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, { headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

function headerValues(seen: EchoedRequest | undefined, name: string): string[] {
  assert.ok(seen !== undefined, 'the upstream received the request');
  const out: string[] = [];
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) {
    if ((seen.rawHeaders[i] ?? '').toLowerCase().replace(/_/g, '-') === name) out.push(seen.rawHeaders[i + 1] ?? '');
  }
  return out;
}

describe('authentication', () => {
  let echo: EchoUpstream;
  let jwks: JwksServer;
  let gw: TestGateway;
  let k1: TestKey, k2: TestKey, es: TestKey, ed: TestKey;
  // Starts at the real time (tokens are minted with it) and moves only when a test says so.
  const clock = new ManualClock(Date.now());

  before(async () => {
    [k1, k2, es, ed] = await Promise.all([testKey('RS256', 'k1'), testKey('RS256', 'k2'), testKey('ES256', 'es1'), testKey('EdDSA', 'ed1')]);
    echo = await startEchoUpstream();
    jwks = await JwksServer.start([k1, es, ed]);
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        users: {
          type: 'jwt', issuer: ISS, jwksUri: jwks.url, audience: 'orders-api', algorithms: ['RS256', 'ES256', 'EdDSA'],
          claims: { roles: 'realm_access.roles', tenant: 'tenant_id' }, forwardClaims: { 'X-User-Email': 'email' },
          jwks: { cooldownMs: 100 },
        },
        partners: { type: 'jwt', issuer: 'https://partners.test/', secret: PARTNER_SECRET, audience: 'orders-api', algorithms: ['HS256'], realm: 'partners' },
        guest: { type: 'anonymous' },
      },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] },
        { name: 'multi', match: { path: '/multi' }, upstream: 'echo', authenticate: ['users', 'partners'] },
        { name: 'partners-only', match: { path: '/partners' }, upstream: 'echo', authenticate: ['partners'] },
        { name: 'optional', match: { path: '/optional' }, upstream: 'echo', authenticate: ['users', 'guest'] },
        { name: 'keep', match: { path: '/keep' }, upstream: 'echo', authenticate: ['users'], forwardAuthorization: true },
      ],
    }, { clock });
  });
  after(async () => {
    await gw.close();
    await jwks.close();
    await echo.close();
  });

  it('401 with a Bearer challenge when no credential is present; nothing forwarded; one audit record', async () => {
    const before = echo.received.length;
    const res = await get(gw, '/orders/1');
    const doc = assertProblem(res, 401, 'unauthenticated');
    assert.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis"');
    assert.equal(echo.received.length, before);
    const records = await gw.auditFor(doc.requestId);
    assert.equal(records.length, 1);
    assert.equal(records[0]?.reason, 'unauthenticated');
    assert.equal(records[0]?.identity, undefined);
  });

  it('valid RS256, ES256 and EdDSA tokens pass, and the upstream gets the identity instead of the token', async () => {
    for (const key of [k1, es, ed]) {
      const token = await mint(key, { sub: `user-${key.alg}`, realm_access: { roles: ['reader', 'ops'] }, scope: 'orders:read orders:write', tenant_id: 'acme', email: 'a@acme.test' });
      const res = await get(gw, '/orders/1', token);
      assert.equal(res.status, 200, res.body);
      const seen = echo.received.at(-1);
      assert.deepEqual(headerValues(seen, 'x-user-id'), [`user-${key.alg}`]);
      assert.deepEqual(headerValues(seen, 'x-auth-method'), ['jwt']);
      assert.deepEqual(headerValues(seen, 'x-tenant-id'), ['acme']);
      assert.deepEqual(headerValues(seen, 'x-roles'), ['reader ops']);
      assert.deepEqual(headerValues(seen, 'x-scopes'), ['orders:read orders:write']);
      assert.deepEqual(headerValues(seen, 'x-user-email'), ['a@acme.test']);
      assert.deepEqual(headerValues(seen, 'authorization'), [], 'the token is not forwarded by default');
      const [record] = await gw.auditFor(res.headers['x-request-id'] ?? '');
      assert.deepEqual(record?.identity, { subject: `user-${key.alg}`, authMethod: 'jwt' });
      assert.equal(record?.tenant, 'acme');
    }
  });

  it('identity headers the client sends, in any spelling, never reach the upstream', async () => {
    const token = await mint(k1, { sub: 'alice', tenant_id: 'acme' });
    const res = await get(gw, '/orders/2', token, {
      'X-User-Id': 'admin', 'x_user_id': 'admin', 'X-Tenant-Id': 'globex', 'X-Roles': 'admin', 'X-Scopes': 'root',
      'X-Auth-Method': 'mtls', 'X-User-Email': 'ceo@acme.test',
    });
    assert.equal(res.status, 200);
    const seen = echo.received.at(-1);
    assert.deepEqual(headerValues(seen, 'x-user-id'), ['alice']);
    assert.deepEqual(headerValues(seen, 'x-tenant-id'), ['acme']);
    assert.deepEqual(headerValues(seen, 'x-roles'), []);
    assert.deepEqual(headerValues(seen, 'x-scopes'), []);
    assert.deepEqual(headerValues(seen, 'x-auth-method'), ['jwt']);
    assert.deepEqual(headerValues(seen, 'x-user-email'), [], 'a forwarded-claim header is protected too');
  });

  it('forwards Authorization only on routes that ask for it', async () => {
    const token = await mint(k1);
    assert.equal((await get(gw, '/keep', token)).status, 200);
    assert.deepEqual(headerValues(echo.received.at(-1), 'authorization'), [`Bearer ${token}`]);
  });

  it('every bad token gets the same 401 with error="invalid_token"; the audit record says why', async () => {
    const bad: [string, string][] = [
      ['expired', await mint(k1, { exp: nowSec() - 3600, iat: nowSec() - 7200 })],
      ['signature_invalid', `${(await mint(k1)).slice(0, -4)}AAAA`],
      ['audience_mismatch', await mint(k1, { aud: 'billing-api' })],
      ['embedded_key', await mint(k2, {}, { jwk: k2.jwk })],
      ['malformed', 'not-a-jwt'],
    ];
    const bodies = new Set<string>();
    for (const [reason, token] of bad) {
      const res = await get(gw, '/orders/3', token);
      const doc = assertProblem(res, 401, 'invalid_credential');
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis", error="invalid_token"');
      bodies.add(JSON.stringify({ ...doc, requestId: '' }));
      const [record] = await gw.auditFor(doc.requestId);
      assert.equal(record?.reason, 'invalid_credential');
      assert.match(record?.detail ?? '', new RegExp(`^users: ${reason}`));
      assert.ok(!(record?.detail ?? '').includes(token), 'the token is never audited');
    }
    assert.equal(bodies.size, 1, 'clients cannot tell the failure reasons apart');
  });

  it('a present-but-bad credential never falls through to the next authenticator or to anonymous', async () => {
    const partnerToken = craft('{"alg":"HS256"}', JSON.stringify({ iss: 'https://partners.test/', aud: 'orders-api', sub: 'p1', exp: nowSec() + 60 }), { hmac: PARTNER_SECRET });
    assert.equal((await get(gw, '/partners', partnerToken)).status, 200, 'the partner token is valid for partners');
    const multi = await get(gw, '/multi', partnerToken);
    assertProblem(multi, 401, 'invalid_credential');
    assert.match(multi.headers['www-authenticate'] ?? '', /realm="portcullis"/, 'users, listed first, judged the bearer token');
    const optional = await get(gw, '/optional', 'garbage.token.here');
    assertProblem(optional, 401, 'invalid_credential');
  });

  it('lists one challenge per accepted scheme, and admits anonymous only where configured', async () => {
    const multi = await get(gw, '/multi');
    assertProblem(multi, 401, 'unauthenticated');
    assert.equal(multi.headers['www-authenticate'], 'Bearer realm="portcullis", Bearer realm="partners"');
    const anon = await get(gw, '/optional');
    assert.equal(anon.status, 200);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-auth-method'), ['anonymous']);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-user-id'), ['anonymous']);
  });

  it('rejects several Authorization headers, a scheme without a token, and an oversized token', async () => {
    const token = await mint(k1);
    const twice = await rawRequest(gw.port, requestHead('GET', '/orders/4', [`Authorization: Bearer ${token}`, `Authorization: Bearer ${token}`, 'Connection: close']), { settleMs: 0 });
    assertProblem(twice, 401, 'invalid_credential');
    assertProblem(await get(gw, '/orders/4', undefined, { authorization: 'Bearer' }), 401, 'invalid_credential');
    assertProblem(await get(gw, '/orders/4', undefined, { authorization: 'Bearer a b' }), 401, 'invalid_credential');
    const huge = await mint(k1, { pad: 'x'.repeat(10_000) });
    assertProblem(await get(gw, '/orders/4', huge), 401, 'invalid_credential');
    assertProblem(await get(gw, '/orders/4', undefined, { authorization: 'Basic dXNlcjpwYXNz' }), 401, 'unauthenticated');
  });

  it('rejects tokens whose subject or tenant cannot be asserted verbatim; other claims are left out of headers instead', async () => {
    for (const claims of [{ sub: 'alice\r\nX-Roles: admin' }, { sub: 'jos\u00e9' }, { tenant_id: 42 }, { sub: 7 }]) {
      assertProblem(await get(gw, '/orders/5', await mint(k1, claims as Record<string, unknown>)), 401, 'invalid_credential');
    }
    assert.equal((await get(gw, '/orders/5', await mint(k1, { realm_access: { roles: 'reader  ops' } }))).status, 200, 'a space-separated string of roles is accepted');
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-roles'), ['reader ops']);
    assert.equal((await get(gw, '/orders/5', await mint(k1, { realm_access: { roles: ['reader', 'read er', 'a,b'] }, email: 'x'.repeat(2000) }))).status, 200);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-roles'), ['reader']);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-user-email'), []);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-identity-omitted'), ['x-roles=2, x-user-email=1']);
  });

  it('a token carrying a jku/x5u URL never causes a request to it', async () => {
    const trap = await JwksServer.start([k2]);
    try {
      for (const header of [{ jku: trap.url }, { x5u: trap.url }, { kid: 'k2', jku: trap.url }]) {
        assertProblem(await get(gw, '/orders/6', await mint(k2, {}, header)), 401, 'invalid_credential');
      }
      assert.equal(trap.requests, 0);
    } finally {
      await trap.close();
    }
  });

  it('rotation: a new kid is accepted after one refetch; a removed key stops working, cached or not', async () => {
    const old = await mint(k1, { sub: 'before-rotation' });
    assert.equal((await get(gw, '/orders/7', old)).status, 200);
    assert.equal((await get(gw, '/orders/7', old)).status, 200, 'served from the verified-token cache');
    clock.advance(150); // past the unknown-kid cooldown
    const fetches = jwks.requests;
    jwks.setKeys([k2, es, ed]);
    assert.equal((await get(gw, '/orders/7', await mint(k2, { sub: 'after-rotation' }))).status, 200);
    assert.equal(jwks.requests, fetches + 1);
    const res = await get(gw, '/orders/7', old);
    assertProblem(res, 401, 'invalid_credential');
    jwks.setKeys([k1, es, ed]);
    clock.advance(150);
    assert.equal((await get(gw, '/orders/7', await mint(k1))).status, 200, 'k1 back after a refetch');
  });
});

describe('authentication when the key source is down', () => {
  it('JWKS unreachable from the start: 503 authentication_unavailable (fail closed), then recovery', async () => {
    const key = await testKey('ES256', 'down-1');
    const jwks = await JwksServer.start([key]);
    jwks.mode = 'refuse';
    const echo = await startEchoUpstream();
    const clock = new ManualClock(Date.now());
    const gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri: jwks.url, audience: 'orders-api', algorithms: ['ES256'], jwks: { cooldownMs: 100, timeoutMs: 500 } } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
    }, { clock });
    try {
      const token = await mint(key);
      const res = await get(gw, '/orders/1', token);
      assertProblem(res, 503, 'authentication_unavailable');
      assert.equal(echo.received.length, 0);
      const metric = async (pattern: RegExp) => pattern.exec(await (await fetch(`${gw.adminUrl}/metrics`)).text())?.[1];
      const label = `uri="${jwks.url}"`;
      assert.equal(await metric(new RegExp(`^portcullis_jwks_keys\\{${label}\\} (\\d+)$`, 'm')), '0');
      assert.ok(Number(await metric(new RegExp(`^portcullis_jwks_fetches_total\\{${label},result="error"\\} (\\d+)$`, 'm'))) >= 1);
      jwks.mode = 'ok';
      clock.advance(150); // the retry after the cooldown starts; the next request waits for it
      assert.equal((await get(gw, '/orders/1', token)).status, 200);
      assert.equal(await metric(new RegExp(`^portcullis_jwks_keys\\{${label}\\} (\\d+)$`, 'm')), '1');
      jwks.mode = 'error';
      clock.advance(150);
      assert.equal((await get(gw, '/orders/1', await mint(key, { sub: 'other' }))).status, 200, 'last good keys kept while the endpoint fails');
    } finally {
      await gw.close();
      await jwks.close();
      await echo.close();
    }
  });
});

describe('identity header names', () => {
  it('uses the configured names, strips inbound copies of them, and no longer asserts the defaults', async () => {
    const echo = await startEchoUpstream();
    const gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      headers: { identity: { subject: 'X-Auth-User', tenant: 'X-Auth-Org', roles: 'X-Auth-Groups', scopes: 'X-Auth-Scope', method: 'X-Auth-Via' } },
      authenticators: { users: { type: 'jwt', issuer: ISS, secret: PARTNER_SECRET, audience: 'orders-api', algorithms: ['HS256'], claims: { tenant: 'org' } } },
      routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'echo', authenticate: ['users'] }],
    });
    try {
      const token = craft('{"alg":"HS256"}', JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'carol', org: 'acme', roles: ['a'], scope: 's', exp: nowSec() + 60 }), { hmac: PARTNER_SECRET });
      const res = await get(gw, '/orders', token, { 'X-Auth-User': 'mallory', 'x_auth_org': 'evil' });
      assert.equal(res.status, 200, res.body);
      const seen = echo.received.at(-1);
      assert.deepEqual(headerValues(seen, 'x-auth-user'), ['carol']);
      assert.deepEqual(headerValues(seen, 'x-auth-org'), ['acme']);
      assert.deepEqual(headerValues(seen, 'x-auth-groups'), ['a']);
      assert.deepEqual(headerValues(seen, 'x-auth-scope'), ['s']);
      assert.deepEqual(headerValues(seen, 'x-auth-via'), ['jwt']);
      assert.deepEqual(headerValues(seen, 'x-user-id'), []);
    } finally {
      await gw.close();
      await echo.close();
    }
  });
});

describe('authentication across reloads', () => {
  it('a reload that keeps the JWKS settings keeps the fetched keys; one that changes them fetches anew', async () => {
    const key = await testKey('ES256', 'reload-1');
    const jwks = await JwksServer.start([key]);
    const echo = await startEchoUpstream();
    const config = (audience: string, timeoutMs: number) => ({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri: jwks.url, audience, algorithms: ['ES256'], jwks: { timeoutMs } } },
      routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'echo', authenticate: ['users'] }],
    });
    const gw = await startGateway(config('orders-api', 1000));
    try {
      assert.equal(jwks.requests, 1);
      await gw.writeConfig(config('other-api', 1000));
      assert.equal((await gw.gateway.reload()).ok, true);
      assert.equal(jwks.requests, 1, 'same JWKS settings: no new fetch');
      assert.equal((await get(gw, '/orders', await mint(key, { aud: 'other-api' }))).status, 200, 'the new audience applies');
      assertProblem(await get(gw, '/orders', await mint(key)), 401, 'invalid_credential');
      await gw.writeConfig(config('other-api', 2000));
      assert.equal((await gw.gateway.reload()).ok, true);
      assert.equal(jwks.requests, 2, 'changed JWKS settings: fetched before the new config serves');
      assert.equal((await get(gw, '/orders', await mint(key, { aud: 'other-api' }))).status, 200);
    } finally {
      await gw.close();
      await jwks.close();
      await echo.close();
    }
  });
});
