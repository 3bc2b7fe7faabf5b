// `portcullis demo`'s browser login, end to end over HTTP as a browser does it: the printed URL,
// the provider's development login form and consent page (real HTML forms), the gateway's
// callback, the echoed identity, and logout at the gateway and the provider.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI } from './harness/gateway.js';
import { formSubmission, LoginClient, type Hop } from './harness/login-client.js';

interface Echoed { readonly headers: Readonly<Record<string, string | string[] | undefined>> }

/** Starts the demo on free ports; resolves with its output once it is running, and a stop function. */
async function startDemo(): Promise<{ stdout: string; stderr: () => string; stop: () => Promise<void> }> {
  const cleared = new Set(['PORT', 'HTTPS_PORT', 'ADMIN_PORT', 'HOST', 'DEMO_HOST', 'PORTCULLIS_DATA_DIR', 'DEMO_TLS_DIR']);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !cleared.has(name)));
  const child = spawn(process.execPath, [CLI, 'demo', '--port', '0', '--https-port', '0', '--admin-port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes('Press Ctrl+C to stop.')) resolve();
    });
    void exited.then(() => reject(new Error(`demo exited:\n${stderr}\n${stdout}`)));
  });
  clearTimeout(timer);
  return {
    stdout, stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Submits the page's first form with `fields` typed in, and follows where it leads. */
async function submit(client: LoginClient, page: Hop, fields: Record<string, string>): Promise<Hop> {
  const form = formSubmission(page, fields);
  assert.ok(form !== null, `a form on ${page.url}: ${page.body.slice(0, 300)}`);
  return (await client.follow(form.url, form.options)).final;
}

const one = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value.join(', ') : value);

describe('portcullis demo: browser login', () => {
  it('the printed URL logs in through the development login form and consent page, shows the identity, and logs out', async (t) => {
    const demo = await startDemo();
    t.after(() => demo.stop());
    const appUrl = /Open this in a browser on this machine:\n {4}(http:\/\/localhost:\d+\/app\/)\n/.exec(demo.stdout)?.[1];
    assert.ok(appUrl !== undefined, `the demo prints the login URL:\n${demo.stdout}`);
    const origin = new URL(appUrl).origin;
    const logoutUrl = /Log out \(here and at the provider\) with:\n {4}(\S+)\n/.exec(demo.stdout)?.[1];
    assert.equal(logoutUrl, `${origin}/oauth2/logout`);

    // An API call without a session is refused, not redirected.
    const api = await new LoginClient().send(appUrl, { navigate: false });
    assert.equal(api.status, 401);

    const browser = new LoginClient();
    const loginPage = (await browser.follow(appUrl)).final;
    assert.equal(loginPage.status, 200);
    assert.match(loginPage.body, /name="login"/, 'the development login form');
    assert.match(loginPage.body, /type="password"/);
    assert.notEqual(new URL(loginPage.url).origin, origin, 'the form is the provider\'s');

    const consentPage = await submit(browser, loginPage, { login: 'carol', password: 'any password' });
    assert.equal(consentPage.status, 200);
    assert.match(consentPage.body, /name="prompt" value="consent"/, 'the consent page');

    const app = await submit(browser, consentPage, {});
    assert.equal(app.status, 200, app.body);
    assert.equal(app.url, appUrl, 'back where the browser was going');
    const seen = JSON.parse(app.body) as Echoed;
    assert.deepEqual(
      ['x-user-id', 'x-user-email', 'x-roles', 'x-tenant-id', 'x-auth-method'].map((name) => one(seen.headers[name])),
      ['carol', 'carol@acme.example', 'clerk', 'acme', 'oidc'],
    );
    assert.doesNotMatch(one(seen.headers.cookie) ?? '', /__Host-portcullis-/, 'the session cookie is never forwarded');
    assert.ok(browser.cookie(origin, '__Host-portcullis-session-demo-login') !== undefined, 'the browser holds the session cookie');

    // The session serves the next request without the provider.
    const again = await browser.send(`${origin}/app/orders`);
    assert.equal(again.status, 200);
    assert.equal(one((JSON.parse(again.body) as Echoed).headers['x-user-id']), 'carol');

    // Logout: the gateway ends the session and sends the browser to the provider, which asks to confirm.
    const confirm = (await browser.follow(`${origin}/oauth2/logout`)).final;
    assert.equal(confirm.status, 200, confirm.body);
    assert.match(confirm.body, /name="logout"/, 'the provider asks to confirm');
    const loggedOut = await submit(browser, confirm, { logout: 'yes' });
    assert.equal(loggedOut.url, `${origin}/hello/logged-out`);
    assert.equal(loggedOut.status, 200);
    assert.equal((JSON.parse(loggedOut.body) as Echoed).headers['x-user-id'], undefined);

    // Logged out: the application sends the browser to log in again.
    const after = await browser.send(appUrl);
    assert.equal(after.status, 302);
    assert.ok(String(after.headers.location).startsWith(new URL(loginPage.url).origin), String(after.headers.location));
    assert.equal(demo.stderr(), '', 'no warning on loopback');
  });
});
