// Open redirects through the gateway's OIDC login (CWE-601): the return path of /oauth2/login,
// /oauth2/logout and of the navigation that started a login, in every encoded form. Wherever the
// browser ends up after login or logout, it is a path on the gateway's own origin (or the
// provider, for the login itself).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LoginClient, type Hop } from './harness/login-client.js';
import { SESSION, loggedIn, refusedOnce } from './harness/oidc-attack.js';
import { startOidcLogin, type OidcLoginSetup } from './harness/oidc-login.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

/** A Location a browser resolves to the gateway's own origin: one `/`, not `//` or `/\`. */
function assertSameOrigin(location: unknown, what: string): void {
  assert.equal(typeof location, 'string', `${what}: a Location`);
  const value = String(location);
  assert.ok(value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\'), `${what}: Location ${JSON.stringify(value)}`);
  assert.ok(!/[\t\r\n\\]/.test(value), `${what}: Location ${JSON.stringify(value)} has no TAB, CR, LF or backslash`);
  assert.equal(new URL(value, 'https://gateway.example').origin, 'https://gateway.example', `${what}: Location ${JSON.stringify(value)} stays on the origin`);
}

/**
 * Return values an attacker puts where a return path goes, sent percent-encoded as a whole
 * (`encodeURIComponent`), so each arrives decoded exactly as written here.
 */
const HOSTILE = [
  '//evil.com', '///evil.com', '////evil.com/x', '/\\evil.com', '\\\\evil.com', '/\\/evil.com', '\\/evil.com',
  'https://evil.com', 'http:evil.com', 'https:/evil.com', 'HTTPS://evil.com', 'javascript:alert(1)', 'data:text/html,<script>x</script>',
  '/%2fevil.com', '/%2Fevil.com', '%2f%2fevil.com', '/%5cevil.com', '/%5Cevil.com', '/%252f%252fevil.com', '/%25252fevil.com',
  '/\t/evil.com', '/\n/evil.com', '/\r\n/evil.com', '/%09/evil.com', '/%0a/evil.com', '/%0d%0aSet-Cookie:x=1', '/%00/evil.com',
  '/..//evil.com', '/app/../..//evil.com', '/./..//evil.com', '/%2e%2e//evil.com', '/.%2e//evil.com',
  '/\u3000/evil.com', '/\uff0fevil.com', '/\u2215evil.com', ' //evil.com', '\t//evil.com', '@evil.com', 'evil.com', '',
  '//evil.com@gateway', '/@evil.com', '/app?next=//evil.com', '/app#//evil.com',
  '/oauth2/login?rd=//evil.com', '/oauth2/logout?rd=%2F%2Fevil.com', '/oauth2/callback?error=x&state=y',
];

describe('open redirects through the oidc login and logout', () => {
  let setup: OidcLoginSetup;
  before(async () => { setup = await startOidcLogin(); });
  after(async () => { await setup.close(); });

  /** Follows a whole login from `start`; asserts the callback's Location, and returns it. */
  async function loginFrom(client: LoginClient, start: string, what: string): Promise<string> {
    const { hops } = await client.follow(start, {}, (url) => !url.startsWith(setup.base) && !url.startsWith(setup.idp.issuer));
    const first = hops[0] as Hop;
    assert.equal(first.status, 302, `${what}: ${first.body.slice(0, 200)}`);
    assert.ok(String(first.headers.location).startsWith(`${setup.idp.issuer}/`), `${what}: the login goes to the provider`);
    const callback = hops.find((h) => h.url.startsWith(`${setup.base}/oauth2/callback`));
    assert.ok(callback !== undefined, `${what}: ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`);
    assert.equal(callback.status, 303);
    assertSameOrigin(callback.headers.location, what);
    for (const hop of hops) {
      const location = hop.headers.location;
      if (typeof location === 'string') {
        const target = new URL(location, hop.url).origin;
        assert.ok(target === new URL(setup.base).origin || target === setup.idp.issuer, `${what}: hop to ${location}`);
      }
    }
    return String(callback.headers.location);
  }

  for (const rd of HOSTILE) {
    it(`/oauth2/login?rd=${JSON.stringify(rd)} comes back to a same-origin path`, async () => {
      await loginFrom(new LoginClient(), `${setup.base}/oauth2/login?rd=${encodeURIComponent(rd)}`, rd);
    });
  }

  it('keeps a plain same-origin return path as it is', async () => {
    assert.equal(await loginFrom(new LoginClient(), `${setup.base}/oauth2/login?rd=${encodeURIComponent('/app/a/b?x=1&y=%20')}`, 'plain'), '/app/a/b?x=1&y=%20');
  });

  it('takes the first and only rd: repeated rd parameters return to /', async () => {
    assert.equal(await loginFrom(new LoginClient(), `${setup.base}/oauth2/login?rd=/app/a&rd=//evil.com`, 'repeated'), '/');
  });

  it('unencoded hostile rd values in the raw query come back to a same-origin path', async () => {
    // A raw backslash in a request target is refused before any route.
    const backslash = await new LoginClient().send(`${setup.base}/oauth2/login?rd=/\\evil.com`);
    await refusedOnce(setup, backslash, 400, 'invalid_target');
    for (const query of ['rd=//evil.com', 'rd=%2F%2Fevil.com', 'rd=/%09/evil.com', 'rd=https:%2F%2Fevil.com', 'rd=/%E3%80%80/evil.com', 'rd=%', 'rd=%zz']) {
      await loginFrom(new LoginClient(), `${setup.base}/oauth2/login?${query}`, query);
    }
  });

  for (const rd of HOSTILE) {
    it(`/oauth2/logout?rd=${JSON.stringify(rd)} without a session goes to a same-origin path`, async () => {
      const hop = await new LoginClient().send(`${setup.base}/oauth2/logout?rd=${encodeURIComponent(rd)}`);
      await refusedOnce(setup, hop, 303, 'logout_completed');
      assertSameOrigin(hop.headers.location, rd);
    });
  }

  it('logout with a session and a hostile rd goes to the provider, which returns to the registered post-logout URI only', async () => {
    const client = await loggedIn(setup);
    const { hops, final } = await client.follow(`${setup.base}/oauth2/logout?rd=${encodeURIComponent('//evil.com')}`);
    assert.ok(String(hops[0]?.headers.location).startsWith(`${setup.idp.issuer}/session/end`));
    assert.ok(!String(hops[0]?.headers.location).includes('evil.com'));
    assert.equal(final.url, `${setup.base}/`);
    assert.equal(client.cookie(setup.base, SESSION), undefined);
  });

  describe('the navigation that starts a login', () => {
    /** A navigation sent as raw bytes (targets fetch would normalise); its login completed through `client`. */
    async function navigate(target: string): Promise<{ status: number; location: string | null }> {
      const res = await rawRequest(setup.gateway.port, requestHead('GET', target, ['Accept: text/html', 'Sec-Fetch-Mode: navigate', 'Connection: close']), { settleMs: 0 });
      if (res.status !== 302) return { status: res.status, location: res.headers.location ?? null };
      const location = res.headers.location ?? '';
      assert.ok(location.startsWith(`${setup.idp.issuer}/`), `${target}: a login redirect goes to the provider, not ${location}`);
      const client = new LoginClient();
      const cookie = /^(__Host-portcullis-login-[A-Za-z0-9_-]{16})=([A-Za-z0-9_-]+)/.exec(res.headers['set-cookie'] ?? '');
      assert.ok(cookie !== null, `${target}: a pre-login cookie`);
      client.setCookie(setup.base, cookie[1] ?? '', cookie[2] ?? '');
      const { hops } = await client.follow(location, {}, (url) => !url.startsWith(setup.base) && !url.startsWith(setup.idp.issuer));
      const callback = hops.find((h) => h.url.startsWith(`${setup.base}/oauth2/callback`));
      assert.ok(callback !== undefined, target);
      assertSameOrigin(callback.headers.location, target);
      return { status: 302, location: String(callback.headers.location) };
    }

    const targets = [
      '//evil.com/app/x', '///evil.com/app/x', '/\\evil.com/app/x', '/app/..%2f..%2f/evil.com', '/app/..%2f', '/app/%2f%2fevil.com',
      '/app/%5c%5cevil.com', '/app/\\evil.com', '/app//evil.com', '/app/x?next=//evil.com', '/app/%09/evil.com', '/app/../..//evil.com',
      '/app/%2e%2e/%2e%2e//evil.com', '/app/x/..//..//evil.com', 'http://evil.com/app/x', '/app/%00',
    ];
    for (const target of targets) {
      it(`GET ${target}: any login it starts returns to a same-origin path`, async () => {
        const { status, location } = await navigate(target);
        if (status !== 302) {
          assert.ok(status >= 400 && status < 500, `${target}: ${status}`);
          assert.equal(location, null, `${target}: no Location on a ${status}`);
        }
      });
    }

    it('a plain navigation comes back where it was going', async () => {
      assert.deepEqual(await navigate('/app/page?x=1'), { status: 302, location: '/app/page?x=1' });
    });
  });
});
