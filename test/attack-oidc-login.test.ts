// Hostile browsers and a hostile provider against the gateway's OIDC login, over plain HTTP:
// forged and replayed state, PKCE, tampered ID tokens, provider errors, session cookies, CSRF and
// malformed callbacks. Every refusal has a precise status, forwards nothing, and leaves exactly
// one audit record.
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { LoginClient, type Hop } from './harness/login-client.js';
import {
  LOGIN_KEY, SESSION, TOKEN_HASH_KEY, challengeOf, loggedIn, nothingForwarded, ownAuthorization, plantLoginState, partsOf, random, refusedOnce, resign, setsSession, signEs256, toCallback,
} from './harness/oidc-attack.js';
import { startOidcLogin, type OidcLoginSetup } from './harness/oidc-login.js';

const ROUTES = [
  { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'] },
  { name: 'partner', match: { path: '/partner/**' }, upstream: 'app', authenticate: ['web'], cors: 'partner' },
  { name: 'anyone', match: { path: '/anyone/**' }, upstream: 'app', authenticate: ['web'], cors: 'anyone' },
  { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
];
const CORS = { partner: { origins: ['https://app.example.com'], credentials: true }, anyone: { origins: ['*'] } };

/** An API request (not a navigation) with the client's cookies. */
function api(client: LoginClient, url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Hop> {
  return client.send(url, { navigate: false, ...options, headers: { accept: 'application/json', ...options.headers } });
}

describe('oidc login under attack (a real provider, the real gateway)', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ config: { oauth: { tokenHashKey: TOKEN_HASH_KEY }, cors: CORS, routes: ROUTES } });
  });
  after(async () => { await setup.close(); });

  describe('forged state', () => {
    it('refuses a callback without its pre-login cookie (400 login_state_invalid), before any code exchange', async () => {
      const callback = await toCallback(setup, new LoginClient());
      const grants = setup.idp.grants('authorization_code');
      const hop = await nothingForwarded(setup, () => new LoginClient().send(callback));
      await refusedOnce(setup, hop, 400, 'login_state_invalid');
      assert.ok(!setsSession(hop));
      assert.equal(setup.idp.grants('authorization_code'), grants);
    });

    it('refuses a callback carrying the pre-login cookie of another login, under its own name or moved under this one', async () => {
      const victim = new LoginClient();
      const callback = await toCallback(setup, victim);
      const attacker = new LoginClient();
      await toCallback(setup, attacker);
      const [[otherName, otherValue] = ['', '']] = cookiesOf(attacker, setup.base, '__Host-portcullis-login-');
      const thisName = cookiesOf(victim, setup.base, '__Host-portcullis-login-')[0]?.[0] ?? '';
      for (const cookie of [`${otherName}=${otherValue}`, `${thisName}=${otherValue}`]) {
        const hop = await nothingForwarded(setup, () => new LoginClient().send(callback, { headers: { cookie } }));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
        assert.ok(!setsSession(hop));
      }
    });

    it('refuses a pre-login cookie sealed with another key, and one whose login expired', async () => {
      for (const variant of ['another key', 'expired', 'another authenticator'] as const) {
        const client = new LoginClient();
        const state = random();
        const nonce = random();
        const verifier = random();
        const callback = await ownAuthorization(setup, client, { state, nonce, challenge: challengeOf(verifier) });
        plantLoginState(setup, client, {
          state, nonce, verifier,
          ...(variant === 'another key' ? { key: randomBytes(32) } : {}),
          ...(variant === 'expired' ? { expiresAt: Date.now() - 1000 } : {}),
          ...(variant === 'another authenticator' ? { authenticator: 'staff' } : {}),
        });
        const grants = setup.idp.grants('authorization_code');
        const hop = await nothingForwarded(setup, () => client.send(callback));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
        assert.ok(!setsSession(hop), variant);
        assert.equal(setup.idp.grants('authorization_code'), grants, variant);
      }
    });

    it('refuses a pre-login cookie changed by one character, cut short, or doubled (400 login_state_invalid)', async () => {
      for (const variant of ['one character', 'cut short', 'sent twice', 'padded'] as const) {
        const client = new LoginClient();
        const callback = await toCallback(setup, client);
        const [[name, value] = ['', '']] = cookiesOf(client, setup.base, '__Host-portcullis-login-');
        const changed = variant === 'one character' ? value.slice(0, 30) + (value[30] === 'A' ? 'B' : 'A') + value.slice(31)
          : variant === 'cut short' ? value.slice(0, 40) : variant === 'padded' ? `${value}AAAA` : value;
        const cookie = variant === 'sent twice' ? `${name}=${value}; ${name}=${value}` : `${name}=${changed}`;
        const hop = await nothingForwarded(setup, () => new LoginClient().send(callback, { headers: { cookie } }));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
        assert.ok(!setsSession(hop), variant);
      }
    });

    it('completes a login whose pre-login cookie the test sealed with the right key (the key derivation the other cases rely on)', async () => {
      const client = new LoginClient();
      const state = random();
      const nonce = random();
      const verifier = random();
      const callback = await ownAuthorization(setup, client, { state, nonce, challenge: challengeOf(verifier) });
      plantLoginState(setup, client, { state, nonce, verifier, returnTo: '/app/sealed' });
      const hop = await client.send(callback);
      assert.equal(hop.status, 303, hop.body);
      assert.equal(hop.headers.location, '/app/sealed');
      assert.ok(setsSession(hop));
      assert.equal(LOGIN_KEY.length, 32);
    });
  });

  it('refuses a replayed callback (same URL and cookie): the provider refuses the spent code, no second session', async () => {
    const client = new LoginClient();
    const callback = await toCallback(setup, client);
    const cookie = client.cookieHeader(callback);
    const grants = setup.idp.grants('authorization_code');
    const first = await client.send(callback, { headers: { cookie } });
    assert.equal(first.status, 303);
    assert.equal(setup.idp.grants('authorization_code'), grants + 1);
    const replay = await nothingForwarded(setup, () => new LoginClient().send(callback, { headers: { cookie } }));
    await refusedOnce(setup, replay, 400, 'login_failed');
    assert.ok(!setsSession(replay));
    assert.equal(setup.idp.grants('authorization_code'), grants + 1, 'no tokens for the code a second time');
  });

  it('of three copies of one callback sent at once, one logs in and two are login_replayed; the code is exchanged once', async () => {
    const client = new LoginClient();
    const callback = await toCallback(setup, client);
    const grants = setup.idp.grants('authorization_code');
    const hops = await Promise.all([0, 1, 2].map(() => client.send(callback)));
    assert.deepEqual(hops.map((h) => h.status).sort(), [303, 400, 400]);
    for (const hop of hops.filter((h) => h.status === 400)) await refusedOnce(setup, hop, 400, 'login_replayed');
    assert.equal(hops.filter(setsSession).length, 1);
    assert.equal(setup.idp.grants('authorization_code'), grants + 1);
  });

  it('forwards neither the gateway\'s cookies nor a client\'s identity headers upstream', async () => {
    const client = await loggedIn(setup);
    const pending = await new LoginClient().send(`${setup.base}/app/other`);
    const login = /^(__Host-portcullis-login-[^=]+=[^;]+)/.exec(String(pending.headers['set-cookie']))?.[1] ?? '';
    const hop = await api(client, `${setup.base}/app/who`, { headers: { 'x-user-id': 'admin', 'x-tenant-id': 'tenant-b', 'x-auth-method': 'jwt', cookie: `a=1; ${client.cookieHeader(setup.base)}; ${login}; __Host-portcullis-session-other=x` } });
    assert.equal(hop.status, 200);
    const seen = setup.echo.received.at(-1);
    assert.equal(seen?.headers['x-user-id'], 'alice');
    assert.equal(seen?.headers['x-tenant-id'], 'tenant-a');
    assert.equal(seen?.headers['x-auth-method'], 'oidc');
    assert.ok(!String(seen?.headers.cookie).includes('__Host-portcullis-'), String(seen?.headers.cookie));
    assert.match(String(seen?.headers.cookie), /^a=1(; |$)/);
  });

  describe('PKCE', () => {
    it('a code asked for with one challenge and redeemed with another verifier is refused by the provider: 400 login_failed, no session', async () => {
      const client = new LoginClient();
      const state = random();
      const nonce = random();
      const callback = await ownAuthorization(setup, client, { state, nonce, challenge: challengeOf(random()) });
      plantLoginState(setup, client, { state, nonce, verifier: random() });
      const grants = setup.idp.grants('authorization_code');
      const hop = await nothingForwarded(setup, () => client.send(callback));
      await refusedOnce(setup, hop, 400, 'login_failed');
      assert.ok(!setsSession(hop));
      assert.equal(setup.idp.grants('authorization_code'), grants);
    });

    it('an authorization request without a code challenge comes back as a provider error: 400 login_failed', async () => {
      const client = new LoginClient();
      const state = random();
      const nonce = random();
      const callback = await ownAuthorization(setup, client, { state, nonce, challenge: null });
      assert.ok(new URL(callback).searchParams.has('error'), callback);
      plantLoginState(setup, client, { state, nonce, verifier: random() });
      const hop = await nothingForwarded(setup, () => client.send(callback));
      await refusedOnce(setup, hop, 400, 'login_failed');
      assert.ok(!setsSession(hop));
    });
  });

  describe('ID tokens a hostile provider returns', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const now = (): number => Math.floor(Date.now() / 1000);
    const cases: { name: string; rewrite: (idToken: string, key: KeyObject) => string }[] = [
      { name: 'wrong nonce', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, nonce: random() })) },
      { name: 'no nonce', rewrite: (t, k) => resign(t, k, (c) => without(c, 'nonce')) },
      { name: 'wrong aud', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, aud: 'another-client' })) },
      { name: 'aud of several without azp', rewrite: (t, k) => resign(t, k, (c) => ({ ...without(c, 'azp'), aud: ['web', 'another-client'] })) },
      { name: 'wrong iss', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, iss: 'http://evil.example' })) },
      { name: 'expired', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, iat: now() - 300, exp: now() - 120 })) },
      { name: 'iat too old', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, iat: now() - 3600 })) },
      { name: 'iat in the future', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, iat: now() + 3600, exp: now() + 7200 })) },
      { name: 'signed by another key (same kid)', rewrite: (t) => resign(t, other, (c) => c) },
      { name: 'alg none', rewrite: (t) => { const [h = '', c = ''] = t.split('.'); return `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(h, 'base64url').toString()) as object, alg: 'none' })).toString('base64url')}.${c}.`; } },
      { name: 'signature stripped', rewrite: (t) => `${t.split('.').slice(0, 2).join('.')}.` },
      { name: 'missing sub', rewrite: (t, k) => resign(t, k, (c) => without(c, 'sub')) },
      { name: 'empty sub', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, sub: '' })) },
      { name: 'typ logout+jwt', rewrite: (t, k) => { const [h = ''] = t.split('.'); const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>; return resignWithHeader(t, k, { ...header, typ: 'logout+jwt' }); } },
      { name: 'at_hash of another token', rewrite: (t, k) => resign(t, k, (c) => ({ ...c, at_hash: 'AAAAAAAAAAAAAAAAAAAAAA' })) },
      { name: 'not a JWT', rewrite: () => 'not-a-jwt' },
      { name: 'another key embedded as the header\'s jwk', rewrite: (t) => resignWithHeader(t, other, { ...partsOf(t).header, jwk: createPublicKey(other).export({ format: 'jwk' }) }) },
      { name: 'another key named by jku', rewrite: (t) => resignWithHeader(t, other, { ...partsOf(t).header, jku: 'http://127.0.0.1:1/jwks', kid: 'attacker' }) },
      { name: 'a kid the provider does not have', rewrite: (t) => resignWithHeader(t, other, { ...partsOf(t).header, kid: 'unknown-kid' }) },
      { name: 'HS256 keyed with the client secret', rewrite: (t) => hs256(partsOf(t).claims, setup.idp.web.clientSecret) },
      { name: 'a crit header', rewrite: (t, k) => resignWithHeader(t, k, { ...partsOf(t).header, crit: ['exp'] }) },
    ];
    for (const { name, rewrite } of cases) {
      it(`${name}: 400 id_token_invalid page, no session cookie`, async () => {
        setup.idp.tamperIdToken(rewrite);
        try {
          const client = new LoginClient();
          const callback = await toCallback(setup, client);
          const hop = await nothingForwarded(setup, () => client.send(callback));
          const record = await refusedOnce(setup, hop, 400, 'id_token_invalid');
          assert.match(String(hop.headers['content-type']), /^text\/html/);
          assert.ok(!setsSession(hop), `${name}: no session cookie`);
          assert.equal(client.cookie(setup.base, SESSION), undefined);
          assert.equal(record.identity ?? null, null);
        } finally {
          setup.idp.tamperIdToken(null);
        }
      });
    }
  });

  describe('provider error responses', () => {
    /** A state the gateway issued (its pre-login cookie is in the client's jar). */
    async function issuedState(client: LoginClient): Promise<string> {
      const hop = await client.send(`${setup.base}/oauth2/login?rd=/app/after`);
      assert.equal(hop.status, 302);
      return new URL(String(hop.headers.location)).searchParams.get('state') ?? '';
    }
    const cases = [
      { name: 'access_denied', params: { error: 'access_denied' }, status: 403 },
      { name: 'access_denied with a script in error_description', params: { error: 'access_denied', error_description: '<script>alert(document.cookie)</script>' }, status: 403 },
      { name: 'an error code that is HTML', params: { error: '<img src=x onerror=alert(1)>', error_description: '"><svg onload=alert(1)>' }, status: 400 },
      { name: 'control characters and CRLF', params: { error: 'server_error\r\nSet-Cookie: x=1', error_description: 'a\u0000b\u001b[31mc\r\nLocation: //evil' }, status: 400 },
      { name: 'non-ASCII and a very long description', params: { error: 'temporarily_unavailable', error_description: `\u202e${'é'.repeat(600)}${'x'.repeat(2000)}` }, status: 400 },
    ];
    for (const c of cases) {
      it(`${c.name}: a readable, escaped page (${c.status} login_failed), no session`, async () => {
        const client = new LoginClient();
        const state = await issuedState(client);
        const hop = await nothingForwarded(setup, () => client.send(`${setup.base}/oauth2/callback?${new URLSearchParams({ ...c.params, state }).toString()}`));
        await refusedOnce(setup, hop, c.status, 'login_failed');
        assert.match(String(hop.headers['content-type']), /^text\/html; charset=utf-8/);
        assert.equal(hop.headers['cache-control'], 'no-store');
        assert.match(String(hop.headers['content-security-policy']), /default-src 'none'/);
        // Markup from the provider shows as text: no tag or attribute of its own reaches the page.
        assert.ok(!/<(script|img|svg)|"\s*on[a-z]+=/i.test(hop.body), hop.body);
        assert.ok(!/[^\x20-\x7e\n]/.test(hop.body), 'only printable ASCII in the page');
        assert.ok(hop.body.length < 2000, 'the page does not echo the whole description');
        assert.ok(!('x' in parseSetCookieNames(hop)), 'no header injected');
        assert.ok(!setsSession(hop));
        assert.match(hop.body, /<a href="\/oauth2\/login\?rd=%2Fapp%2Fafter">/);
      });
    }
  });

  describe('session cookies', () => {
    it('a tampered session cookie (one character changed) is no session: a navigation logs in again, an API call gets 401', async () => {
      const client = await loggedIn(setup);
      const id = client.cookie(setup.base, SESSION) ?? '';
      const tampered = id.slice(0, 20) + (id[20] === 'A' ? 'B' : 'A') + id.slice(21);
      assert.equal(tampered.length, id.length);
      const navigation = await nothingForwarded(setup, () => new LoginClient().send(`${setup.base}/app/x`, { headers: { cookie: `${SESSION}=${tampered}` } }));
      await refusedOnce(setup, navigation, 302, 'login_required');
      assert.ok(String(navigation.headers.location).startsWith(setup.idp.issuer));
      const call = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie: `${SESSION}=${tampered}` } }));
      await refusedOnce(setup, call, 401, 'unauthenticated');
    });

    it('a fixated session cookie (set before login) is replaced at login, and the planted value is no session', async () => {
      const client = new LoginClient();
      const planted = random();
      client.setCookie(setup.base, SESSION, planted);
      await loggedIn(setup, client);
      const after = client.cookie(setup.base, SESSION);
      assert.ok(after !== undefined && after !== planted);
      const call = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie: `${SESSION}=${planted}` } }));
      await refusedOnce(setup, call, 401, 'unauthenticated');
    });

    it('a session cookie sent twice (the same value, or a valid and a planted one) is treated as no session', async () => {
      const client = await loggedIn(setup);
      const id = client.cookie(setup.base, SESSION) ?? '';
      for (const cookie of [`${SESSION}=${id}; ${SESSION}=${id}`, `${SESSION}=${random()}; ${SESSION}=${id}`, `${SESSION}=${id}; theme=x; ${SESSION}=${random()}`]) {
        const call = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie } }));
        await refusedOnce(setup, call, 401, 'unauthenticated');
      }
      // The same header split over two fields: still two values.
      const { request } = await import('undici');
      const res = await request(`${setup.base}/app/x`, { headers: ['cookie', `${SESSION}=${id}`, 'cookie', `${SESSION}=${id}`, 'accept', 'application/json'] });
      const body = await res.body.text();
      await refusedOnce(setup, { status: res.statusCode, headers: res.headers, body }, 401, 'unauthenticated');
    });

    it('a valid session id under another authenticator\'s cookie name is no session', async () => {
      const client = await loggedIn(setup);
      const id = client.cookie(setup.base, SESSION) ?? '';
      for (const name of ['__Host-portcullis-session-staff', '__Host-portcullis-session-Web', '__host-portcullis-session-web', 'portcullis-session-web']) {
        const call = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie: `${name}=${id}` } }));
        await refusedOnce(setup, call, 401, 'unauthenticated');
      }
      // The session itself is still good.
      const ok = await api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie: `${SESSION}=${id}` } });
      assert.equal(ok.status, 200);
    });
  });

  describe('cross-site requests with a valid session cookie', () => {
    let cookie: string;
    before(async () => {
      const client = await loggedIn(setup);
      cookie = `${SESSION}=${client.cookie(setup.base, SESSION) ?? ''}`;
    });
    const post = (path: string, headers: Record<string, string>): Promise<Hop> =>
      api(new LoginClient(), `${setup.base}${path}`, { method: 'POST', body: 'a=1', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers } });

    const refused: { name: string; headers: Record<string, string> }[] = [
      { name: 'Origin of another site', headers: { origin: 'https://evil.example' } },
      { name: 'Origin of another site, Sec-Fetch-Site cross-site', headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } },
      { name: 'Sec-Fetch-Site same-site (a sibling subdomain)', headers: { origin: 'https://sub.example.com', 'sec-fetch-site': 'same-site' } },
      { name: 'Sec-Fetch-Site cross-site without Origin', headers: { 'sec-fetch-site': 'cross-site' } },
      { name: 'no Origin and no Sec-Fetch-Site', headers: {} },
      { name: 'Origin null', headers: { origin: 'null' } },
      { name: 'Sec-Fetch-Site same-origin but a foreign Origin', headers: { origin: 'https://evil.example', 'sec-fetch-site': 'same-origin' } },
      { name: 'Origin with a path', headers: { origin: 'https://app.example.com/x' } },
      { name: 'two Origins', headers: { origin: 'https://app.example.com, https://evil.example' } },
      { name: 'Sec-Fetch-Site none', headers: { 'sec-fetch-site': 'none' } },
    ];
    for (const c of refused) {
      it(`refuses a POST with ${c.name}: 403 cross_site_request_refused`, async () => {
        const hop = await nothingForwarded(setup, () => post('/app/change', c.headers));
        await refusedOnce(setup, hop, 403, 'cross_site_request_refused');
      });
    }
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      it(`refuses a cross-site ${method} too`, async () => {
        const hop = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/app/change`, { method, headers: { cookie, origin: 'https://evil.example' } }));
        await refusedOnce(setup, hop, 403, 'cross_site_request_refused');
      });
    }

    it('admits a same-origin POST (by Origin, and by Sec-Fetch-Site same-origin)', async () => {
      for (const headers of [{ origin: setup.base }, { 'sec-fetch-site': 'same-origin' }, { origin: setup.base, 'sec-fetch-site': 'same-origin' }]) {
        const before = setup.echo.received.length;
        const hop = await post('/app/change', headers);
        assert.equal(hop.status, 200, hop.body);
        assert.equal(setup.echo.received.length, before + 1);
      }
    });

    it('admits a cross-site POST from the origin a route\'s CORS policy allows with credentials, and only that origin', async () => {
      const hop = await post('/partner/change', { origin: 'https://app.example.com', 'sec-fetch-site': 'cross-site' });
      assert.equal(hop.status, 200, hop.body);
      const evil = await nothingForwarded(setup, () => post('/partner/change', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }));
      await refusedOnce(setup, evil, 403, 'cross_site_request_refused');
    });

    it('does not admit a cross-site POST on a route whose CORS policy allows any origin (no credentials)', async () => {
      for (const headers of [{ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.example' }]) {
        const hop = await nothingForwarded(setup, () => post('/anyone/change', headers));
        await refusedOnce(setup, hop, 403, 'cross_site_request_refused');
      }
    });

    it('refuses a cross-site logout (POST, or GET with Sec-Fetch-Site cross-site), and the session lives on', async () => {
      const viaPost = await post('/oauth2/logout', { origin: 'https://evil.example' });
      await refusedOnce(setup, viaPost, 403, 'cross_site_request_refused');
      const viaGet = await new LoginClient().send(`${setup.base}/oauth2/logout`, { headers: { cookie, 'sec-fetch-site': 'cross-site' } });
      await refusedOnce(setup, viaGet, 403, 'cross_site_request_refused');
      const still = await api(new LoginClient(), `${setup.base}/app/x`, { headers: { cookie } });
      assert.equal(still.status, 200);
    });
  });

  it('unfinished logins do not pile up until the browser is locked out: past 8 in flight, a new login drops the pending ones', async () => {
    const client = new LoginClient();
    for (let i = 0; i < 60; i++) {
      const hop = await client.send(`${setup.base}/app/pending-${i}`);
      assert.equal(hop.status, 302, `login ${i}: ${hop.body.slice(0, 200)}`);
    }
    const pending = client.cookieHeader(setup.base).split('; ').filter((c) => c.startsWith('__Host-portcullis-login-'));
    assert.ok(pending.length <= 8, `${pending.length} pre-login cookies held`);
    const { final } = await client.follow(`${setup.base}/app/page`);
    assert.equal(final.status, 200, 'the browser can still log in');
  });

  it('a browser with a few logins in flight keeps them all (two tabs logging in at once both finish)', async () => {
    const client = new LoginClient();
    const first = await toCallback(setup, client, '/app/tab-1');
    const second = await toCallback(setup, client, '/app/tab-2');
    const a = await client.send(first);
    const b = await client.send(second);
    assert.equal(a.status, 303);
    assert.equal(a.headers.location, '/app/tab-1');
    assert.equal(b.status, 303);
    assert.equal(b.headers.location, '/app/tab-2');
  });

  describe('oversized and malformed callbacks', () => {
    it('refuses a huge state (400 login_state_invalid) without trying to open anything', async () => {
      // Past the gateway's request-target limit: refused before any route.
      const huge = await nothingForwarded(setup, () => new LoginClient().send(`${setup.base}/oauth2/callback?code=abc&state=${'x'.repeat(10_000)}`));
      await refusedOnce(setup, huge, 414, 'uri_too_long');
      for (const state of ['a'.repeat(600), 'x'.repeat(4000), 'not base64url!', '', '../../etc']) {
        const hop = await nothingForwarded(setup, () => new LoginClient().send(`${setup.base}/oauth2/callback?code=abc&state=${encodeURIComponent(state)}`));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
      }
    });

    it('refuses a 10 KB code (414 uri_too_long) and a 4 KB one with a valid state (the provider refuses it: 400 login_failed), no session', async () => {
      for (const [length, status, code] of [[10_240, 414, 'uri_too_long'], [4096, 400, 'login_failed']] as const) {
        const client = new LoginClient();
        const callback = new URL(await toCallback(setup, client));
        callback.searchParams.set('code', 'c'.repeat(length));
        const hop = await nothingForwarded(setup, () => client.send(callback.href));
        await refusedOnce(setup, hop, status, code);
        assert.ok(!setsSession(hop));
      }
    });

    it('refuses repeated code, state, error or iss parameters (400 login_state_invalid), before any code exchange', async () => {
      for (const param of ['code', 'state', 'error', 'iss']) {
        const client = new LoginClient();
        const callback = new URL(await toCallback(setup, client));
        callback.searchParams.append(param, callback.searchParams.get(param) ?? 'x');
        if (!callback.searchParams.has(param, callback.searchParams.get(param) ?? 'x') || callback.searchParams.getAll(param).length < 2) callback.searchParams.append(param, 'y');
        const grants = setup.idp.grants('authorization_code');
        const hop = await nothingForwarded(setup, () => client.send(callback.href));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
        assert.equal(setup.idp.grants('authorization_code'), grants, param);
      }
    });

    it('refuses a callback without a code (400) and one whose iss is another issuer (400 login_failed)', async () => {
      const noCode = new LoginClient();
      const first = new URL(await toCallback(setup, noCode));
      first.searchParams.delete('code');
      const hop = await nothingForwarded(setup, () => noCode.send(first.href));
      await refusedOnce(setup, hop, 400, 'login_failed');
      const mixUp = new LoginClient();
      const second = new URL(await toCallback(setup, mixUp));
      second.searchParams.set('iss', 'http://evil.example');
      const grants = setup.idp.grants('authorization_code');
      const other = await nothingForwarded(setup, () => mixUp.send(second.href));
      await refusedOnce(setup, other, 400, 'login_failed');
      assert.equal(setup.idp.grants('authorization_code'), grants, 'a mixed-up response is refused before its code is spent');
    });

    it('refuses malformed callback queries (400 login_state_invalid) without a crash', async () => {
      for (const query of ['state=%E0%A4%A&code=%', 'state=%00%00&code=x', '%00=1&state=x', 'state=&code=', 'code=x', 'state[]=a&state[]=b', 'STATE=x&Code=y', `state=${'%41'.repeat(800)}`, 'state=\u00e9'.replace('\u00e9', '%C3%A9'.repeat(30))]) {
        const hop = await nothingForwarded(setup, () => new LoginClient().send(`${setup.base}/oauth2/callback?${query}`));
        await refusedOnce(setup, hop, 400, 'login_state_invalid');
      }
    });

    it('refuses a POST to a query-mode callback (405)', async () => {
      const hop = await nothingForwarded(setup, () => api(new LoginClient(), `${setup.base}/oauth2/callback`, { method: 'POST', body: 'code=a&state=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
      assert.equal(hop.status, 405);
    });
  });
});

describe('oidc login under attack, form_post response mode', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ authenticator: { responseMode: 'form_post' }, config: { oauth: { tokenHashKey: TOKEN_HASH_KEY } } });
  });
  after(async () => { await setup.close(); });

  /** The form the provider would post, and the client holding its pre-login cookie. */
  async function form(): Promise<{ client: LoginClient; fields: URLSearchParams }> {
    const client = new LoginClient();
    const { hops } = await client.follow(`${setup.base}/app/page`, {}, (url) => url.startsWith(`${setup.base}/oauth2/callback`));
    const page = hops.at(-1);
    assert.ok(page !== undefined && /name="code"/.test(page.body), 'the provider answered with its form_post page');
    const fields = new URLSearchParams();
    for (const m of page.body.matchAll(/<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"/g)) fields.append(m[1] ?? '', (m[2] ?? '').replace(/&amp;/g, '&'));
    return { client, fields };
  }
  const postForm = (client: LoginClient, body: string, contentType: string): Promise<Hop> =>
    client.send(`${setup.base}/oauth2/callback`, { method: 'POST', body, headers: { 'content-type': contentType, origin: setup.idp.issuer, 'sec-fetch-site': 'cross-site' } });

  it('logs in through a form_post callback', async () => {
    const { client, fields } = await form();
    const hop = await postForm(client, fields.toString(), 'application/x-www-form-urlencoded');
    assert.equal(hop.status, 303, hop.body);
    assert.ok(setsSession(hop));
  });

  it('refuses a form_post with another content type (415), and a GET to the callback (405)', async () => {
    for (const type of ['application/json', 'multipart/form-data; boundary=x', 'text/plain', 'application/x-www-form-urlencoded-evil']) {
      const { client, fields } = await form();
      const body = type === 'application/json' ? JSON.stringify(Object.fromEntries(fields)) : fields.toString();
      const hop = await nothingForwarded(setup, () => postForm(client, body, type));
      await refusedOnce(setup, hop, 415, 'unsupported_media_type');
      assert.ok(!setsSession(hop));
    }
    const get = await new LoginClient().send(`${setup.base}/oauth2/callback?code=a&state=b`);
    assert.equal(get.status, 405);
  });

  it('refuses a form_post over 16 KiB (413), announced or not', async () => {
    const { client, fields } = await form();
    fields.set('padding', 'p'.repeat(17_000));
    const hop = await nothingForwarded(setup, () => postForm(client, fields.toString(), 'application/x-www-form-urlencoded'));
    await refusedOnce(setup, hop, 413, 'body_too_large');
    assert.ok(!setsSession(hop));
  });

  it('refuses repeated fields in a form_post (400 login_state_invalid)', async () => {
    const { client, fields } = await form();
    fields.append('code', 'another');
    const hop = await nothingForwarded(setup, () => postForm(client, fields.toString(), 'application/x-www-form-urlencoded'));
    await refusedOnce(setup, hop, 400, 'login_state_invalid');
  });

  it('ignores a code and state put in the query of a form_post callback', async () => {
    const { client, fields } = await form();
    const hop = await nothingForwarded(setup, () => client.send(`${setup.base}/oauth2/callback?${fields.toString()}`, { method: 'POST', body: '', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: setup.idp.issuer } }));
    await refusedOnce(setup, hop, 400, 'login_state_invalid');
  });
});

/** `claims` without `name`. */
function without(claims: Record<string, unknown>, name: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([key]) => key !== name));
}

/** Cookies of a host whose names start with `prefix`, as [name, value]. */
function cookiesOf(client: LoginClient, base: string, prefix: string): [string, string][] {
  return client.cookieHeader(base).split('; ').filter((p) => p.startsWith(prefix)).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]);
}

/** The names of the cookies a response sets, as an object's keys. */
function parseSetCookieNames(hop: Hop): Record<string, true> {
  const v = hop.headers['set-cookie'];
  const lines = v === undefined ? [] : typeof v === 'string' ? [v] : v;
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), true as const]));
}

/** `idToken`'s claims signed with `key` under `header`. */
function resignWithHeader(idToken: string, key: KeyObject, header: Record<string, unknown>): string {
  const [, c = ''] = idToken.split('.');
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>;
  return signEs256(header, claims, key);
}

describe('oidc login with the provider on another site than the gateway (a browser withholding SameSite=Lax cookies from cross-site POSTs)', () => {
  for (const responseMode of ['query', 'form_post'] as const) {
    it(`completes a ${responseMode} login: the pre-login cookie reaches the callback`, async () => {
      const setup = await startOidcLogin({ host: 'localhost', authenticator: { responseMode } });
      try {
        const client = new LoginClient({ sameSite: true });
        const { final, hops } = await client.follow(`${setup.base}/app/page`);
        assert.equal(final.status, 200, hops.map((h) => `${h.status} ${h.method} ${h.url}`).join('\n'));
        assert.equal(final.url, `${setup.base}/app/page`);
        assert.ok(client.cookie(setup.base, SESSION) !== undefined);
      } finally {
        await setup.close();
      }
    });
  }
});

/** A compact JWS, HS256 under `secret`. */
function hs256(claims: Record<string, unknown>, secret: string): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

describe('one-time state markers exhausted by callbacks with junk codes', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ authenticator: { session: { maxSessions: 3 } } });
  });
  after(async () => { await setup.close(); });

  // A state is free to obtain (GET /oauth2/login). Its one-time marker is taken before the code is
  // tried, and forgotten when the provider issues no tokens for it: callbacks with made-up codes
  // cannot fill the markers' bound and lock real logins out as replays.
  it('a real login still completes after more than maxSessions junk callbacks', async () => {
    for (let i = 0; i < 5; i++) {
      const client = new LoginClient();
      const hop = await client.send(`${setup.base}/oauth2/login`);
      const state = new URL(String(hop.headers.location)).searchParams.get('state') ?? '';
      const junk = await client.send(`${setup.base}/oauth2/callback?code=junk&state=${state}`);
      assert.equal(junk.status, 400);
    }
    const { final } = await new LoginClient().follow(`${setup.base}/app/page`);
    assert.equal(final.status, 200, final.body.slice(0, 300));
  });
});
