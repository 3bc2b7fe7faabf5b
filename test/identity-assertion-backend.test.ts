// The example in examples/assertion-backend/, run as documented: the gateway with its config, the
// backend verifying assertions with jose against the gateway's key set. Verified requests pass;
// a replayed, an expired and a forged assertion are refused by the backend; a key rotation with
// overlap keeps verification working across reloads.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { parse } from 'yaml';
import { systemClock } from '../src/lib/clock.js';
import { freshKeyPair } from '../src/lib/key-pair.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { freePort } from './harness/free-port.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { JwksServer, mint, nowSec, testKey, type TestKey } from './harness/jwt.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/assertion-backend/', import.meta.url));
const ISSUER = 'https://gateway.example';

interface Backend { readonly url: string; close(): Promise<void> }
interface BackendModule {
  readonly startBackend: (options: { jwksUrl: string; issuer: string; audience: string; port: number; jwksCooldownMs?: number }) => Promise<Backend>;
}
interface Answer { status: number; body: { error?: string; code?: string; claims?: Record<string, unknown> } }

async function call(url: string, authorization: string | null): Promise<Answer & { requestId: string | null }> {
  const res = await fetch(url, authorization === null ? {} : { headers: { authorization } });
  return { status: res.status, body: await res.json() as Answer['body'], requestId: res.headers.get('x-request-id') };
}

describe('the assertion-backend example: a backend verifying gateway assertions with jose', () => {
  let dir: string;
  let users: JwksServer;
  let userKey: TestKey;
  let tap: EchoUpstream;
  let backend: Backend;
  let gw: TestGateway;
  let example: ConfigObject;
  let env: NodeJS.ProcessEnv;
  let token: string;

  /** The example config, plus a route whose upstream is an echo server, so a test can capture an assertion for `orders`. */
  const withTap = (config: ConfigObject): ConfigObject => ({
    ...config,
    upstreams: { ...(config.upstreams as ConfigObject), tap: { targets: [tap.url] } },
    routes: [...(config.routes as ConfigObject[]), { name: 'tap', match: { path: '/tap/**' }, upstream: 'tap', authenticate: ['users'], assertIdentity: { audience: 'orders' } }],
  });

  /** An assertion for `orders`, captured as the upstream received it. */
  async function capture(gateway: TestGateway, credential = token): Promise<string> {
    const before = tap.received.length;
    const res = await fetch(`${gateway.url}/tap/x`, { headers: { authorization: `Bearer ${credential}` } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const sent = tap.received.slice(before).at(-1)?.headers.authorization;
    assert.ok(typeof sent === 'string' && sent.startsWith('Bearer '), 'the tap received an assertion');
    return sent.slice('Bearer '.length);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-assertion-'));
    userKey = await testKey('ES256', 'u1');
    users = await JwksServer.start([userKey]);
    tap = await startEchoUpstream();
    token = await mint(userKey, { sub: 'user-1', roles: ['clerk'], scope: 'orders:read orders:write', tenant_id: 'acme' });
    const backendPort = await freePort();
    example = withTap(parse(await readFile(join(EXAMPLE, 'gateway.yaml'), 'utf8')) as ConfigObject);
    env = {
      PORT: '0', ADMIN_PORT: '0', PORTCULLIS_DATA_DIR: join(dir, 'data'), BACKEND_URL: `http://127.0.0.1:${backendPort}`,
      TOKEN_ISSUER: 'https://issuer.test/', TOKEN_JWKS_URI: users.url, ASSERTION_ISSUER: ISSUER,
    };
    gw = await startGateway(example, { env });
    const { startBackend } = await import(new URL('server.mjs', `file://${EXAMPLE}`).href) as BackendModule;
    backend = await startBackend({ jwksUrl: `${gw.url}/.well-known/jwks.json`, issuer: ISSUER, audience: 'orders', port: backendPort, jwksCooldownMs: 0 });
  });

  after(async () => {
    // Whatever started is stopped, even when setup failed half way.
    await (gw as TestGateway | undefined)?.close();
    await (backend as Backend | undefined)?.close();
    await (users as JwksServer | undefined)?.close();
    await (tap as EchoUpstream | undefined)?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the backend verifies the assertion the gateway sent, and its claims are exactly the verified identity', async () => {
    const res = await call(`${gw.url}/api/orders/7`, `Bearer ${token}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const claims = res.body.claims ?? {};
    const iat = claims.iat as number;
    assert.deepEqual(claims, {
      sub: 'user-1', aud: 'orders', jti: res.requestId, auth_method: 'jwt', tenant: 'acme', roles: ['clerk'],
      scope: 'orders:read orders:write', iss: ISSUER, iat, exp: iat + 30,
    });
    assert.ok(Math.abs(iat - Date.now() / 1000) < 5);
  });

  it('a request without a credential never reaches the backend', async () => {
    const res = await fetch(`${gw.url}/api/orders/7`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
  });

  it('a captured assertion sent again is refused as a replay', async () => {
    const assertion = await capture(gw);
    assert.equal((await call(`${backend.url}/api/orders/7`, `Bearer ${assertion}`)).status, 200);
    const replayed = await call(`${backend.url}/api/orders/7`, `Bearer ${assertion}`);
    assert.deepEqual([replayed.status, replayed.body.error], [401, 'replayed_assertion']);
  });

  it('an assertion signed by a gateway whose clock says it is two minutes ago is refused as expired', async () => {
    const keyFile = join(gw.gateway.config.dataDir, 'identity-assertion', 'eddsa.pem');
    const kid = decodeProtectedHeader(await capture(gw)).kid as string;
    const late = { now: () => Date.now() - 120_000, setTimer: (fn: () => void, ms: number) => systemClock.setTimer(fn, ms) };
    const lagging = await startGateway({ ...example, identityAssertion: { issuer: '${ASSERTION_ISSUER}', keys: [{ file: keyFile, kid }] } }, { env: { ...env, PORTCULLIS_DATA_DIR: join(dir, 'lagging') }, clock: late });
    try {
      // The caller's token was issued by its provider's clock, which agrees with the lagging gateway's.
      const issuedThen = await mint(userKey, { sub: 'user-1', iat: nowSec() - 120, exp: nowSec() + 300 });
      const assertion = await capture(lagging, issuedThen);
      assert.equal(decodeProtectedHeader(assertion).kid, kid, 'same key: only the time is wrong');
      const res = await call(`${backend.url}/api/orders/7`, `Bearer ${assertion}`);
      assert.deepEqual([res.status, res.body.error, res.body.code], [401, 'invalid_assertion', 'ERR_JWT_EXPIRED']);
    } finally {
      await lagging.close();
    }
  });

  it('an assertion signed with another key is refused, whether it names the gateway\'s kid or its own', async () => {
    const genuine = await capture(gw);
    const kid = decodeProtectedHeader(genuine).kid as string;
    const forger = freshKeyPair({ type: 'ed25519' }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'admin', aud: 'orders', iss: ISSUER, iat: now, exp: now + 30, auth_method: 'jwt' };
    for (const [header, code] of [[kid, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'], ['forged', 'ERR_JWKS_NO_MATCHING_KEY']] as const) {
      const forged = await new SignJWT({ ...claims, jti: `forged-${header}` }).setProtectedHeader({ alg: 'EdDSA', kid: header, typ: 'portcullis-identity+jwt' }).sign(forger);
      const res = await call(`${backend.url}/api/orders/7`, `Bearer ${forged}`);
      assert.deepEqual([res.status, res.body.code], [401, code]);
    }
    // The client's own token is not an assertion either (another typ, issuer and audience).
    const res = await call(`${backend.url}/api/orders/7`, `Bearer ${token}`);
    assert.equal(res.status, 401);
  });

  it('a key rotation with overlap keeps every assertion verifiable across reloads', async () => {
    const oldFile = join(gw.gateway.config.dataDir, 'identity-assertion', 'eddsa.pem');
    const oldKid = decodeProtectedHeader(await capture(gw)).kid as string;
    const newFile = join(dir, 'assertion-2.pem');
    await writeFile(newFile, freshKeyPair({ type: 'ed25519' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const keySet = async (url: string): Promise<string[]> => ((await (await fetch(url)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const withKeys = (keys: { file: string; kid: string }[]): ConfigObject => ({ ...example, identityAssertion: { issuer: '${ASSERTION_ISSUER}', keys } });

    // 1. The new key is published second: assertions are still signed with the old one.
    await gw.writeConfig(withKeys([{ file: oldFile, kid: oldKid }, { file: newFile, kid: 'a2' }]));
    assert.equal((await gw.gateway.reload()).ok, true);
    assert.deepEqual(await keySet(`${gw.url}/.well-known/jwks.json`), [oldKid, 'a2']);
    assert.deepEqual(await keySet(`${gw.adminUrl}/.well-known/jwks.json`), [oldKid, 'a2']);
    const signedByOld = await capture(gw);
    assert.equal(decodeProtectedHeader(signedByOld).kid, oldKid);
    assert.equal((await call(`${gw.url}/api/orders/1`, `Bearer ${token}`)).status, 200);

    // 2. The new key moves first: it signs; what the old key signed still verifies while published.
    await gw.writeConfig(withKeys([{ file: newFile, kid: 'a2' }, { file: oldFile, kid: oldKid }]));
    assert.equal((await gw.gateway.reload()).ok, true);
    const signedByNew = await capture(gw);
    assert.equal(decodeProtectedHeader(signedByNew).kid, 'a2');
    assert.equal((await call(`${gw.url}/api/orders/2`, `Bearer ${token}`)).status, 200);
    assert.equal((await call(`${backend.url}/api/orders/3`, `Bearer ${signedByOld}`)).status, 200);

    // 3. The old key goes: only the new one is published.
    await gw.writeConfig(withKeys([{ file: newFile, kid: 'a2' }]));
    assert.equal((await gw.gateway.reload()).ok, true);
    assert.deepEqual(await keySet(`${gw.url}/.well-known/jwks.json`), ['a2']);
    assert.deepEqual(await keySet(`${gw.adminUrl}/.well-known/jwks.json`), ['a2']);
    assert.equal((await call(`${gw.url}/api/orders/4`, `Bearer ${token}`)).status, 200);
    await gw.writeConfig(example);
    assert.equal((await gw.gateway.reload()).ok, true);
  });
});
