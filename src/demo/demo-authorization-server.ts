// The demo's OAuth 2.0 authorization server: oidc-provider on a loopback port, with token
// introspection (RFC 7662), revocation (RFC 7009), the client credentials grant and resource
// indicators (RFC 8707). Its signing key, client secrets and cookie keys are made at start; its
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

/** Starts the demo's authorization server on a free port of 127.0.0.1 (it serves nothing else). */
export async function startDemoAuthorizationServer(): Promise<DemoAuthorizationServer> {
  const gateway: DemoClient = { clientId: 'gateway', clientSecret: secret() };
  const service: DemoClient = { clientId: 'demo-service', clientSecret: secret() };
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
  const provider = new Provider(issuer, {
    adapter: boundedStore(),
    clients: [confidential(gateway), confidential(service)],
    jwks: { keys: [{ ...signing.privateKey.export({ format: 'jwk' }), kid: randomBytes(6).toString('base64url'), alg: 'ES256', use: 'sig' }] },
    cookies: { keys: [secret()] },
    scopes: ['openid', ...SCOPES],
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
    // Minted tokens carry their claims in `extra`; introspection returns them.
    extraTokenClaims: (_ctx, token) => (token as unknown as { extra?: Record<string, unknown> }).extra,
    features: {
      devInteractions: { enabled: false },
      // Only the gateway learns what a token means.
      introspection: { enabled: true, allowedPolicy: (_ctx, client) => client.clientId === gateway.clientId },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => DEMO_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== DEMO_RESOURCE) throw new errors.InvalidTarget();
          return resourceServer;
        },
      },
    },
    ttl: { AccessToken: TOKEN_TTL_SECONDS, ClientCredentials: TOKEN_TTL_SECONDS, Grant: TOKEN_TTL_SECONDS },
  });
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
