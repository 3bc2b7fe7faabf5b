// The signed identity assertion through a running gateway: exact claims, where it travels, what
// the client's own credentials and copies of its header become, the key set on both listeners,
// and the config errors of `identityAssertion`, `assertIdentity` and `serve`.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { stringify } from 'yaml';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { explain, renderExplanation } from '../src/explain/explain.js';
import { freshKeyPair } from '../src/lib/key-pair.js';
import type { Identity } from '../src/authn/identity.js';
import { assertionClaims } from '../src/stages/identity-assertion.js';
import { waitUntil } from './harness/assertions.js';
import { attempt, presenting } from './harness/mtls.js';
import { testPki, writeCertificate } from './harness/tls.js';
import { issueCertificate, issueCertificateAuthority } from '../src/tls/issue-certificates.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';

const ISSUER = 'https://gateway.test';
const pem = (type: 'ed25519' | 'p256', part: 'private' | 'public'): string => {
  const pair = freshKeyPair(type === 'ed25519' ? { type: 'ed25519' } : { type: 'ec', namedCurve: 'P-256' });
  return part === 'private' ? pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() : pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
};

describe('identity assertions through the gateway', () => {
  let dir: string;
  let echo: EchoUpstream;
  let users: JwksServer;
  let userKey: TestKey;
  let gw: TestGateway;
  let token: string;
  let keyFile: string;

  const config = (): ConfigObject => ({
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', jwksUri: users.url, audience: 'orders-api', algorithms: ['ES256'], claims: { roles: 'roles', scopes: 'scope', tenant: 'tenant_id' } } },
    identityAssertion: { issuer: ISSUER, algorithm: 'ES256', keys: [{ file: keyFile, kid: 'gw-1' }], ttlSeconds: 20 },
    routes: [
      { name: 'bearer', match: { path: '/bearer' }, upstream: 'echo', authenticate: ['users'], assertIdentity: true },
      { name: 'custom', match: { path: '/custom' }, upstream: 'echo', authenticate: ['users'], assertIdentity: { header: 'X-Identity-Assertion', audience: 'billing' } },
      { name: 'plain', match: { path: '/plain' }, upstream: 'echo', public: true },
      { name: 'jwks', match: { path: '/.well-known/jwks.json' }, public: true, serve: 'identity-jwks' },
    ],
  });

  async function send(path: string, headers: Record<string, string>): Promise<{ status: number; echoed: EchoedRequest; requestId: string }> {
    const res = await fetch(`${gw.url}${path}`, { headers });
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    const echoed = echo.received.at(-1);
    assert.ok(echoed !== undefined);
    return { status: res.status, echoed, requestId: res.headers.get('x-request-id') ?? '' };
  }

  /** Every value the upstream received for `name`, whatever its case. */
  const received = (echoed: EchoedRequest, name: string): string[] =>
    echoed.rawHeaders.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [echoed.rawHeaders[i + 1] ?? ''] : []));

  async function verify(jwt: string, audience: string): Promise<JWTPayload> {
    const set = await (await fetch(`${gw.adminUrl}/.well-known/jwks.json`)).json() as { keys: [] };
    const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(set), { issuer: ISSUER, audience, algorithms: ['ES256'], typ: 'portcullis-identity+jwt' });
    assert.equal(protectedHeader.kid, 'gw-1');
    return payload;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-'));
    keyFile = join(dir, 'assertion.pem');
    await writeFile(keyFile, pem('p256', 'private'), { mode: 0o600 });
    userKey = await testKey('ES256', 'u1');
    users = await JwksServer.start([userKey]);
    echo = await startEchoUpstream();
    token = await mint(userKey, { sub: 'user-1', roles: ['clerk', 'Order Clerks'], scope: 'orders:read', tenant_id: 'acme' });
    gw = await startGateway(config());
  });

  after(async () => {
    await (gw as TestGateway | undefined)?.close();
    await (users as JwksServer | undefined)?.close();
    await (echo as EchoUpstream | undefined)?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces the client\'s Authorization with Bearer <assertion>, whose claims are exactly the identity', async () => {
    const { echoed, requestId } = await send('/bearer', { authorization: `Bearer ${token}` });
    const sent = received(echoed, 'authorization');
    assert.equal(sent.length, 1);
    assert.ok(sent[0]?.startsWith('Bearer ') === true && !sent.includes(`Bearer ${token}`), 'the client\'s token never reaches the upstream');
    const jwt = (sent[0] ?? '').slice('Bearer '.length);
    const claims = await verify(jwt, 'echo');
    const iat = claims.iat as number;
    assert.deepEqual(claims, { sub: 'user-1', aud: 'echo', jti: requestId, auth_method: 'jwt', tenant: 'acme', roles: ['clerk', 'Order Clerks'], scope: 'orders:read', iss: ISSUER, iat, exp: iat + 20 });
    assert.equal(decodeProtectedHeader(jwt).typ, 'portcullis-identity+jwt');
    // The identity headers still travel beside it.
    assert.deepEqual(received(echoed, 'x-user-id'), ['user-1']);
  });

  it('sends the bare assertion in a header of its own, and a client\'s copy of that header is removed', async () => {
    const { echoed } = await send('/custom', { authorization: `Bearer ${token}`, 'x-identity-assertion': 'forged', 'X_Identity_Assertion': 'forged-too' });
    assert.deepEqual(received(echoed, 'authorization'), [], 'the credential is dropped');
    const sent = received(echoed, 'x-identity-assertion');
    assert.equal(sent.length, 1);
    assert.notEqual(sent[0], 'forged');
    assert.equal((await verify(sent[0] ?? '', 'billing')).aud, 'billing');
    assert.deepEqual(received(echoed, 'x_identity_assertion'), []);
  });

  it('removes a client\'s copy of the assertion header on routes that assert nothing', async () => {
    const { echoed } = await send('/plain', { 'x-identity-assertion': 'forged' });
    assert.deepEqual(received(echoed, 'x-identity-assertion'), []);
  });

  it('every request gets its own assertion: the request id is the jti', async () => {
    const a = await send('/bearer', { authorization: `Bearer ${token}` });
    const b = await send('/bearer', { authorization: `Bearer ${token}` });
    const jti = async (r: typeof a): Promise<unknown> => (await verify((received(r.echoed, 'authorization')[0] ?? '').slice(7), 'echo')).jti;
    assert.deepEqual([await jti(a), await jti(b)], [a.requestId, b.requestId]);
    assert.notEqual(a.requestId, b.requestId);
  });

  it('publishes the key set on the proxy route and on the admin listener, as a JWK Set', async () => {
    for (const url of [`${gw.url}/.well-known/jwks.json`, `${gw.adminUrl}/.well-known/jwks.json`]) {
      const res = await fetch(url);
      assert.equal(res.status, 200, url);
      assert.equal(res.headers.get('content-type'), 'application/jwk-set+json');
      assert.match(res.headers.get('cache-control') ?? '', /max-age=300/);
      const set = await res.json() as { keys: Record<string, string>[] };
      assert.deepEqual(set.keys.map((k) => [k.kid, k.alg, k.use, k.kty, k.crv, typeof k.d]), [['gw-1', 'ES256', 'sig', 'EC', 'P-256', 'undefined']]);
    }
    const head = await fetch(`${gw.url}/.well-known/jwks.json`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const post = await fetch(`${gw.url}/.well-known/jwks.json`, { method: 'POST' });
    assert.equal(post.status, 405);
    const records = await gw.audit();
    const served = records.filter((r) => r.kind === 'request' && r.path === '/.well-known/jwks.json');
    assert.deepEqual(served.map((r) => [r.method, r.status, r.stage, r.reason, r.upstream ?? null]), [
      ['GET', 200, 'identity-jwks', 'identity_jwks', null], ['HEAD', 200, 'identity-jwks', 'identity_jwks', null], ['POST', 405, 'route', 'method_not_allowed', null],
    ], 'one record each, none forwarded');
  });

  it('counts signed assertions by route and kid', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const count = Number(/^portcullis_identity_assertions_total\{route="bearer",kid="gw-1"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(count >= 3, text.split('\n').filter((l) => l.includes('identity_assertions')).join('\n'));
  });

  it('explain says the route is served by the gateway, and what an asserting route would send', async () => {
    const compiled = compileConfig(loadConfigText(stringify(config()), join(dir, 'gateway.yaml'), {}));
    const jwks = await explain(compiled, { method: 'GET', target: '/.well-known/jwks.json', headers: [], from: '127.0.0.1' });
    assert.equal(jwks.served, 'identity-jwks');
    assert.match(renderExplanation(jwks), /served by the gateway: identity-jwks/);
    const asserting = await explain(compiled, { method: 'GET', target: '/bearer', headers: [['Authorization', 'Bearer x']], from: '127.0.0.1', identity: { sub: 'user-1' } });
    assert.equal(asserting.result.forwarded, true);
    assert.ok(asserting.upstream?.headers.some(([name, value]) => name === 'authorization' && value.startsWith('Bearer <identity assertion')));
    assert.match(asserting.stages.find((s) => s.stage === 'identity-assertion')?.note ?? '', /aud "echo".*key gw-1/);
  });
});

describe('assertion key files are watched like every file the config reads', () => {
  it('a key file replaced on disk reloads the config: the key set and the signer change without a reload request', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-watch-'));
    const echo = await startEchoUpstream();
    const file = join(dir, 'assertion.pem');
    await writeFile(file, pem('ed25519', 'private'));
    const gw = await startGateway({
      reload: { watchIntervalMs: 50 },
      upstreams: { echo: { targets: [echo.url] } },
      identityAssertion: { issuer: ISSUER, keys: [{ file, kid: 'a1' }] },
      routes: [{ name: 'jwks', match: { path: '/jwks' }, public: true, serve: 'identity-jwks' }],
    });
    t.after(async () => { await gw.close(); await echo.close(); await rm(dir, { recursive: true, force: true }); });
    const x = async (): Promise<string | undefined> => ((await (await fetch(`${gw.url}/jwks`)).json()) as { keys: { x?: string }[] }).keys[0]?.x;
    const before = await x();
    // Replaced by rename, as deployment tools do, so the watch never sees half a key.
    await writeFile(`${file}.tmp`, pem('ed25519', 'private'));
    await rename(`${file}.tmp`, file);
    await waitUntil('the new key is published', async () => (await x()) !== before);
  });
});

describe('an assertion for a client that presented a certificate', () => {
  it('binds the assertion to the verified certificate (cnf x5t#S256), and has no cnf on a plain connection', async (t) => {
    const pki = await testPki();
    const clientCa = await issueCertificateAuthority('Assertion Clients CA');
    const client = await issueCertificate({ commonName: 'billing-svc', extendedKeyUsage: ['clientAuth'] }, clientCa);
    const echo = await startEchoUpstream();
    const gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', clientAuth: { mode: 'request', ca: 'tls/clients-ca.crt' } } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { services: { type: 'mtls', subjectFrom: 'cn', identities: [{ match: { cn: 'billing-svc' }, roles: ['service'] }] }, guests: { type: 'anonymous' } },
      identityAssertion: { issuer: ISSUER },
      routes: [
        { name: 'svc', match: { path: '/svc/**' }, upstream: 'echo', authenticate: ['services'], assertIdentity: true },
        { name: 'guest', match: { path: '/guest/**' }, upstream: 'echo', authenticate: ['guests'], assertIdentity: true },
      ],
    }, {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'tls'));
        await writeCertificate(join(dir, 'tls'), 'server', pki.server);
        await writeFile(join(dir, 'tls', 'clients-ca.crt'), clientCa.cert);
      },
    });
    t.after(async () => { await gw.close(); await echo.close(); });
    const set = createLocalJWKSet(await (await fetch(`${gw.adminUrl}/.well-known/jwks.json`)).json() as { keys: [] });
    const claimsOf = async (path: string): Promise<JWTPayload> => {
      const seen = echo.received.find((r) => r.url === path);
      const { payload } = await jwtVerify(String(seen?.headers.authorization ?? '').replace(/^Bearer /, ''), set, { issuer: ISSUER, audience: 'echo', typ: 'portcullis-identity+jwt' });
      return payload;
    };
    const port = Number(new URL(gw.httpsUrl ?? '').port);
    assert.equal((await attempt(port, pki.ca.cert, presenting(client), '/svc/1')).status, 200);
    const thumbprint = Buffer.from(client.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
    const bound = await claimsOf('/svc/1');
    assert.deepEqual([bound.sub, bound.auth_method, bound.cnf], ['billing-svc', 'mtls', { 'x5t#S256': thumbprint }]);
    assert.equal((await fetch(`${gw.url}/guest/1`)).status, 200);
    assert.equal((await claimsOf('/guest/1')).cnf, undefined);
  });
});

describe('the generated assertion key', () => {
  const config = (dataDir: string, algorithm: string): ConfigObject => ({
    dataDir,
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    identityAssertion: { issuer: ISSUER, algorithm },
    routes: [{ name: 'jwks', match: { path: '/jwks' }, public: true, serve: 'identity-jwks' }],
  });
  const kids = async (gw: TestGateway): Promise<string[]> => ((await (await fetch(`${gw.url}/jwks`)).json()) as { keys: { kid: string; crv: string }[] }).keys.map((k) => `${k.crv} ${k.kid}`);

  it('is made at first start (0600) and kept across restarts, for each algorithm', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-data-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    for (const [algorithm, crv] of [['EdDSA', 'Ed25519'], ['ES256', 'P-256']] as const) {
      const first = await startGateway(config(dataDir, algorithm));
      const published = await kids(first);
      await first.close();
      assert.equal(published.length, 1);
      assert.ok(published[0]?.startsWith(`${crv} `));
      assert.equal(statSync(join(dataDir, 'identity-assertion', `${algorithm.toLowerCase()}.pem`)).mode & 0o777, 0o600);
      const second = await startGateway(config(dataDir, algorithm));
      assert.deepEqual(await kids(second), published);
      await second.close();
    }
  });

  it('that is not a key stops the start with a message naming the file', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-data-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    await mkdir(join(dataDir, 'identity-assertion'));
    await writeFile(join(dataDir, 'identity-assertion', 'eddsa.pem'), 'not a key');
    await assert.rejects(startGateway(config(dataDir, 'EdDSA')), /identityAssertion: the generated key .*eddsa\.pem is not a PEM private .*remove it to have a new one made, or configure identityAssertion\.keys/);
  });
});

describe('assertion claims', () => {
  const identity: Identity = {
    subject: 'svc-7', method: 'apiKey', authenticator: 'partners', keyId: 'k_123', roles: [], scopes: ['orders:read', 'has space', 'quote"d', 'ok'],
    tenant: null, tier: null, claims: null, claimHeaders: [], bearerRealm: null,
  };

  it('carry the key id, only scope-tokens in scope, no empty tenant or roles, and the certificate thumbprint when one verified', () => {
    assert.deepEqual(assertionClaims(identity, 'billing', 'req-1', 'abc'), {
      sub: 'svc-7', aud: 'billing', jti: 'req-1', auth_method: 'apiKey', scope: 'orders:read ok', key_id: 'k_123', cnf: { 'x5t#S256': 'abc' },
    });
    assert.deepEqual(assertionClaims({ ...identity, scopes: [], keyId: null }, 'billing', 'req-2', null), { sub: 'svc-7', aud: 'billing', jti: 'req-2', auth_method: 'apiKey' });
  });
});

describe('identity assertion and served-endpoint config errors', () => {
  let dir: string;
  const files: Record<string, string> = {};
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-config-'));
    for (const [name, text] of Object.entries({ ed: pem('ed25519', 'private'), ed2: pem('ed25519', 'private'), edPublic: pem('ed25519', 'public'), p256: pem('p256', 'private') })) {
      files[name] = join(dir, `${name}.pem`);
      await writeFile(files[name], text);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const base = (extra: ConfigObject = {}, routes: ConfigObject[] = []): string => stringify({
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    authenticators: { guests: { type: 'anonymous' } },
    routes: [{ name: 'app', match: { path: '/app' }, upstream: 'app', authenticate: ['guests'] }, ...routes],
    ...extra,
  });
  const section = (keys?: { file: string; kid: string }[], algorithm?: string): ConfigObject =>
    ({ identityAssertion: { issuer: ISSUER, ...(algorithm === undefined ? {} : { algorithm }), ...(keys === undefined ? {} : { keys }) } });
  const one = (text: string, pattern: RegExp): void => {
    const problems = configProblems(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', pattern);
  };

  it('accepts configured keys, a public key kept for overlap, and generated keys', () => {
    assert.deepEqual(configProblems(base(section([{ file: files.ed ?? '', kid: 'a' }, { file: files.edPublic ?? '', kid: 'b' }]))), []);
    assert.deepEqual(configProblems(base(section([{ file: files.p256 ?? '', kid: 'a' }], 'ES256'))), []);
    assert.deepEqual(configProblems(base(section(), [{ name: 'keys', match: { path: '/jwks' }, public: true, serve: 'identity-jwks' }])), []);
  });

  it('refuses two keys with one kid', () => {
    one(base(section([{ file: files.ed ?? '', kid: 'a' }, { file: files.ed2 ?? '', kid: 'a' }])), /identityAssertion\.keys\[1\]\.kid: kid "a" is already the id of key 0/);
  });

  it('refuses a key whose type does not fit the algorithm, naming the default', () => {
    one(base(section([{ file: files.p256 ?? '', kid: 'a' }])), /identityAssertion\.keys\[0\]\.file: .*holds a ec \(prime256v1\) key, and EdDSA signs with Ed25519 keys.*algorithm is EdDSA by default/);
    one(base(section([{ file: files.ed ?? '', kid: 'a' }], 'ES256')), /ES256 signs with P-256 keys/);
  });

  it('refuses a public key first (it cannot sign), a missing file and a file that is no key', async () => {
    one(base(section([{ file: files.edPublic ?? '', kid: 'a' }])), /keys\[0\]\.file: .*holds a public key, and the first key signs/);
    one(base(section([{ file: join(dir, 'missing.pem'), kid: 'a' }])), /keys\[0\]\.file: cannot read .*ENOENT/);
    const garbage = join(dir, 'garbage.pem');
    await writeFile(garbage, 'not a key');
    one(base(section([{ file: garbage, kid: 'a' }])), /is not a PEM private \(PKCS #8\) or public \(SPKI\) key/);
  });

  it('refuses a ttl above 300 s and an unknown algorithm', () => {
    one(base({ identityAssertion: { issuer: ISSUER, ttlSeconds: 301 } }), /identityAssertion\.ttlSeconds/);
    one(base({ identityAssertion: { issuer: ISSUER, algorithm: 'RS256' } }), /identityAssertion\.algorithm/);
  });

  it('refuses a route with both upstream and serve, and one with neither', () => {
    one(base(section(), [{ name: 'both', match: { path: '/jwks' }, upstream: 'app', public: true, serve: 'identity-jwks' }]), /routes\[1\]\.serve: a route either forwards to an upstream or is served by the gateway/);
    one(base(section(), [{ name: 'neither', match: { path: '/x' }, public: true }]), /routes\[1\]\.name: the route "neither" says nowhere to send requests/);
  });

  it('refuses methods a served endpoint does not answer, and an unknown endpoint', () => {
    one(base(section(), [{ name: 'keys', match: { path: '/jwks', methods: ['GET', 'POST'] }, public: true, serve: 'identity-jwks' }]), /routes\[1\]\.match\.methods\[1\]: identity-jwks answers GET and HEAD only: remove POST/);
    one(base(section(), [{ name: 'keys', match: { path: '/jwks' }, public: true, serve: 'nothing' }]), /routes\[1\]\.serve/);
  });

  it('refuses identity-jwks without an identityAssertion section', () => {
    one(base({}, [{ name: 'keys', match: { path: '/jwks' }, public: true, serve: 'identity-jwks' }]), /routes\[1\]\.serve: identity-jwks publishes the identity assertion keys: configure the top-level identityAssertion section/);
  });

  it('refuses forwarding options on a served route', () => {
    one(base(section(), [{ name: 'keys', match: { path: '/jwks' }, public: true, serve: 'identity-jwks', rewrite: { addPrefix: '/v1' } }]), /routes\[1\]\.rewrite: shapes what is forwarded/);
  });

  it('refuses assertIdentity on a public route, without the section, with forwardAuthorization, and in a header the gateway already writes', () => {
    one(base(section(), [{ name: 'open', match: { path: '/open' }, upstream: 'app', public: true, assertIdentity: true }]), /routes\[1\]\.assertIdentity: a public route establishes no identity to assert/);
    one(base({}, [{ name: 'a', match: { path: '/a' }, upstream: 'app', authenticate: ['guests'], assertIdentity: true }]), /routes\[1\]\.assertIdentity: assertions are signed with the top-level identityAssertion section/);
    one(base(section(), [{ name: 'a', match: { path: '/a' }, upstream: 'app', authenticate: ['guests'], assertIdentity: true, forwardAuthorization: true }]), /routes\[1\]\.forwardAuthorization: the assertion replaces the client's Authorization/);
    // An upstream that gets the gateway's own token in Authorization leaves no room for the assertion there.
    const withToken = { upstreams: { app: { targets: ['http://127.0.0.1:9'] }, billing: { targets: ['http://127.0.0.1:9'], auth: { clientCredentials: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'gw', clientSecret: 'secret-0123456789abcdef' } } } } };
    one(base({ ...section(), ...withToken }, [{ name: 'b', match: { path: '/b' }, upstream: 'billing', authenticate: ['guests'], assertIdentity: true }]), /routes\[1\]\.assertIdentity: upstream billing gets the gateway's own token/);
    assert.deepEqual(configProblems(base({ ...section(), ...withToken }, [{ name: 'b', match: { path: '/b' }, upstream: 'billing', authenticate: ['guests'], assertIdentity: { header: 'X-Identity-Assertion' } }])), []);
    // Listing the assertion header in headers.protected as well is fine.
    assert.deepEqual(configProblems(base({ ...section(), headers: { protected: ['X-Identity-Assertion'] } }, [{ name: 'a', match: { path: '/a' }, upstream: 'app', authenticate: ['guests'], assertIdentity: { header: 'X-Identity-Assertion' } }])), []);
    // A method override header would carry the assertion as a method (and lose the client's override on every route).
    for (const header of ['X-User-Id', 'Cookie', 'X-Request-Id', 'Host', 'X_Tenant_Id', 'X-HTTP-Method-Override', 'X-HTTP-Method', 'X_Method_Override']) {
      one(base(section(), [{ name: 'a', match: { path: '/a' }, upstream: 'app', authenticate: ['guests'], assertIdentity: { header } }]), /routes\[1\]\.assertIdentity\.header: .* is a header HTTP or the gateway already uses/);
    }
  });
});
