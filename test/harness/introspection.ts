// Two gateways in this process that introspect at a real authorization server (oidc-provider)
// and share their answers in a real redis-server (cache.shared), for the tests of the shared cache.
import { request } from 'undici';
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

/** A reply as the problem assertions read it. */
export interface BearerReply { status: number; headers: Record<string, string>; body: string; complete: true }

/** GET `path` on the gateway with `Authorization: Bearer <token>`, the whole reply read. */
export async function getWithBearer(gw: TestGateway, path: string, token: string): Promise<BearerReply> {
  const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

/** A gateway config with one introspection authenticator at a test-controlled endpoint (`origin`/introspect) and one route to `echoUrl`. */
export function hostileEndpointConfig(origin: string, echoUrl: string, authenticator: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...extra,
    upstreams: { echo: { targets: [echoUrl] } },
    authenticators: {
      opaque: { type: 'introspection', issuer: origin, introspectionEndpoint: `${origin}/introspect`, clientId: 'gateway', clientSecret: 'secret', audience: 'orders-api', breaker: { failures: 1000 }, ...authenticator },
    },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['opaque'] }],
  };
}
