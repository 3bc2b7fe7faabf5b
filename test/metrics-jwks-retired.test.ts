// A JWK Set a reload removes or replaces leaves the JWKS metrics: an issuer URL that could not be
// fetched, then fixed in the config and reloaded, must not keep `portcullis_jwks_up 0` and
// `portcullis_jwks_keys 0` (and so PortcullisJwksFailing / PortcullisJwksNeverLoaded firing) until
// the next restart; nor do reloads that change URLs pile up series. Alone and under --workers (the
// primary writes these metrics for the host). Real JWKS servers and gateways on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { admin, ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject } from './harness/gateway.js';
import { JwksServer, testKey } from './harness/jwt.js';

function config(echo: EchoUpstream, jwksUri: string): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: 'https://idp.retired.test/', jwksUri, audience: 'api', algorithms: ['ES256'], jwks: { cooldownMs: 100, timeoutMs: 2000 } } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
  };
}

/** The JWKS series of /metrics, as `name{labels} value` lines. */
async function jwksSeries(adminUrl: string): Promise<string[]> {
  return (await call(`${adminUrl}/metrics`)).body.split('\n').filter((l) => l.startsWith('portcullis_jwks_'));
}

async function reload(adminUrl: string): Promise<void> {
  const res = await admin(adminUrl, 'POST', '/admin/reload', {});
  assert.equal(res.status, 200, res.body);
  assert.equal((JSON.parse(res.body) as { changed: boolean }).changed, true, res.body);
}

describe('JWKS metrics follow the config in effect', () => {
  let broken: JwksServer;
  let fixed: JwksServer;
  let echo: EchoUpstream;
  before(async () => {
    const key = await testKey('ES256', 'retired-1');
    broken = await JwksServer.start([key]);
    broken.mode = 'error';
    fixed = await JwksServer.start([key]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await broken.close();
    await fixed.close();
    await echo.close();
  });

  it('a gateway alone: the URL a reload replaced has no series left; the new one reads up', async () => {
    const gw = await startGateway(config(echo, broken.url));
    try {
      const before = await jwksSeries(gw.adminUrl);
      assert.ok(before.includes(`portcullis_jwks_up{uri="${broken.url}"} 0`), before.join('\n'));
      await gw.writeConfig(config(echo, fixed.url));
      await reload(gw.adminUrl);
      const series = await jwksSeries(gw.adminUrl);
      assert.ok(!series.some((l) => l.includes(broken.url)), series.join('\n'));
      assert.ok(series.includes(`portcullis_jwks_up{uri="${fixed.url}"} 1`), series.join('\n'));
      assert.ok(series.includes(`portcullis_jwks_keys{uri="${fixed.url}"} 1`), series.join('\n'));
      // And back: the URL in effect again gets its series again, the other loses its own.
      await gw.writeConfig(config(echo, broken.url));
      await reload(gw.adminUrl);
      const back = await jwksSeries(gw.adminUrl);
      assert.ok(!back.some((l) => l.includes(fixed.url)), back.join('\n'));
      assert.ok(back.includes(`portcullis_jwks_up{uri="${broken.url}"} 0`), back.join('\n'));
    } finally {
      await gw.close();
    }
  });

  it('under --workers: the primary drops the series of the URL every worker stopped using', async () => {
    const gw = await startGatewayProcess(config(echo, broken.url), { args: ['--workers', '1'] });
    try {
      await waitUntil('the primary reports the broken set', async () => (await jwksSeries(gw.adminUrl)).includes(`portcullis_jwks_up{uri="${broken.url}"} 0`), 10_000);
      await gw.writeConfig(config(echo, fixed.url));
      await reload(gw.adminUrl);
      const series = await jwksSeries(gw.adminUrl);
      assert.ok(!series.some((l) => l.includes(broken.url)), series.join('\n'));
      assert.ok(series.includes(`portcullis_jwks_up{uri="${fixed.url}"} 1`), series.join('\n'));
    } finally {
      await gw.stop();
    }
  });
});
