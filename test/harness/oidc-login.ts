// A gateway with an oidc authenticator in front of an echo upstream, and a real OpenID provider
// whose `web` client is registered for that gateway's callback, logout and back-channel paths.
import type { Clock } from '../../src/lib/clock.js';
import { freePort } from './free-port.js';
import { startAuthorizationServer, type LoginClientOptions, type TestAuthorizationServer } from './authorization-server.js';
import { startEchoUpstream, type EchoUpstream } from './echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './gateway.js';

export interface OidcLoginSetup {
  readonly idp: TestAuthorizationServer;
  readonly echo: EchoUpstream;
  readonly gateway: TestGateway;
  /** `http://127.0.0.1:<gateway port>`. */
  readonly base: string;
  close(): Promise<void>;
}

export interface OidcLoginOptions {
  /** Options of the `web` authenticator over the defaults (issuer, client, redirectUri). */
  readonly authenticator?: ConfigObject;
  /** Top-level config over the defaults (upstream `app`, routes `/app/**` and `/`). */
  readonly config?: ConfigObject;
  /** Authenticators beside `web` (a route may list several). */
  readonly otherAuthenticators?: ConfigObject;
  readonly login?: Partial<LoginClientOptions>;
  /** The gateway's host name in its URLs (default 127.0.0.1). */
  readonly host?: string;
  /** The gateway's clock (default the system's). */
  readonly clock?: Clock;
}

export const ALICE = { sub: 'alice', email: 'alice@example.com', roles: ['reader', 'writer'], tenant: 'tenant-a' } as const;
export const BOB = { sub: 'bob', email: 'bob@example.com', roles: ['reader'], tenant: 'tenant-b' } as const;

/** The config of a gateway whose routes `/app/**` need a login through `idp`. */
export function oidcGatewayConfig(idp: TestAuthorizationServer, base: string, echoUrl: string, options: Pick<OidcLoginOptions, 'authenticator' | 'config' | 'otherAuthenticators'> = {}): ConfigObject {
  return {
    upstreams: { app: { targets: [echoUrl] } },
    authenticators: {
      web: {
        type: 'oidc', issuer: idp.issuer, clientId: idp.web.clientId, clientSecret: idp.web.clientSecret,
        redirectUri: `${base}/oauth2/callback`, postLogoutRedirectUri: `${base}/`,
        claims: { tenant: 'tenant_id' },
        ...options.authenticator,
      },
      ...options.otherAuthenticators,
    },
    routes: [
      { name: 'app', match: { path: '/app/**' }, upstream: 'app', authenticate: ['web'] },
      { name: 'home', match: { path: '/' }, upstream: 'app', public: true },
    ],
    ...options.config,
  };
}

/** Starts the provider, the echo upstream and the gateway (on a port chosen first, so the provider knows the callback). */
export async function startOidcLogin(options: OidcLoginOptions = {}): Promise<OidcLoginSetup> {
  const port = await freePort();
  const base = `http://${options.host ?? '127.0.0.1'}:${port}`;
  const idp = await startAuthorizationServer({
    login: {
      redirectUris: [`${base}/oauth2/callback`], postLogoutRedirectUris: [`${base}/`], backchannelLogoutUri: `${base}/oauth2/back-channel-logout`,
      accounts: [ALICE, BOB], interactions: 'auto', ...options.login,
    },
  });
  const echo = await startEchoUpstream();
  const config = oidcGatewayConfig(idp, base, echo.url, options);
  const gateway = await startGateway({ ...config, listen: { http: { port } } }, options.clock === undefined ? {} : { clock: options.clock });
  return {
    idp, echo, gateway, base,
    async close() {
      await gateway.close();
      await new Promise<void>((resolve) => echo.server.close(() => resolve()));
      await idp.close();
    },
  };
}
