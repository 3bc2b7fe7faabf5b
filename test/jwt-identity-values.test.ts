// Claim values that cannot be header values: the caller is still authenticated and authorized on
// the real values; what cannot be sent verbatim is left out of the identity headers and counted in
// X-Identity-Omitted. Only a subject or tenant that cannot be represented invalidates the token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { assertProblem } from './harness/assertions.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { craft, nowSec } from './harness/jwt.js';

const ISS = 'https://issuer.test/';
const SECRET = 'identity-values-secret-0123456789abcdef';

function token(claims: Record<string, unknown>): string {
  return craft('{"alg":"HS256","typ":"JWT"}', JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'user-1', exp: nowSec() + 300, ...claims }), { hmac: SECRET });
}

/** Header values the upstream received under `name` (any spelling). */
function upstreamHeader(seen: EchoedRequest | undefined, name: string): string[] {
  assert.ok(seen !== undefined, 'the upstream received the request');
  const out: string[] = [];
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) {
    if ((seen.rawHeaders[i] ?? '').toLowerCase() === name) out.push(seen.rawHeaders[i + 1] ?? '');
  }
  return out;
}

interface Case {
  readonly name: string;
  readonly claims: Record<string, unknown>;
  /** Expected upstream headers on the route without rules; [] = absent. */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** Expected status per path (routes with role/scope rules). */
  readonly decisions?: Readonly<Record<string, number>>;
}

const ROLES_300 = Array.from({ length: 300 }, (_, i) => `r${i}`);

const CASES: readonly Case[] = [
  {
    name: 'Okta groups with a space: authorized on the real value, left out of X-Roles',
    claims: { groups: ['Everyone', 'Order Clerks'] },
    headers: { 'x-roles': ['Everyone'], 'x-identity-omitted': ['x-roles=1'] },
    decisions: { '/clerks': 200, '/equipe': 403 },
  },
  {
    name: 'a group with CR/LF never becomes a header of its own',
    claims: { groups: ['admin\r\nX-Evil: 1', 'ops'] },
    headers: { 'x-roles': ['ops'], 'x-evil': [], 'x-identity-omitted': ['x-roles=1'] },
    decisions: { '/clerks': 403 },
  },
  {
    name: 'a non-ASCII group authorizes and is left out',
    claims: { groups: ['Équipe Nord'] },
    headers: { 'x-roles': [], 'x-identity-omitted': ['x-roles=1'] },
    decisions: { '/equipe': 200, '/clerks': 403 },
  },
  { name: 'a group with a comma', claims: { groups: ['a,b', 'c'] }, headers: { 'x-roles': ['c'], 'x-identity-omitted': ['x-roles=1'] } },
  { name: 'a very long group', claims: { groups: ['r'.repeat(2000), 'short'] }, headers: { 'x-roles': ['short'], 'x-identity-omitted': ['x-roles=1'] } },
  {
    name: 'too many groups: the first 256 are sent, the rest counted',
    claims: { groups: ROLES_300 },
    headers: { 'x-roles': [ROLES_300.slice(0, 256).join(' ')], 'x-identity-omitted': ['x-roles=44'] },
  },
  { name: 'elements that are not strings are not roles', claims: { groups: [1, { x: 1 }, true, 'ok'] }, headers: { 'x-roles': ['ok'], 'x-identity-omitted': [] } },
  { name: 'a roles claim that is an object means no roles', claims: { groups: { admin: true } }, headers: { 'x-roles': [], 'x-identity-omitted': [] }, decisions: { '/clerks': 403 } },
  {
    name: 'a non-ASCII scope is left out of X-Scopes; the others still authorize',
    claims: { scope: 'orders:read lecture:é' },
    headers: { 'x-scopes': ['orders:read'], 'x-identity-omitted': ['x-scopes=1'] },
    decisions: { '/scoped': 200 },
  },
  {
    name: 'forwarded claims: CR/LF, non-ASCII and objects are left out; numbers are sent',
    claims: { email: 'a@x.test\r\nX-Evil: 1', dept: { id: 1 }, level: 42 },
    headers: { 'x-user-email': [], 'x-dept': [], 'x-level': ['42'], 'x-evil': [], 'x-identity-omitted': ['x-user-email=1, x-dept=1'] },
  },
  { name: 'a non-ASCII forwarded claim', claims: { email: 'josé@x.test' }, headers: { 'x-user-email': [], 'x-identity-omitted': ['x-user-email=1'] } },
  { name: 'a printable tenant with a space is sent', claims: { tid: 'acme corp' }, headers: { 'x-tenant-id': ['acme corp'], 'x-identity-omitted': [] } },
  { name: 'a tier that is no tier name selects the base limits', claims: { tier: 'gold plan' }, headers: { 'x-user-id': ['user-1'], 'x-identity-omitted': [] } },
  {
    name: 'everything at once, with one header line per list',
    claims: { groups: ['Order Clerks', 'ops'], scope: 'orders:read  ünï', email: 'ok@x.test' },
    headers: { 'x-roles': ['ops'], 'x-scopes': ['orders:read'], 'x-user-email': ['ok@x.test'], 'x-identity-omitted': ['x-roles=1, x-scopes=1'] },
    decisions: { '/clerks': 200, '/scoped': 200 },
  },
];

/** Claims that still make the token invalid: a subject or tenant the gateway must assert and cannot. */
const INVALID: readonly (readonly [string, Record<string, unknown>])[] = [
  ['subject with CR/LF', { sub: 'alice\r\nX-Roles: admin' }],
  ['non-ASCII subject', { sub: 'josé' }],
  ['subject longer than 1024', { sub: 'u'.repeat(1025) }],
  ['subject with a leading space', { sub: ' alice' }],
  ['subject absent', { sub: undefined }],
  ['subject a number', { sub: 7 }],
  ['non-ASCII tenant', { tid: 'ünï' }],
  ['tenant an array', { tid: ['a'] }],
  ['tenant with LF', { tid: 'a\nb' }],
];

describe('claim values that cannot be header values', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        users: {
          type: 'jwt', issuer: ISS, secret: SECRET, audience: 'orders-api', algorithms: ['HS256'],
          claims: { roles: 'groups', tenant: 'tid', tier: 'tier' },
          forwardClaims: { 'X-User-Email': 'email', 'X-Dept': 'dept', 'X-Level': 'level' },
        },
      },
      routes: [
        { name: 'open', match: { path: '/open' }, upstream: 'echo', authenticate: ['users'] },
        { name: 'clerks', match: { path: '/clerks' }, upstream: 'echo', authenticate: ['users'], authorize: { roles: { anyOf: ['Order Clerks'] } } },
        { name: 'equipe', match: { path: '/equipe' }, upstream: 'echo', authenticate: ['users'], authorize: { roles: { anyOf: ['Équipe Nord'] } } },
        { name: 'scoped', match: { path: '/scoped' }, upstream: 'echo', authenticate: ['users'], authorize: { scopes: ['orders:read'] } },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const c of CASES) {
    it(`${c.name}: authenticated; the upstream gets only verbatim values`, async () => {
      const jwt = token(c.claims);
      const res = await request(`${gw.url}/open`, { headers: { authorization: `Bearer ${jwt}`, 'x-identity-omitted': 'x-roles=0' } });
      const body = await res.body.text();
      assert.equal(res.statusCode, 200, body);
      const seen = echo.received.at(-1);
      assert.deepEqual(upstreamHeader(seen, 'x-user-id'), ['user-1']);
      for (const [name, values] of Object.entries(c.headers)) assert.deepEqual(upstreamHeader(seen, name), values, name);
      for (const [path, status] of Object.entries(c.decisions ?? {})) {
        const decided = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${jwt}` } });
        await decided.body.dump();
        assert.equal(decided.statusCode, status, path);
      }
    });
  }

  for (const [name, claims] of INVALID) {
    it(`${name}: 401 invalid_credential even on a route without rules, nothing forwarded`, async () => {
      const forwarded = echo.received.length;
      const res = await request(`${gw.url}/open`, { headers: { authorization: `Bearer ${token(claims)}` } });
      const flat: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
      assertProblem({ status: res.statusCode, headers: flat, body: await res.body.text(), complete: true }, 401, 'invalid_credential');
      assert.equal(echo.received.length, forwarded);
    });
  }
});

describe('role names in config', () => {
  const config = (role: string): string => `
upstreams: { echo: { targets: ["http://127.0.0.1:1"] } }
authenticators:
  users: { type: jwt, issuer: "${ISS}", secret: "${SECRET}", audience: a, algorithms: [HS256] }
routes:
  - name: r
    match: { path: /r }
    upstream: echo
    authenticate: [users]
    authorize: { roles: { anyOf: [${JSON.stringify(role)}] } }
`;
  it('accepts role names with spaces and non-ASCII, as identity providers issue them', () => {
    assert.deepEqual(configProblems(config('Order Clerks')), []);
    assert.deepEqual(configProblems(config('Équipe Nord')), []);
  });
  it('refuses role names with control characters or leading/trailing white space, naming file, line and option', () => {
    for (const role of [' Order Clerks', 'Order Clerks ', 'a\tb', 'a\nb', '']) {
      const problems = configProblems(config(role));
      assert.ok(problems.some((p) => p.includes('routes[0].authorize.roles.anyOf[0]') && /gateway\.yaml:\d+/.test(p)), `${JSON.stringify(role)}: ${problems.join('; ')}`);
    }
  });
});
