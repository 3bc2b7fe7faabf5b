// Browser sessions under `start --workers`: memory sessions would live in one worker while the
// browser's next request reaches another, so they are refused before any worker starts; Redis
// sessions are the host's, whichever worker a request reaches.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startAuthorizationServer, type TestAuthorizationServer } from './harness/authorization-server.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { freePort } from './harness/free-port.js';
import { startGatewayProcess } from './harness/gateway.js';
import { LoginClient } from './harness/login-client.js';
import { ALICE, oidcGatewayConfig } from './harness/oidc-login.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const SESSION = '__Host-portcullis-session-web';

describe('oidc sessions under start --workers', () => {
  let redis: TestRedis | string;
  let idp: TestAuthorizationServer;
  let echo: EchoUpstream;
  let port: number;
  let base: string;
  before(async () => {
    redis = await startRedis();
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await startAuthorizationServer({ login: { redirectUris: [`${base}/oauth2/callback`], accounts: [ALICE], interactions: 'auto' } });
    echo = await startEchoUpstream();
  });
  after(async () => {
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
    await idp.close();
    if (typeof redis !== 'string') await redis.stop();
  });

  it('refuses memory sessions before any worker starts, naming the option and the fix', async () => {
    const config = { ...oidcGatewayConfig(idp, base, echo.url), listen: { http: { port } } };
    await assert.rejects(startGatewayProcess(config, { args: ['--workers', '2'], timeoutMs: 20_000 }),
      /authenticators\.web\.session\.store: memory sessions live in one process, and start --workers runs several: use store: redis/);
  });

  it('shares Redis sessions between the workers: every request of a logged-in browser is served, whichever worker takes it', async (t) => {
    if (typeof redis === 'string') { t.skip(redis); return; }
    const config = {
      ...oidcGatewayConfig(idp, base, echo.url, { authenticator: { session: { store: 'redis' } } }),
      oauth: { tokenHashKey: 'workers-test-token-hash-key-0123456789', redis: { url: redis.url } },
      listen: { http: { port } },
    };
    const gateway = await startGatewayProcess(config, { args: ['--workers', '2'], timeoutMs: 30_000 });
    try {
      const client = new LoginClient();
      const { final } = await client.follow(`${base}/app/page`);
      assert.equal(final.status, 200, final.body.slice(0, 300));
      const cookie = `${SESSION}=${client.cookie(base, SESSION) ?? ''}`;
      // Each request on a fresh connection: the primary spreads connections over the workers.
      const statuses = await Promise.all(Array.from({ length: 20 }, async () => {
        const res = await request(`${base}/app/data`, { headers: { cookie, connection: 'close', accept: 'application/json' } });
        await res.body.dump();
        return res.statusCode;
      }));
      assert.deepEqual(statuses, Array.from({ length: 20 }, () => 200));
      const subjects = new Set(echo.received.filter((r) => r.url === '/app/data').map((r) => r.headers['x-user-id']));
      assert.deepEqual([...subjects], [ALICE.sub]);
    } finally {
      await gateway.stop();
    }
  });
});
