// Config errors of the introspection authenticator and of onAuthUnavailable: each names the file,
// line and option and says what would be right. Compiling opens nothing (no discovery, no socket).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configProblems } from './harness/config.js';

const BASE = `
upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
authenticators:
  opaque:
    type: introspection
    issuer: https://as.example
    clientId: gateway
    clientSecret: introspection-secret
routes:
  - name: orders
    match: { path: /orders/** }
    upstream: orders
    authenticate: [opaque]
`;

describe('introspection config', () => {
  it('accepts the base config (compiling discovers nothing: as.example is never asked)', () => {
    assert.deepEqual(configProblems(BASE), []);
  });

  const CASES: [string, string, RegExp][] = [
    ['plain http to a remote issuer', BASE.replace('https://as.example', 'http://as.example'),
      /^gateway\.yaml:7:13: authenticators\.opaque\.issuer: must be https \(plain http is accepted for loopback hosts only/],
    ['an endpoint with credentials', BASE.replace('    clientId: gateway', '    introspectionEndpoint: https://user:pw@as.example/introspect\n    clientId: gateway'),
      /authenticators\.opaque\.introspectionEndpoint: must not contain credentials/],
    ['no client secret', BASE.replace('    clientSecret: introspection-secret\n', ''),
      /authenticators\.opaque\.clientSecret: is required with clientAuth: client_secret_basic/],
    ['private_key_jwt without a key', BASE.replace('    clientSecret: introspection-secret\n', '    clientAuth: private_key_jwt\n'),
      /authenticators\.opaque\.privateKey: is required with clientAuth: private_key_jwt/],
    ['private_key_jwt with a secret too', BASE.replace('    clientSecret: introspection-secret\n', '    clientSecret: s\n    clientAuth: private_key_jwt\n    privateKey: { file: missing.pem }\n'),
      /authenticators\.opaque\.clientSecret: is not used with clientAuth: private_key_jwt/],
    ['a shared cache without oauth.redis', BASE.replace('    clientSecret: introspection-secret\n', '    clientSecret: introspection-secret\n    cache: { shared: true }\n'),
      /authenticators\.opaque\.cache\.shared: needs oauth\.redis/],
    ['an unknown clientAuth', BASE.replace('    clientSecret: introspection-secret\n', '    clientSecret: introspection-secret\n    clientAuth: tls_client_auth\n'),
      /authenticators\.opaque\.clientAuth: must be one of: client_secret_basic, client_secret_post, private_key_jwt/],
    ['serveStale on a route without introspection', BASE + `  - name: public
    match: { path: /health }
    upstream: orders
    public: true
    onAuthUnavailable: serveStale
`, /routes\[1\]\.onAuthUnavailable: serveStale serves cached introspection answers, but the route authenticates with no introspection authenticator/],
    ['an unknown onAuthUnavailable', BASE + '    onAuthUnavailable: failOpen\n', /routes\[0\]\.onAuthUnavailable: must be one of: failClosed, serveStale/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`refuses ${name}`, () => {
      const found = configProblems(text);
      assert.ok(found.some((p) => expected.test(p)), `expected ${expected} in:\n${found.join('\n')}`);
    });
  }

  it('accepts serveStale on a route with an introspection authenticator, and loopback http', () => {
    assert.deepEqual(configProblems(BASE.replace('https://as.example', 'http://127.0.0.1:9000') + '    onAuthUnavailable: serveStale\n'), []);
  });
});
