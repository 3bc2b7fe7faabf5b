// Browser login through the gateway in a real browser (headless Chromium driven by playwright-core):
// the provider's own login and consent pages, the session cookie as the browser keeps it, a token
// refresh reached by moving the gateway's clock, logout at the gateway and at the provider, and a
// form POST from another origin of the same site refused (SameSite=Lax does not stop it: the
// Origin / Sec-Fetch-Site check must).
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startAuthorizationServer, type TestAuthorizationServer } from './harness/authorization-server.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { freePort } from './harness/free-port.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { OffsetClock } from './harness/offset-clock.js';
import { ALICE, BOB, oidcGatewayConfig } from './harness/oidc-login.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SESSION = '__Host-portcullis-session-web';
/** The provider's access token lifetime, and how long before its end the gateway refreshes it. */
const ACCESS_TTL_MS = 120_000;
const REFRESH_BEFORE_MS = 30_000;
/** Every wait in the browser is bounded by this; a whole step by STEP_MS. */
const WAIT_MS = 10_000;
const STEP_MS = 30_000;

/** Why the browser cannot run here, or null. Under CI=true a missing browser is a failure, not a skip. */
function chromiumMissing(): string | null {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return null;
  } catch {
    return 'chromium is not installed (Debian: apt-get install chromium)';
  }
}
const missing = chromiumMissing();

/** What the echo upstream saw, as the page shows it (the upstream answers with JSON of the request). */
interface Echoed { readonly method: string; readonly url: string; readonly headers: Readonly<Record<string, string | undefined>> }

async function echoedOnPage(page: Page): Promise<Echoed> {
  // Chromium shows a JSON document as text in a <pre> (its JSON viewer adds controls beside it).
  const text = await page.locator('pre').first().textContent({ timeout: WAIT_MS });
  return JSON.parse(text ?? '') as Echoed;
}

/** A page on another origin of the same site (another loopback port) that posts a form to `target` as soon as it loads. */
async function startCrossOriginPage(target: string): Promise<{ url: string; server: Server }> {
  const html = `<!doctype html><html><body><form method="post" action="${target}"><input name="amount" value="1000"><input name="to" value="mallory"></form><script>document.forms[0].submit()</script></body></html>`;
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end(html); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

describe('oidc login in a real browser (headless Chromium)', { skip: process.env.CI === 'true' ? false : missing ?? false }, () => {
  const clock = new OffsetClock();
  let idp: TestAuthorizationServer;
  let echo: EchoUpstream;
  let gateway: TestGateway;
  let base = '';
  let browser: Browser | null = null;
  let context: BrowserContext;
  let page: Page;
  let attacker: { url: string; server: Server } | null = null;
  let firstBearer = '';

  before(async () => {
    if (missing !== null) throw new Error(missing);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await startAuthorizationServer({
      login: {
        redirectUris: [`${base}/oauth2/callback`], postLogoutRedirectUris: [`${base}/`], backchannelLogoutUri: `${base}/oauth2/back-channel-logout`,
        accounts: [ALICE, BOB], interactions: 'form', accessTokenTtlSeconds: ACCESS_TTL_MS / 1000,
      },
    });
    echo = await startEchoUpstream();
    const config = oidcGatewayConfig(idp, base, echo.url, {
      authenticator: { refresh: { beforeExpiryMs: REFRESH_BEFORE_MS } },
      config: { routes: [
        { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'], forwardAccessToken: true },
        { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
      ] },
    });
    gateway = await startGateway({ ...config, listen: { http: { port } } }, { clock });
    browser = await chromium.launch({
      executablePath: CHROMIUM, timeout: STEP_MS,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // A fresh context: a profile of its own, no cookies from anything before.
    context = await browser.newContext();
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    page = await context.newPage();
  }, { timeout: 2 * STEP_MS });

  after(async () => {
    // Closing the browser ends its contexts and removes the temporary profile it launched with.
    await browser?.close();
    if (attacker !== null) await new Promise<void>((resolve) => { attacker?.server.close(() => resolve()); attacker?.server.closeAllConnections(); });
    await gateway?.close();
    await echo?.close();
    await idp?.close();
  });

  it('sends a navigation to the provider\'s login form, then back to the page with the identity headers after login and consent', { timeout: STEP_MS }, async () => {
    await page.goto(`${base}/app/page?x=1`);
    assert.ok(page.url().startsWith(`${idp.issuer}/interaction/`), page.url());
    await page.locator('input[name="login"]').fill(ALICE.sub);
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();
    // The consent page has the same address as the login form: wait for its form, not for a URL.
    await page.locator('form:has(input[name="prompt"][value="consent"]) button[type="submit"]').click();
    await page.waitForURL(`${base}/app/page?x=1`);
    const seen = await echoedOnPage(page);
    assert.equal(seen.url, '/app/page?x=1');
    assert.equal(seen.headers['x-user-id'], ALICE.sub);
    assert.equal(seen.headers['x-tenant-id'], ALICE.tenant);
    assert.equal(seen.headers['x-auth-method'], 'oidc');
    assert.match(seen.headers.authorization ?? '', /^Bearer \S+$/);
    firstBearer = seen.headers.authorization ?? '';
    assert.ok(!(seen.headers.cookie ?? '').includes('__Host-portcullis-'), `gateway cookies reached the upstream: ${seen.headers.cookie}`);
    assert.equal(idp.grants('authorization_code'), 1);
  });

  it('keeps the session cookie as set (__Host-, Secure, HttpOnly, SameSite=Lax), out of reach of the page\'s scripts', { timeout: STEP_MS }, async () => {
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === SESSION);
    assert.ok(session !== undefined, `no session cookie in ${cookies.map((c) => c.name).join(', ')}`);
    assert.match(session.value, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(session.path, '/');
    assert.equal(session.domain, '127.0.0.1', 'host-only: no Domain attribute');
    assert.ok(!cookies.some((c) => c.name.startsWith('__Host-portcullis-login-')), 'the pre-login cookie is gone after the callback');
    const scriptSees = await page.evaluate<string>('document.cookie');
    assert.ok(!scriptSees.includes('portcullis'), `document.cookie shows ${scriptSees}`);
  });

  it('refuses a form POST from another origin of the same site, with a valid session: 403, nothing upstream', { timeout: STEP_MS }, async () => {
    attacker = await startCrossOriginPage(`${base}/app/transfer`);
    const posted = page.waitForResponse((r) => r.url() === `${base}/app/transfer` && r.request().method() === 'POST');
    await page.goto(attacker.url);
    const response = await posted;
    assert.equal(response.status(), 403);
    assert.match(await response.text(), /cross_site_request_refused/);
    // SameSite=Lax let the cookie go (the page is same-site): only the gateway's origin check stopped it.
    const sent = await response.request().allHeaders();
    assert.equal(sent.origin, attacker.url.replace(/\/$/, ''));
    assert.equal(sent['sec-fetch-site'], 'same-site');
    assert.match(sent.cookie ?? '', new RegExp(`(^|; )${SESSION}=`));
    assert.equal(echo.received.filter((r) => r.url.startsWith('/app/transfer')).length, 0, 'the upstream received the cross-site POST');
  });

  it('lets the same POST through from the gateway\'s own page (the refusal is about the origin, not the method)', { timeout: STEP_MS }, async () => {
    await page.goto(`${base}/app/page`);
    const status = await page.evaluate(async () => {
      const res = await fetch('/app/transfer', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'amount=1&to=bob' });
      return res.status;
    });
    assert.equal(status, 200);
    const received = echo.received.filter((r) => r.url === '/app/transfer');
    assert.equal(received.length, 1);
    assert.equal(received[0]?.method, 'POST');
    assert.equal(received[0]?.headers['x-user-id'], ALICE.sub);
  });

  it('refreshes the access token once the gateway\'s clock passes the refresh point; the page stays logged in', { timeout: STEP_MS }, async () => {
    await page.reload();
    assert.equal((await echoedOnPage(page)).headers.authorization, firstBearer, 'no refresh before the refresh point');
    assert.equal(idp.grants('refresh_token'), 0);
    clock.advance(ACCESS_TTL_MS - REFRESH_BEFORE_MS + 5_000);
    await page.reload();
    const seen = await echoedOnPage(page);
    assert.equal(seen.headers['x-user-id'], ALICE.sub);
    assert.match(seen.headers.authorization ?? '', /^Bearer \S+$/);
    assert.notEqual(seen.headers.authorization, firstBearer, 'the upstream sees the refreshed access token');
    assert.equal(idp.grants('refresh_token'), 1);
    await page.reload();
    assert.equal((await echoedOnPage(page)).headers.authorization, seen.headers.authorization);
    assert.equal(idp.grants('refresh_token'), 1, 'one refresh, not one per request');
  });

  it('logs out at the gateway and the provider: the post-logout page, no session cookie, a new login needed, no provider session', { timeout: STEP_MS }, async () => {
    await page.goto(`${base}/oauth2/logout?rd=/`);
    // The provider's end-session page confirms itself and sends the browser to postLogoutRedirectUri.
    await page.waitForURL(`${base}/`);
    assert.equal((await echoedOnPage(page)).url, '/');
    assert.ok(!(await context.cookies(base)).some((c) => c.name === SESSION), 'the session cookie is gone');
    // The provider's session ended too: a silent authorization request comes back with login_required.
    const callback = page.waitForRequest((r) => r.url().startsWith(`${base}/oauth2/callback?`));
    const silent = new URL(`${idp.issuer}/auth`);
    for (const [k, v] of Object.entries({
      client_id: idp.web.clientId, response_type: 'code', scope: 'openid', prompt: 'none', redirect_uri: `${base}/oauth2/callback`,
      state: 'silent-check', code_challenge: 'a'.repeat(43), code_challenge_method: 'S256',
    })) silent.searchParams.set(k, v);
    await page.goto(silent.href);
    assert.equal(new URL((await callback).url()).searchParams.get('error'), 'login_required');
    // And the protected page asks for a login again.
    await page.goto(`${base}/app/page`);
    assert.ok(page.url().startsWith(`${idp.issuer}/interaction/`), page.url());
    await page.locator('input[name="login"]').waitFor({ state: 'visible' });
    assert.equal(echo.received.filter((r) => r.url === '/app/page').length, 4, 'the upstream saw the page only while logged in');
  });
});
