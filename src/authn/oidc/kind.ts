import { Type, type Static } from '@sinclair/typebox';
import { Bytes, Duration, formatted, Millis, Realm, strict } from '../../config/schema-parts.js';
import { parseDuration } from '../../lib/duration.js';
import { secureUrlProblem } from '../../lib/secure-url.js';
import { authenticatorKind, type AuthenticatorCompileContext } from '../authenticator-kind.js';
import { CLAIM_RULE_DEFAULTS, CLAIM_RULE_FIELDS, compileClaimRules } from '../claims/claim-rules.js';
import { JWS_ALGORITHMS, type JwsAlgorithm } from '../jwt/algorithms.js';
import { CLIENT_AUTH_FIELDS, compileClientAuthentication } from '../oauth/client-authentication.js';
import { MemorySessionStore } from './memory-session-store.js';
import { OidcAuthenticator } from './oidc-authenticator.js';
import { OidcLogin } from './oidc-login.js';
import { OidcProviderClient, type OidcProviderOptions } from './oidc-provider-client.js';
import { RedisSessionStore } from './redis-session-store.js';
import type { SessionStore } from './session-store.js';

const Url = (description: string) => Type.String({ minLength: 1, maxLength: 2048, description });
const Path = (description: string) => formatted('^/[A-Za-z0-9._~!$&\'()*+,;=:@/-]{0,255}$', 'an absolute path like /oauth2/logout: / then up to 255 URL path characters', { description });

/** The options of `type: oidc`. */
export const OidcAuthenticatorSchema = strict({
  type: Type.Literal('oidc'),
  issuer: Url('The OpenID provider\'s issuer identifier; its metadata is discovered at {issuer}/.well-known/openid-configuration and must name the same issuer. https, or http on a loopback host only.'),
  clientId: Type.String({ minLength: 1, maxLength: 256, description: 'The gateway\'s client id at the provider (a confidential client with the authorization code grant).' }),
  ...CLIENT_AUTH_FIELDS,
  redirectUri: Url('The callback URL registered at the provider, absolute: https://app.example.com/oauth2/callback. Its path is served by the gateway (the callback); its origin is the gateway\'s own for the same-origin checks. https, or http on a loopback host only.'),
  scopes: Type.Optional(Type.Array(formatted('^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$', 'a scope token: 1 to 128 printable ASCII characters without spaces, " or \\\\'), { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Scopes asked for; openid is required. Add offline_access where the provider issues refresh tokens only for it. Default ["openid","profile","email"].' })),
  responseMode: Type.Optional(Type.Unsafe<'query' | 'form_post'>({ type: 'string', enum: ['query', 'form_post'], description: 'How the provider returns the code: query (a redirect) or form_post (an auto-submitted POST; the code never appears in a URL). Default query.' })),
  prompt: Type.Optional(formatted('^(none|login|consent|select_account)( (none|login|consent|select_account))*$', 'none, login, consent or select_account, or several of them separated by spaces', { description: 'The prompt parameter of every authorization request (consent, for instance, where offline_access needs it). Absent: no prompt is sent.' })),
  algorithms: Type.Optional(Type.Array(Type.Unsafe<JwsAlgorithm>({ type: 'string', enum: JWS_ALGORITHMS.filter((a) => !a.startsWith('HS')) }), { minItems: 1, uniqueItems: true, description: 'ID token and logout token signature algorithms accepted (asymmetric only). Default ["RS256","PS256","ES256","EdDSA"].' })),
  userinfo: Type.Optional(Type.Boolean({ description: 'Also read the userinfo endpoint at login and refresh; its claims are mapped over the ID token\'s. Default false.' })),
  postLogoutRedirectUri: Type.Optional(Url('Where the provider sends the browser after RP-initiated logout; registered at the provider. Absent: the provider\'s own page.')),
  logoutAtProvider: Type.Optional(Type.Boolean({ description: 'Local logout also ends the provider\'s session (RP-Initiated Logout: a redirect to its end_session_endpoint, when it has one). Default true.' })),
  loginPath: Type.Optional(Path('Starts a login: GET {loginPath}?rd=/where/to/return. Default: beside the callback path, …/login.')),
  logoutPath: Type.Optional(Path('Ends the session: GET or POST {logoutPath}?rd=/where/to/return. Default: beside the callback path, …/logout.')),
  backChannelLogoutPath: Type.Optional(Path('Where the provider POSTs logout tokens (OpenID Connect Back-Channel Logout 1.0); register {origin}{path} as the client\'s backchannel_logout_uri. Default: beside the callback path, …/back-channel-logout.')),
  clockSkewMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 300000, description: 'Leeway for exp, iat and auth_time of ID and logout tokens. Default 30000.' })),
  timeoutMs: Type.Optional(Millis('Every exchange with the provider (discovery, keys, token, userinfo), connect to last byte. Default 5000.')),
  maxResponseBytes: Type.Optional(Bytes('Largest response read from the provider. Default 65536.')),
  loginTimeout: Type.Optional(Duration('How long a started login may take: the pre-login cookie\'s lifetime. Default 10m.')),
  ...CLAIM_RULE_FIELDS,
  session: Type.Optional(strict({
    store: Type.Optional(Type.Unsafe<'memory' | 'redis'>({ type: 'string', enum: ['memory', 'redis'], description: 'memory (this process) or redis (oauth.redis, shared by every gateway). Default memory.' })),
    idleTimeout: Type.Optional(Duration('A session unused this long ends. Default 1h.')),
    absoluteTimeout: Type.Optional(Duration('A session ends this long after login, whatever its activity. Default 12h.')),
    maxSessions: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'Sessions held at most; past it new logins are refused (503), no session is evicted. Default 100000.' })),
    maxSessionsPerSubject: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Sessions one user holds at most; past it the user\'s own oldest session ends. Default 32.' })),
  }, 'Server-side sessions: the browser holds only a random session id (__Host-portcullis-session-<name>).')),
  refresh: Type.Optional(strict({
    beforeExpiryMs: Type.Optional(Millis('Access tokens are refreshed this long before they expire. Default 60000.', 0)),
    waitMs: Type.Optional(Millis('How long a request waits for a refresh another request or gateway is making. Default 5000.')),
  }, 'Refreshing the session\'s tokens: one refresh per session at a time, across requests and gateways.')),
  realm: Type.Optional(Realm),
}, 'Browser login at the gateway (OpenID Connect, authorization code with PKCE) and server-side sessions; see docs/oidc.md.');

export type RawOidcAuthenticator = Static<typeof OidcAuthenticatorSchema>;

/** Documented defaults of `type: oidc`, by option path; docs/oidc.md lists the same values. */
export const OIDC_DEFAULTS = Object.freeze({
  clientAuth: 'client_secret_basic',
  scopes: ['openid', 'profile', 'email'],
  responseMode: 'query',
  algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  userinfo: false,
  logoutAtProvider: true,
  clockSkewMs: 30_000,
  timeoutMs: 5000,
  maxResponseBytes: 65_536,
  loginTimeout: '10m',
  realm: 'portcullis',
  ...CLAIM_RULE_DEFAULTS,
  'session.store': 'memory',
  'session.idleTimeout': '1h',
  'session.absoluteTimeout': '12h',
  'session.maxSessions': 100_000,
  'session.maxSessionsPerSubject': 32,
  'refresh.beforeExpiryMs': 60_000,
  'refresh.waitMs': 5000,
});

/** Browser login (OpenID Connect) with server-side sessions. */
export const oidcKind = authenticatorKind<RawOidcAuthenticator>({
  type: 'oidc',
  schema: OidcAuthenticatorSchema,
  defaults: OIDC_DEFAULTS,
  docs: 'docs/oidc.md',
  compile: compileOidc,
});

/** A duration the schema validated, in milliseconds. */
function durationMs(text: string): number {
  return parseDuration(text) ?? 0;
}

/** The paths beside the callback's: `/oauth2/callback` → `/oauth2/login`. */
function sibling(callbackPath: string, leaf: string): string {
  return `${callbackPath.slice(0, callbackPath.lastIndexOf('/'))}/${leaf}`;
}

function compileOidc(a: RawOidcAuthenticator, context: AuthenticatorCompileContext): OidcAuthenticator | null {
  const { name, at, loaded, problems, oauth } = context;
  const before = problems.length;
  const example = 'https://idp.example.com/realms/main';
  const issuerProblem = secureUrlProblem(a.issuer, example);
  if (issuerProblem !== null) problems.push(loaded.problem(at('issuer'), issuerProblem));
  const redirectProblem = secureUrlProblem(a.redirectUri, 'https://app.example.com/oauth2/callback');
  let redirect: URL | null = null;
  if (redirectProblem !== null) problems.push(loaded.problem(at('redirectUri'), redirectProblem));
  else {
    redirect = new URL(a.redirectUri);
    if (redirect.search !== '' || redirect.hash !== '') problems.push(loaded.problem(at('redirectUri'), 'must have no query or fragment: the provider appends the response to it'));
    if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]{1,255}$/.test(redirect.pathname) || redirect.pathname.endsWith('/')) problems.push(loaded.problem(at('redirectUri'), 'needs a path of its own for the callback, such as /oauth2/callback'));
  }
  if (a.postLogoutRedirectUri !== undefined) {
    const problem = secureUrlProblem(a.postLogoutRedirectUri, 'https://app.example.com/');
    if (problem !== null) problems.push(loaded.problem(at('postLogoutRedirectUri'), problem));
  }
  const scopes = a.scopes ?? OIDC_DEFAULTS.scopes;
  if (!scopes.includes('openid')) problems.push(loaded.problem(at('scopes'), 'must include openid: without it the provider issues no ID token'));
  const client = compileClientAuthentication(a, context);
  const s = a.session ?? {};
  const store = s.store ?? OIDC_DEFAULTS['session.store'];
  if (store === 'redis' && oauth.redis === null) problems.push(loaded.problem(at('session', 'store'), 'redis keeps sessions in oauth.redis: add oauth: { tokenHashKey: ${TOKEN_HASH_KEY}, redis: { url: redis://… } }, or use store: memory'));
  // Each worker would hold sessions of its own, and a browser's next request may reach another.
  if (store === 'memory' && context.inWorker) problems.push(loaded.problem(at('session', 'store'), 'memory sessions live in one process, and start --workers runs several: use store: redis (with oauth.redis), or one process'));
  const idleTimeoutMs = durationMs(s.idleTimeout ?? OIDC_DEFAULTS['session.idleTimeout']);
  const absoluteTimeoutMs = durationMs(s.absoluteTimeout ?? OIDC_DEFAULTS['session.absoluteTimeout']);
  if (idleTimeoutMs > absoluteTimeoutMs) problems.push(loaded.problem(at('session', 'idleTimeout'), `is longer than absoluteTimeout (${s.absoluteTimeout ?? OIDC_DEFAULTS['session.absoluteTimeout']}), which ends every session first: shorten it`));
  const rules = compileClaimRules(a, context);
  if (rules === null || client === null || problems.length > before || redirect === null) return null;

  const callbackPath = redirect.pathname;
  const providerOptions: OidcProviderOptions = {
    authenticator: name,
    issuer: a.issuer,
    clientId: a.clientId,
    ...client,
    redirectUri: a.redirectUri,
    algorithms: a.algorithms ?? OIDC_DEFAULTS.algorithms as JwsAlgorithm[],
    timeoutMs: a.timeoutMs ?? OIDC_DEFAULTS.timeoutMs,
    maxResponseBytes: a.maxResponseBytes ?? OIDC_DEFAULTS.maxResponseBytes,
    insecure: a.issuer.startsWith('http:'),
  };
  const provider = context.use(OidcProviderClient.keyOf(providerOptions), OidcProviderClient, () => new OidcProviderClient(providerOptions));
  let sessions: SessionStore;
  if (store === 'redis' && oauth.redis !== null) {
    const settings = oauth.redis;
    const described = new RedisSessionStore(settings);
    sessions = context.use(described.key, RedisSessionStore, () => described);
  } else {
    const described = new MemorySessionStore();
    sessions = context.use(described.key, MemorySessionStore, () => described);
  }
  return new OidcAuthenticator(new OidcLogin({
    name,
    realm: a.realm ?? OIDC_DEFAULTS.realm,
    provider,
    sessions,
    digester: oauth.digester,
    rules,
    clock: context.clock,
    clientId: a.clientId,
    issuer: a.issuer,
    algorithms: providerOptions.algorithms,
    scope: scopes.join(' '),
    responseMode: a.responseMode ?? 'query',
    prompt: a.prompt ?? null,
    userinfo: a.userinfo ?? OIDC_DEFAULTS.userinfo,
    redirectUri: a.redirectUri,
    origin: redirect.origin,
    postLogoutRedirectUri: a.postLogoutRedirectUri ?? null,
    logoutAtProvider: a.logoutAtProvider ?? OIDC_DEFAULTS.logoutAtProvider,
    paths: {
      callback: callbackPath,
      login: a.loginPath ?? sibling(callbackPath, 'login'),
      logout: a.logoutPath ?? sibling(callbackPath, 'logout'),
      backChannelLogout: a.backChannelLogoutPath ?? sibling(callbackPath, 'back-channel-logout'),
    },
    clockSkewMs: a.clockSkewMs ?? OIDC_DEFAULTS.clockSkewMs,
    loginTimeoutMs: durationMs(a.loginTimeout ?? OIDC_DEFAULTS.loginTimeout),
    limits: {
      idleTimeoutMs,
      maxSessions: s.maxSessions ?? OIDC_DEFAULTS['session.maxSessions'],
      maxSessionsPerSubject: s.maxSessionsPerSubject ?? OIDC_DEFAULTS['session.maxSessionsPerSubject'],
    },
    absoluteTimeoutMs,
    refreshBeforeMs: a.refresh?.beforeExpiryMs ?? OIDC_DEFAULTS['refresh.beforeExpiryMs'],
    refreshWaitMs: a.refresh?.waitMs ?? OIDC_DEFAULTS['refresh.waitMs'],
  }));
}
