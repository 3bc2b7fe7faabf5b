import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LoginClient } from './harness/login-client.js';
import { apiCall, loginAtA, pairSuite, SESSION_COOKIE } from './harness/oidc-pair.js';

const login = loginAtA;

/** A navigation with only the session cookie: its status and Location. */
async function navigate(base: string, cookie: string): Promise<{ status: number; location: string }> {
  const browser = new LoginClient();
  browser.setCookie(base, SESSION_COOKIE, cookie);
  const hop = await browser.send(`${base}/app/page`);
  return { status: hop.status, location: String(hop.headers.location ?? '') };
}

/** Resolves once `check` holds, trying again after each failure, at most `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise<void>((resolve) => { setTimeout(resolve, 50); });
  }
  return false;
}

await pairSuite('oidc sessions held in Redis by two gateway processes (a real provider)', (server, start) => {
  it('back-channel logout from the provider, received by gateway B, ends that user\'s session on A and B; another user\'s stays', async () => {
    const pair = await start({ stepMs: 0, backChannelTo: 'b' });
    try {
      const alice = await login(pair, 'alice');
      const bob = await login(pair, 'bob');
      for (const base of [pair.baseA, pair.baseB]) {
        for (const { cookie } of [alice, bob]) assert.equal((await apiCall(base, '/app/before', cookie)).status, 200);
      }
      // Alice ends her session at the provider itself (its logout confirmation submits itself).
      const { final, hops } = await alice.client.follow(`${pair.idp.issuer}/session/end?client_id=${pair.idp.web.clientId}`);
      assert.equal(final.status, 200, hops.map((h) => `${h.status} ${h.url}`).join('\n'));
      assert.ok(hops.some((h) => h.method === 'POST' && h.url.startsWith(`${pair.idp.issuer}/session/end/confirm`)), 'the logout was confirmed');
      assert.ok(await eventually(() => Promise.resolve(pair.idp.backchannelLogouts.length >= 1), 10_000), 'the provider sent a logout token');
      assert.deepEqual(pair.idp.backchannelLogouts, [{ status: 200 }]);
      const [accepted] = (await pair.b.audit()).filter((r) => r.path === '/oauth2/back-channel-logout');
      assert.equal(accepted?.status, 200);

      for (const base of [pair.baseA, pair.baseB]) {
        const nav = await navigate(base, alice.cookie);
        assert.equal(nav.status, 302, `navigation on ${base}`);
        assert.ok(nav.location.startsWith(`${pair.idp.issuer}/auth?`), nav.location);
        assert.equal((await apiCall(base, '/app/after', alice.cookie)).status, 401);
        assert.equal((await apiCall(base, '/app/after', bob.cookie)).status, 200, 'bob\'s session stays');
      }
      assert.equal(await pair.record(alice.cookie), null);
      assert.notEqual(await pair.record(bob.cookie), null);
    } finally {
      await pair.close();
    }
  });

  it('local logout on gateway A ends the session on gateway B', async () => {
    const pair = await start({ stepMs: 0 });
    try {
      const alice = await login(pair, 'alice');
      const other = await login(pair, 'alice');
      assert.equal((await apiCall(pair.baseB, '/app/before', alice.cookie)).status, 200);
      const { hops } = await alice.client.follow(`${pair.baseA}/oauth2/logout?rd=/`);
      assert.equal(hops[0]?.status, 303);
      assert.equal(alice.client.cookie(pair.baseA, SESSION_COOKIE), undefined, 'the cookie is cleared');
      const nav = await navigate(pair.baseB, alice.cookie);
      assert.equal(nav.status, 302);
      assert.ok(nav.location.startsWith(`${pair.idp.issuer}/auth?`), nav.location);
      assert.equal((await apiCall(pair.baseB, '/app/after', alice.cookie)).status, 401);
      assert.equal(await pair.record(alice.cookie), null);
      // Her other browser's session is another session (its provider session is its own too).
      assert.equal((await apiCall(pair.baseB, '/app/after', other.cookie)).status, 200);
    } finally {
      await pair.close();
    }
  });

  // Last in this file: it empties the Redis server.
  it('Redis down: session routes fail closed with 503 authentication_unavailable (not 302, not 401) on both gateways, and recover after Redis restarts', async () => {
    const pair = await start({ stepMs: 0 });
    try {
      const alice = await login(pair, 'alice');
      await server.kill();
      for (const base of [pair.baseA, pair.baseB]) {
        const api = await apiCall(base, '/app/data', alice.cookie);
        assert.equal(api.status, 503, `API on ${base}`);
        assert.match(api.type, /application\/problem\+json/);
        assert.ok(api.code?.endsWith('authentication_unavailable'), String(api.code));
        assert.ok(api.ms < 3000, `answered in ${Math.round(api.ms)} ms`);
        const nav = await navigate(base, alice.cookie);
        assert.equal(nav.status, 503, `navigation on ${base}`);
        assert.equal(nav.location, '');
      }
      // Logging out cannot end the session either: refused, not reported done.
      const logout = await alice.client.send(`${pair.baseA}/oauth2/logout?rd=/`);
      assert.equal(logout.status, 503);

      await server.restart();
      // Redis came back empty: the session is gone (401), not an outage any more (503).
      assert.ok(await eventually(async () => (await apiCall(pair.baseB, '/app/data', alice.cookie)).status === 401, 15_000), 'gateway B reconnects');
      assert.ok(await eventually(async () => (await apiCall(pair.baseA, '/app/data', alice.cookie)).status === 401, 15_000), 'gateway A reconnects');
      const again = await login(pair, 'alice');
      assert.equal((await apiCall(pair.baseB, '/app/again', again.cookie)).status, 200);
    } finally {
      await pair.close();
    }
  });
});
