// A review of the oidc login by classes of attack, through the real gateway and a real provider:
// gateway cookies and the session's access token in any spelling never reach the upstream, the
// login redirect stays off requests it must not change, every Set-Cookie carries the cookie's
// attributes, and a full login, refresh and logout leave no secret in the audit trail.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { LoginClient, type Hop } from './harness/login-client.js';
import { OffsetClock } from './harness/offset-clock.js';
import { SESSION, TOKEN_HASH_KEY, loggedIn, refusedOnce, setCookies, toCallback } from './harness/oidc-attack.js';
import { startAuthorizationServer } from './harness/authorization-server.js';
import { oidcGatewayConfig, startOidcLogin, type OidcLoginSetup } from './harness/oidc-login.js';

const ROUTES = [
  { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'] },
  { name: 'tok', match: { path: '/tok/**' }, upstream: 'app', authenticate: ['web'], forwardAccessToken: true },
  { name: 'mixed', match: { path: '/mixed/**' }, upstream: 'app', authenticate: ['web', 'api'] },
  { name: 'partner', match: { path: '/partner/**' }, upstream: 'app', authenticate: ['web'], cors: 'partner' },
  { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
];
/** A jwt authenticator beside `web` on the route `mixed`. */
const API = {
  api: {
    type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'],
    publicKeys: [{ pem: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString(), kid: 'k1' }],
  },
};
const CORS = { partner: { origins: ['https://partner.example.com'], credentials: true } };

/** One HTTP/1.1 request written byte for byte (several Cookie fields, odd spellings); the status. */
function rawRequest(base: string, lines: readonly string[]): Promise<number> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('error', reject);
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
  });
}

/** Every header name and value the upstream received for `path`, as one string. */
function upstreamHeaders(setup: OidcLoginSetup, path: string): string {
  const seen = setup.echo.received.filter((r) => r.url === path).at(-1);
  assert.ok(seen !== undefined, `the upstream received no request for ${path}`);
  return seen.rawHeaders.join('\n');
}

describe('oidc login review: what reaches the upstream', () => {
  let setup: OidcLoginSetup;
  let client: LoginClient;
  let id: string;
  before(async () => {
    setup = await startOidcLogin({
      config: { oauth: { tokenHashKey: TOKEN_HASH_KEY }, cors: CORS, routes: ROUTES }, otherAuthenticators: API,
    });
    client = await loggedIn(setup);
    id = client.cookie(setup.base, SESSION) ?? '';
  });
  after(async () => { await setup.close(); });

  const spellings: readonly [string, (host: string) => string[]][] = [
    ['two Cookie fields, the session in the second', (h) => [`Host: ${h}`, 'Cookie: theme=dark', `Cookie: ${SESSION}=${id}`]],
    ['no space after the semicolon', (h) => [`Host: ${h}`, `Cookie: theme=dark;${SESSION}=${id};lang=en`]],
    ['tabs and spaces around name and value', (h) => [`Host: ${h}`, `Cookie: theme=dark;\t ${SESSION} \t=\t${id} ; lang=en`]],
    ['a lower-case field name', (h) => [`Host: ${h}`, `cookie: ${SESSION}=${id}; theme=dark`]],
    ['an upper-case field name, the session last', (h) => [`Host: ${h}`, `COOKIE: theme=dark; ${SESSION}=${id}`]],
  ];
  for (const [what, lines] of spellings) {
    it(`authenticates, and forwards neither the session cookie nor its id: ${what}`, async () => {
      const path = `/app/spelling-${what.replace(/[^a-z]+/g, '-')}`;
      const host = new URL(setup.base).host;
      assert.equal(await rawRequest(setup.base, [`GET ${path} HTTP/1.1`, ...lines(host), 'Accept: application/json']), 200, what);
      const seen = upstreamHeaders(setup, path);
      assert.ok(!seen.includes(id), `${what}: the session id reached the upstream:\n${seen}`);
      assert.ok(!seen.includes('__Host-portcullis-'), `${what}: a gateway cookie reached the upstream:\n${seen}`);
      assert.match(seen, /theme=dark/, `${what}: the application's own cookies pass`);
    });
  }

  it('sends the session\'s access token only on a route with forwardAccessToken, never on the others or a public one', async () => {
    const cookie = client.cookieHeader(setup.base);
    for (const path of ['/tok/a', '/app/a', '/']) {
      const res = await request(`${setup.base}${path}`, { headers: { cookie, accept: 'application/json' } });
      await res.body.dump();
      assert.equal(res.statusCode, 200, path);
    }
    const tokSeen = setup.echo.received.filter((r) => r.url === '/tok/a').at(-1);
    const bearer = String(tokSeen?.headers.authorization ?? '');
    assert.match(bearer, /^Bearer .{16,}$/);
    const accessToken = bearer.slice('Bearer '.length);
    for (const path of ['/app/a', '/']) {
      const seen = upstreamHeaders(setup, path);
      assert.ok(!seen.includes(accessToken), `${path}: the access token reached the upstream`);
      assert.ok(!/^authorization$/im.test(seen), `${path}: an Authorization header reached the upstream`);
    }
  });
});

describe('oidc login review: requests the login redirect must not change', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({
      config: { oauth: { tokenHashKey: TOKEN_HASH_KEY }, cors: CORS, routes: ROUTES }, otherAuthenticators: API,
    });
  });
  after(async () => { await setup.close(); });

  it('answers 401 to a navigation with an invalid bearer on a route with [oidc, jwt], not a redirect to log in', async () => {
    const hop = await new LoginClient().send(`${setup.base}/mixed/page`, { headers: { authorization: 'Bearer not.a.jwt' } });
    await refusedOnce(setup, hop, 401, 'invalid_credential');
    assert.equal(hop.headers.location, undefined);
    assert.deepEqual(setCookies(hop), [], 'no pre-login cookie for a request that presented a credential');
  });

  it('answers a CORS preflight on an oidc route from its policy, without a login redirect or a cookie', async () => {
    const hop = await new LoginClient().send(`${setup.base}/partner/items`, {
      method: 'OPTIONS', navigate: false,
      headers: { origin: 'https://partner.example.com', 'access-control-request-method': 'POST', 'sec-fetch-mode': 'cors' },
    });
    assert.ok(hop.status === 204 || hop.status === 200, `status ${hop.status}`);
    assert.equal(hop.headers.location, undefined);
    assert.deepEqual(setCookies(hop), []);
  });

  it('an XHR (Sec-Fetch-Mode: cors) without a session is 401, with no pre-login cookie', async () => {
    const hop = await new LoginClient().send(`${setup.base}/app/data`, { navigate: false, headers: { 'sec-fetch-mode': 'cors', accept: 'text/html' } });
    await refusedOnce(setup, hop, 401, 'unauthenticated');
    assert.deepEqual(setCookies(hop), []);
  });
});

describe('oidc login review: cookies and the audit trail over a whole login, refresh and logout', () => {
  const clock = new OffsetClock();
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({
      clock,
      config: { oauth: { tokenHashKey: TOKEN_HASH_KEY }, cors: CORS, routes: ROUTES }, otherAuthenticators: API,
      authenticator: { logoutAtProvider: true },
    });
  });
  after(async () => { await setup.close(); });

  it('every Set-Cookie is __Host-, Path=/, Secure, HttpOnly, SameSite, without Domain; no secret of the flow is in the audit file', async () => {
    const client = new LoginClient();
    const hops: Hop[] = [];
    const callback = await toCallback(setup, client, '/tok/start');
    const query = new URL(callback).searchParams;
    const code = query.get('code') ?? '';
    const state = query.get('state') ?? '';
    assert.ok(code.length > 8 && state.length > 8);
    const loginCookies = client.cookieHeader(setup.base).split('; ').filter((c) => c.startsWith('__Host-portcullis-login-')).map((c) => c.slice(c.indexOf('=') + 1));
    assert.equal(loginCookies.length, 1);
    const done = await client.follow(callback);
    hops.push(...done.hops);
    const sessionId = client.cookie(setup.base, SESSION) ?? '';
    assert.equal(sessionId.length, 43);
    const first = String(setup.echo.received.filter((r) => r.url === '/tok/start').at(-1)?.headers.authorization ?? '').slice(7);
    assert.ok(first.length > 16);

    // Refresh: 550 s on, the access token is within refresh.beforeExpiryMs of its end.
    clock.advance(550_000);
    const refreshed = await client.send(`${setup.base}/tok/after`, { navigate: false, headers: { accept: 'application/json' } });
    hops.push(refreshed);
    assert.equal(refreshed.status, 200);
    const second = String(setup.echo.received.filter((r) => r.url === '/tok/after').at(-1)?.headers.authorization ?? '').slice(7);
    assert.ok(second.length > 16 && second !== first, 'refreshed');

    // A failed callback (replayed) and a login started by a navigation set cookies too.
    hops.push(await new LoginClient().send(`${setup.base}/app/elsewhere`));
    hops.push(await client.send(callback));

    const logout = await client.send(`${setup.base}/oauth2/logout`, { headers: { 'sec-fetch-site': 'same-origin' } });
    hops.push(logout);
    assert.equal(logout.status, 303);
    const idToken = new URL(String(logout.headers.location)).searchParams.get('id_token_hint') ?? '';
    assert.ok(idToken.split('.').length === 3, 'logout at the provider carries the ID token as its hint');

    for (const hop of hops) {
      for (const line of setCookies(hop)) {
        if (!line.startsWith('__Host-portcullis-')) continue;
        const attributes = line.split(';').slice(1).map((a) => a.trim().toLowerCase());
        for (const needed of ['path=/', 'secure', 'httponly']) assert.ok(attributes.includes(needed), `${hop.url}: ${line} lacks ${needed}`);
        assert.ok(attributes.some((a) => a === 'samesite=lax' || a === 'samesite=none'), `${hop.url}: ${line} has no SameSite`);
        assert.ok(!attributes.some((a) => a.startsWith('domain=')), `${hop.url}: ${line} has a Domain`);
      }
    }

    await setup.gateway.auditBarrier();
    const text = await readFile(join(setup.gateway.gateway.config.dataDir, setup.gateway.gateway.config.audit.file), 'utf8');
    const secrets: [string, string][] = [
      ['authorization code', code], ['state', state], ['session id', sessionId], ['pre-login cookie', loginCookies[0] ?? ''],
      ['first access token', first], ['refreshed access token', second], ['ID token', idToken],
      ['ID token signature', idToken.split('.')[2] ?? ''],
    ];
    for (const [what, value] of secrets) {
      assert.ok(value.length >= 16, `${what} known`);
      assert.ok(!text.includes(value), `the audit file holds the ${what}`);
    }
    // One record per request, for every hop of the flow.
    const records = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { requestId?: string });
    for (const hop of hops) {
      const requestId = String(hop.headers['x-request-id']);
      assert.equal(records.filter((r) => r.requestId === requestId).length, 1, `${hop.status} ${hop.url}: one audit record`);
    }
  });
});

describe('oidc login review: reloads', () => {
  let setup: OidcLoginSetup;
  before(async () => { setup = await startOidcLogin({ config: { oauth: { tokenHashKey: TOKEN_HASH_KEY } } }); });
  after(async () => { await setup.close(); });

  const api = async (client: LoginClient, path: string): Promise<number> => {
    const res = await request(`${setup.base}${path}`, { headers: { cookie: client.cookieHeader(setup.base), accept: 'application/json' } });
    await res.body.dump();
    return res.statusCode;
  };

  it('sessions survive a reload that changes unrelated config; a reload that points the authenticator at another provider ends them', async () => {
    const client = await loggedIn(setup);
    assert.equal(await api(client, '/app/before'), 200);
    const base = oidcGatewayConfig(setup.idp, setup.base, setup.echo.url, { config: { oauth: { tokenHashKey: TOKEN_HASH_KEY } } });
    const routes = [...(base.routes as unknown[]), { name: 'extra', match: { path: '/extra/**' }, upstream: 'app', public: true }];
    await setup.gateway.writeConfig({ ...base, routes, listen: { http: { port: setup.gateway.port } } });
    assert.equal((await setup.gateway.gateway.reload()).ok, true);
    assert.equal(await api(client, '/app/unrelated'), 200, 'an unrelated change keeps the session');

    // The operator moves the authenticator to another provider (a new tenant, a compromised one
    // retired): a session whose ID token that provider never issued is no login at it.
    const other = await startAuthorizationServer({ login: { redirectUris: [`${setup.base}/oauth2/callback`], accounts: [{ sub: 'alice' }], interactions: 'auto' } });
    try {
      const moved = oidcGatewayConfig(other, setup.base, setup.echo.url, { config: { oauth: { tokenHashKey: TOKEN_HASH_KEY } } });
      await setup.gateway.writeConfig({ ...moved, listen: { http: { port: setup.gateway.port } } });
      assert.equal((await setup.gateway.gateway.reload()).ok, true);
      assert.equal(await api(client, '/app/after-issuer'), 401, 'a session of the previous provider is not admitted');
    } finally {
      await other.close();
    }
  });
});

describe('oidc login review: floods of the gateway-owned paths', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({
      config: {
        oauth: { tokenHashKey: TOKEN_HASH_KEY },
        // "Limits applied on every route": the operator's answer to a flood from one address.
        rateLimits: { perIp: { algorithm: 'fixed-window', limit: 5, per: '1h', by: ['ip'] } },
        rateLimiting: { global: ['perIp'] },
      },
    });
  });
  after(async () => { await setup.close(); });

  it('a global per-address limit covers the callback, login, logout and back-channel paths: callbacks past it make no call to the provider', async () => {
    let exchanges = 0;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      // A state is free: each login start seals one into a pre-login cookie, and stores nothing.
      const client = new LoginClient();
      const start = await client.send(`${setup.base}/oauth2/login`);
      const state = start.status === 302 ? new URL(String(start.headers.location)).searchParams.get('state') : null;
      if (state === null) { statuses.push(start.status); continue; }
      const hop = await client.send(`${setup.base}/oauth2/callback?code=made-up-${i}&state=${state}`);
      statuses.push(hop.status);
      const [record] = await setup.gateway.auditFor(String(hop.headers['x-request-id']));
      if ((record?.detail ?? '').startsWith('code exchange')) exchanges++;
    }
    assert.ok(statuses.includes(429), `the limit answered: ${statuses.join(' ')}`);
    assert.ok(exchanges <= 3, `${exchanges} code exchanges at the provider for made-up codes past a limit of 5 requests`);
    const logout = await new LoginClient().send(`${setup.base}/oauth2/logout`);
    assert.equal(logout.status, 429, 'logout');
    const backChannel = await new LoginClient().send(`${setup.base}/oauth2/back-channel-logout`, {
      method: 'POST', navigate: false, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout_token=x',
    });
    assert.equal(backChannel.status, 429, 'back-channel logout');
  });
});

describe('oidc login review: one account filling the one-time state markers', () => {
  let setup: OidcLoginSetup;
  before(async () => {
    setup = await startOidcLogin({ config: { oauth: { tokenHashKey: TOKEN_HASH_KEY } }, authenticator: { session: { maxSessions: 3, maxSessionsPerSubject: 1 } } });
  });
  after(async () => { await setup.close(); });

  // A state's one-time marker lives while its callback is handled (copies sent meanwhile are
  // refused) and is forgotten once the session exists: one account logging in again and again
  // (holding one session, as maxSessionsPerSubject ends its older ones) cannot fill the markers'
  // bound and lock every other user's login out as a replay.
  it('one user\'s repeated logins do not lock other users out of logging in', async () => {
    for (let i = 0; i < 3; i++) {
      setup.idp.nextLogin('alice');
      await loggedIn(setup);
    }
    setup.idp.nextLogin('bob');
    const { final } = await new LoginClient().follow(`${setup.base}/app/page`);
    assert.equal(final.status, 200, `bob: ${final.status} ${final.body.slice(0, 200)}`);
  });
});

describe('oidc login review: an upstream setting the gateway\'s cookies', () => {
  let setup: OidcLoginSetup;
  let planter: Server;
  /** What the upstream of /marketing/** answers with: a session id of its choosing (fixation), the removal of the user's. */
  let planted: string[] = [];
  before(async () => {
    planter = createServer((_req, res) => { res.writeHead(200, { 'set-cookie': planted, 'content-type': 'text/plain' }); res.end('ok'); });
    await new Promise<void>((resolve) => planter.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(planter.address() as AddressInfo).port}`;
    setup = await startOidcLogin({
      config: {
        oauth: { tokenHashKey: TOKEN_HASH_KEY },
        upstreams: { app: { targets: [url] } },
        routes: [
          { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'] },
          { name: 'marketing', match: { path: '/marketing/**' }, upstream: 'app', public: true },
        ],
      },
    });
  });
  after(async () => {
    await setup.close();
    await new Promise<void>((resolve) => planter.close(() => resolve()));
  });

  it('drops an upstream\'s Set-Cookie for a gateway cookie name (session fixation, forced logout), in any spelling, and keeps the application\'s own', async () => {
    const attacker = await loggedIn(setup);
    const attackerId = attacker.cookie(setup.base, SESSION) ?? '';
    const victim = await loggedIn(setup);
    const victimId = victim.cookie(setup.base, SESSION) ?? '';
    for (const line of [
      `${SESSION}=${attackerId}; Path=/; Secure; HttpOnly; SameSite=Lax`,
      ` ${SESSION}=${attackerId}; Path=/; Secure`,
      `${SESSION}=; Path=/; Secure; Max-Age=0`,
      `__HOST-portcullis-session-web=${attackerId}; Path=/; Secure`,
      `__Host-portcullis-login-AAAAAAAAAAAAAAAA=x; Path=/; Secure`,
    ]) {
      planted = [line, 'app-pref=1; Path=/'];
      const hop = await victim.send(`${setup.base}/marketing/page`, { navigate: false });
      assert.equal(hop.status, 200);
      assert.deepEqual(setCookies(hop), ['app-pref=1; Path=/'], `${line}: only the application's own cookie reaches the browser`);
      assert.equal(victim.cookie(setup.base, SESSION), victimId, line);
    }
  });
});
