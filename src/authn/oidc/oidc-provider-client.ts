import * as oidc from 'openid-client';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import { secretDigest } from '../../lib/secret-digest.js';
import { secureUrlProblem } from '../../lib/secure-url.js';
import { shownText, type ComponentReadiness } from '../../lifecycle/readiness.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import { boundedFetch, EndpointError } from '../introspection/bounded-fetch.js';
import { clientAuthentication, endpointError, type ClientAuthMethod } from '../introspection/introspection-endpoint.js';
import type { JwsAlgorithm } from '../jwt/algorithms.js';
import { KeysUnavailableError, type KeySource } from '../jwt/key-source.js';
import { RemoteJwks } from '../jwt/remote-jwks.js';

/** How one `oidc` authenticator reaches its OpenID provider (defaults applied by the kind). */
export interface OidcProviderOptions {
  readonly authenticator: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly clientAuth: ClientAuthMethod;
  readonly clientSecret: string | null;
  readonly privateKey: { readonly pem: string; readonly kid: string | null } | null;
  readonly redirectUri: string;
  /** ID token signature algorithms accepted. */
  readonly algorithms: readonly JwsAlgorithm[];
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** Plain http allowed: the issuer is a loopback host. */
  readonly insecure: boolean;
}

/** How long after a failed discovery the next attempt starts. */
export const OIDC_DISCOVERY_RETRY_MS = 5000;

/** The token endpoint's answer, as far as the gateway keeps it. */
export interface ProviderTokens {
  readonly idToken: string | null;
  readonly accessToken: string;
  /** Seconds, when the provider said. */
  readonly expiresIn: number | null;
  readonly refreshToken: string | null;
}

/**
 * One OpenID provider as a relying party sees it, spoken to through openid-client: discovery
 * (OpenID Connect Discovery 1.0, the metadata's issuer must be the configured one), the
 * authorization request, the code exchange with PKCE, refresh, userinfo and the end-session URL.
 * Every exchange is bounded (timeout, body cap, no redirects, no duplicated JSON members). The
 * provider's key set (jwks_uri) is fetched and refreshed by a RemoteJwks of its own once the
 * metadata names it: ID tokens and logout tokens are verified against it, never trusted for
 * arriving over TLS. Until discovery succeeds (retried every OIDC_DISCOVERY_RETRY_MS) logins
 * cannot start and refreshes fail: 503, and /readyz is not ready.
 */
export class OidcProviderClient implements Resource, KeySource {
  readonly key: string;
  private config: oidc.Configuration | null = null;
  private auth: oidc.ClientAuth | null = null;
  private jwks: RemoteJwks | null = null;
  private stopped = true;
  private timer: Timer | null = null;
  private lastError: string | null = null;
  private clock: Clock = systemClock;
  private readonly fetch: oidc.CustomFetch;
  private readonly shown: string;
  /** Calls made to the provider's token endpoint (code exchange and refresh); tests read it. */
  tokenCalls = 0;

  constructor(readonly options: OidcProviderOptions) {
    this.key = OidcProviderClient.keyOf(options);
    this.fetch = boundedFetch(options);
    this.shown = shownText(options.issuer);
  }

  /** Equal settings, equal key; secrets enter it as digests only. */
  static keyOf(o: OidcProviderOptions): string {
    const digest = (s: string | null) => (s === null ? null : secretDigest(s));
    return `oidc provider ${JSON.stringify({ ...o, clientSecret: digest(o.clientSecret), privateKey: o.privateKey === null ? null : { pem: digest(o.privateKey.pem), kid: o.privateKey.kid } })}`;
  }

  async start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    if (!this.stopped) return;
    this.stopped = false;
    this.auth ??= await clientAuthentication(this.options);
    await this.discover(context);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    await this.jwks?.stop();
  }

  readiness(): ComponentReadiness {
    if (this.stopped) return { ready: false, reason: `OpenID provider ${this.shown} is not running` };
    if (this.config === null) return { ready: false, reason: `OpenID provider ${this.shown} not discovered yet${this.lastError === null ? '' : ` (${this.lastError})`}` };
    const keys = this.jwks?.readiness();
    if (keys !== undefined && !keys.ready) return keys;
    return { ready: true, issuer: this.shown };
  }

  // KeySource: the provider's signing keys, once discovered.
  get revision(): number {
    return this.jwks?.revision ?? 0;
  }

  keysFor(alg: JwsAlgorithm, kid: string | null): ReturnType<KeySource['keysFor']> {
    if (this.jwks === null) throw new KeysUnavailableError(`OpenID provider ${this.shown} not discovered yet`, OIDC_DISCOVERY_RETRY_MS);
    return this.jwks.keysFor(alg, kid);
  }

  /** The authorization request's URL (code flow, PKCE S256). Throws EndpointError before discovery. */
  authorizationUrl(params: { state: string; nonce: string; codeChallenge: string; scope: string; responseMode: 'query' | 'form_post'; prompt: string | null }): string {
    const config = this.ready();
    const query: Record<string, string> = {
      response_type: 'code',
      redirect_uri: this.options.redirectUri,
      scope: params.scope,
      state: params.state,
      nonce: params.nonce,
      code_challenge: params.codeChallenge,
      code_challenge_method: 'S256',
    };
    if (params.responseMode === 'form_post') query.response_mode = 'form_post';
    if (params.prompt !== null) query.prompt = params.prompt;
    return oidc.buildAuthorizationUrl(config, query).href;
  }

  /**
   * Exchanges the authorization response for tokens: `response` is the callback's parameters (the
   * query, or the form of a form_post). openid-client checks state, the RFC 9207 `iss` when the
   * provider sends it, PKCE, and the ID token's claims; the caller verifies the ID token's
   * signature and the rest (verifyIdToken).
   */
  async exchange(response: URLSearchParams, checks: { state: string; verifier: string; nonce: string }): Promise<ProviderTokens> {
    const config = this.ready();
    const url = new URL(this.options.redirectUri);
    url.search = response.toString();
    this.tokenCalls++;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, url, {
        expectedState: checks.state, pkceCodeVerifier: checks.verifier, expectedNonce: checks.nonce, idTokenExpected: true,
      });
      return tokensOf(tokens);
    } catch (err) {
      const refused = idTokenRefusal(err);
      if (refused !== null) throw refused;
      throw providerError(err);
    }
  }

  /** A refresh (RFC 6749 §6). A provider that refuses the grant (invalid_grant) rejects with a RefreshRefusedError. */
  async refresh(refreshToken: string): Promise<ProviderTokens> {
    const config = this.ready();
    this.tokenCalls++;
    try {
      return tokensOf(await oidc.refreshTokenGrant(config, refreshToken));
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError && err.status >= 400 && err.status < 500) throw new RefreshRefusedError(`the provider refused the refresh (HTTP ${err.status} ${/^[a-z_]{1,64}$/.test(err.error) ? err.error : ''})`.trim());
      throw providerError(err);
    }
  }

  /** The userinfo endpoint's claims for `subject` (its `sub` must be the same). */
  async userinfo(accessToken: string, subject: string): Promise<Record<string, unknown>> {
    const config = this.ready();
    try {
      return await oidc.fetchUserInfo(config, accessToken, subject);
    } catch (err) {
      throw providerError(err);
    }
  }

  /** The provider's end_session_endpoint with the logout parameters (RP-Initiated Logout 1.0), or null when it has none. */
  endSessionUrl(idTokenHint: string, postLogoutRedirectUri: string | null): string | null {
    const config = this.config;
    if (config?.serverMetadata().end_session_endpoint === undefined) return null;
    const params: Record<string, string> = { id_token_hint: idTokenHint, client_id: this.options.clientId };
    if (postLogoutRedirectUri !== null) params.post_logout_redirect_uri = postLogoutRedirectUri;
    return oidc.buildEndSessionUrl(config, params).href;
  }

  private ready(): oidc.Configuration {
    if (this.stopped || this.config === null) throw new EndpointError(this.stopped ? 'is not running' : `not discovered yet${this.lastError === null ? '' : ` (${this.lastError})`}`, 'not_ready');
    return this.config;
  }

  private async discover(context: ResourceContext): Promise<void> {
    const { issuer, clientId } = this.options;
    let config: oidc.Configuration | null = null;
    let problem: string | null = null;
    try {
      config = await oidc.discovery(new URL(issuer), clientId, this.options.clientSecret === null ? {} : { client_secret: this.options.clientSecret }, this.auth ?? undefined, {
        [oidc.customFetch]: this.fetch,
        timeout: Math.max(1, Math.ceil(this.options.timeoutMs / 1000)),
        // eslint-disable-next-line @typescript-eslint/no-deprecated
        ...(this.options.insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    } catch (err) {
      problem = endpointError(err).message;
    }
    if (this.stopped) return;
    const metadata = config?.serverMetadata();
    if (config !== null && metadata !== undefined) {
      for (const [name, value] of [['jwks_uri', metadata.jwks_uri], ['token_endpoint', metadata.token_endpoint], ['authorization_endpoint', metadata.authorization_endpoint]] as const) {
        if (value === undefined) problem ??= `the metadata names no ${name}`;
        else if (name !== 'authorization_endpoint') problem ??= prefixed(name, secureUrlProblem(value, 'https://idp.example.com/…'));
      }
      if (metadata.code_challenge_methods_supported !== undefined && !metadata.code_challenge_methods_supported.includes('S256')) problem ??= 'the provider does not support PKCE with S256';
    }
    if (config === null || problem !== null || metadata?.jwks_uri === undefined) {
      this.lastError = (problem ?? 'discovery failed').slice(0, 500);
      context.logger.warn({ authenticator: this.options.authenticator, issuer: this.shown, err: this.lastError, retryInMs: OIDC_DISCOVERY_RETRY_MS },
        'OpenID provider discovery failed; logins get 503 and /readyz is not ready until it succeeds');
      this.timer = this.clock.setTimer(() => { void this.discover(context); }, OIDC_DISCOVERY_RETRY_MS);
      return;
    }
    config[oidc.customFetch] = this.fetch;
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    if (this.options.insecure) oidc.allowInsecureRequests(config);
    const jwks = new RemoteJwks({
      uri: metadata.jwks_uri, algorithms: this.options.algorithms, timeoutMs: this.options.timeoutMs, maxBytes: this.options.maxResponseBytes,
      refreshMs: 3_600_000, cooldownMs: 30_000,
    });
    await jwks.start(context);
    if (this.stopped) { await jwks.stop(); return; }
    this.jwks = jwks;
    this.lastError = null;
    this.config = config;
    context.logger.info({ authenticator: this.options.authenticator, issuer: this.shown }, 'OpenID provider discovered');
  }
}

/** The provider answered, and refused the refresh token: the session ends (the next navigation logs in again). */
export class RefreshRefusedError extends Error {}

function prefixed(name: string, problem: string | null): string | null {
  return problem === null ? null : `${name} ${problem}`;
}

function tokensOf(t: oidc.TokenEndpointResponse): ProviderTokens {
  return {
    idToken: typeof t.id_token === 'string' ? t.id_token : null,
    accessToken: t.access_token,
    expiresIn: typeof t.expires_in === 'number' && Number.isFinite(t.expires_in) && t.expires_in > 0 ? t.expires_in : null,
    refreshToken: typeof t.refresh_token === 'string' && t.refresh_token !== '' ? t.refresh_token : null,
  };
}

/**
 * A failed exchange with the provider as an EndpointError whose message names the check or the
 * outage (never a token). A refused code (invalid_grant: used twice, wrong verifier) is a
 * `status` failure; an answer openid-client found wrong (state, nonce, iss, PKCE) is `malformed`.
 */
/**
 * The token response's ID token was refused by the client library's own checks (OIDC Core 1.0
 * §3.1.3.7: iss, aud, azp, exp, iat, nonce, sub, alg), which run before the gateway's verifyIdToken:
 * a bad ID token, not a provider fault or outage.
 */
export class IdTokenRefusedError extends Error {}

/** Library failure codes that only a JWT's claims raise. */
const JWT_CHECK_CODES: ReadonlySet<string> = new Set(['OAUTH_JWT_CLAIM_COMPARISON_FAILED', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED']);

/** An IdTokenRefusedError when a code exchange failed on its ID token, else null. */
function idTokenRefusal(err: unknown): IdTokenRefusedError | null {
  if (!(err instanceof oidc.ClientError)) return null;
  // The library's own messages (fixed text, no response data) name the JWT or ID Token they refused.
  const cause = err.cause instanceof Error ? err.cause.message : '';
  if (!JWT_CHECK_CODES.has(err.code ?? '') && !/\bJWT\b|ID Token/.test(cause)) return null;
  return new IdTokenRefusedError(`${err.message}${cause === '' || cause === err.message ? '' : ` (${cause})`}`.slice(0, 300));
}

function providerError(err: unknown): EndpointError {
  if (err instanceof oidc.AuthorizationResponseError) {
    return new EndpointError(`the authorization response is an error: ${/^[a-z_]{1,64}$/.test(err.error) ? err.error : 'unknown'}`, 'status');
  }
  if (err instanceof oidc.ClientError && err.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') return new EndpointError(`ID token ${err.message}`.slice(0, 300), 'malformed');
  // An answer that arrived and was refused (state, iss, PKCE, a malformed token response): not an outage.
  if (err instanceof oidc.ClientError && !(err.cause instanceof EndpointError) && !(err.cause instanceof Response)) {
    return new EndpointError(`the provider's answer was refused: ${err.message}`.slice(0, 300), 'malformed');
  }
  return endpointError(err);
}
