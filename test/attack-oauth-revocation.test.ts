// Attacks on revocation: a revoked token must stay refused whatever spelling of it a client
// sends. An ECDSA signature (r, s) has a twin (r, n − s) that verifies just as well, so a JWT
// signed with ES256/ES384/ES512 has two spellings anyone holding one can compute; both are one
// token, and revoking either refuses both. A worker whose primary did not say which tokens the
// host revoked knows none of them: it must refuse bearer tokens until it does, not accept them.
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { RedisRevocations } from '../src/authn/oauth/redis-revocations.js';
import { redacted } from '../src/lifecycle/resources.js';
import { HostRevocations, type HostRevocationChannel, type WireRevocation } from '../src/authn/oauth/host-revocations.js';
import { freshKeyPair } from '../src/lib/key-pair.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { tokenHash } from '../src/authn/oauth/token-digest.js';
import { admin, ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { b64, craft, JwksServer, mint, nowSec, testKey, type TestKey } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';
import { waitUntil } from './harness/assertions.js';
import { freePort } from './harness/free-port.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const ISS = 'https://issuer.test/';
const ORDERS: Record<string, bigint> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  // SEC 2 §2.9.1 (secp521r1).
  ES512: BigInt(`0x01ff${'ffffffff'.repeat(7)}fffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409`),
};

/** The other spelling of an ECDSA-signed JWT: s replaced by n − s (computed the way an attacker would). */
function twin(token: string, alg: 'ES256' | 'ES384' | 'ES512'): string {
  const dot = token.lastIndexOf('.');
  const sig = Buffer.from(token.slice(dot + 1), 'base64url');
  const half = sig.length / 2;
  const s = BigInt(`0x${sig.subarray(half).toString('hex')}`);
  const other = Buffer.from(((ORDERS[alg] ?? 0n) - s).toString(16).padStart(half * 2, '0'), 'hex');
  return `${token.slice(0, dot + 1)}${Buffer.concat([sig.subarray(0, half), other]).toString('base64url')}`;
}

const P521 = freshKeyPair({ type: 'ec', namedCurve: 'P-521' });

/** An ES512 token (the harness mints up to ES384). */
function es512(sub: string): string {
  const input = `${b64(JSON.stringify({ alg: 'ES512', kid: 'e512' }))}.${b64(JSON.stringify({ iss: ISS, aud: 'orders-api', sub, exp: nowSec() + 300 }))}`;
  return `${input}.${sign('sha512', Buffer.from(input), { key: P521.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

function config(echo: EchoUpstream, keys: readonly TestKey[]): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: {
      users: {
        type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256', 'ES384', 'ES512', 'EdDSA', 'PS256'],
        publicKeys: [...keys.map((k) => ({ pem: k.pem, kid: k.kid })), { pem: P521.publicKey.export({ type: 'spki', format: 'pem' }).toString(), kid: 'e512' }],
      },
    },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
  };
}

const get = (gw: TestGateway, token: string, path = '/orders/1'): ReturnType<typeof call> => call(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

describe('a revoked token under another spelling', () => {
  let echo: EchoUpstream;
  let keys: Record<'ES256' | 'ES384' | 'EdDSA' | 'PS256', TestKey>;
  let gw: TestGateway;

  before(async () => {
    echo = await startEchoUpstream();
    keys = { ES256: await testKey('ES256', 'e256'), ES384: await testKey('ES384', 'e384'), EdDSA: await testKey('EdDSA', 'ed'), PS256: await testKey('PS256', 'ps') };
    gw = await startGateway(config(echo, Object.values(keys)));
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const alg of ['ES256', 'ES384', 'ES512'] as const) {
    const minted = (sub: string): Promise<string> => (alg === 'ES512' ? Promise.resolve(es512(sub)) : mint(keys[alg], { sub }));
    for (const revokedBy of ['token', 'tokenHash'] as const) {
      it(`refuses the ${alg} signature twin (r, n − s) of a token revoked by its ${revokedBy}, and the token revoked as its twin`, async () => {
        const token = await minted(`mallory-${alg}-${revokedBy}`);
        const other = twin(token, alg);
        assert.notEqual(other, token);
        assert.equal((await get(gw, other, '/orders/twin-before')).status, 200, 'the twin verifies: it is the same token');
        const forwarded = echo.received.length;
        const body = revokedBy === 'token' ? { token } : { tokenHash: tokenHash(token) };
        assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', body)).status, 200);
        assertProblem(await get(gw, token, '/orders/original'), 401, 'invalid_credential');
        assertProblem(await get(gw, other, '/orders/twin-after'), 401, 'invalid_credential');
        assert.equal(echo.received.length, forwarded, 'nothing forwarded');
        const [record] = await gw.auditWhere((r) => r.path === '/orders/twin-after');
        assert.equal(record?.detail, 'users: revoked');

        // The other way round: the twin is the spelling the operator holds.
        const second = await minted(`mallory-${alg}-${revokedBy}-2`);
        const secondBody = revokedBy === 'token' ? { token: twin(second, alg) } : { tokenHash: tokenHash(twin(second, alg)) };
        assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', secondBody)).status, 200);
        assertProblem(await get(gw, second, '/orders/original-2'), 401, 'invalid_credential');
      });
    }
  }

  it('finds the twin of a token whose header spells alg with an escape ("\\u0061lg"), as the verifier reads it', async () => {
    const payload = JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'mallory-escaped', exp: nowSec() + 300 });
    const token = craft('{"\\u0061lg":"ES256","kid":"e256"}', payload, { key: keys.ES256 });
    assert.equal((await get(gw, token, '/orders/escaped-before')).status, 200);
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    assertProblem(await get(gw, twin(token, 'ES256'), '/orders/escaped-twin'), 401, 'invalid_credential');
  });

  it('has no second spelling of an RSA-PSS token: a signature shorter than the modulus (a leading zero byte dropped) is refused (RFC 8017 §8.1.2)', async () => {
    let token = '';
    let signature = Buffer.alloc(0);
    for (let i = 0; i < 5000 && signature[0] !== 0; i++) {
      token = await mint(keys.PS256, { sub: 'mallory-pss', jti: `pss-${i}` });
      signature = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
    }
    assert.equal(signature[0], 0, 'a signature with a leading zero byte (1 in 256)');
    const short = `${token.slice(0, token.lastIndexOf('.') + 1)}${signature.subarray(1).toString('base64url')}`;
    assert.equal((await get(gw, token, '/orders/pss-long')).status, 200);
    const refused = await get(gw, short, '/orders/pss-short');
    assertProblem(refused, 401, 'invalid_credential');
    const [record] = await gw.auditWhere((r) => r.path === '/orders/pss-short');
    assert.equal(record?.detail, 'users: signature_invalid');
  });

  it('has no second spelling of an EdDSA token: S + L is refused as a signature (RFC 8032 §5.1.7)', async () => {
    const token = await mint(keys.EdDSA, { sub: 'mallory-ed' });
    const dot = token.lastIndexOf('.');
    const sig = Buffer.from(token.slice(dot + 1), 'base64url');
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
    const sBytes = Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse();
    const forged = `${token.slice(0, dot + 1)}${Buffer.concat([sig.subarray(0, 32), sBytes]).toString('base64url')}`;
    assertProblem(await get(gw, forged, '/orders/ed-forged'), 401, 'invalid_credential');
  });

  it('a twin signed over the same input by the key itself is an ordinary second token (sanity of the harness)', async () => {
    const input = `${b64(JSON.stringify({ alg: 'ES256', kid: 'e256' }))}.${b64(JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 's', exp: nowSec() + 60 }))}`;
    const signature = sign('sha256', Buffer.from(input), { key: keys.ES256.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    assert.equal((await get(gw, `${input}.${signature}`, '/orders/sanity')).status, 200);
  });
});

describe('a worker whose primary did not hand over the host\'s revocations', () => {
  const T0 = Date.UTC(2026, 0, 1);
  const revoked = `d${'1'.repeat(42)}`;

  /** The primary's side of the channel as a worker sees it: it answers null (timed out) until `answering`. */
  function primary(): HostRevocationChannel & { answering: boolean; asked: number } {
    return {
      answering: false,
      asked: 0,
      publishRevocation: () => undefined,
      subscribeRevocations: () => () => undefined,
      revocationsInForce(): Promise<readonly WireRevocation[] | null> {
        this.asked++;
        return Promise.resolve(this.answering ? [[revoked, T0 + 60_000]] : null);
      },
    };
  }

  it('refuses bearer tokens (unavailable) until the primary answers, then knows the host\'s revocations', async () => {
    const clock = new ManualClock(T0);
    const channel = primary();
    const list = new HostRevocations(channel, 100, clock);
    await list.start({ logger: createLogger('fatal', new PassThrough()), clock, metrics: new Metrics(false) });
    try {
      assert.equal(list.empty, false, 'an unloaded list is consulted');
      assert.match(list.unavailable ?? '', /not loaded/);
      channel.answering = true;
      await waitUntil('the worker asks again and loads', () => list.unavailable === null, 5000);
      assert.equal(list.isRevoked(revoked), true);
    } finally {
      await list.stop();
    }
  });

  it('compiled but never started (check, explain) is neither stale nor consulted', () => {
    const list = new HostRevocations(primary(), 100, new ManualClock(T0));
    assert.equal(list.unavailable, null);
    assert.equal(list.empty, true);
  });
});

describe('the Redis URL in metrics and logs', () => {
  it('shows no password, whether in the authority or in the query (ioredis reads ?password=)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const port = await freePort();
    const metrics = new Metrics(false);
    const logs = new PassThrough();
    let logged = '';
    logs.on('data', (chunk: Buffer) => { logged += chunk.toString('utf8'); });
    for (const url of [`redis://user:authority-secret@127.0.0.1:${port}/0`, `redis://127.0.0.1:${port}/0?password=query-secret&username=u`, `redis://127.0.0.1:${port}/0?PassWord=case-secret`]) {
      const list = new RedisRevocations({ redis: { url, keyPrefix: 'attack', timeoutMs: 50, connectTimeoutMs: 50 }, maxEntries: 10, maxStalenessMs: 1000 }, clock);
      await list.start({ logger: createLogger('info', logs), clock, metrics });
      await list.stop();
      // A resource's key is logged (redacted) when it fails to stop.
      assert.ok(!/secret/.test(redacted(list.key)), redacted(list.key));
    }
    const text = await metrics.registry.metrics();
    assert.match(text, /portcullis_revocations_subscribed\{/);
    for (const secret of ['authority-secret', 'query-secret', 'case-secret']) {
      assert.ok(!text.includes(secret), `${secret} in the metrics:\n${text.split('\n').filter((l) => l.includes('revocations_subscribed')).join('\n')}`);
      assert.ok(!logged.includes(secret), `${secret} in the logs`);
    }
  });
});

describe('a token revoked while its signature waits for the issuer\'s keys', () => {
  let echo: EchoUpstream;
  let jwks: JwksServer;
  let gw: TestGateway;
  let k1: TestKey;
  let k2: TestKey;

  before(async () => {
    echo = await startEchoUpstream();
    k1 = await testKey('ES256', 'old');
    k2 = await testKey('ES256', 'rotated-in');
    jwks = await JwksServer.start([k1]);
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256'], jwksUri: jwks.url } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
    });
  });
  after(async () => {
    await gw.close();
    await jwks.close();
    await echo.close();
  });

  it('is refused when the keys arrive, not admitted because it was not revoked when it came in', async () => {
    jwks.setKeys([k1, k2]);
    jwks.mode = 'slow';
    jwks.slowMs = 1500;
    const token = await mint(k2, { sub: 'mallory-in-flight' });
    const forwarded = echo.received.length;
    const pending = get(gw, token, '/orders/in-flight');
    await waitUntil('the gateway asks for the rotated-in key', () => jwks.requests >= 2, 5000);
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    assertProblem(await pending, 401, 'invalid_credential');
    assert.equal(echo.received.length, forwarded, 'nothing forwarded');
    const [record] = await gw.auditWhere((r) => r.path === '/orders/in-flight');
    assert.equal(record?.detail, 'users: revoked');
    jwks.mode = 'ok';
  });
});

describe('a revoked JWT past its exp, within the leeway the authenticator grants', () => {
  let echo: EchoUpstream;
  let key: TestKey;
  let gw: TestGateway;
  const clock = new ManualClock(Date.now());

  before(async () => {
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'skew');
    const c = config(echo, [key]);
    gw = await startGateway({ ...c, authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }], clockSkewMs: 120_000 } } }, { clock });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const how of ['its own exp', 'expiresAt', 'expiresAt, named by hash']) {
    it(`stays refused until the leeway is over too (revoked until ${how})`, async () => {
      const exp = Math.floor(clock.now() / 1000) + 60;
      const token = await mint(key, { sub: `mallory-${how}`, iat: exp - 120, exp });
      const body = how === 'its own exp' ? { token } : how === 'expiresAt' ? { token, expiresAt: exp } : { tokenHash: tokenHash(token), expiresAt: exp };
      const res = await admin(gw.adminUrl, 'POST', '/admin/revocations', body);
      assert.equal(res.status, 200, res.body);
      assert.equal((JSON.parse(res.body) as { expiresAt: number }).expiresAt, exp, 'the token\'s expiry is reported');
      clock.advance(60_000 + 90_000); // 90 s past exp: the authenticator still accepts the token (leeway 120 s)
      assertProblem(await get(gw, token, `/orders/skew-${how.length}`), 401, 'invalid_credential');
      const [record] = await gw.auditWhere((r) => r.path === `/orders/skew-${how.length}`);
      assert.equal(record?.detail, 'users: revoked');
      if (how === 'expiresAt') {
        // Revoked only now, 150 s past exp, within the leeway: still taken.
        const again = await admin(gw.adminUrl, 'POST', '/admin/revocations', { tokenHash: tokenHash(token), expiresAt: exp });
        assert.equal(again.status, 200, again.body);
      }
      clock.advance(300_000); // past any leeway: the list has let go, and the token is expired
      const late = await get(gw, token, `/orders/late-${how.length}`);
      assertProblem(late, 401, 'invalid_credential');
      const [expired] = await gw.auditWhere((r) => r.path === `/orders/late-${how.length}`);
      assert.match(expired?.detail ?? '', /expired/);
    });
  }
});

describe('a reload that changes the token hash key', () => {
  let echo: EchoUpstream;
  let key: TestKey;
  let gw: TestGateway;
  const withKey = (tokenHashKey: string | undefined): ConfigObject => ({ ...config(echo, [key]), oauth: tokenHashKey === undefined ? {} : { tokenHashKey } });

  before(async () => {
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'hash-key');
    gw = await startGateway(withKey(undefined));
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  for (const next of ['k'.repeat(40), 'l'.repeat(40)]) {
    it(`is refused, naming oauth.tokenHashKey, rather than forgetting every revocation (to ${next.slice(0, 1)}…)`, async () => {
      const token = await mint(key, { sub: `mallory-rekey-${next.slice(0, 1)}` });
      assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
      await gw.writeConfig(withKey(next));
      const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
      assert.notEqual(reload.status, 200, reload.body);
      assert.match(reload.body, /oauth\.tokenHashKey/);
      assertProblem(await get(gw, token, '/orders/after-rekey'), 401, 'invalid_credential');
    });
  }

  it('is refused when a configured key is taken away (back to the key file), the oauth section gone', async (t) => {
    const keyed = await startGateway(withKey('m'.repeat(40)));
    t.after(() => keyed.close());
    const token = await mint(key, { sub: 'mallory-unkeyed' });
    assert.equal((await admin(keyed.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    await keyed.writeConfig(config(echo, [key]));
    const reload = await admin(keyed.adminUrl, 'POST', '/admin/reload');
    assert.notEqual(reload.status, 200, reload.body);
    assert.match(reload.body, /oauth\.tokenHashKey differs/);
    assertProblem(await get(keyed, token, '/orders/after-unkey'), 401, 'invalid_credential');
  });

  it('takes a reload that keeps the key', async () => {
    await gw.writeConfig({ ...withKey(undefined), oauth: { revocations: { defaultTtl: '2h' } } });
    const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
  });
});

describe('a reload that moves revocations to another list (oauth.redis added, removed)', () => {
  const KEY = 'r'.repeat(40);
  let echo: EchoUpstream;
  let key: TestKey;
  let redis: TestRedis | string;
  let prefixes = 0;
  const withOAuth = (oauth: Record<string, unknown>): ConfigObject => ({ ...config(echo, [key]), oauth });
  const shared = (url: string): Record<string, unknown> => ({ tokenHashKey: KEY, redis: { url, keyPrefix: `attack-${process.pid}-${prefixes++}` } });

  before(async () => {
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'moves');
    redis = await startRedis();
  });
  after(async () => {
    if (typeof redis !== 'string') await redis.stop();
    await echo.close();
  });

  it('carries the process\'s revocations into the Redis-shared list it starts', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const gw = await startGateway(withOAuth({ tokenHashKey: KEY }));
    t.after(() => gw.close());
    const token = await mint(key, { sub: 'mallory-to-redis' });
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    await gw.writeConfig(withOAuth(shared(redis.url)));
    const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
    assertProblem(await get(gw, token, '/orders/moved-to-redis'), 401, 'invalid_credential');
    // And back: the Redis-shared list hands them to the process's own.
    await gw.writeConfig(withOAuth({ tokenHashKey: KEY }));
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/reload')).status, 200);
    assertProblem(await get(gw, token, '/orders/moved-back'), 401, 'invalid_credential');
  });

  it('carries them from one Redis-shared list to another (oauth.redis pointed elsewhere)', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const gw = await startGateway(withOAuth(shared(redis.url)));
    t.after(() => gw.close());
    const token = await mint(key, { sub: 'mallory-redis-moved' });
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    await gw.writeConfig(withOAuth(shared(redis.url)));
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/reload')).status, 200);
    assertProblem(await get(gw, token, '/orders/redis-moved'), 401, 'invalid_credential');
  });

  it('refuses a move whose list would digest under another key (the key file, then oauth.tokenHashKey with Redis)', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const gw = await startGateway(withOAuth({}));
    t.after(() => gw.close());
    const token = await mint(key, { sub: 'mallory-rekeyed-move' });
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    await gw.writeConfig(withOAuth(shared(redis.url)));
    const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.notEqual(reload.status, 200, reload.body);
    assert.match(reload.body, /oauth\.tokenHashKey/);
    assertProblem(await get(gw, token, '/orders/rekeyed-move'), 401, 'invalid_credential');
  });
});
