// The brute-force guard counts guesses, not honest mistakes: a correctly signed token that expired,
// is not yet valid or is for another audience, and an API key presented with its correct secret
// after it was revoked, are refused (401) but never block the address. Forged, malformed,
// wrong-secret and unknown credentials do count.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newKey } from '../src/authn/api-key/key-format.js';
import { assertProblem } from './harness/assertions.js';
import { admin, ADMIN_TOKEN_HASH, call, createKey, type IssuedKeyReply, type Reply } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { b64, craft, nowSec } from './harness/jwt.js';

const ISS = 'https://issuer.test/';
const SECRET = 'brute-force-honest-secret-0123456789ab';
const MAX_FAILURES = 3;

const jwt = (claims: Record<string, unknown> = {}, secret = SECRET): string =>
  craft('{"alg":"HS256"}', JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'user-1', exp: nowSec() + 300, ...claims }), { hmac: secret });

type Credential = { readonly authorization: string } | { readonly 'x-api-key': string };

describe('brute-force guard: guesses count, honest mistakes do not', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let revoked: IssuedKeyReply;
  let good: IssuedKeyReply;
  let address = 0;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      trustedProxies: ['127.0.0.1/32'],
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        users: { type: 'jwt', issuer: ISS, secret: SECRET, audience: 'orders-api', algorithms: ['HS256'], clockSkewMs: 0 },
        machines: { type: 'apiKey' },
      },
      rateLimiting: { bruteForce: { maxFailures: MAX_FAILURES, within: '1h', blockFor: '1h', by: ['ip'] } },
      routes: [{ name: 'api', match: { path: '/api' }, upstream: 'echo', authenticate: ['users', 'machines'] }],
    });
    [revoked, good] = await Promise.all([createKey(gw.adminUrl, { name: 'revoked', expires: '30d' }), createKey(gw.adminUrl, { name: 'good', expires: '30d' })]);
    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${revoked.id}/revoke`)).status, 200);
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  const send = (ip: string, credential: Credential): Promise<Reply> => call(`${gw.url}/api`, { headers: { ...credential, 'x-forwarded-for': ip } });

  const honest: readonly (readonly [string, () => Credential])[] = [
    ['a correctly signed token past its exp', () => ({ authorization: `Bearer ${jwt({ exp: nowSec() - 3600 })}` })],
    ['a correctly signed token before its nbf', () => ({ authorization: `Bearer ${jwt({ nbf: nowSec() + 3600 })}` })],
    ['a correctly signed token issued in the future', () => ({ authorization: `Bearer ${jwt({ iat: nowSec() + 3600 })}` })],
    ['a correctly signed token for another audience', () => ({ authorization: `Bearer ${jwt({ aud: 'billing-api' })}` })],
    ['a correctly signed token whose subject cannot be asserted', () => ({ authorization: `Bearer ${jwt({ sub: 'a\nb' })}` })],
    ['a correctly signed token for several audiences without azp', () => ({ authorization: `Bearer ${jwt({ aud: ['orders-api', 'billing-api'] })}` })],
    ['a revoked API key with its correct secret', () => ({ 'x-api-key': revoked.key })],
  ];
  const guesses: readonly (readonly [string, () => Credential])[] = [
    ['a forged signature', () => ({ authorization: `Bearer ${jwt().slice(0, -4)}AAAA` })],
    ['a token signed with a wrong secret', () => ({ authorization: `Bearer ${jwt({}, 'another-secret-of-at-least-32-bytes!!')}` })],
    ['a malformed token', () => ({ authorization: 'Bearer not.a.token' })],
    ['a token from an unknown issuer', () => ({ authorization: `Bearer ${jwt({ iss: 'https://evil.test/' })}` })],
    ['alg none', () => ({ authorization: `Bearer ${b64('{"alg":"none"}')}.${b64(JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'x' }))}.` })],
    ['an API key with a wrong secret', () => ({ 'x-api-key': newKey('live', good.id) })],
    ['an unknown API key', () => ({ 'x-api-key': newKey('live') })],
  ];

  for (const [name, credential] of honest) {
    it(`${name}: 401 every time, never counted, the address is not blocked`, async () => {
      const ip = `198.51.100.${++address}`;
      for (let i = 0; i < MAX_FAILURES * 3; i++) assertProblem(await send(ip, credential()), 401, 'invalid_credential');
      assert.equal((await send(ip, { authorization: `Bearer ${jwt()}` })).status, 200);
    });
  }

  for (const [name, credential] of guesses) {
    it(`${name}: counted; the address is blocked after ${MAX_FAILURES}`, async () => {
      const ip = `203.0.113.${++address}`;
      for (let i = 0; i < MAX_FAILURES; i++) assertProblem(await send(ip, credential()), 401, 'invalid_credential');
      assertProblem(await send(ip, { authorization: `Bearer ${jwt()}` }), 429, 'too_many_failures');
    });
  }
});
