import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { LoginClient } from './harness/login-client.js';
import { OffsetClock } from './harness/offset-clock.js';
import { ALICE, startOidcLogin, type OidcLoginSetup } from './harness/oidc-login.js';

const SESSION = '__Host-portcullis-session-web';

/** The upstream's copy of the last request for `path`. */
function upstreamSaw(setup: OidcLoginSetup, path: string) {
  const seen = setup.echo.received.filter((r) => r.url === path).at(-1);
  assert.ok(seen !== undefined, `the upstream received no request for ${path}`);
  return seen;
}

/** The Set-Cookie lines of a response. */
function setCookies(headers: Readonly<Record<string, string | string[] | undefined>>): string[] {
  const v = headers['set-cookie'];
  return v === undefined ? [] : typeof v === 'string' ? [v] : v;
}

describe('oidc login through the gateway (authorization code + PKCE, a real provider)', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ config: { routes: [
      { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'], forwardAccessToken: true },
      { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
    ] } });
  });
  after(async () => { await setup.close(); });

  it('sends a navigation without a session to the provider with PKCE S256, a state and a nonce, and sets a pre-login cookie', async () => {
    const client = new LoginClient();
    const hop = await client.send(`${setup.base}/app/page?x=1`);
    assert.equal(hop.status, 302);
    const location = new URL(String(hop.headers.location));
    assert.equal(location.origin, setup.idp.issuer);
    assert.equal(location.searchParams.get('code_challenge_method'), 'S256');
    assert.match(location.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(location.searchParams.get('state') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(location.searchParams.get('nonce') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(location.searchParams.get('redirect_uri'), `${setup.base}/oauth2/callback`);
    const [cookie] = setCookies(hop.headers);
    assert.match(cookie ?? '', /^__Host-portcullis-login-[A-Za-z0-9_-]{16}=[A-Za-z0-9_-]+; /);
    for (const attribute of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Lax']) assert.ok(cookie?.includes(attribute), `${attribute} in ${cookie}`);
    assert.ok(!/domain=/i.test(cookie ?? ''));
    assert.equal(location.searchParams.get('code_verifier'), null);
    assert.ok(!(cookie ?? '').includes(location.searchParams.get('state') ?? '--'), 'the cookie does not carry the state in clear');
  });

  it('answers an API request without a session with 401, a challenge and problem+json, not a redirect', async () => {
    const res = await request(`${setup.base}/app/data`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
    assert.equal(res.statusCode, 401);
    assert.match(String(res.headers['www-authenticate']), /^OIDC realm="portcullis", login="\/oauth2\/login"/);
    assert.match(String(res.headers['content-type']), /application\/problem\+json/);
    await res.body.dump();
  });

  it('logs in end to end: the upstream gets the identity headers and the access token, never the session cookie', async () => {
    const client = new LoginClient();
    client.setCookie(setup.base, 'theme', 'dark');
    const { final, hops } = await client.follow(`${setup.base}/app/page?x=1`);
    assert.equal(final.status, 200, hops.map((h) => `${h.status} ${h.url}`).join('\n'));
    assert.equal(final.url, `${setup.base}/app/page?x=1`);
    const callback = hops.find((h) => h.url.startsWith(`${setup.base}/oauth2/callback`));
    assert.ok(callback !== undefined);
    assert.equal(callback.status, 303);
    const session = setCookies(callback.headers).find((c) => c.startsWith(`${SESSION}=`)) ?? '';
    assert.match(session, /^__Host-portcullis-session-web=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Lax']) assert.ok(session.includes(attribute), `${attribute} in ${session}`);
    assert.ok(setCookies(callback.headers).some((c) => c.startsWith('__Host-portcullis-login-') && /Max-Age=0/i.test(c)), 'the pre-login cookie is cleared');
    const seen = upstreamSaw(setup, '/app/page?x=1');
    assert.equal(seen.headers['x-user-id'], ALICE.sub);
    assert.equal(seen.headers['x-tenant-id'], ALICE.tenant);
    assert.equal(seen.headers['x-auth-method'], 'oidc');
    assert.match(String(seen.headers.authorization), /^Bearer \S+$/);
    // The app's cookies arrive (and, on one host name, the provider's: ports share cookies); the gateway's never do.
    assert.match(String(seen.headers.cookie), /^theme=dark(; |$)/);
    assert.ok(!String(seen.headers.cookie).includes('__Host-portcullis-'), String(seen.headers.cookie));
  });

  it('logs out locally and at the provider: the session ends, the next navigation logs in again, the provider session is gone', async () => {
    const client = new LoginClient();
    await client.follow(`${setup.base}/app/page`);
    const sessionId = client.cookie(setup.base, SESSION);
    assert.ok(sessionId !== undefined);
    const { final, hops } = await client.follow(`${setup.base}/oauth2/logout?rd=/`);
    assert.equal(hops[0]?.status, 303);
    assert.ok(String(hops[0]?.headers.location).startsWith(`${setup.idp.issuer}/session/end`), String(hops[0]?.headers.location));
    assert.equal(final.url, `${setup.base}/`);
    assert.equal(client.cookie(setup.base, SESSION), undefined);
    // The old cookie, replayed, is no session any more.
    const replay = await request(`${setup.base}/app/page`, { headers: { cookie: `${SESSION}=${sessionId}`, accept: 'application/json' } });
    assert.equal(replay.statusCode, 401);
    await replay.body.dump();
    // The provider's session ended too: a silent authorization request needs a login again.
    const silent = await client.send(`${setup.idp.issuer}/auth?client_id=web&response_type=code&scope=openid&prompt=none&redirect_uri=${encodeURIComponent(`${setup.base}/oauth2/callback`)}&state=s&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`);
    const back = new URL(String(silent.headers.location ?? ''), setup.idp.issuer);
    assert.equal(back.searchParams.get('error'), 'login_required');
  });
});

describe('oidc login with response_mode=form_post', () => {
  let setup: OidcLoginSetup;
  before(async () => { setup = await startOidcLogin({ authenticator: { responseMode: 'form_post' } }); });
  after(async () => { await setup.close(); });

  it('receives the code in a POST from the provider, with a pre-login cookie that a cross-site POST carries', async () => {
    const client = new LoginClient();
    const start = await client.send(`${setup.base}/app/form`);
    assert.equal(new URL(String(start.headers.location)).searchParams.get('response_mode'), 'form_post');
    assert.match(setCookies(start.headers)[0] ?? '', /SameSite=None/);
    const { final, hops } = await client.follow(`${setup.base}/app/form`);
    assert.equal(final.status, 200, hops.map((h) => `${h.method} ${h.status} ${h.url}`).join('\n'));
    const callback = hops.find((h) => h.url === `${setup.base}/oauth2/callback`);
    assert.equal(callback?.method, 'POST');
    assert.equal(callback.status, 303);
    assert.match(setCookies(callback.headers).find((c) => c.startsWith(`${SESSION}=`)) ?? '', /SameSite=Lax/);
    assert.equal(upstreamSaw(setup, '/app/form').headers['x-user-id'], ALICE.sub);
  });

  it('removes a client\'s own Authorization on a session route: the upstream learns the user from the identity headers only', async () => {
    const client = new LoginClient();
    await client.follow(`${setup.base}/app/form`);
    const res = await request(`${setup.base}/app/with-bearer`, { headers: { cookie: client.cookieHeader(setup.base), authorization: 'Bearer chosen-by-the-client', accept: 'application/json' } });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    const seen = upstreamSaw(setup, '/app/with-bearer');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers['x-user-id'], ALICE.sub);
  });
});

describe('an ID token returned by a refresh (OpenID Connect Core 12.2)', () => {
  const clock = new OffsetClock();
  let setup: OidcLoginSetup;
  // Access tokens live 600 s and are refreshed 60 s before they expire: 550 s on, a request refreshes.
  before(async () => { setup = await startOidcLogin({ clock }); });
  after(async () => { setup.idp.tamperIdToken(null); await setup.close(); });

  const api = async (client: LoginClient): Promise<number> => {
    const res = await request(`${setup.base}/app/data`, { headers: { cookie: client.cookieHeader(setup.base), accept: 'application/json' } });
    await res.body.dump();
    return res.statusCode;
  };

  it('is kept when it is the provider\'s, about the same user; about another user it ends the session', async () => {
    const kept = new LoginClient();
    await kept.follow(`${setup.base}/app/page`);
    const ended = new LoginClient();
    await ended.follow(`${setup.base}/app/page`);
    clock.advance(550_000);
    const before = setup.idp.grants('refresh_token');
    assert.equal(await api(kept), 200);
    assert.equal(setup.idp.grants('refresh_token'), before + 1, 'refreshed');
    // The provider (its own key) answers the next refresh with an ID token about someone else.
    setup.idp.tamperIdToken((idToken, key) => {
      const [h = '', p = ''] = idToken.split('.');
      const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
      const claims = { ...JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>, sub: 'mallory' };
      const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    });
    assert.equal(await api(ended), 401, 'the session ended');
    assert.equal(setup.idp.grants('refresh_token'), before + 2);
    setup.idp.tamperIdToken(null);
    assert.equal(await api(ended), 401, 'and stays ended');
    assert.equal(await api(kept), 200, 'the other session goes on');
  });
});

describe('a method override on a session route is judged as the method it becomes', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ config: { routes: [
      { name: 'items', match: { path: '/app/**', methods: ['GET', 'POST', 'DELETE'] }, upstream: 'app', authenticate: ['web'], allowMethodOverride: true },
    ] } });
  });
  after(async () => { await setup.close(); });

  it('refuses a cross-site GET carrying _method=DELETE (a link or an image another site embeds), and admits the same override from the gateway\'s own page', async () => {
    const client = new LoginClient();
    await client.follow(`${setup.base}/app/list`);
    const cookie = client.cookieHeader(setup.base);
    const before = setup.echo.received.length;
    for (const headers of [{ 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }, { 'sec-fetch-site': 'same-site' }, {}]) {
      const res = await request(`${setup.base}/app/item/7?_method=DELETE`, { headers: { cookie, ...headers } });
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
      const problem = await res.body.json() as { type: string };
      assert.match(problem.type, /cross_site_request_refused/);
    }
    assert.equal(setup.echo.received.length, before, 'nothing forwarded');
    const own = await request(`${setup.base}/app/item/7?_method=DELETE`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    assert.equal(own.statusCode, 200);
    await own.body.dump();
    assert.equal(upstreamSaw(setup, '/app/item/7?_method=DELETE').headers['x-user-id'], ALICE.sub);
    const plain = await request(`${setup.base}/app/item/7`, { headers: { cookie, 'sec-fetch-site': 'cross-site' } });
    assert.equal(plain.statusCode, 200, 'a plain cross-site GET stays a safe method');
    await plain.body.dump();
  });
});
