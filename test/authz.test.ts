// Route authorization tables: roles (any/all), scopes, tenant isolation (path parameter, header,
// fixed list), and exactly what the upstream receives for each allowed case.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';

interface Case {
  readonly name: string;
  readonly path: string;
  readonly claims: Record<string, unknown>;
  readonly headers?: Record<string, string>;
  /** 200, or the denial code. */
  readonly expect: 200 | 'insufficient_role' | 'insufficient_scope' | 'tenant_mismatch';
  /** For allowed cases: the identity headers the upstream must receive (absent ones must be absent). */
  readonly upstream?: Partial<Record<'x-user-id' | 'x-tenant-id' | 'x-roles' | 'x-scopes', string>>;
}

const CASES: readonly Case[] = [
  { name: 'roles anyOf: one of them', path: '/admin/x', claims: { roles: ['ops'] }, expect: 200, upstream: { 'x-user-id': 'u1', 'x-roles': 'ops' } },
  { name: 'roles anyOf: the other', path: '/admin/x', claims: { roles: ['viewer', 'admin'] }, expect: 200, upstream: { 'x-roles': 'viewer admin' } },
  { name: 'roles anyOf: none of them', path: '/admin/x', claims: { roles: ['viewer'] }, expect: 'insufficient_role' },
  { name: 'roles anyOf: no roles claim', path: '/admin/x', claims: {}, expect: 'insufficient_role' },
  { name: 'roles anyOf: case matters', path: '/admin/x', claims: { roles: ['Admin'] }, expect: 'insufficient_role' },
  { name: 'roles allOf: all present', path: '/billing/x', claims: { roles: ['billing', 'finance', 'x'] }, expect: 200, upstream: { 'x-roles': 'billing finance x' } },
  { name: 'roles allOf: one missing', path: '/billing/x', claims: { roles: ['billing'] }, expect: 'insufficient_role' },
  { name: 'roles anyOf + allOf', path: '/both', claims: { roles: ['staff', 'eu'] }, expect: 200 },
  { name: 'roles anyOf + allOf: allOf missing', path: '/both', claims: { roles: ['staff'] }, expect: 'insufficient_role' },
  { name: 'scopes: all present (string claim)', path: '/orders', claims: { scope: 'orders:write orders:read' }, expect: 200, upstream: { 'x-scopes': 'orders:write orders:read' } },
  { name: 'scopes: all present (array claim)', path: '/orders', claims: { scope: ['orders:read', 'orders:write'] }, expect: 200, upstream: { 'x-scopes': 'orders:read orders:write' } },
  { name: 'scopes: one missing', path: '/orders', claims: { scope: 'orders:read' }, expect: 'insufficient_scope' },
  { name: 'scopes: prefix is not a scope', path: '/orders', claims: { scope: 'orders orders:rea' }, expect: 'insufficient_scope' },
  { name: 'tenant param: own tenant', path: '/tenants/acme/orders', claims: { tenant_id: 'acme' }, expect: 200, upstream: { 'x-tenant-id': 'acme' } },
  { name: 'tenant param: another tenant', path: '/tenants/globex/orders', claims: { tenant_id: 'acme' }, expect: 'tenant_mismatch' },
  { name: 'tenant param: no tenant claim', path: '/tenants/acme/orders', claims: {}, expect: 'tenant_mismatch' },
  { name: 'tenant param: encoded form of own tenant', path: '/tenants/ac%6De/orders', claims: { tenant_id: 'acme' }, expect: 200, upstream: { 'x-tenant-id': 'acme' } },
  { name: 'tenant param: percent-encoded space decoded', path: '/tenants/acme%20corp/orders', claims: { tenant_id: 'acme corp' }, expect: 200 },
  { name: 'tenant param: case differs', path: '/tenants/ACME/orders', claims: { tenant_id: 'acme' }, expect: 'tenant_mismatch' },
  { name: 'tenant header: matches', path: '/by-header', claims: { tenant_id: 'acme' }, headers: { 'x-tenant': 'acme' }, expect: 200, upstream: { 'x-tenant-id': 'acme' } },
  { name: 'tenant header: differs', path: '/by-header', claims: { tenant_id: 'acme' }, headers: { 'x-tenant': 'globex' }, expect: 'tenant_mismatch' },
  { name: 'tenant header: absent', path: '/by-header', claims: { tenant_id: 'acme' }, expect: 'tenant_mismatch' },
  { name: 'tenant fixed: listed', path: '/acme-only', claims: { tenant_id: 'acme' }, expect: 200 },
  { name: 'tenant fixed: not listed', path: '/acme-only', claims: { tenant_id: 'globex' }, expect: 'tenant_mismatch' },
  { name: 'all at once: allowed', path: '/tenants/acme/admin', claims: { tenant_id: 'acme', roles: ['admin'], scope: 'orders:admin' }, expect: 200, upstream: { 'x-user-id': 'u1', 'x-tenant-id': 'acme', 'x-roles': 'admin', 'x-scopes': 'orders:admin' } },
  { name: 'all at once: scope fails first after roles pass', path: '/tenants/acme/admin', claims: { tenant_id: 'acme', roles: ['admin'] }, expect: 'insufficient_scope' },
  { name: 'all at once: wrong tenant with every right', path: '/tenants/globex/admin', claims: { tenant_id: 'acme', roles: ['admin'], scope: 'orders:admin' }, expect: 'tenant_mismatch' },
];

function values(seen: EchoedRequest | undefined, name: string): string[] {
  assert.ok(seen !== undefined);
  const out: string[] = [];
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) if ((seen.rawHeaders[i] ?? '').toLowerCase() === name) out.push(seen.rawHeaders[i + 1] ?? '');
  return out;
}

describe('authorization', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let rsa: TestKey;
  let ec: TestKey;

  before(async () => {
    [rsa, ec] = await Promise.all([testKey('RS256', 'authz-rsa'), testKey('ES256', 'authz-ec')]);
    echo = await startEchoUpstream();
    const route = (name: string, path: string, authorize: Record<string, unknown>) => ({ name, match: { path }, upstream: 'echo', authenticate: ['users'], authorize });
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        users: {
          type: 'jwt', audience: ['orders-api'], algorithms: ['RS256', 'ES256'], claims: { tenant: 'tenant_id' },
          issuers: [
            { issuer: 'https://issuer.test/', publicKeys: [{ pem: rsa.pem, kid: 'authz-rsa' }] },
            { issuer: 'https://files.test/', jwksFile: 'keys/jwks.json' },
          ],
        },
      },
      routes: [
        route('admin', '/admin/**', { roles: { anyOf: ['admin', 'ops'] } }),
        route('billing', '/billing/**', { roles: { allOf: ['billing', 'finance'] } }),
        route('both', '/both', { roles: { anyOf: ['staff', 'contractor'], allOf: ['eu'] } }),
        route('orders', '/orders', { scopes: ['orders:read', 'orders:write'] }),
        route('tenant-all', '/tenants/{tenant}/admin', { roles: { anyOf: ['admin'] }, scopes: ['orders:admin'], tenant: { param: 'tenant' } }),
        route('tenant', '/tenants/{tenant}/**', { tenant: { param: 'tenant' } }),
        route('by-header', '/by-header', { tenant: { header: 'X-Tenant' } }),
        route('fixed', '/acme-only', { tenant: { fixed: ['acme'] } }),
      ],
    }, { beforeStart: async (dir) => {
      await mkdir(join(dir, 'keys'));
      await writeFile(join(dir, 'keys', 'jwks.json'), JSON.stringify({ keys: [ec.jwk] }));
    } });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.expect === 200 ? 'allowed' : c.expect}`, async () => {
      const token = await mint(rsa, { sub: 'u1', ...c.claims });
      const before = echo.received.length;
      const res = await request(`${gw.url}${c.path}`, { headers: { authorization: `Bearer ${token}`, ...c.headers } });
      const body = await res.body.text();
      if (c.expect === 200) {
        assert.equal(res.statusCode, 200, body);
        const seen = echo.received.at(-1);
        for (const name of ['x-user-id', 'x-tenant-id', 'x-roles', 'x-scopes'] as const) {
          const expected = c.upstream?.[name];
          if (expected !== undefined) assert.deepEqual(values(seen, name), [expected], name);
        }
        assert.deepEqual(values(seen, 'x-auth-method'), ['jwt']);
        assert.deepEqual(values(seen, 'authorization'), []);
        if (!('tenant_id' in c.claims)) assert.deepEqual(values(seen, 'x-tenant-id'), []);
      } else {
        const flat = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)]));
        assertProblem({ status: res.statusCode, headers: flat, body, complete: true }, 403, c.expect);
        assert.equal(echo.received.length, before, 'nothing forwarded');
        if (c.expect === 'insufficient_scope') {
          assert.match(flat['www-authenticate'] ?? '', /^Bearer realm="portcullis", error="insufficient_scope", scope="[^"]+"$/);
        } else assert.equal(flat['www-authenticate'], undefined);
      }
    });
  }

  it('keys from a local JWKS file verify tokens of that issuer only', async () => {
    const token = await mint(ec, { iss: 'https://files.test/', sub: 'file-user', roles: ['ops'] });
    assert.equal((await request(`${gw.url}/admin/x`, { headers: { authorization: `Bearer ${token}` } })).statusCode, 200);
    const crossed = await mint(ec, { iss: 'https://issuer.test/', roles: ['ops'] });
    const res = await request(`${gw.url}/admin/x`, { headers: { authorization: `Bearer ${crossed}` } });
    await res.body.dump();
    assert.equal(res.statusCode, 401, 'the EC key belongs to the other issuer');
  });
});
