// Two gateway processes sharing sessions in one Redis, in front of one echo upstream, logging in
// at one real OpenID provider. Both run on a test clock (skewed-clock.ts) that `advance()` moves
// forward by `stepMs` on both at once, so token expiry comes without waiting.
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { TokenDigester } from '../../src/authn/oauth/token-digest.js';
import { opened } from '../../src/authn/oidc/session-seal.js';
import type { SessionRecord } from '../../src/authn/oidc/session-store.js';
import { startAuthorizationServer, type LoginClientOptions, type TestAuthorizationServer } from './authorization-server.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from './echo.js';
import { LoginClient } from './login-client.js';
import { freePort } from './free-port.js';
import { startGatewayProcesses, type ConfigObject, type GatewayProcess } from './gateway.js';
import { ALICE, BOB, oidcGatewayConfig } from './oidc-login.js';
import { redisCall, startRedis, type TestRedis } from './redis.js';
import { skewedClockEnv } from './skewed-clock.js';

export const TOKEN_HASH_KEY = 'oidc-pair-token-hash-key-0123456789abcdef';
export const SESSION_COOKIE = '__Host-portcullis-session-web';
const KEY_PREFIX = 'portcullis:oauth';

export interface OidcPair {
  readonly idp: TestAuthorizationServer;
  readonly a: GatewayProcess;
  readonly b: GatewayProcess;
  /** Gateway A's base URL: the redirect URI's origin on both. */
  readonly baseA: string;
  readonly baseB: string;
  /** Moves both gateways' clocks forward by the step; resolves once both said so. */
  advance(): Promise<void>;
  /** The session record Redis holds for a session cookie value, opened with it (null: none). */
  record(cookie: string): Promise<SessionRecord | null>;
  /** The Redis keys of a session's hash and of its refresh lock. */
  redisKeys(cookie: string): { readonly session: string; readonly lock: string };
  close(): Promise<void>;
}

export interface OidcPairOptions {
  readonly redis: TestRedis;
  readonly echo: EchoUpstream;
  readonly stepMs: number;
  /** Options of the `web` authenticator over store: redis. */
  readonly authenticator?: ConfigObject;
  readonly login?: Partial<LoginClientOptions>;
  /** Which gateway the provider sends back-channel logout notices to (default a). */
  readonly backChannelTo?: 'a' | 'b';
}

/** The provider, then both gateways on ports chosen first (the provider knows A's callback and the back-channel URI). */
export async function startOidcPair(o: OidcPairOptions): Promise<OidcPair> {
  const [portA, portB] = [await freePort(), await freePort()];
  const baseA = `http://127.0.0.1:${portA}`;
  const baseB = `http://127.0.0.1:${portB}`;
  const idp = await startAuthorizationServer({
    login: {
      redirectUris: [`${baseA}/oauth2/callback`], postLogoutRedirectUris: [`${baseA}/`],
      backchannelLogoutUri: `${o.backChannelTo === 'b' ? baseB : baseA}/oauth2/back-channel-logout`,
      accounts: [ALICE, BOB], interactions: 'auto', accessTokenTtlSeconds: 600, ...o.login,
    },
  });
  const config = oidcGatewayConfig(idp, baseA, o.echo.url, {
    authenticator: { session: { store: 'redis' }, ...o.authenticator },
    config: {
      oauth: { tokenHashKey: TOKEN_HASH_KEY, redis: { url: o.redis.url, timeoutMs: 2000 } },
      routes: [
        { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'], forwardAccessToken: true },
        { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
      ],
    },
  });
  let a: GatewayProcess;
  let b: GatewayProcess;
  try {
    [a, b] = await startGatewayProcesses([
      { ...config, listen: { http: { port: portA } } },
      { ...config, listen: { http: { port: portB } } },
    ], { env: skewedClockEnv(0, o.stepMs) }) as [GatewayProcess, GatewayProcess];
  } catch (err) {
    await idp.close();
    throw err;
  }
  const digester = new TokenDigester(Buffer.from(TOKEN_HASH_KEY, 'utf8'));
  let steps = 0;
  const redisKeys = (cookie: string) => {
    const h = createHash('sha256').update(digester.ofToken(cookie), 'utf8').digest('base64url');
    return { session: `${KEY_PREFIX}:session:s:${h}`, lock: `${KEY_PREFIX}:session:lock:${h}` };
  };
  return {
    idp, a, b, baseA, baseB,
    async advance() {
      steps++;
      const said = `test clock advanced to ${steps * o.stepMs}`;
      for (const g of [a, b]) g.child.kill('SIGUSR2');
      for (const g of [a, b]) {
        if (!await g.logged(said, 10_000)) throw new Error(`gateway ${g.url} did not say "${said}"`);
      }
    },
    redisKeys,
    async record(cookie) {
      const id = digester.ofToken(cookie);
      const blob = await redisCall(o.redis, 'HGET', redisKeys(cookie).session, 'r');
      if (typeof blob !== 'string') return null;
      const json = opened({ id, secret: cookie }, blob);
      return json === null ? null : JSON.parse(json) as SessionRecord;
    },
    async close() {
      await Promise.all([a.stop(), b.stop()]);
      await idp.close();
    },
  };
}

/** What the provider's token endpoint answers to a refresh with `refreshToken` as the `web` client: the status and the error code. */
export async function tryRefresh(idp: TestAuthorizationServer, refreshToken: string): Promise<{ status: number; error: string | null }> {
  const basic = Buffer.from(`${idp.web.clientId}:${idp.web.clientSecret}`).toString('base64');
  const res = await request(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
  });
  const body = await res.body.json() as { error?: unknown };
  return { status: res.statusCode, error: typeof body.error === 'string' ? body.error : null };
}

/** An API request (no navigation headers) with the session cookie: its status, content type, the Authorization the upstream saw, and how long it took. */
export async function apiCall(base: string, path: string, cookie: string): Promise<{ status: number; type: string; authorization: string | null; code: string | null; ms: number }> {
  const started = performance.now();
  const res = await request(`${base}${path}`, {
    headers: { cookie: `${SESSION_COOKIE}=${cookie}`, accept: 'application/json' },
    headersTimeout: 30_000, bodyTimeout: 30_000,
  });
  const text = await res.body.text();
  const ms = performance.now() - started;
  let authorization: string | null = null;
  let code: string | null = null;
  try {
    const body = JSON.parse(text) as { headers?: { authorization?: unknown }; code?: unknown; type?: unknown };
    if (typeof body.headers?.authorization === 'string') authorization = body.headers.authorization;
    if (typeof body.code === 'string') code = body.code;
    else if (typeof body.type === 'string') code = body.type;
  } catch { /* not JSON */ }
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), authorization, code, ms };
}

/** Logs in through gateway A as `sub` (the provider's automatic interactions): the browser and its session cookie's value. */
export async function loginAtA(pair: OidcPair, sub = 'alice'): Promise<{ client: LoginClient; cookie: string }> {
  const client = new LoginClient();
  pair.idp.nextLogin(sub);
  const { final, hops } = await client.follow(`${pair.baseA}/app/start`);
  assert.equal(final.status, 200, hops.map((h) => `${h.status} ${h.url}`).join('\n'));
  const cookie = client.cookie(pair.baseA, SESSION_COOKIE);
  assert.ok(cookie !== undefined);
  return { client, cookie };
}

/**
 * A suite of gateway pairs over one private redis-server and one echo upstream; `start` starts a
 * pair on them. Without redis-server the suite is one skipped test saying why (under CI=true
 * startRedis throws instead: a missing server fails the run).
 */
export async function pairSuite(title: string, body: (redis: TestRedis, start: (o: Omit<OidcPairOptions, 'redis' | 'echo'>) => Promise<OidcPair>) => void): Promise<void> {
  const redis = await startRedis();
  if (typeof redis === 'string') {
    void it.skip(`${title}: ${redis}`);
    return;
  }
  void describe(title, () => {
    let echo: EchoUpstream | null = null;
    before(async () => { echo = await startEchoUpstream(); });
    after(async () => {
      const server = echo?.server;
      if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
      await redis.stop();
    });
    body(redis, (o) => startOidcPair({ ...o, redis, echo: echo as EchoUpstream }));
  });
}
