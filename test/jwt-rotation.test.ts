// Key rotation through the running gateway: fetches at start, on reload and on schedule do not
// start the unknown-kid cooldown; within the cooldown a new kid is 503 with Retry-After, not a 401
// that calls a possibly good token bad; and a flood of random kids costs no extra fetch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { assertProblem } from './harness/assertions.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://issuer.test/';
/** Long enough that nothing in this file outlives it: the cooldown never ends by wall-clock time here. */
const COOLDOWN_MS = 600_000;

interface Reply { status: number; headers: Record<string, string>; body: string; complete: true }

async function get(gw: TestGateway, token: string): Promise<Reply> {
  const res = await request(`${gw.url}/orders`, { headers: { authorization: `Bearer ${token}` } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

describe('JWKS key rotation through the gateway', () => {
  let echo: EchoUpstream;
  let jwks: JwksServer;
  let gw: TestGateway;
  let k1: TestKey, k2: TestKey, k3: TestKey, k4: TestKey;
  const config = (timeoutMs: number): ConfigObject => ({
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri: jwks.url, audience: 'orders-api', algorithms: ['ES256'], jwks: { cooldownMs: COOLDOWN_MS, timeoutMs } } },
    rateLimiting: { bruteForce: { maxFailures: 3, within: '1h', blockFor: '1h' } },
    routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'echo', authenticate: ['users'] }],
  });

  before(async () => {
    [k1, k2, k3, k4] = await Promise.all([testKey('ES256', 'r1'), testKey('ES256', 'r2'), testKey('ES256', 'r3'), testKey('ES256', 'r4')]);
    echo = await startEchoUpstream();
    jwks = await JwksServer.start([k1]);
    gw = await startGateway(config(1000));
  });
  after(async () => {
    await gw.close();
    await jwks.close();
    await echo.close();
  });

  it('a key rotated in right after start or a reload is accepted on first sight', async () => {
    assert.equal(jwks.requests, 1, 'fetched at start');
    jwks.setKeys([k1, k2]);
    assert.equal((await get(gw, await mint(k2))).status, 200, 'start does not start the unknown-kid cooldown');
    assert.equal(jwks.requests, 2);
  });

  it('within the cooldown a new kid gets 503 authentication_unavailable with Retry-After, nothing forwarded, not counted as a failure', async () => {
    jwks.setKeys([k1, k2, k3]);
    const forwarded = echo.received.length;
    const res = await get(gw, await mint(k3));
    const doc = assertProblem(res, 503, 'authentication_unavailable');
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= COOLDOWN_MS / 1000, `Retry-After ${res.headers['retry-after']}`);
    assert.equal(res.headers['www-authenticate'], undefined, 'no invalid_token challenge: the token may be good');
    const records = await gw.auditFor(doc.requestId);
    assert.equal(records.length, 1);
    assert.equal(records[0]?.reason, 'authentication_unavailable');
    assert.match(records[0]?.detail ?? '', /unknown kid, refetch allowed again/);
    // A flood of random kids: no fetch, no amplification, and no address blocked by the guard (503s are not guesses).
    const flood = await Promise.all(Array.from({ length: 30 }, async (_, i) => (await get(gw, await mint(k4, {}, { kid: `random-${i}` }))).status));
    assert.deepEqual([...new Set(flood)], [503]);
    assert.equal(jwks.requests, 2, 'no fetch within the cooldown');
    assert.equal(echo.received.length, forwarded);
    assert.equal((await get(gw, await mint(k1))).status, 200, 'known keys keep working, and the address is not blocked');
  });

  it('a reload that starts a new key set fetches it without starting the cooldown', async () => {
    await gw.writeConfig(config(2000));
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const reload = await (await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers })).json() as { ok: boolean; changed: boolean };
    assert.deepEqual(reload, { ...reload, ok: true, changed: true });
    assert.equal(jwks.requests, 3, 'the new set fetched once at activation');
    assert.equal((await get(gw, await mint(k3))).status, 200, 'r3 was published before the reload');
    jwks.setKeys([k1, k2, k3, k4]);
    assert.equal((await get(gw, await mint(k4))).status, 200, 'rotated in after the reload: fetched on first sight');
    assert.equal(jwks.requests, 4);
  });
});
