// Claim mapping and claim checks shared by the jwt and introspection authenticators: a table of
// claim sets (real provider shapes and hostile ones) against compiled rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileClaimPath, readClaim } from '../src/authn/claims/claim-path.js';
import { identityFromClaims } from '../src/authn/claims/claim-mapping.js';
import { audienceList, checkClaimRules, compileClaimRules, type ClaimRules, type RawClaimRules } from '../src/authn/claims/claim-rules.js';
import type { Identity } from '../src/authn/identity.js';
import type { ConfigProblem } from '../src/config/errors.js';
import { configProblems } from './harness/config.js';

/** Compiles claim options as an authenticator named `users` would, or returns the problems' `option: message`. */
function compile(raw: RawClaimRules): ClaimRules | string[] {
  const problems: ConfigProblem[] = [];
  const rules = compileClaimRules(raw, {
    at: (...path) => ['authenticators', 'users', ...path],
    loaded: { file: 'gateway.yaml', files: null as never, problem: (path, message) => ({ file: 'gateway.yaml', line: 1, column: 1, option: path.join('.'), message }) },
    problems,
    reserved: new Set(['x-user-id']),
  });
  return rules ?? problems.map((p) => `${p.option}: ${p.message}`);
}

function rulesOf(raw: RawClaimRules): ClaimRules {
  const rules = compile(raw);
  assert.ok(!Array.isArray(rules), `compiles: ${Array.isArray(rules) ? rules.join('; ') : ''}`);
  return rules;
}

const BASE = { method: 'jwt', authenticator: 'users', keyId: null, bearerRealm: 'portcullis' };

/** The identity's parts, or the refusal reason. */
function map(raw: RawClaimRules, claims: Record<string, unknown>): Pick<Identity, 'subject' | 'roles' | 'scopes' | 'tenant' | 'tier'> | string {
  const identity = identityFromClaims(claims, rulesOf(raw).mapping, BASE);
  if (typeof identity === 'string') return identity;
  return { subject: identity.subject, roles: [...identity.roles], scopes: [...identity.scopes], tenant: identity.tenant, tier: identity.tier };
}

describe('claim paths', () => {
  const CASES: readonly (readonly [string, unknown, unknown])[] = [
    ['realm_access.roles', { realm_access: { roles: ['a'] } }, ['a']],
    ['/realm_access/roles', { realm_access: { roles: ['a'] } }, ['a']],
    ['/resource_access/orders.api/roles', { resource_access: { 'orders.api': { roles: ['r'] } } }, ['r']],
    ['resource_access.orders.api.roles', { resource_access: { 'orders.api': { roles: ['r'] } } }, undefined],
    ['https://acme.example/tenant', { 'https://acme.example/tenant': 't1' }, 't1'],
    ['/https:~1~1acme.example~1tenant', { 'https://acme.example/tenant': 't1' }, 't1'],
    ['/a~0b', { 'a~b': 1 }, 1],
    ['/~01', { '~1': 'tilde-one', '/': 'slash' }, 'tilde-one'],
    ['/', { '': 'empty key' }, 'empty key'],
    ['/groups/1', { groups: ['a', 'b'] }, 'b'],
    ['/groups/01', { groups: ['a', 'b'] }, undefined],
    ['/groups/-', { groups: ['a'] }, undefined],
    ['/groups/9999999', { groups: ['a'] }, undefined],
    ['/groups/length', { groups: ['a'] }, undefined],
    ['a.b', { 'a.b': 'literal', a: { b: 'nested' } }, 'literal'],
    ['constructor', {}, undefined],
    ['toString', {}, undefined],
    ['/constructor/name', {}, undefined],
    ['__proto__', {}, undefined],
    ['realm_access.hasOwnProperty', { realm_access: {} }, undefined],
    ['/__proto__/roles', JSON.parse('{"__proto__":{"roles":["own"]}}'), ['own']],
    ['/x/y', { x: 'not an object' }, undefined],
    ['/x/0', { x: 'string' }, undefined],
  ];
  for (const [path, claims, want] of CASES) {
    it(`${path} in ${JSON.stringify(claims)} → ${JSON.stringify(want)}`, () => {
      const compiled = compileClaimPath(path);
      assert.ok(typeof compiled !== 'string', typeof compiled === 'string' ? compiled : '');
      assert.deepEqual(readClaim(claims, compiled), want);
    });
  }

  it('refuses a pointer whose ~ is not followed by 0 or 1', () => {
    for (const bad of ['/a~2', '/a~', '/~/x', '/ok/b~c']) {
      const compiled = compileClaimPath(bad);
      assert.ok(typeof compiled === 'string' && compiled.includes('RFC 6901'), bad);
    }
  });

  it('a path as deep as the claims are nested costs the path, not the document', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 5000; i++) deep = { n: deep };
    const compiled = compileClaimPath('/n/n/n');
    assert.ok(typeof compiled !== 'string');
    assert.equal(typeof readClaim(deep, compiled), 'object');
  });
});

describe('claim mapping', () => {
  const KEYCLOAK = {
    sub: 'f3a1', azp: 'orders-web', realm_access: { roles: ['offline_access', 'clerk'] },
    resource_access: { 'orders.api': { roles: ['orders-admin', 'clerk'] }, account: { roles: ['view-profile'] } },
    organization: { acme: { id: '6f1b2c' } }, scope: 'openid profile orders:read',
  };
  const CASES: readonly { name: string; raw: RawClaimRules; claims: Record<string, unknown>; want: ReturnType<typeof map> | RegExp }[] = [
    {
      name: 'a single string path stays accepted',
      raw: { claims: { roles: 'realm_access.roles' } }, claims: KEYCLOAK,
      want: { subject: 'f3a1', roles: ['offline_access', 'clerk'], scopes: ['openid', 'profile', 'orders:read'], tenant: null, tier: null },
    },
    {
      name: 'Keycloak realm and client roles: the union, each once, first occurrence first',
      raw: { claims: { roles: ['/realm_access/roles', '/resource_access/orders.api/roles'] } }, claims: KEYCLOAK,
      want: { subject: 'f3a1', roles: ['offline_access', 'clerk', 'orders-admin'], scopes: ['openid', 'profile', 'orders:read'], tenant: null, tier: null },
    },
    {
      name: 'every client\'s roles: the values of resource_access, field roles',
      raw: { claims: { roles: { claim: 'resource_access', take: 'values', field: 'roles' } } }, claims: KEYCLOAK,
      want: { subject: 'f3a1', roles: ['orders-admin', 'clerk', 'view-profile'], scopes: ['openid', 'profile', 'orders:read'], tenant: null, tier: null },
    },
    {
      name: 'Keycloak 26 organization: tenant from the single key',
      raw: { claims: { tenant: { claim: 'organization', take: 'keys' } } }, claims: KEYCLOAK,
      want: { subject: 'f3a1', roles: [], scopes: ['openid', 'profile', 'orders:read'], tenant: 'acme', tier: null },
    },
    {
      name: 'Keycloak 26 organization: tenant from the single value\'s id',
      raw: { claims: { tenant: { claim: 'organization', take: 'values', field: 'id' } } }, claims: KEYCLOAK,
      want: { subject: 'f3a1', roles: [], scopes: ['openid', 'profile', 'orders:read'], tenant: '6f1b2c', tier: null },
    },
    {
      name: 'organization as a list of names (no attributes): its one element',
      raw: { claims: { tenant: { claim: 'organization', take: 'values' } } }, claims: { sub: 'u', organization: ['acme'] },
      want: { subject: 'u', roles: [], scopes: [], tenant: 'acme', tier: null },
    },
    {
      name: 'two organizations where one tenant is expected: refused as ambiguous',
      raw: { claims: { tenant: { claim: 'organization', take: 'keys' } } }, claims: { sub: 'u', organization: { acme: {}, globex: {} } },
      want: /^tenant organization \(keys\): 2 values where one is expected \(ambiguous\)$/,
    },
    {
      name: 'an empty organization object is no tenant',
      raw: { claims: { tenant: { claim: 'organization', take: 'keys' } } }, claims: { sub: 'u', organization: {} },
      want: { subject: 'u', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'keys of a claim that is not an object: refused, not guessed',
      raw: { claims: { tenant: { claim: 'organization', take: 'keys' } } }, claims: { sub: 'u', organization: 'acme' },
      want: /^tenant organization \(keys\): the claim is not an object$/,
    },
    {
      name: 'values whose field is a number: not a tenant string',
      raw: { claims: { tenant: { claim: 'org', take: 'values', field: 'id' } } }, claims: { sub: 'u', org: { a: { id: 7 } } },
      want: /^tenant claim "org \(values, field id\)" is not a printable ASCII string$/,
    },
    {
      name: 'scopes from scope and permissions together (Auth0)',
      raw: { claims: { scopes: ['scope', 'permissions'] } }, claims: { sub: 'auth0|1', scope: 'openid orders:read', permissions: ['orders:write', 'orders:read'] },
      want: { subject: 'auth0|1', roles: [], scopes: ['openid', 'orders:read', 'orders:write'], tenant: null, tier: null },
    },
    {
      name: 'subject: the first source present wins (Entra oid before sub)',
      raw: { claims: { subject: ['oid', 'sub'] } }, claims: { sub: 'pairwise', oid: '00000000-0000-0000-0000-000000000001' },
      want: { subject: '00000000-0000-0000-0000-000000000001', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'subject: a later source when the first is absent or null',
      raw: { claims: { subject: ['uid', 'sub'] } }, claims: { sub: 'fallback', uid: null },
      want: { subject: 'fallback', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'subject: a present but unusable first source is refused, not skipped',
      raw: { claims: { subject: ['uid', 'sub'] } }, claims: { sub: 'fallback', uid: 42 },
      want: /^subject claim "uid" is absent/,
    },
    {
      name: 'subject absent from every source names them all',
      raw: { claims: { subject: ['oid', 'sub'] } }, claims: {},
      want: /^subject claim "oid", "sub" is absent/,
    },
    {
      name: 'tier from the first source present; an ambiguous tier is the base tier',
      raw: { claims: { tier: [{ claim: 'plans', take: 'keys' }, 'plan'] } }, claims: { sub: 'u', plans: { gold: 1, silver: 1 }, plan: 'gold' },
      want: { subject: 'u', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'non-string, empty and nested elements are not names',
      raw: { claims: { roles: ['groups', 'extra'] } }, claims: { sub: 'u', groups: [1, true, null, '', { a: 1 }, ['x'], 'ok'], extra: 'a  b' },
      want: { subject: 'u', roles: ['ok', 'a', 'b'], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'an object where roles are expected means no roles',
      raw: {}, claims: { sub: 'u', roles: { admin: true } },
      want: { subject: 'u', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'prototype keys: an own "__proto__" claim is data, inherited members are nothing',
      raw: { claims: { roles: ['roles', 'constructor', 'toString'], tenant: 'hasOwnProperty' } },
      claims: JSON.parse('{"sub":"u","__proto__":{"roles":["admin"]}}') as Record<string, unknown>,
      want: { subject: 'u', roles: [], scopes: [], tenant: null, tier: null },
    },
    {
      name: '__proto__ keys taken from an object are names like any other',
      raw: { claims: { roles: { claim: 'grants', take: 'keys' } } },
      claims: JSON.parse('{"sub":"u","grants":{"__proto__":1,"constructor":2}}') as Record<string, unknown>,
      want: { subject: 'u', roles: ['__proto__', 'constructor'], scopes: [], tenant: null, tier: null },
    },
    {
      name: 'a huge roles array is refused, not cut',
      raw: { claims: { roles: 'groups' } }, claims: { sub: 'u', groups: Array.from({ length: 1025 }, (_, i) => `g${i}`) },
      want: /^roles groups: more than 1024 values$/,
    },
    {
      name: 'a union over the bound is refused too',
      raw: { claims: { roles: ['a', 'b'] } }, claims: { sub: 'u', a: Array.from({ length: 600 }, (_, i) => `a${i}`), b: Array.from({ length: 600 }, (_, i) => `b${i}`) },
      want: /^roles b: more than 1024 values$/,
    },
    {
      name: 'a scope string of thousands of names is refused',
      raw: {}, claims: { sub: 'u', scope: Array.from({ length: 2000 }, (_, i) => `s${i}`).join(' ') },
      want: /^scopes scope: more than 1024 values$/,
    },
    {
      name: 'an object of more than 256 keys is not read past the bound',
      raw: { claims: { roles: { claim: 'grants', take: 'keys' } } }, claims: { sub: 'u', grants: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 1])) },
      want: /^roles grants \(keys\): more than 256 keys$/,
    },
    {
      name: 'an array of more than 256 values to take from is refused',
      raw: { claims: { roles: { claim: 'grants', take: 'values', field: 'name' } } }, claims: { sub: 'u', grants: Array.from({ length: 257 }, () => ({ name: 'x' })) },
      want: /^roles grants \(values, field name\): more than 256 elements$/,
    },
  ];
  for (const c of CASES) {
    it(c.name, () => {
      const got = map(c.raw, c.claims);
      if (c.want instanceof RegExp) assert.match(typeof got === 'string' ? got : JSON.stringify(got), c.want);
      else assert.deepEqual(got, c.want);
    });
  }
});

describe('claim checks', () => {
  const CASES: readonly { name: string; raw: RawClaimRules; claims: Record<string, unknown>; want: string | null }[] = [
    { name: 'one audience, no rules', raw: {}, claims: { aud: 'gw' }, want: null },
    { name: 'several audiences without azp (OpenID Connect Core 3.1.3.7)', raw: {}, claims: { aud: ['other', 'gw'] }, want: 'authorized_party_missing' },
    { name: 'several audiences with azp', raw: {}, claims: { aud: ['other', 'gw'], azp: 'web' }, want: null },
    { name: 'several audiences, azp null', raw: {}, claims: { aud: ['other', 'gw'], azp: null }, want: 'authorized_party_missing' },
    { name: 'singleAudience refuses two, azp or not', raw: { singleAudience: true }, claims: { aud: ['gw', 'other'], azp: 'web' }, want: 'audience_multiple' },
    { name: 'singleAudience accepts one in an array', raw: { singleAudience: true }, claims: { aud: ['gw'] }, want: null },
    { name: 'authorizedParties: azp listed', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'web' }, want: null },
    { name: 'authorizedParties: azp of another client', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'mallory-app' }, want: 'authorized_party_mismatch' },
    { name: 'authorizedParties: azp wins over a listed client_id', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'other', client_id: 'web' }, want: 'authorized_party_mismatch' },
    { name: 'authorizedParties: a listed azp beside the client_id of another client (a hardcoded azp claim)', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'web', client_id: 'mallory-app' }, want: 'authorized_party_mismatch' },
    { name: 'authorizedParties: a listed client_id beside the cid of another client', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', client_id: 'web', cid: 'mallory-app' }, want: 'authorized_party_mismatch' },
    { name: 'authorizedParties: azp and client_id naming the same listed client (Keycloak introspection)', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'web', client_id: 'web' }, want: null },
    { name: 'authorizedParties: client_id when no azp (RFC 9068)', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', client_id: 'web' }, want: null },
    { name: 'authorizedParties: cid when no azp or client_id (Okta)', raw: { authorizedParties: ['0oa1'] }, claims: { aud: 'gw', cid: '0oa1' }, want: null },
    { name: 'authorizedParties: none of them', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw' }, want: 'authorized_party_missing' },
    { name: 'authorizedParties: azp not a string', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: ['web'] }, want: 'authorized_party_mismatch' },
    { name: 'authorizedParties: case matters', raw: { authorizedParties: ['web'] }, claims: { aud: 'gw', azp: 'WEB' }, want: 'authorized_party_mismatch' },
    { name: 'several audiences, listed client_id and no azp: the allow-list decides', raw: { authorizedParties: ['web'] }, claims: { aud: ['a', 'gw'], client_id: 'web' }, want: null },
    { name: 'several audiences with a listed azp', raw: { authorizedParties: ['web'] }, claims: { aud: ['a', 'gw'], azp: 'web' }, want: null },
    { name: 'requiredClaims by pointer', raw: { requiredClaims: ['/org/id'] }, claims: { aud: 'gw', org: { id: 'o1' } }, want: null },
    { name: 'requiredClaims: null is missing', raw: { requiredClaims: ['email', 'org.id'] }, claims: { aud: 'gw', email: 'a@b', org: { id: null } }, want: 'claim_missing' },
    { name: 'requiredClaimValues: equal string', raw: { requiredClaimValues: { tenant_type: 'business' } }, claims: { aud: 'gw', tenant_type: 'business' }, want: null },
    { name: 'requiredClaimValues: another string', raw: { requiredClaimValues: { tenant_type: 'business' } }, claims: { aud: 'gw', tenant_type: 'consumer' }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: one of a list', raw: { requiredClaimValues: { acr: ['mfa', 'hwk'] } }, claims: { aud: 'gw', acr: 'hwk' }, want: null },
    { name: 'requiredClaimValues: an array claim containing one', raw: { requiredClaimValues: { '/realm_access/roles': 'employee' } }, claims: { aud: 'gw', realm_access: { roles: ['x', 'employee'] } }, want: null },
    { name: 'requiredClaimValues: an array claim containing none', raw: { requiredClaimValues: { amr: ['mfa'] } }, claims: { aud: 'gw', amr: ['pwd', 1, { mfa: true }] }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: absent', raw: { requiredClaimValues: { email_verified: true } }, claims: { aud: 'gw' }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: boolean true', raw: { requiredClaimValues: { email_verified: true } }, claims: { aud: 'gw', email_verified: true }, want: null },
    { name: 'requiredClaimValues: the string "true" is not true', raw: { requiredClaimValues: { email_verified: true } }, claims: { aud: 'gw', email_verified: 'true' }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: 1 is not "1"', raw: { requiredClaimValues: { level: 1 } }, claims: { aud: 'gw', level: '1' }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: an object never matches', raw: { requiredClaimValues: { level: 'x' } }, claims: { aud: 'gw', level: { x: 'x' } }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: a huge array is refused unread', raw: { requiredClaimValues: { groups: 'g0' } }, claims: { aud: 'gw', groups: Array.from({ length: 1025 }, (_, i) => `g${i}`) }, want: 'claim_value_mismatch' },
    { name: 'requiredClaimValues: a literal namespaced name', raw: { requiredClaimValues: { 'https://acme.example/plan': 'pro' } }, claims: { aud: 'gw', 'https://acme.example/plan': 'pro' }, want: null },
  ];
  for (const c of CASES) {
    it(`${c.name} → ${c.want ?? 'accepted'}`, () => {
      const reason = checkClaimRules(c.claims, rulesOf(c.raw), audienceList(c.claims.aud));
      assert.equal(reason === null ? null : reason.split(':')[0], c.want, String(reason));
    });
  }

  it('names the refusing party in the reason, bounded', () => {
    const reason = checkClaimRules({ aud: 'gw', azp: 'x'.repeat(5000) }, rulesOf({ authorizedParties: ['web'] }), ['gw']);
    assert.ok(reason !== null && reason.length < 200, String(reason));
  });
});

describe('claim options at config load', () => {
  it('a malformed pointer, field with take: keys and a reserved header are located problems', () => {
    assert.deepEqual(compile({
      claims: { roles: ['/ok', '/bad~2'], tenant: { claim: 'organization', take: 'keys', field: 'id' } },
      forwardClaims: { 'X-User-Id': 'email', 'X-Org': '/org~' },
      requiredClaims: ['/a~3'],
      requiredClaimValues: { '/b~': 'x' },
    }), [
      'authenticators.users.claims.roles.1: "/bad~2" is not a valid JSON pointer: "~" must be followed by 0 (for ~) or 1 (for /), as in /https:~1~1example.com~1roles (RFC 6901)',
      'authenticators.users.claims.tenant.field: applies to take: values only (a key has no fields); remove it, or take values',
      'authenticators.users.forwardClaims.X-User-Id: X-User-Id is a header the gateway sets or relies on; forward the claim under another name',
      'authenticators.users.forwardClaims.X-Org: "/org~" is not a valid JSON pointer: "~" must be followed by 0 (for ~) or 1 (for /), as in /https:~1~1example.com~1roles (RFC 6901)',
      'authenticators.users.requiredClaims.0: "/a~3" is not a valid JSON pointer: "~" must be followed by 0 (for ~) or 1 (for /), as in /https:~1~1example.com~1roles (RFC 6901)',
      'authenticators.users.requiredClaimValues./b~: "/b~" is not a valid JSON pointer: "~" must be followed by 0 (for ~) or 1 (for /), as in /https:~1~1example.com~1roles (RFC 6901)',
    ]);
  });

  const jwt = (extra: string) => `
upstreams: { u: { targets: ["http://127.0.0.1:9"] } }
authenticators:
  users:
    type: jwt
    issuer: https://issuer.test/
    secret: "0123456789abcdef0123456789abcdef"
    audience: gw
    algorithms: [HS256]
${extra}
routes:
  - { name: r, match: { path: /r }, upstream: u, authenticate: [users] }
`;

  it('names file, line and option of a malformed pointer in gateway.yaml', () => {
    const problems = configProblems(jwt('    claims: { roles: [realm_access.roles, "/resource_access/orders~api/roles"] }'));
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^gateway\.yaml:10:\d+: authenticators\.users\.claims\.roles\[1\]: "\/resource_access\/orders~api\/roles" is not a valid JSON pointer/);
  });

  it('says which forms an identity source may take', () => {
    const problems = configProblems(jwt('    claims: { tenant: { claim: organization, take: entries } }'));
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /authenticators\.users\.claims\.tenant\.take/);
    assert.match(problems[0] ?? '', /keys, values|"keys"/);
  });

  it('names every accepted form of a source, and explains a mistake inside one by the form it has', () => {
    const wrongType = configProblems(jwt('    claims: { roles: 5 }'));
    assert.deepEqual(wrongType.map((p) => p.replace(/^gateway\.yaml:\d+:\d+: /, '')), [
      'authenticators.users.claims.roles: must be non-empty text, or an object source { claim, take: keys or values, field }, or a list of claim paths (names, dotted paths or JSON pointers) or object sources { claim, take: keys or values, field }',
    ]);
    const unknown = configProblems(jwt('    claims: { roles: [a, { claim: org, take: keys, extra: 1 }] }'));
    assert.deepEqual(unknown.map((p) => p.replace(/^gateway\.yaml:\d+:\d+: /, '')), [
      'authenticators.users.claims.roles[1].extra: is not a known option (options here: claim, take, field)',
    ]);
  });

  it('refuses required values that are objects, and empty lists', () => {
    const problems = configProblems(jwt('    requiredClaimValues: { a: { b: 1 }, c: [] }'));
    assert.equal(problems.length, 2, problems.join('\n'));
  });

  it('a rate limit by a malformed claim pointer is a located problem', () => {
    const problems = configProblems(`${jwt('')}
rateLimits:
  perOrg: { algorithm: token-bucket, limit: 10, per: 60s, by: ["claim:/org~9"] }
`);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /rateLimits\.perOrg\.by\[0\]: "\/org~9" is not a valid JSON pointer/);
  });
});
