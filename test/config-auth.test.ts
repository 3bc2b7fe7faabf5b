// Config errors of authenticators and route policies: each names file, line, column and option.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configProblems } from './harness/config.js';

const BASE = `upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
authenticators:
  users:
    type: jwt
    issuer: https://idp.example/
    jwksUri: https://idp.example/jwks.json
    audience: orders-api
    algorithms: [RS256]
  guest: { type: anonymous }
routes:
  - name: orders
    match: { path: "/orders/{tenant}/**" }
    upstream: orders
    authenticate: [users]
`;

describe('authenticator and policy config errors', () => {
  it('accepts the base config', () => {
    assert.deepEqual(configProblems(BASE), []);
  });

  const CASES: [string, string, RegExp][] = [
    ['alg none is not an algorithm', BASE.replace('[RS256]', '[RS256, none]'), /^gateway\.yaml:9:25: authenticators\.users\.algorithms\[1\]: must be one of: RS256, /],
    ['unknown authenticator type', BASE.replace('{ type: anonymous }', '{ type: saml }'), /^gateway\.yaml:10:18: authenticators\.guest\.type: must be one of: jwt, introspection, apiKey, oidc, mtls, anonymous$/],
    ['unknown jwt option', BASE.replace('    audience: orders-api', '    audience: orders-api\n    audiance: x'), /^gateway\.yaml:9:5: authenticators\.users\.audiance: is not a known option; did you mean `audience`\?$/],
    ['missing audience', BASE.replace('    audience: orders-api\n', ''), /authenticators\.users\.audience: is required: non-empty text, or a list of non-empty text$/],
    ['plain-http JWKS off loopback', BASE.replace('https://idp.example/jwks.json', 'http://idp.example/jwks.json'), /^gateway\.yaml:7:14: authenticators\.users\.jwksUri: must be https/],
    ['two key sources', BASE.replace('    audience:', '    secret: 0123456789abcdef0123456789abcdef\n    audience:'), /authenticators\.users\.secret: issuer https:\/\/idp\.example\/ needs exactly one key source/],
    ['secret without HS algorithm', BASE.replace('    jwksUri: https://idp.example/jwks.json', '    secret: 0123456789abcdef0123456789abcdef'), /authenticators\.users\.algorithms: issuer .* has a shared secret, but algorithms allows no HS256/],
    ['HS only with public keys', BASE.replace('[RS256]', '[HS256]'), /authenticators\.users\.algorithms: .*allows only HMAC/],
    ['short secret', BASE.replace('    jwksUri: https://idp.example/jwks.json', '    secret: short').replace('[RS256]', '[HS256]'), /authenticators\.users\.secret: must be at least 32 characters long$/],
    ['issuer and issuers', BASE.replace('    audience:', '    issuers: [{ issuer: a, jwksUri: "https://a/j" }]\n    audience:'), /authenticators\.users\.issuers: use either issuer with its keys, or issuers, not both/],
    ['missing jwks file', BASE.replace('jwksUri: https://idp.example/jwks.json', 'jwksFile: nope.json'), /^gateway\.yaml:7:15: authenticators\.users\.jwksFile: cannot read nope\.json: ENOENT$/],
    ['bad PEM', BASE.replace('jwksUri: https://idp.example/jwks.json', 'publicKeys: [{ pem: "-----BEGIN PUBLIC KEY-----" }]'), /authenticators\.users\.publicKeys\[0\]\.pem: not a PEM public key/],
    ['forwarded claim into an identity header', BASE.replace('    audience:', '    forwardClaims: { X-User-Id: email }\n    audience:'), /^gateway\.yaml:8:22: authenticators\.users\.forwardClaims\.X-User-Id: X-User-Id is a header the gateway sets/],
    ['identity header on a reserved name', BASE + 'headers: { identity: { subject: Authorization } }\n', /^gateway\.yaml:16:33: headers\.identity\.subject: authorization is a header HTTP or the gateway relies on/],
    ['request id header on a framing header', BASE + 'headers: { requestId: Content-Length }\n', /headers\.requestId: content-length is a header HTTP or the gateway relies on .*choose another name, such as X-Request-Id/],
    ['request id header on a hop-by-hop header, spelt with an underscore', BASE + 'headers: { requestId: transfer_encoding }\n', /headers\.requestId: transfer_encoding is a header HTTP or the gateway relies on/],
    ['request id header on the host header', BASE + 'headers: { requestId: Host }\n', /headers\.requestId: host is a header HTTP or the gateway relies on/],
    ['an identity header on the request id header', BASE + 'headers: { requestId: X-Trace, identity: { subject: x-trace } }\n', /headers\.identity\.subject: x-trace is already the header of headers\.requestId/],
    ['a protected header that frames the request', BASE + 'headers: { protected: [X-Internal, Content_Length] }\n', /headers\.protected\[1\]: content-length frames or routes the request, and the gateway sets it itself: it cannot be removed/],
    ['a protected header that routes the request', BASE + 'headers: { protected: [Host] }\n', /headers\.protected\[0\]: host frames or routes the request/],
    ['two identity parts in one header', BASE + 'headers: { identity: { roles: X-Perms, scopes: x-perms } }\n', /headers\.identity\.scopes: x-perms is already the header of headers\.identity\.roles/],
    ['unknown authenticator on a route', BASE.replace('authenticate: [users]', 'authenticate: [usrs]'), /^gateway\.yaml:15:20: routes\[0\]\.authenticate\[0\]: unknown authenticator "usrs"; did you mean "users"\? \(defined: users, guest\)$/],
    ['anonymous not last', BASE.replace('authenticate: [users]', 'authenticate: [guest, users]'), /routes\[0\]\.authenticate\[0\]: anonymous authenticator "guest" must be last/],
    ['public and authenticated', BASE.replace('    authenticate: [users]', '    public: true\n    authenticate: [users]'), /routes\[0\]\.public: a route is either public or authenticated/],
    ['authorize without authenticate', BASE.replace('    authenticate: [users]', '    public: true\n    authorize: { scopes: [a] }'), /routes\[0\]\.authorize: authorization needs an identity/],
    ['tenant param not in the pattern', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    authorize: { tenant: { param: org } }'), /^gateway\.yaml:16:35: routes\[0\]\.authorize\.tenant\.param: the path pattern "\/orders\/\{tenant\}\/\*\*" has no \{org\}$/],
    ['two tenant sources', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    authorize: { tenant: { param: tenant, header: X-Org } }'), /routes\[0\]\.authorize\.tenant: set exactly one of param, header and fixed/],
    ['roles without anyOf/allOf', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    authorize: { roles: {} }'), /routes\[0\]\.authorize\.roles: set anyOf, allOf or both/],
    ['a scope with a quote', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    authorize: { scopes: [\'a"b\'] }'), /routes\[0\]\.authorize\.scopes\[0\]: must be a scope of up to 256 printable ASCII characters without spaces, commas, quotes or backslashes$/],
    ['a scope with a space', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    authorize: { scopes: ["a b"] }'), /routes\[0\]\.authorize\.scopes\[0\]: must be a scope of up to 256 printable ASCII characters without spaces/],
    ['postgres store without url', BASE + 'apiKeys:\n  store: { type: postgres }\n', /^gateway\.yaml:17:18: apiKeys\.store\.type: a postgres store needs url/],
    ['sqlite option on a postgres store', BASE + 'apiKeys:\n  store: { type: postgres, url: "postgres://db/x", file: k.db }\n', /^gateway\.yaml:17:52: apiKeys\.store\.file: applies to store type sqlite, but the store is postgres$/],
    ['postgres option on the sqlite store', BASE + 'apiKeys:\n  store: { listen: false }\n', /apiKeys\.store\.listen: applies to store type postgres, but the store is sqlite/],
    ['a store url that is not postgres', BASE + 'apiKeys:\n  store: { type: postgres, url: "mysql://db/x" }\n', /apiKeys\.store\.url: must be a PostgreSQL URL like postgres:\/\/user:password@db:5432\/portcullis$/],
    ['expiry warning not shorter than the lifetime', BASE + 'apiKeys:\n  maxLifetime: 30d\n  expiryWarning: 30d\n', /^gateway\.yaml:18:18: apiKeys\.expiryWarning: must be shorter than maxLifetime \(30d\)$/],
    ['a lifetime beyond ten years', BASE + 'apiKeys:\n  maxLifetime: 3651d\n', /apiKeys\.maxLifetime: at most 3650d/],
    ['a malformed duration', BASE + 'apiKeys:\n  maxLifetime: 1y\n', /apiKeys\.maxLifetime: must be a duration like 30s, 15m, 1h or 1d/],
    ['an environment with capitals', BASE + 'apiKeys:\n  environment: Live\n', /apiKeys\.environment: must be a lower-case label like live or test/],
    ['apiKey header on a reserved name', BASE.replace('{ type: anonymous }', '{ type: apiKey, header: X-Forwarded-For }'), /^gateway\.yaml:10:34: authenticators\.guest\.header: x-forwarded-for is a header the gateway sets or relies on/],
    ['apiKey header on Authorization', BASE.replace('{ type: anonymous }', '{ type: apiKey, header: Authorization }'), /authenticators\.guest\.header: authorization is a header/],
    ['unknown apiKey option', BASE.replace('{ type: anonymous }', '{ type: apiKey, headr: X-Key }'), /authenticators\.guest\.headr: is not a known option; did you mean `header`\?/],
    ['query keys without an apiKey authenticator', BASE.replace('    authenticate: [users]', '    authenticate: [users]\n    apiKeyInQuery: true'), /^gateway\.yaml:16:20: routes\[0\]\.apiKeyInQuery: needs an apiKey authenticator in authenticate$/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`reports ${name}`, () => {
      const found = configProblems(text);
      assert.ok(found.some((p) => expected.test(p)), `expected ${expected} in:\n${found.join('\n')}`);
    });
  }

  it('reads key files relative to the config file and reports unusable keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ kty: 'oct', k: 'AAAA' }] }));
    const found = configProblems(BASE.replace('jwksUri: https://idp.example/jwks.json', 'jwksFile: jwks.json'), {}, join(dir, 'gateway.yaml'));
    assert.ok(found.some((p) => /authenticators\.users\.jwksFile: no usable key \(key 0: kty "oct" is not RSA, EC or OKP/.test(p)), found.join('\n'));
  });
});
