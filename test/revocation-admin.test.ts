// POST /admin/revocations on one gateway process: a revoked token is refused at once (before the
// verified-token cache), by token or by token hash, across reloads; hostile admin bodies each get
// a precise 400 problem and one audit record, and nothing is revoked.
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tokenHash } from '../src/authn/oauth/token-digest.js';
import { admin, ADMIN_TOKEN, ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, nowSec, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://issuer.test/';

function config(echo: EchoUpstream, key: TestKey, oauth: Record<string, unknown> = {}): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    oauth,
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
  };
}

const get = (gw: TestGateway, token: string, path = '/orders/1'): ReturnType<typeof call> => call(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

describe('POST /admin/revocations on one gateway', () => {
  let echo: EchoUpstream;
  let key: TestKey;
  let gw: TestGateway;

  before(async () => {
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'k1');
    gw = await startGateway(config(echo, key));
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  it('refuses a token revoked by itself at once, although it was cached a moment before', async () => {
    const token = await mint(key, { sub: 'alice' });
    assert.equal((await get(gw, token)).status, 200);
    const forwarded = echo.received.length;
    const res = await admin(gw.adminUrl, 'POST', '/admin/revocations', { token });
    assert.equal(res.status, 200, res.body);
    const body = JSON.parse(res.body) as { tokenHash: string; expiresAt: number };
    assert.equal(body.tokenHash, tokenHash(token));
    assert.ok(!res.body.includes(token), 'the token is never echoed');
    // A JWT's own exp bounds the revocation.
    assert.ok(Math.abs(body.expiresAt - (nowSec() + 300)) <= 2, `expiresAt ${body.expiresAt}`);
    const refused = await get(gw, token, '/orders/after-revoke');
    assertProblem({ ...refused, headers: refused.headers }, 401, 'invalid_credential');
    assert.match(refused.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    assert.equal(echo.received.length, forwarded, 'nothing forwarded after the revocation');
    const [record] = await gw.auditWhere((r) => r.path === '/orders/after-revoke');
    assert.equal(record?.detail, 'users: revoked');
    const [op] = await gw.auditWhere((r) => r.kind === 'admin' && r.path === '/admin/revocations' && r.status === 200);
    assert.ok(op?.detail?.startsWith(`revoked token ${tokenHash(token)} until `), op?.detail ?? '');
    assert.ok(!JSON.stringify(await gw.audit()).includes(token), 'the token is in no audit record');
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body;
    assert.match(metrics, /^portcullis_revocations_total\{source="local"\} 1$/m);
    assert.doesNotMatch(metrics, /^portcullis_revocations_subscribed\{/m, 'no Redis, no subscription gauge');
    // Another token of the same subject is untouched.
    assert.equal((await get(gw, await mint(key, { sub: 'alice', jti: 'other' }))).status, 200);
  });

  it('refuses a token revoked by its hash, with the expiry given', async () => {
    const token = await mint(key, { sub: 'bob' });
    const expiresAt = nowSec() + 3600;
    const res = await admin(gw.adminUrl, 'POST', '/admin/revocations', { tokenHash: tokenHash(token), expiresAt });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { tokenHash: tokenHash(token), expiresAt });
    assert.equal((await get(gw, token)).status, 401);
  });

  it('keeps revocations across a reload, and digests with the key file it made in dataDir (0600)', async () => {
    const token = await mint(key, { sub: 'carol' });
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    await gw.writeConfig(config(echo, key, { revocations: { defaultTtl: '2h' } }));
    const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
    assert.equal((JSON.parse(reload.body) as { changed: boolean }).changed, true);
    assert.equal((await get(gw, token)).status, 401);
    const file = join(gw.gateway.config.dataDir, 'oauth', 'token-hash.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
  });

  const hostile: [string, string | Record<string, unknown>, RegExp][] = [
    ['neither token nor tokenHash', {}, /exactly one of token and tokenHash/],
    ['both token and tokenHash', { token: 'abc', tokenHash: 'x'.repeat(43) }, /exactly one of token and tokenHash/],
    ['an unknown field', { tokenHash: 'x'.repeat(43), reason: 'leak' }, /unknown field reason/],
    ['a duplicate key', '{"tokenHash":"' + 'x'.repeat(43) + '","tokenHash":"' + 'y'.repeat(43) + '"}', /not JSON/],
    ['not JSON', 'token=abc', /not JSON/],
    ['an array', '[{"token":"abc"}]', /JSON object/],
    ['a token with a space', { token: 'abc def' }, /not a bearer token/],
    ['a token that is a number', { token: 12 }, /non-empty string/],
    ['a short hash', { tokenHash: 'abc' }, /43 characters/],
    ['a hash in hex', { tokenHash: 'a'.repeat(64) }, /43 characters/],
    ['an expiry in the past', { tokenHash: 'x'.repeat(43), expiresAt: 1000 }, /is past/],
    ['an expiry in milliseconds as a string', { tokenHash: 'x'.repeat(43), expiresAt: '1767225600' }, /epoch seconds/],
    ['a fractional expiry', { tokenHash: 'x'.repeat(43), expiresAt: 1.5 }, /epoch seconds/],
    ['an oversized token', { token: 'a'.repeat(20_000) }, /longer than 16384/],
    ['an oversized body', { tokenHash: 'x'.repeat(43), pad: 'p'.repeat(40_000) }, /larger than 32768/],
  ];
  for (const [what, body, detail] of hostile) {
    it(`answers 400 invalid_admin_request to ${what}, audited once, revoking nothing`, async () => {
      const sizeBefore = (gw.gateway.config.oauth.revocations as unknown as { size: number }).size;
      const res = await admin(gw.adminUrl, 'POST', '/admin/revocations', body);
      const doc = assertProblem(res, 400, 'invalid_admin_request') as unknown as { errors: string[]; requestId: string };
      assert.match(doc.errors.join(' '), detail);
      const records = await gw.auditWhere((r) => r.kind === 'admin' && r.requestId === doc.requestId);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.reason, 'invalid_admin_request');
      assert.equal((gw.gateway.config.oauth.revocations as unknown as { size: number }).size, sizeBefore);
    });
  }

  it('refuses without the admin token (401), a form post (400) and GET (405)', async () => {
    const token = await mint(key, { sub: 'dave' });
    assertProblem(await admin(gw.adminUrl, 'POST', '/admin/revocations', { token }, 'wrong-token'), 401, 'admin_unauthorized');
    const form = await call(`${gw.adminUrl}/admin/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` });
    assertProblem(form, 400, 'invalid_admin_request');
    const getRes = await admin(gw.adminUrl, 'GET', '/admin/revocations');
    assertProblem(getRes, 405, 'method_not_allowed');
    assert.equal(getRes.headers.allow, 'POST');
    assert.equal((await get(gw, token)).status, 200, 'nothing was revoked');
  });

  it('keeps the list bounded under a flood of revocations (oldest-ending leave first)', async () => {
    const flood = await startGateway(config(echo, key, { revocations: { maxEntries: 20 } }));
    try {
      const keep = await mint(key, { sub: 'late', exp: nowSec() + 7200 });
      for (let i = 0; i < 200; i++) {
        const res = await admin(flood.adminUrl, 'POST', '/admin/revocations', { tokenHash: tokenHash(`flood-${i}`), expiresAt: nowSec() + 60 + i });
        assert.equal(res.status, 200);
      }
      assert.equal((await admin(flood.adminUrl, 'POST', '/admin/revocations', { token: keep })).status, 200);
      const list = flood.gateway.config.oauth.revocations as unknown as { size: number };
      assert.equal(list.size, 20);
      assert.equal((await get(flood, keep)).status, 401, 'the latest-ending revocation is kept');
    } finally {
      await flood.close();
    }
  });
});
