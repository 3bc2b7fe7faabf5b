// examples/identity-providers/*-login.yaml (the setups docs/oidc.md describes) cannot rot: each
// compiles as it is, and its oidc authenticator maps an ID token of that provider's shape to the
// identity its comments promise, and refuses the claims its rules are there to refuse. Every file
// of the folder is checked by this test or by identity-providers.test.ts.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OidcAuthenticator } from '../src/authn/oidc/oidc-authenticator.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { configProblems } from './harness/config.js';

const DIR = fileURLToPath(new URL('../../examples/identity-providers/', import.meta.url));
const ENV = { OIDC_CLIENT_SECRET: 'example-client-secret-0123456789abcdef' };
const ENTRA_TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

interface Expected { readonly subject: string; readonly roles: readonly string[]; readonly tenant: string | null }

interface Login {
  readonly file: string;
  readonly authenticator: string;
  readonly issuer: string;
  /** The ID token's claims (as the comment at the top of the file shows them). */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly identity: Expected;
  /** Claims over `claims` that must not map to an identity, and the reason's start. */
  readonly refused: readonly (readonly [string, Readonly<Record<string, unknown>>, RegExp])[];
}

const LOGINS: readonly Login[] = [
  {
    file: 'keycloak-login.yaml', authenticator: 'keycloak-login', issuer: 'https://sso.example.com/realms/acme',
    claims: {
      iss: 'https://sso.example.com/realms/acme', aud: 'orders-web', sub: 'f3a1c9d2-5b7e-4c1a-9f0e-1d2c3b4a5f6e', sid: '0b3d1e7a',
      realm_access: { roles: ['clerk'] }, resource_access: { 'orders-web': { roles: ['orders-admin'] }, account: { roles: ['view-profile'] } },
      organization: { acme: { id: '6f1b2c3d' } }, preferred_username: 'alice', email: 'alice@acme.example',
    },
    identity: { subject: 'f3a1c9d2-5b7e-4c1a-9f0e-1d2c3b4a5f6e', roles: ['clerk', 'orders-admin'], tenant: 'acme' },
    refused: [['a member of two organizations', { organization: { acme: {}, globex: {} } }, /tenant/]],
  },
  {
    file: 'auth0-login.yaml', authenticator: 'auth0-login', issuer: 'https://acme.eu.auth0.com/',
    claims: {
      iss: 'https://acme.eu.auth0.com/', aud: 'kV2fQ0hHb5zYg1Q8uP3xS7mA9wE4rT6y', sub: 'auth0|64f1a2b3c4d5e6f7a8b9c0d1', sid: 'Xk2abc',
      email: 'alice@acme.example', email_verified: true, 'https://acme.example/roles': ['clerk'], 'https://acme.example/tenant': 'acme',
    },
    identity: { subject: 'auth0|64f1a2b3c4d5e6f7a8b9c0d1', roles: ['clerk'], tenant: 'acme' },
    refused: [['an unverified address', { email_verified: false }, /^claim_value_mismatch/]],
  },
  {
    file: 'okta-login.yaml', authenticator: 'okta-login', issuer: 'https://acme.okta.com/oauth2/default',
    claims: {
      iss: 'https://acme.okta.com/oauth2/default', aud: '0oa1b2c3d4e5f6g7h8i9', sub: '00u1a2b3c4d5e6f7g8h9',
      email: 'alice@acme.example', preferred_username: 'alice@acme.example', groups: ['Order Clerks'], tenant: 'acme',
    },
    identity: { subject: '00u1a2b3c4d5e6f7g8h9', roles: ['Order Clerks'], tenant: 'acme' },
    refused: [['a subject that is not a string', { sub: 42 }, /subject/]],
  },
  {
    file: 'entra-login.yaml', authenticator: 'entra-login', issuer: `https://login.microsoftonline.com/${ENTRA_TID}/v2.0`,
    claims: {
      iss: `https://login.microsoftonline.com/${ENTRA_TID}/v2.0`, aud: '6e74172b-be56-4843-9ff4-e66a39bb12e3', tid: ENTRA_TID,
      oid: '00000000-0000-0000-66f3-3332eca7ea81', sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', sid: '004b6f52',
      roles: ['Orders.Admin'], preferred_username: 'alice@acme.example', ver: '2.0',
    },
    identity: { subject: '00000000-0000-0000-66f3-3332eca7ea81', roles: ['Orders.Admin'], tenant: ENTRA_TID },
    refused: [['a user of another tenant', { tid: '11111111-2222-3333-4444-555555555555' }, /^claim_value_mismatch/]],
  },
];

/** Files identity-providers.test.ts loads (bearer token examples). */
const BEARER_EXAMPLES = ['auth0.yaml', 'entra.yaml', 'keycloak.yaml', 'okta.yaml'];

describe('identity provider login examples', () => {
  it('every file of examples/identity-providers is checked by a test', () => {
    const files = readdirSync(DIR).filter((name) => name.endsWith('.yaml')).sort();
    assert.deepEqual(files, [...BEARER_EXAMPLES, ...LOGINS.map((l) => l.file)].sort());
  });

  for (const login of LOGINS) {
    describe(login.file, () => {
      const file = `${DIR}${login.file}`;

      it('compiles as it is', () => {
        assert.deepEqual(configProblems(readFileSync(file, 'utf8'), ENV, file), []);
      });

      it('maps an ID token of the provider\'s shape to the identity its comments promise, and refuses what its rules refuse', async () => {
        const config = compileConfig(await loadConfigFile(file, ENV));
        const authenticator = config.authenticators.get(login.authenticator);
        assert.ok(authenticator instanceof OidcAuthenticator);
        assert.equal(authenticator.settings.issuer, login.issuer);
        assert.equal(new URL(authenticator.settings.redirectUri).pathname, authenticator.settings.paths.callback);
        assert.deepEqual(authenticator.settings.paths, {
          callback: '/oauth2/callback', login: '/oauth2/login', logout: '/oauth2/logout', backChannelLogout: '/oauth2/back-channel-logout',
        });
        const identity = authenticator.login.mapIdentity(login.claims);
        if (typeof identity === 'string') assert.fail(identity);
        assert.deepEqual({ subject: identity.subject, roles: [...identity.roles], tenant: identity.tenant }, login.identity);
        for (const [name, over, reason] of login.refused) {
          const refused = authenticator.login.mapIdentity({ ...login.claims, ...over });
          if (typeof refused !== 'string') assert.fail(`${name}: mapped to ${refused.subject}`);
          assert.match(refused, reason, name);
        }
      });
    });
  }
});
