// Readiness of whole processes: under `start --workers` the primary's /readyz reports the host (its
// own components and every worker's), and `start --wait-ready` waits for readiness or stops with one
// line naming what is not ready. Real CLI processes and a real JWKS server on loopback; only
// observable events (a log line, /readyz, the exit) are waited for.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcess, type ConfigObject } from './harness/gateway.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://idp.readiness.test/';

interface ReadyBody {
  ready: boolean;
  components: Record<string, { ready: boolean; reason?: string; [detail: string]: unknown }>;
}

async function readyz(adminUrl: string): Promise<{ status: number; body: ReadyBody }> {
  const res = await call(`${adminUrl}/readyz`);
  return { status: res.status, body: JSON.parse(res.body) as ReadyBody };
}

function config(echo: EchoUpstream, jwksUri: string): ConfigObject {
  return {
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri, audience: 'api', algorithms: ['ES256'], jwks: { cooldownMs: 100, timeoutMs: 2000 } } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
  };
}

describe('readiness of gateway processes', () => {
  let key: TestKey;
  let jwks: JwksServer;
  let echo: EchoUpstream;
  before(async () => {
    key = await testKey('ES256', 'proc-1');
    jwks = await JwksServer.start([key]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await jwks.close();
    await echo.close();
  });

  it('under --workers, the primary reports every worker: not ready while the issuer is down, ready once it answers', async () => {
    jwks.mode = 'error';
    const gw = await startGatewayProcess(config(echo, jwks.url), { args: ['--workers', '2'] });
    try {
      const down = await readyz(gw.adminUrl);
      assert.equal(down.status, 503);
      assert.match(down.body.components['authenticator:users']?.reason ?? '', /^worker \d+: JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json has not been loaded/);
      assert.equal(down.body.components.workers?.ready, true, 'both workers listen on one version');
      assert.equal(down.body.components['listener:http']?.ready, true);
      assert.ok(await gw.logged('gateway not ready yet'), 'the primary logs that the host is not ready');
      jwks.mode = 'ok';
      await waitUntil('the host turns ready once the issuer answers', async () => (await readyz(gw.adminUrl)).status === 200, 15_000);
      assert.ok(await gw.logged('"gateway ready"'), 'the primary logs the change');
      const token = await mint(key, { iss: ISS, aud: 'api', sub: 'u1' });
      assert.equal((await call(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    } finally {
      await gw.stop();
      jwks.mode = 'ok';
    }
  });

  it('start --wait-ready returns once ready and keeps serving', async () => {
    jwks.mode = 'ok';
    const gw = await startGatewayProcess(config(echo, jwks.url), { args: ['--wait-ready', '20s'] });
    try {
      assert.ok(await gw.logged('"gateway ready"'));
      assert.equal((await readyz(gw.adminUrl)).status, 200);
      assert.equal(gw.child.exitCode, null, 'still running');
    } finally {
      await gw.stop();
    }
  });

  it('start --wait-ready stops with one line naming what is not ready and exits 1', async () => {
    jwks.mode = 'error';
    const gw = await startGatewayProcess(config(echo, jwks.url), { args: ['--wait-ready', '1s'] });
    try {
      assert.equal(await gw.exited, 1);
      const stderr = gw.stderr.join('');
      assert.match(stderr, /^portcullis: not ready within 1000 ms \(--wait-ready\), so the gateway stopped: authenticator:users \(JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json has not been loaded \(last fetch: HTTP 500\)\)\n$/);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    } finally {
      await gw.stop();
      jwks.mode = 'ok';
    }
  });
});
