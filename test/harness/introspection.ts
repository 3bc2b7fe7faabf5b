// Two gateways in this process that introspect at a real authorization server (oidc-provider)
// and share their answers in a real redis-server (cache.shared), for the tests of the shared cache.
import { startAuthorizationServer, type TestAuthorizationServer } from './authorization-server.js';
import { startEchoUpstream, type EchoUpstream } from './echo.js';
import { startGateway, type TestGateway } from './gateway.js';
import { startRedis, type TestRedis } from './redis.js';

export interface SharedCacheSetup {
  readonly redis: TestRedis;
  readonly as: TestAuthorizationServer;
  readonly echo: EchoUpstream;
  readonly gateways: readonly [TestGateway, TestGateway];
  close(): Promise<void>;
}

/** Starts the setup, or returns startRedis's one-line reason when redis-server is missing (it throws under CI=true). */
export async function startSharedCacheGateways(tokenHashKey: string): Promise<SharedCacheSetup | string> {
  const redis = await startRedis();
  if (typeof redis === 'string') return redis;
  const as = await startAuthorizationServer();
  const echo = await startEchoUpstream();
  const config = {
    oauth: { tokenHashKey, redis: { url: redis.url, timeoutMs: 200 } },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { opaque: { type: 'introspection', issuer: as.issuer, clientId: as.gateway.clientId, clientSecret: as.gateway.clientSecret, cache: { shared: true } } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['opaque'] }],
  };
  const gateways = [await startGateway(config), await startGateway(config)] as const;
  return {
    redis, as, echo, gateways,
    async close() {
      for (const gw of gateways) await gw.close();
      await redis.stop();
      await echo.close();
      await as.close();
    },
  };
}
