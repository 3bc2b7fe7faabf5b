import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAuthorizationServer, type TestAuthorizationServer } from './harness/authorization-server.js';

let as: TestAuthorizationServer;
before(async () => { as = await startAuthorizationServer({ resources: [{ audience: 'https://orders.test', format: 'jwt', scope: 'orders:read orders:write' }] }); });
after(async () => { await as.close(); });

test('the test authorization server mints opaque user tokens that introspect with their claims', async () => {
  const token = await as.userToken('alice', { claims: { tenant: 'acme', roles: ['admin'] } });
  assert.ok(!token.includes('.'), 'opaque');
  const body = await as.introspect(token);
  assert.equal(body.active, true);
  assert.equal(body.sub, 'alice');
  assert.equal(body.tenant, 'acme');
  assert.deepEqual(body.roles, ['admin']);
  assert.equal(body.iss, as.issuer);
  assert.equal(as.calls('/token/introspection'), 1);
});

test('client credentials tokens are opaque without a resource and JWTs for a JWT resource; revoked ones introspect inactive', async () => {
  const opaque = await as.clientCredentials();
  assert.ok(!opaque.access_token.includes('.'));
  assert.equal((await as.introspect(opaque.access_token)).client_id, 'service');
  const jwt = await as.clientCredentials({ resource: 'https://orders.test' });
  assert.equal(jwt.access_token.split('.').length, 3);
  await as.revoke(opaque.access_token, as.service);
  assert.equal((await as.introspect(opaque.access_token)).active, false);
});
