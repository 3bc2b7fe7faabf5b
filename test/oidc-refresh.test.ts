import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { it } from 'node:test';
import { LoginClient } from './harness/login-client.js';
import { apiCall, loginAtA, pairSuite, SESSION_COOKIE, tryRefresh, type OidcPair } from './harness/oidc-pair.js';
import { redisCall } from './harness/redis.js';

// Provider access tokens live 600 s; refresh.beforeExpiryMs is 60 s: 550 s on makes a refresh due
// with 50 s of the token left, and 550 s more finds it expired.
const STEP_MS = 550_000;

/** Logs in through gateway A; the session cookie's value. */
const login = async (pair: OidcPair, sub = 'alice'): Promise<string> => (await loginAtA(pair, sub)).cookie;

await pairSuite('oidc session refresh across two gateway processes sharing Redis (a real provider)', (server, start) => {
  it('50 concurrent requests at refresh time on two gateways: exactly one refresh at the provider, every one answered with the new token; rotation honoured on the next', async () => {
    const pair = await start({ stepMs: STEP_MS });
    try {
      const cookie = await login(pair);
      const first = await pair.record(cookie);
      assert.ok(first?.refreshToken != null && first.accessToken !== null);
      const before = await apiCall(pair.baseB, '/app/before', cookie);
      assert.equal(before.status, 200);
      assert.equal(before.authorization, `Bearer ${first.accessToken}`, 'gateway B serves the session A made');

      await pair.advance();
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => apiCall(i % 2 === 0 ? pair.baseA : pair.baseB, `/app/burst/${i}`, cookie)));
      const second = await pair.record(cookie);
      assert.ok(second?.refreshToken != null && second.accessToken !== null);
      assert.equal(pair.idp.grants('refresh_token'), 1, 'one refresh at the provider for 50 requests on two gateways');
      assert.equal(second.version, first.version + 1);
      assert.notEqual(second.accessToken, first.accessToken);
      assert.notEqual(second.refreshToken, first.refreshToken, 'the provider rotated the refresh token');
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.status, 200, `request ${i}: ${answer.status} ${answer.code}`);
        assert.equal(answer.authorization, `Bearer ${second.accessToken}`, `request ${i} forwarded the new access token`);
      }

      // The next refresh uses the rotated token, and succeeds.
      await pair.advance();
      const later = await apiCall(pair.baseB, '/app/later', cookie);
      assert.equal(later.status, 200);
      const third = await pair.record(cookie);
      assert.ok(third?.refreshToken != null);
      assert.equal(pair.idp.grants('refresh_token'), 2);
      assert.equal(later.authorization, `Bearer ${third.accessToken}`);
      assert.notEqual(third.refreshToken, second.refreshToken);
      // Both spent refresh tokens are refused now (last: a reused one makes oidc-provider revoke the grant).
      for (const spent of [second.refreshToken, first.refreshToken]) assert.deepEqual(await tryRefresh(pair.idp, spent), { status: 400, error: 'invalid_grant' });
    } finally {
      await pair.close();
    }
  });

  it('a refresh the provider refuses ends the session: a navigation goes to log in, an API request gets 401, on either gateway', async () => {
    const pair = await start({ stepMs: STEP_MS });
    try {
      const [navigating, calling, untouched] = [await login(pair), await login(pair), await login(pair, 'bob')];
      for (const cookie of [navigating, calling]) {
        const record = await pair.record(cookie);
        assert.ok(record?.refreshToken != null);
        await pair.idp.revoke(record.refreshToken, pair.idp.web);
      }
      await pair.advance();
      const nav = new LoginClient();
      nav.setCookie(pair.baseB, SESSION_COOKIE, navigating);
      const hop = await nav.send(`${pair.baseB}/app/page`);
      assert.equal(hop.status, 302);
      assert.ok(String(hop.headers.location).startsWith(`${pair.idp.issuer}/auth?`), String(hop.headers.location));
      const api = await apiCall(pair.baseA, '/app/data', calling);
      assert.equal(api.status, 401);
      assert.match(api.type, /application\/problem\+json/);
      for (const cookie of [navigating, calling]) assert.equal(await pair.record(cookie), null, 'the session is gone from Redis');
      // Once ended, it stays ended on the other gateway too.
      assert.equal((await apiCall(pair.baseB, '/app/data', calling)).status, 401);
      // A session whose refresh token was not revoked refreshes as usual.
      const ok = await apiCall(pair.baseB, '/app/data', untouched);
      assert.equal(ok.status, 200);
      assert.equal(pair.idp.grants('refresh_token'), 1);
    } finally {
      await pair.close();
    }
  });

  it('provider down or hung during refresh: the valid token serves without a wait past timeoutMs (and without retrying at once); once expired 503 problem+json, bounded; after the provider returns the session continues', async () => {
    const timeoutMs = 2000;
    const pair = await start({ stepMs: STEP_MS, authenticator: { timeoutMs, refresh: { waitMs: 8000 } } });
    const { idp } = pair;
    let hung: Server | null = null;
    const sockets = new Set<Socket>();
    try {
      const cookie = await login(pair);
      const first = await pair.record(cookie);
      assert.ok(first?.accessToken != null);
      await pair.advance();

      // Refused connections: gateway A's requests are answered at once with the current token.
      await idp.stop();
      const refused = await Promise.all(Array.from({ length: 10 }, (_, i) => apiCall(pair.baseA, `/app/down/${i}`, cookie)));
      for (const r of refused) {
        assert.equal(r.status, 200);
        assert.equal(r.authorization, `Bearer ${first.accessToken}`);
        assert.ok(r.ms < timeoutMs, `answered in ${Math.round(r.ms)} ms`);
      }

      // A provider that accepts and never answers. Gateway A found it unavailable a moment ago: it serves the token without trying again yet.
      hung = createServer((socket) => { sockets.add(socket); socket.on('error', () => undefined); });
      await new Promise<void>((resolve) => hung?.listen(idp.port, '127.0.0.1', resolve));
      const paused = await apiCall(pair.baseA, '/app/paused', cookie);
      assert.equal(paused.status, 200);
      assert.equal(sockets.size, 0, 'gateway A did not try the provider again at once');
      // Gateway B tries: its requests wait for the provider at most timeoutMs, then the current token serves.
      const silent = await Promise.all(Array.from({ length: 5 }, (_, i) => apiCall(pair.baseB, `/app/silent/${i}`, cookie)));
      for (const r of silent) {
        assert.equal(r.status, 200);
        assert.equal(r.authorization, `Bearer ${first.accessToken}`);
        assert.ok(r.ms < timeoutMs + 1500, `answered in ${Math.round(r.ms)} ms (timeoutMs ${timeoutMs}, refresh.waitMs 8000)`);
      }
      assert.ok(sockets.size >= 1, 'gateway B tried the provider');
      const tried = sockets.size;
      const again = await apiCall(pair.baseB, '/app/paused', cookie);
      assert.equal(again.status, 200);
      assert.equal(sockets.size, tried, 'gateway B did not try the provider again at once');
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => hung?.close(() => resolve()));
      hung = null;

      // Past the token's expiry: 503, problem+json, no hang; a navigation too.
      await pair.advance();
      for (const base of [pair.baseA, pair.baseB]) {
        const r = await apiCall(base, '/app/expired', cookie);
        assert.equal(r.status, 503);
        assert.match(r.type, /application\/problem\+json/);
        assert.ok(r.code?.endsWith('authentication_unavailable'), String(r.code));
        assert.ok(r.ms < timeoutMs + 1500, `answered in ${Math.round(r.ms)} ms`);
      }
      const nav = new LoginClient();
      nav.setCookie(pair.baseA, SESSION_COOKIE, cookie);
      assert.equal((await nav.send(`${pair.baseA}/app/page`)).status, 503);

      await idp.start();
      const back = await apiCall(pair.baseB, '/app/back', cookie);
      assert.equal(back.status, 200);
      const refreshed = await pair.record(cookie);
      assert.ok(refreshed !== null);
      assert.equal(back.authorization, `Bearer ${refreshed.accessToken}`);
      assert.notEqual(refreshed.accessToken, first.accessToken);
      assert.equal(idp.grants('refresh_token'), 1);
    } finally {
      for (const s of sockets) s.destroy();
      if (hung !== null) await new Promise<void>((resolve) => hung?.close(() => resolve()));
      await pair.close();
    }
  });

  it('a request waiting for another gateway\'s refresh ends as soon as that holder lets go without a new version, not at refresh.waitMs', async () => {
    const pair = await start({ stepMs: STEP_MS, authenticator: { refresh: { waitMs: 10_000 } } });
    try {
      const cookie = await login(pair);
      const first = await pair.record(cookie);
      assert.ok(first?.accessToken != null);
      await pair.advance();
      // Another holder's lock (as a gateway in the middle of a refresh holds it).
      const keys = pair.redisKeys(cookie);
      assert.equal(await redisCall(server, 'SET', keys.lock, 'elsewhere', 'PX', '60000', 'NX'), 'OK');
      const lastUse = async () => String(await redisCall(server, 'HGET', keys.session, 'u'));
      const uses = new Set([await lastUse()]);
      const waiting = apiCall(pair.baseA, '/app/waiting', cookie);
      // Each read of the session marks its use: the request's own read, then the waiter's polls.
      for (let i = 0; i < 400 && uses.size < 3; i++) {
        await new Promise<void>((resolve) => { setImmediate(resolve); });
        uses.add(await lastUse());
      }
      assert.ok(uses.size >= 3, 'the request waits for the lock holder');
      // The holder gives up (its refresh failed) without storing a new version.
      assert.equal(await redisCall(server, 'DEL', keys.lock), 1);
      const released = performance.now();
      const answer = await waiting;
      assert.equal(answer.status, 200);
      assert.equal(answer.authorization, `Bearer ${first.accessToken}`, 'served with the still-valid token');
      assert.ok(performance.now() - released < 3000, `answered ${Math.round(performance.now() - released)} ms after the lock was released (waitMs 10000)`);
      assert.equal(pair.idp.grants('refresh_token'), 0, 'the waiter does not refresh in the holder\'s stead');
    } finally {
      await pair.close();
    }
  });
});
