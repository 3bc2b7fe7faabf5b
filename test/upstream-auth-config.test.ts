// upstreams.<name>.auth.clientCredentials is checked when the config is compiled: every mistake is
// located (file, line, option) and says what would be right; a compiled setup opens nothing, keeps
// no secret in its identity, and upstreams with one setup share one token source.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { UpstreamTokenSource } from '../src/proxy/upstream-token.js';
import { explain } from '../src/explain/explain.js';
import { configProblems } from './harness/config.js';

let dir: string;
let file: string;
const SECRET = 'very-secret-value-0123456789';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-upstream-auth-'));
  file = join(dir, 'gateway.yaml');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  await Promise.all([
    writeFile(join(dir, 'ec.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' })),
    writeFile(join(dir, 'k1.pem'), k1.privateKey.export({ type: 'pkcs8', format: 'pem' })),
    writeFile(join(dir, 'public.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' })),
  ]);
});
after(() => rm(dir, { recursive: true, force: true }));

/** One upstream `svc` whose clientCredentials lines (indented under it) are `cc`, and a route to it. */
const config = (cc: string, route = ''): string => `upstreams:
  svc:
    targets: [http://127.0.0.1:3001]
    auth:
      clientCredentials:
${cc}
routes:
  - name: r
    match: { path: /r/** }
    upstream: svc
    public: true
${route}`;

const problems = (cc: string, route = ''): string => configProblems(config(cc, route), {}, file).join('\n');
const compile = (text: string) => compileConfig(loadConfigText(text, file, {}));

describe('client credentials config: located errors', () => {
  const cases: readonly { name: string; cc: string; route?: string; expect: RegExp }[] = [
    { name: 'no token endpoint or issuer', cc: `        clientId: gw\n        clientSecret: ${SECRET}`, expect: /gateway\.yaml:\d+:\d+: upstreams\.svc\.auth\.clientCredentials: needs tokenEndpoint .* or issuer/ },
    {
      name: 'both tokenEndpoint and issuer',
      cc: `        tokenEndpoint: https://as.test/token\n        issuer: https://as.test\n        clientId: gw\n        clientSecret: ${SECRET}`,
      expect: /gateway\.yaml:7:17: upstreams\.svc\.auth\.clientCredentials\.issuer: use either tokenEndpoint or issuer/,
    },
    {
      name: 'plain http to another host',
      cc: `        tokenEndpoint: http://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}`,
      expect: /gateway\.yaml:6:24: upstreams\.svc\.auth\.clientCredentials\.tokenEndpoint: must be https \(plain http is accepted for loopback hosts only/,
    },
    {
      name: 'credentials in the URL',
      cc: `        issuer: https://user:pw@as.test\n        clientId: gw\n        clientSecret: ${SECRET}`,
      expect: /upstreams\.svc\.auth\.clientCredentials\.issuer: must not contain credentials/,
    },
    { name: 'neither secret nor key', cc: '        tokenEndpoint: https://as.test/token\n        clientId: gw', expect: /upstreams\.svc\.auth\.clientCredentials: needs clientSecret .* or privateKeyJwt/ },
    {
      name: 'both secret and key',
      cc: `        tokenEndpoint: https://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}\n        privateKeyJwt: { file: ec.pem }`,
      expect: /upstreams\.svc\.auth\.clientCredentials\.privateKeyJwt: use either clientSecret or privateKeyJwt/,
    },
    {
      name: 'private_key_jwt without a key',
      cc: `        tokenEndpoint: https://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}\n        clientAuth: private_key_jwt`,
      expect: /upstreams\.svc\.auth\.clientCredentials\.clientAuth: private_key_jwt signs with privateKeyJwt, which is not set/,
    },
    {
      name: 'a secret method with only a key',
      cc: '        tokenEndpoint: https://as.test/token\n        clientId: gw\n        privateKeyJwt: { file: ec.pem }\n        clientAuth: client_secret_post',
      expect: /upstreams\.svc\.auth\.clientCredentials\.clientAuth: client_secret_post sends clientSecret, which is not set/,
    },
    {
      name: 'a missing key file',
      cc: '        tokenEndpoint: https://as.test/token\n        clientId: gw\n        privateKeyJwt: { file: missing.pem }',
      expect: /upstreams\.svc\.auth\.clientCredentials\.privateKeyJwt\.file: cannot read missing\.pem: ENOENT: write the path of a PEM private key/,
    },
    {
      name: 'a public key as the key',
      cc: '        tokenEndpoint: https://as.test/token\n        clientId: gw\n        privateKeyJwt: { file: public.pem }',
      expect: /upstreams\.svc\.auth\.clientCredentials\.privateKeyJwt\.file: public\.pem: holds no PEM private key/,
    },
    {
      name: 'a key on an unsupported curve',
      cc: '        tokenEndpoint: https://as.test/token\n        clientId: gw\n        privateKeyJwt: { file: k1.pem }',
      expect: /privateKeyJwt\.file: k1\.pem: is an EC key on secp256k1; use P-256, P-384 or P-521/,
    },
    {
      name: 'a scope list with a doubled space',
      cc: `        tokenEndpoint: https://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}\n        scope: "a  b"`,
      expect: /upstreams\.svc\.auth\.clientCredentials\.scope: must be scopes separated by single spaces/,
    },
    {
      name: 'forwardAuthorization on a route to the upstream',
      cc: `        tokenEndpoint: https://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}`,
      route: '    forwardAuthorization: true\n',
      expect: /gateway\.yaml:14:27: routes\[0\]\.forwardAuthorization: upstream svc gets the gateway's own token .* remove forwardAuthorization/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const found = problems(c.cc, c.route);
      assert.match(found, c.expect);
      assert.ok(!found.includes(SECRET), 'no secret in a message');
    });
  }
});

describe('compiled client credentials', () => {
  test('the setup\'s identity holds a digest of the secret, never the secret; upstreams with one setup share a source', () => {
    const text = `upstreams:
  a:
    targets: [http://127.0.0.1:3001]
    auth: { clientCredentials: { tokenEndpoint: "https://as.test/token", clientId: gw, clientSecret: ${SECRET} } }
  b:
    targets: [http://127.0.0.1:3002]
    auth: { clientCredentials: { tokenEndpoint: "https://as.test/token", clientId: gw, clientSecret: ${SECRET} } }
  c:
    targets: [http://127.0.0.1:3003]
    auth: { clientCredentials: { tokenEndpoint: "https://as.test/token", clientId: gw, clientSecret: other-secret-0123456789 } }
routes:
  - { name: a, match: { path: /a }, upstream: a, public: true }
  - { name: b, match: { path: /b }, upstream: b, public: true }
  - { name: c, match: { path: /c }, upstream: c, public: true }
`;
    const compiled = compile(text);
    const sources = compiled.resources.filter((r): r is UpstreamTokenSource => r instanceof UpstreamTokenSource);
    assert.equal(sources.length, 2);
    assert.deepEqual(sources.map((s) => s.spec.upstreams).sort(), ['a,b', 'c']);
    for (const s of sources) {
      assert.ok(!s.key.includes(SECRET) && !s.key.includes('other-secret'), s.key);
      assert.equal(s.calls, 0, 'compiling called nothing');
      assert.match(s.spec.credentialDigest, /^[0-9a-f]{64}$/);
      // The key is logged when a retired source fails to stop: no plain hash of a (perhaps weak) secret, which could be guessed offline.
      for (const secret of [SECRET, 'other-secret-0123456789']) assert.ok(!s.key.includes(createHash('sha256').update(`secret\0${secret}`).digest('hex')), s.key);
    }
    assert.notEqual(sources[0]?.key, sources[1]?.key);
    // The stages: upstream-credential right before forward.
    const route = compiled.routes.find((r) => r.name === 'a');
    assert.deepEqual(route?.stages.slice(-2).map((s) => s.name), ['upstream-credential', 'forward']);
    // A route to an upstream without auth has no such stage.
    const plain = compile('upstreams:\n  svc: { targets: [http://127.0.0.1:3001] }\nroutes:\n  - { name: r, match: { path: /r }, upstream: svc, public: true }\n');
    assert.ok(!plain.routes[0]?.stages.some((s) => s.name === 'upstream-credential'));
  });

  test('a private_key_jwt setup defaults clientAuth and the documented defaults', () => {
    const compiled = compile(config('        issuer: http://127.0.0.1:9000\n        clientId: gw\n        privateKeyJwt: { file: ec.pem, kid: k1 }'));
    const source = compiled.resources.find((r): r is UpstreamTokenSource => r instanceof UpstreamTokenSource);
    assert.equal(source?.spec.clientAuth, 'private_key_jwt');
    assert.equal(source?.spec.refreshBeforeMs, 60000);
    assert.equal(source?.spec.timeoutMs, 5000);
    assert.equal(source?.spec.maxResponseBytes, 65536);
    assert.ok(compiled.files.some((f) => f.endsWith('ec.pem')), 'the key file is part of the config version');
  });

  test('explain shows the gateway token in place of the client\'s Authorization, fetching nothing', async () => {
    const compiled = compile(config(`        tokenEndpoint: https://as.test/token\n        clientId: gw\n        clientSecret: ${SECRET}`));
    const e = await explain(compiled, { method: 'GET', target: '/r/x', from: '127.0.0.1', headers: [['Authorization', 'Bearer from-the-client']] });
    const sent = e.upstream?.headers ?? [];
    const authorization = sent.filter(([n]) => n.toLowerCase() === 'authorization');
    assert.deepEqual(authorization.map(([, v]) => v), ['Bearer [client-credentials-token]']);
    assert.ok(e.upstream?.dropped.includes('authorization'));
  });
});
