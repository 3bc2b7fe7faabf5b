// The demo's OAuth 2.0 authorization server: oidc-provider on a loopback port, with token
// introspection (RFC 7662), revocation (RFC 7009), the client credentials grant and resource
// indicators (RFC 8707), and, when asked, an OpenID provider for the gateway's browser login
// (authorization code, refresh tokens, RP-initiated and back-channel logout) with oidc-provider's
// development login form. Its signing key, client secrets and cookie keys are made at start; its
// tokens live in a bounded in-memory store and end with the demo.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type Adapter, type AdapterPayload, type ClientMetadata } from 'oidc-provider';
import { freshKeyPair } from '../lib/key-pair.js';

/** The resource (RFC 8707) the demo's opaque tokens are for: their `aud`, and the audience the quickstart's introspection authenticator expects. */
export const DEMO_RESOURCE = 'urn:portcullis:demo';

/** The scopes the demo's clients may ask for. */
const SCOPES = ['orders:read'];

/** How long the server's tokens live (seconds), like the demo's JWTs. */
const TOKEN_TTL_SECONDS = 3600;

/** Most artifacts (tokens, grants) the server keeps; the oldest goes first. */
const MAX_STORED = 10_000;

/** A confidential client: its id and the secret made for this run. */
export interface DemoClient {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** Where the gateway's browser login lives: the URLs registered for the login client. */
export interface DemoLoginOptions {
  /** The gateway's callback, as the browser reaches it: `http://localhost:8080/oauth2/callback`. */
  readonly redirectUri: string;
  /** Where the provider sends the browser after logging out. */
  readonly postLogoutRedirectUri: string;
  /** Where the provider POSTs logout tokens (OpenID Connect Back-Channel Logout 1.0). */
  readonly backChannelLogoutUri: string;
}

/** The login client's id at the demo's provider. */
export const DEMO_LOGIN_CLIENT = 'demo-web';

/**
 * The claims of an account of the development login form, which accepts any name: the name is the
 * subject, and every account is a clerk of tenant acme with an address made from the name.
 */
export function demoAccountClaims(name: string): { sub: string; name: string; email: string; email_verified: boolean; roles: string[]; tenant: string } {
  const local = name.toLowerCase().replace(/[^a-z0-9._-]+/g, '.').replace(/^\.+|\.+$/g, '') || 'user';
  return { sub: name, name, email: `${local}@acme.example`, email_verified: false, roles: ['clerk'], tenant: 'acme' };
}

export interface DemoAuthorizationServer {
  /** The issuer, `http://127.0.0.1:<port>`: also the discovery base (`/.well-known/openid-configuration`). */
  readonly issuer: string;
  readonly introspectionEndpoint: string;
  readonly tokenEndpoint: string;
  readonly revocationEndpoint: string;
  /** The client the gateway introspects as (client_secret_basic). */
  readonly gateway: DemoClient;
  /** A machine client allowed the client credentials grant (client_secret_basic). */
  readonly service: DemoClient;
  /** The browser login client (authorization code + refresh token), when started with login options. */
  readonly login: DemoClient | null;
  /**
   * An opaque access token for `subject`, minted through the provider's models (no browser login),
   * for DEMO_RESOURCE with `scope`; `claims` are returned by introspection beside the standard ones.
   */
  userToken(subject: string, scope: string, claims: Readonly<Record<string, unknown>>): Promise<string>;
  close(): Promise<void>;
}

/**
 * oidc-provider's storage: one bounded map for every model, entries dropped at their expiry (the
 * provider's own memory store is shared by every provider of the process and warns when used).
 */
function boundedStore(): (model: string) => Adapter {
  const entries = new Map<string, { readonly payload: AdapterPayload; readonly expiresAt: number }>();
  const live = (key: string): AdapterPayload | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) { entries.delete(key); return undefined; }
    return entry.payload;
  };
  const findBy = (field: 'uid' | 'userCode', value: string): AdapterPayload | undefined => {
    for (const key of entries.keys()) {
      const payload = live(key);
      if (payload?.[field] === value) return payload;
    }
    return undefined;
  };
  const done = Promise.resolve();
  return (model) => ({
    upsert: (id, payload, expiresIn) => {
      const key = `${model}:${id}`;
      entries.delete(key);
      if (entries.size >= MAX_STORED) entries.delete(entries.keys().next().value ?? '');
      entries.set(key, { payload, expiresAt: Date.now() + expiresIn * 1000 });
      return done;
    },
    find: (id) => Promise.resolve(live(`${model}:${id}`)),
    findByUid: (uid) => Promise.resolve(findBy('uid', uid)),
    findByUserCode: (userCode) => Promise.resolve(findBy('userCode', userCode)),
    consume: (id) => {
      const payload = live(`${model}:${id}`);
      if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
      return done;
    },
    destroy: (id) => {
      entries.delete(`${model}:${id}`);
      return done;
    },
    revokeByGrantId: (grantId) => {
      for (const [key, entry] of entries) if (entry.payload.grantId === grantId) entries.delete(key);
      return done;
    },
  });
}

/** A secret for this run: 256 bits, base64url (safe in a shell line and in `curl -u`). */
const secret = (): string => randomBytes(32).toString('base64url');

/** A page of the provider's own (logout confirmation, logged out, errors): plain, with the form given. */
function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;
}

/**
 * Starts the demo's authorization server on a free port of 127.0.0.1 (it serves nothing else);
 * with `login`, also the login client and the development login form (any name, any password).
 */
export async function startDemoAuthorizationServer(options: { readonly login?: DemoLoginOptions } = {}): Promise<DemoAuthorizationServer> {
  const gateway: DemoClient = { clientId: 'gateway', clientSecret: secret() };
  const service: DemoClient = { clientId: 'demo-service', clientSecret: secret() };
  const loginOptions = options.login;
  const login: DemoClient | null = loginOptions === undefined ? null : { clientId: DEMO_LOGIN_CLIENT, clientSecret: secret() };
  const clients: ClientMetadata[] = [];
  if (loginOptions !== undefined && login !== null) {
    clients.push({
      client_id: login.clientId, client_secret: login.clientSecret, token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: [loginOptions.redirectUri], post_logout_redirect_uris: [loginOptions.postLogoutRedirectUri],
      backchannel_logout_uri: loginOptions.backChannelLogoutUri, backchannel_logout_session_required: true,
      id_token_signed_response_alg: 'ES256',
    });
  }
  const signing = freshKeyPair({ type: 'ec', namedCurve: 'P-256' });
  const confidential = (client: DemoClient): ClientMetadata => ({
    client_id: client.clientId, client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: SCOPES.join(' '),
    id_token_signed_response_alg: 'ES256',
  });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const resourceServer = { audience: DEMO_RESOURCE, scope: SCOPES.join(' '), accessTokenTTL: TOKEN_TTL_SECONDS, accessTokenFormat: 'opaque' } as const;
  const provider = withoutDevInteractionsWarning(() => new Provider(issuer, {
    adapter: boundedStore(),
    clients: [confidential(gateway), confidential(service), ...clients],
    jwks: { keys: [{ ...signing.privateKey.export({ format: 'jwk' }), kid: randomBytes(6).toString('base64url'), alg: 'ES256', use: 'sig' }] },
    cookies: { keys: [secret()] },
    scopes: ['openid', ...SCOPES],
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => demoAccountClaims(id) }),
    // The gateway maps roles and tenant from the ID token: put the scopes' claims in it.
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'roles', 'tenant'] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    // Refresh tokens without offline_access (which would need prompt=consent every login); rotated at each use.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    renderError: (ctx, out) => { ctx.type = 'html'; ctx.body = page('Error', `<p>${escapeHtml(out.error)}: ${escapeHtml(out.error_description ?? '')}</p>`); },
    // Minted tokens carry their claims in `extra`; introspection returns them.
    extraTokenClaims: (_ctx, token) => (token as unknown as { extra?: Record<string, unknown> }).extra,
    features: {
      // The development login form (any name, any password) and consent page, for the demo's browser login.
      devInteractions: { enabled: login !== null },
      backchannelLogout: { enabled: login !== null },
      rpInitiatedLogout: {
        enabled: login !== null,
        logoutSource: (ctx, form) => { ctx.type = 'html'; ctx.body = page('Log out of the demo provider?', `${form}<button form="op.logoutForm" name="logout" value="yes">Yes, log out</button> <button form="op.logoutForm">No, stay logged in</button>`); },
        postLogoutSuccessSource: (ctx) => { ctx.type = 'html'; ctx.body = page('Logged out', '<p>You are logged out of the demo provider.</p>'); },
      },
      // Only the gateway learns what a token means.
      introspection: { enabled: true, allowedPolicy: (_ctx, client) => client.clientId === gateway.clientId },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The login client's access tokens are for the provider's userinfo endpoint, not the demo API.
        defaultResource: (_ctx, client) => (client?.clientId === DEMO_LOGIN_CLIENT ? undefined : DEMO_RESOURCE) as string,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== DEMO_RESOURCE) throw new errors.InvalidTarget();
          return resourceServer;
        },
      },
    },
    ttl: {
      AccessToken: TOKEN_TTL_SECONDS, ClientCredentials: TOKEN_TTL_SECONDS, Grant: TOKEN_TTL_SECONDS,
      IdToken: TOKEN_TTL_SECONDS, RefreshToken: 12 * TOKEN_TTL_SECONDS, Session: 12 * TOKEN_TTL_SECONDS, Interaction: TOKEN_TTL_SECONDS,
    },
  }));
  provider.proxy = false;
  const callback = provider.callback();
  server.on('request', (req, res) => { void callback(req, res); });

  return {
    issuer,
    introspectionEndpoint: `${issuer}/token/introspection`,
    tokenEndpoint: `${issuer}/token`,
    revocationEndpoint: `${issuer}/token/revocation`,
    gateway,
    service,
    login,
    async userToken(subject, scope, claims) {
      const client = await provider.Client.find(service.clientId);
      if (client === undefined) throw new Error(`demo authorization server: client ${service.clientId} is missing`);
      const grant = new provider.Grant({ accountId: subject, clientId: service.clientId });
      grant.addResourceScope(DEMO_RESOURCE, scope);
      const grantId = await grant.save();
      const token = new provider.AccessToken({ accountId: subject, client, grantId, scope, gty: 'authorization_code', extra: { ...claims } });
      token.resourceServer = resourceServer;
      return token.save();
    },
    close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Runs `make` with oidc-provider's warning that its development interactions are enabled left
 * out: the demo enables them on purpose and says so in its own words (the login form is a
 * development one), and its output on loopback is otherwise free of warnings. Other warnings pass.
 */
function withoutDevInteractionsWarning<T>(make: () => T): T {
  /* eslint-disable no-console -- oidc-provider writes its warnings with console.warn; only this one is held back */
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('devInteractions is enabled')) return;
    warn(...args);
  };
  try {
    return make();
  } finally {
    console.warn = warn;
  }
  /* eslint-enable no-console */
}
