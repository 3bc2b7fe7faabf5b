// A real OAuth 2.0 authorization server for tests: oidc-provider on a free loopback port, with
// introspection (RFC 7662), revocation (RFC 7009), client credentials and resource indicators
// (RFC 8707). Tokens for users are minted through the provider's own models (no browser needed);
// machine tokens come from its token endpoint. Nothing here is mocked: every call the gateway
// makes reaches the provider's real endpoints.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type ClientMetadata } from 'oidc-provider';

/** A client the provider knows. `gateway*` clients introspect; `service` and `worker` get machine tokens. */
export interface TestClient {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** Resource servers (RFC 8707) the provider issues access tokens for; `format` decides opaque or JWT. */
export interface TestResource {
  readonly audience: string;
  readonly format: 'opaque' | 'jwt';
  readonly scope: string;
  /** Access token lifetime in seconds (default 600). */
  readonly ttlSeconds?: number;
}

/** A user of the provider: its claims (the ID token and userinfo carry them for the scopes asked). */
export interface TestAccount {
  readonly sub: string;
  readonly email?: string;
  readonly roles?: readonly string[];
  readonly tenant?: string;
}

/**
 * The browser login client `web` (authorization code + PKCE, refresh tokens, back-channel logout).
 * `interactions: 'auto'` logs the next account in without a page (HTTP clients); `'form'` shows
 * oidc-provider's development login form (any login name, any password) for a browser.
 */
export interface LoginClientOptions {
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris?: readonly string[];
  readonly backchannelLogoutUri?: string;
  readonly accounts: readonly TestAccount[];
  readonly interactions: 'auto' | 'form';
  /** Access token lifetime in seconds (default 600). */
  readonly accessTokenTtlSeconds?: number;
  /** client_secret_basic (default) or client_secret_post. */
  readonly tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface AuthorizationServerOptions {
  readonly resources?: readonly TestResource[];
  /** Adds the login client `web`. */
  readonly login?: LoginClientOptions;
  /** Lifetime of client-credentials tokens without a resource (default 600 s). */
  readonly clientCredentialsTtlSeconds?: number;
}

export interface TestAuthorizationServer {
  /** The issuer, `http://127.0.0.1:<port>` (no trailing slash). */
  readonly issuer: string;
  readonly port: number;
  readonly provider: Provider;
  /** client_secret_basic. */
  readonly gateway: TestClient;
  /** client_secret_post. */
  readonly gatewayPost: TestClient;
  /** private_key_jwt: its private key (ES256) and key id. */
  readonly gatewayKeyJwt: { readonly clientId: string; readonly privateKey: KeyObject; readonly privateKeyPem: string; readonly kid: string };
  /** A machine client allowed the client_credentials grant (client_secret_basic). */
  readonly service: TestClient;
  /** Calls made to each endpoint path since start (`/token/introspection`, `/token`, …). */
  calls(path: string): number;
  /** The login client (with `login` options). */
  readonly web: TestClient;
  /** Successful token grants of `grantType` (`authorization_code`, `refresh_token`) since start. */
  grants(grantType: string): number;
  /** With `interactions: 'auto'`: the account the next login logs in as (default: the first). */
  nextLogin(sub: string): void;
  /** The provider's signing key (ES256, kid `as-key-1`): a test signs logout tokens and forged ID tokens the provider would have. */
  readonly signingKey: KeyObject;
  /** Rewrites the ID token of the next token responses (the test's hostile provider); null restores. */
  tamperIdToken(rewrite: ((idToken: string, signingKey: KeyObject) => string) | null): void;
  /** Back-channel logout notices the provider sent (to backchannelLogoutUri) and their answers' status. */
  readonly backchannelLogouts: { status: number }[];
  /**
   * An opaque access token for `subject`, minted through the provider's models with `claims` as
   * extra token claims (returned by introspection), for `resource` when given.
   */
  userToken(subject: string, options?: { scope?: string; claims?: Record<string, unknown>; resource?: string; ttlSeconds?: number; clientId?: string }): Promise<string>;
  /** A client-credentials token from the token endpoint (opaque without `resource`). */
  clientCredentials(options?: { scope?: string; resource?: string; client?: TestClient }): Promise<{ access_token: string; expires_in: number; token_type: string }>;
  /** The provider's introspection answer for `token` (RFC 7662), asked as the `gateway` client. */
  introspect(token: string): Promise<Record<string, unknown>>;
  /** Revokes a token at the provider's revocation endpoint (RFC 7009), as `client`. */
  revoke(token: string, client?: TestClient): Promise<void>;
  /** Stops answering (the port is closed); `start` opens it again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function basic(client: TestClient): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`;
}

/** Starts oidc-provider on a free loopback port. */
export async function startAuthorizationServer(options: AuthorizationServerOptions = {}): Promise<TestAuthorizationServer> {
  const resources = options.resources ?? [];
  const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const clientKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const clientJwk = { ...clientKey.publicKey.export({ format: 'jwk' }), kid: 'gateway-key-1', alg: 'ES256', use: 'sig' };
  const gateway: TestClient = { clientId: 'gateway', clientSecret: 'gateway-secret-0123456789abcdef0123' };
  const gatewayPost: TestClient = { clientId: 'gateway-post', clientSecret: 'gateway-post-secret-0123456789abcdef' };
  const service: TestClient = { clientId: 'service', clientSecret: 'service-secret-0123456789abcdef01234' };
  const web: TestClient = { clientId: 'web', clientSecret: 'web-secret-0123456789abcdef0123456789' };
  const login = options.login;
  const allScopes = [...new Set(['orders:read', 'orders:write', ...resources.flatMap((r) => r.scope.split(' '))])];
  const clients: ClientMetadata[] = [
    { client_id: gateway.clientId, client_secret: gateway.clientSecret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: 'client_secret_basic', scope: allScopes.join(' ') },
    { client_id: gatewayPost.clientId, client_secret: gatewayPost.clientSecret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: 'client_secret_post', scope: allScopes.join(' ') },
    { client_id: 'gateway-key', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [clientJwk] }, scope: allScopes.join(' ') },
    { client_id: service.clientId, client_secret: service.clientSecret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: 'client_secret_basic', scope: allScopes.join(' ') },
  ];
  if (login !== undefined) {
    clients.push({
      client_id: web.clientId, client_secret: web.clientSecret, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: [...login.redirectUris], post_logout_redirect_uris: [...(login.postLogoutRedirectUris ?? [])],
      ...(login.backchannelLogoutUri === undefined ? {} : { backchannel_logout_uri: login.backchannelLogoutUri, backchannel_logout_session_required: true }),
      id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: login.tokenEndpointAuthMethod ?? 'client_secret_basic',
    });
  }
  const accounts = new Map((login?.accounts ?? []).map((a) => [a.sub, a]));
  let nextAccount = login?.accounts[0]?.sub ?? 'alice';
  let tamper: ((idToken: string, signingKey: KeyObject) => string) | null = null;
  const grantCounts = new Map<string, number>();
  const backchannelLogouts: { status: number }[] = [];

  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const byAudience = new Map(resources.map((r) => [r.audience, r]));
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [{ ...signing.privateKey.export({ format: 'jwk' }), kid: 'as-key-1', alg: 'ES256', use: 'sig' }] },
    scopes: ['openid', ...allScopes],
    ...(login === undefined ? {} : {
      findAccount: (_ctx: unknown, id: string) => {
        const account = accounts.get(id) ?? { sub: id };
        return { accountId: id, claims: () => ({ sub: id, ...(account.email === undefined ? {} : { email: account.email }), ...(account.roles === undefined ? {} : { roles: [...account.roles] }), ...(account.tenant === undefined ? {} : { tenant_id: account.tenant }) }) };
      },
      claims: { openid: ['sub'], email: ['email'], profile: ['roles', 'tenant_id'] },
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      issueRefreshToken: () => true,
      rotateRefreshToken: () => true,
      cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    }),
    features: {
      devInteractions: { enabled: login?.interactions === 'form' },
      backchannelLogout: { enabled: login !== undefined },
      rpInitiatedLogout: {
        enabled: true,
        // The confirmation form submits itself: a browser (or the test's HTTP client) goes on at once.
        // A script's submit() sends no button's value, so it adds `logout=yes` itself: without it the
        // provider ends only this client's part of the session and keeps the user logged in.
        logoutSource: (ctx, form) => { ctx.body = `<!doctype html><html><body>${form}<script>const f = document.forms[0]; const yes = document.createElement('input'); yes.type = 'hidden'; yes.name = 'logout'; yes.value = 'yes'; f.append(yes); f.submit()</script><noscript><button form="op.logoutForm" name="logout" value="yes">Log out</button></noscript></body></html>`; },
      },
      introspection: { enabled: true },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No resource asked for: an opaque token without an audience.
        defaultResource: () => undefined as unknown as string,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          const known = byAudience.get(resource);
          if (known === undefined) throw new errors.InvalidTarget();
          return {
            audience: known.audience,
            scope: known.scope,
            accessTokenTTL: known.ttlSeconds ?? 600,
            accessTokenFormat: known.format,
            ...(known.format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
          };
        },
      },
    },
    ttl: {
      ClientCredentials: options.clientCredentialsTtlSeconds ?? 600,
      AccessToken: login?.accessTokenTtlSeconds ?? 600,
      ...(login === undefined ? {} : { RefreshToken: 86_400, Session: 86_400, Grant: 86_400, Interaction: 3600, IdToken: 3600, AuthorizationCode: 60 }),
    },
    // Claims added when a token is minted through the models (userToken) are returned by introspection.
    extraTokenClaims: (_ctx, token) => (token as unknown as { extra?: Record<string, unknown> }).extra ?? undefined,
    enabledJWA: { clientAuthSigningAlgValues: ['ES256', 'RS256', 'EdDSA'] },
  });
  provider.proxy = false;
  const counts = new Map<string, number>();
  provider.use(async (ctx, next) => {
    counts.set(ctx.path, (counts.get(ctx.path) ?? 0) + 1);
    // `auto` interactions: the next account logs in and consents to what was asked, with no page.
    if (login?.interactions === 'auto' && ctx.path.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const clientId = String(details.params.client_id);
      const grant = new provider.Grant({ accountId: nextAccount, clientId });
      grant.addOIDCScope(String(details.params.scope));
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: nextAccount }, consent: { grantId } }, { mergeWithLastSubmission: false });
      return;
    }
    await next();
    if (tamper !== null && ctx.path === '/token' && ctx.status === 200 && typeof (ctx.body as { id_token?: unknown } | undefined)?.id_token === 'string') {
      const body = ctx.body as { id_token: string };
      ctx.body = { ...body, id_token: tamper(body.id_token, signing.privateKey) };
    }
  });
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params?.grant_type;
    const type = typeof grantType === 'string' ? grantType : '';
    grantCounts.set(type, (grantCounts.get(type) ?? 0) + 1);
  });
  provider.on('backchannel.success', () => { backchannelLogouts.push({ status: 200 }); });
  provider.on('backchannel.error', () => { backchannelLogouts.push({ status: 0 }); });
  const callback = provider.callback();
  server.on('request', (req, res) => { void callback(req, res); });

  const clientObject = async (clientId: string) => {
    const client = await provider.Client.find(clientId);
    if (client === undefined) throw new Error(`unknown client ${clientId}`);
    return client;
  };

  let open = true;
  return {
    issuer, port, provider, gateway, gatewayPost, service,
    gatewayKeyJwt: { clientId: 'gateway-key', privateKey: clientKey.privateKey, privateKeyPem: clientKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), kid: clientJwk.kid },
    calls: (path) => counts.get(path) ?? 0,
    web,
    grants: (type) => grantCounts.get(type) ?? 0,
    nextLogin(sub) { nextAccount = sub; },
    tamperIdToken(rewrite) { tamper = rewrite; },
    signingKey: signing.privateKey,
    backchannelLogouts,
    async userToken(subject, o = {}) {
      const clientId = o.clientId ?? service.clientId;
      const client = await clientObject(clientId);
      const grant = new provider.Grant({ accountId: subject, clientId });
      const scope = o.scope ?? 'orders:read';
      if (o.resource !== undefined) grant.addResourceScope(o.resource, scope);
      else grant.addOIDCScope(scope);
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: subject, client, grantId, scope, gty: 'authorization_code',
        ...(o.claims === undefined ? {} : { extra: o.claims }),
        ...(o.ttlSeconds === undefined ? {} : { expiresIn: o.ttlSeconds }),
      });
      if (o.resource !== undefined) {
        const info = byAudience.get(o.resource);
        if (info === undefined) throw new Error(`unknown resource ${o.resource}`);
        token.resourceServer = { audience: info.audience, scope: info.scope, accessTokenFormat: info.format, ...(info.format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}) };
      }
      return token.save();
    },
    async clientCredentials(o = {}) {
      const client = o.client ?? service;
      const body = new URLSearchParams({ grant_type: 'client_credentials', scope: o.scope ?? 'orders:read' });
      if (o.resource !== undefined) body.set('resource', o.resource);
      const res = await fetch(`${issuer}/token`, { method: 'POST', headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' }, body });
      const json = await res.json() as { access_token: string; expires_in: number; token_type: string; error?: string };
      if (res.status !== 200) throw new Error(`token endpoint answered ${res.status}: ${JSON.stringify(json)}`);
      return json;
    },
    async introspect(token) {
      const res = await fetch(`${issuer}/token/introspection`, {
        method: 'POST', headers: { authorization: basic(gateway), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }),
      });
      return await res.json() as Record<string, unknown>;
    },
    async revoke(token, client = gateway) {
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST', headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }),
      });
      if (res.status !== 200) throw new Error(`revocation endpoint answered ${res.status}: ${await res.text()}`);
    },
    async stop() {
      if (!open) return;
      open = false;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async start() {
      if (open) return;
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); }); });
      open = true;
    },
    async close() {
      if (!open) return;
      open = false;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
