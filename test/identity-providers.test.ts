// examples/identity-providers/*.yaml cannot rot: each compiles as it is, and, with its JWKS URL and
// upstream pointed at loopback, maps real signed tokens of that provider's shape to the identity
// its comments promise, and refuses the tokens its claim rules are there to refuse.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request, type Dispatcher } from 'undici';
import { parse } from 'yaml';
import { assertProblem } from './harness/assertions.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { JwksServer, mint, nowSec, testKey, type TestKey } from './harness/jwt.js';

const DIR = fileURLToPath(new URL('../../examples/identity-providers/', import.meta.url));

interface Reply { status: number; headers: Record<string, string>; body: string }

async function send(gw: TestGateway, method: Dispatcher.HttpMethod, path: string, token: string): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text() };
}

/** The identity headers the upstream received (one value each, joined when repeated). */
function identityOf(seen: EchoedRequest | undefined): Record<string, string> {
  assert.ok(seen !== undefined, 'the upstream received the request');
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) {
    const name = (seen.rawHeaders[i] ?? '').toLowerCase();
    if (name.startsWith('x-') && name !== 'x-request-id' && !name.startsWith('x-forwarded')) out[name] = seen.rawHeaders[i + 1] ?? '';
  }
  return out;
}

interface Accepted { readonly method?: Dispatcher.HttpMethod; readonly path?: string; readonly claims: Record<string, unknown>; readonly identity?: Record<string, string>; readonly status?: number }
interface Refused { readonly claims: Record<string, unknown>; readonly reason: RegExp }

interface Provider {
  readonly file: string;
  readonly authenticator: string;
  /** Claims every token of this provider has (iss, aud, …); a case's claims override them. */
  readonly base: Record<string, unknown>;
  readonly accepted: readonly (readonly [string, Accepted])[];
  readonly refused: readonly (readonly [string, Refused])[];
}

const KEYCLOAK_ISS = 'https://sso.example.com/realms/acme';
const ENTRA_TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

const PROVIDERS: readonly Provider[] = [
  {
    file: 'keycloak.yaml',
    authenticator: 'keycloak',
    base: {
      iss: KEYCLOAK_ISS, aud: ['orders.api', 'account'], azp: 'orders-web', typ: 'Bearer', sub: 'f3a1c9d2-5b7e-4c1a-9f0e-1d2c3b4a5f6e',
      sid: '0b3d1e7a', acr: '1', scope: 'openid profile email orders:read', email_verified: true,
      realm_access: { roles: ['offline_access', 'uma_authorization', 'clerk'] },
      resource_access: { 'orders.api': { roles: ['orders-admin', 'clerk'] }, account: { roles: ['manage-account', 'view-profile'] } },
      organization: { acme: { id: '6f1b2c3d-0000-4000-8000-000000000001' } },
      preferred_username: 'alice', email: 'alice@acme.example',
    },
    accepted: [
      ['realm and client roles together, tenant from the organization, a dotted client id by pointer', {
        claims: {},
        identity: {
          'x-user-id': 'f3a1c9d2-5b7e-4c1a-9f0e-1d2c3b4a5f6e', 'x-auth-method': 'jwt', 'x-tenant-id': 'acme',
          'x-roles': 'offline_access uma_authorization clerk orders-admin', 'x-scopes': 'openid profile email orders:read',
          'x-user-name': 'alice', 'x-user-email': 'alice@acme.example',
        },
      }],
      ['a client role authorizes the admin route', { method: 'DELETE', path: '/api/orders/7', claims: {} }],
      ['the same role on another client does not', {
        method: 'DELETE', path: '/api/orders/7', status: 403,
        claims: { resource_access: { account: { roles: ['orders-admin'] } } },
      }],
      ['a token of the other listed client', { claims: { azp: 'orders-cli' } }],
    ],
    refused: [
      ['issued to another client of the realm', { claims: { azp: 'reporting-app' }, reason: /^keycloak: authorized_party_mismatch: azp "reporting-app" is not in authorizedParties$/ }],
      ['several audiences and no azp', { claims: { azp: undefined }, reason: /^keycloak: authorized_party_missing: no azp, client_id or cid claim$/ }],
      ['a member of two organizations', {
        claims: { organization: { acme: { id: 'a' }, globex: { id: 'g' } } },
        reason: /^keycloak: claim_invalid: tenant organization \(keys\): 2 values where one is expected \(ambiguous\)$/,
      }],
    ],
  },
  {
    file: 'auth0.yaml',
    authenticator: 'auth0',
    base: {
      iss: 'https://acme.eu.auth0.com/', sub: 'auth0|64b7f0c2e1a9d3b5c7e9f1a3',
      aud: ['https://api.acme.example/orders', 'https://acme.eu.auth0.com/userinfo'],
      azp: 'kV2fQ0hHb5zYg1Q8uP3xS7mA9wE4rT6y', scope: 'openid profile orders:read', gty: undefined,
      permissions: ['orders:read', 'orders:refund'],
      'https://acme.example/roles': ['support'], 'https://acme.example/tenant': 'acme',
    },
    accepted: [
      ['two audiences with azp, scope and permissions together, namespaced claims', {
        claims: {},
        identity: {
          'x-user-id': 'auth0|64b7f0c2e1a9d3b5c7e9f1a3', 'x-auth-method': 'jwt', 'x-tenant-id': 'acme', 'x-roles': 'support',
          'x-scopes': 'openid profile orders:read orders:refund',
        },
      }],
      ['a permission granted only through RBAC authorizes', { method: 'POST', path: '/api/orders/9/refund', claims: {} }],
      ['without the permission: 403', { method: 'POST', path: '/api/orders/9/refund', status: 403, claims: { permissions: ['orders:read'] } }],
      ['a machine-to-machine token (gty client-credentials, one audience)', {
        claims: { sub: 'kV2fQ0hHb5zYg1Q8uP3xS7mA9wE4rT6y@clients', aud: 'https://api.acme.example/orders', gty: 'client-credentials', scope: 'orders:read', permissions: undefined },
        identity: { 'x-user-id': 'kV2fQ0hHb5zYg1Q8uP3xS7mA9wE4rT6y@clients', 'x-auth-method': 'jwt', 'x-tenant-id': 'acme', 'x-roles': 'support', 'x-scopes': 'orders:read' },
      }],
    ],
    refused: [
      ['issued to another application', { claims: { azp: 'Zz9yXx8wWv7uUt6sSr5qQp4oOn3mMl2k' }, reason: /^auth0: authorized_party_mismatch: azp "Zz9yXx8wWv7uUt6sSr5qQp4oOn3mMl2k"/ }],
      ['a tenant claim that is not a string', { claims: { 'https://acme.example/tenant': ['acme', 'globex'] }, reason: /^auth0: claim_invalid: tenant claim "https:\/\/acme\.example\/tenant" is not a printable ASCII string$/ }],
    ],
  },
  {
    file: 'okta.yaml',
    authenticator: 'okta',
    base: {
      ver: 1, jti: 'AT.x1', iss: 'https://acme.okta.com/oauth2/default', aud: 'api://orders',
      cid: '0oa8f2k1xYz9AbCdE5d7', uid: '00u1a2b3c4D5e6F7g5d7', sub: 'alice@acme.example',
      scp: ['openid', 'orders:read'], groups: ['Everyone', 'Order Clerks'],
    },
    accepted: [
      ['uid as the subject, scp as an array, groups with a space', {
        claims: {},
        identity: {
          'x-user-id': '00u1a2b3c4D5e6F7g5d7', 'x-auth-method': 'jwt', 'x-roles': 'Everyone', 'x-scopes': 'openid orders:read',
          'x-user-email': 'alice@acme.example', 'x-identity-omitted': 'x-roles=1',
        },
      }],
      ['"Order Clerks" authorizes on its real value', { method: 'POST', path: '/api/orders', claims: {} }],
      ['a client credentials token: no uid, the client is the subject', {
        claims: { uid: undefined, sub: '0oa8f2k1xYz9AbCdE5d7', groups: undefined },
        identity: { 'x-user-id': '0oa8f2k1xYz9AbCdE5d7', 'x-auth-method': 'jwt', 'x-scopes': 'openid orders:read', 'x-user-email': '0oa8f2k1xYz9AbCdE5d7' },
      }],
    ],
    refused: [
      ['issued to an unlisted client (cid)', { claims: { cid: '0oaEVIL0000000000000' }, reason: /^okta: authorized_party_mismatch: cid "0oaEVIL0000000000000" is not in authorizedParties$/ }],
      ['no client named at all', { claims: { cid: undefined }, reason: /^okta: authorized_party_missing/ }],
      ['a uid that is not a string does not fall back to sub', { claims: { uid: 12345 }, reason: /^okta: claim_invalid: subject claim "uid" is absent, not a string, or not printable ASCII$/ }],
    ],
  },
  {
    file: 'entra.yaml',
    authenticator: 'entra',
    base: {
      iss: `https://login.microsoftonline.com/${ENTRA_TID}/v2.0`, aud: '6e74172b-be56-4843-9ff4-e66a39bb12e3',
      azp: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', azpacr: '0', tid: ENTRA_TID,
      oid: '00000000-0000-0000-66f3-3332eca7ea81', sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
      scp: 'orders.read orders.write', roles: ['Orders.Admin'], ver: '2.0', name: 'Alice', preferred_username: 'alice@acme.example',
    },
    accepted: [
      ['oid as the subject, tid as the tenant, scp as a string, app roles', {
        claims: {},
        identity: {
          'x-user-id': '00000000-0000-0000-66f3-3332eca7ea81', 'x-auth-method': 'jwt', 'x-tenant-id': ENTRA_TID,
          'x-roles': 'Orders.Admin', 'x-scopes': 'orders.read orders.write',
        },
      }],
      ['an app role authorizes the admin route', { method: 'DELETE', path: '/api/orders/3', claims: {} }],
      ['an app-only token: roles, no scp — the scoped route says 403', { status: 403, claims: { scp: undefined, idtyp: 'app' } }],
      ['an app-only token reaches the role route', { method: 'DELETE', path: '/api/orders/3', claims: { scp: undefined, idtyp: 'app' } }],
    ],
    refused: [
      ['a v1.0 token', { claims: { ver: '1.0', azp: undefined, appid: '04b07795-8ddb-461a-bbee-02f9e1bf7b46' }, reason: /^entra: authorized_party_missing/ }],
      ['a v2.0-shaped token saying ver 1.0', { claims: { ver: '1.0' }, reason: /^entra: claim_value_mismatch: ver is not an accepted value$/ }],
      ['issued to another client application', { claims: { azp: '11111111-2222-3333-4444-555555555555' }, reason: /^entra: authorized_party_mismatch/ }],
    ],
  },
];

describe('identity provider examples', () => {
  let key: TestKey;
  let jwks: JwksServer;
  let echo: EchoUpstream;

  before(async () => {
    key = await testKey('RS256', 'idp-1');
    [jwks, echo] = await Promise.all([JwksServer.start([key]), startEchoUpstream()]);
  });
  after(async () => {
    await Promise.all([jwks.close(), echo.close()]);
  });

  for (const provider of PROVIDERS) {
    describe(provider.file, () => {
      const text = readFileSync(`${DIR}${provider.file}`, 'utf8');
      let gw: TestGateway;

      before(async () => {
        const config = parse(text) as ConfigObject & { authenticators: Record<string, Record<string, unknown>>; upstreams: Record<string, Record<string, unknown>> };
        const authenticator = config.authenticators[provider.authenticator];
        assert.ok(authenticator !== undefined);
        assert.equal(authenticator.issuer, provider.base.iss, 'the tokens are minted for the example\'s issuer');
        authenticator.jwksUri = jwks.url;
        for (const upstream of Object.values(config.upstreams)) upstream.targets = [echo.url];
        gw = await startGateway(config);
      });
      after(async () => {
        await gw.close();
      });

      it('compiles as it is', () => {
        assert.deepEqual(configProblems(text, {}, `${DIR}${provider.file}`), []);
      });

      const token = (claims: Record<string, unknown>): Promise<string> => mint(key, { iat: nowSec() - 5, exp: nowSec() + 300, ...provider.base, ...claims });

      for (const [name, c] of provider.accepted) {
        it(`accepts: ${name}`, async () => {
          const before = echo.received.length;
          const res = await send(gw, c.method ?? 'GET', c.path ?? '/api/orders/1', await token(c.claims));
          assert.equal(res.status, c.status ?? 200, res.body);
          if ((c.status ?? 200) !== 200) {
            assert.equal(echo.received.length, before, 'nothing forwarded');
            return;
          }
          if (c.identity !== undefined) assert.deepEqual(identityOf(echo.received.at(-1)), c.identity);
        });
      }

      for (const [name, c] of provider.refused) {
        it(`refuses: ${name} (401, nothing forwarded, one audit record with the reason, not a guess)`, async () => {
          const before = echo.received.length;
          const res = await send(gw, 'GET', '/api/orders/1', await token(c.claims));
          const doc = assertProblem({ ...res, complete: true }, 401, 'invalid_credential');
          assert.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis", error="invalid_token"');
          assert.equal(echo.received.length, before, 'nothing forwarded');
          const records = await gw.auditFor(doc.requestId);
          assert.equal(records.length, 1);
          assert.match(records[0]?.detail ?? '', c.reason);
        });
      }
    });
  }
});
