import { secureUrlProblem } from '../lib/secure-url.js';
import { webcrypto } from 'node:crypto';
import {
  allowInsecureRequests, ClientSecretBasic, ClientSecretPost, clientCredentialsGrant, Configuration, customFetch, discovery, PrivateKeyJwt,
  type ClientAuth,
} from 'openid-client';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Resource, ResourceContext } from '../lifecycle/resources.js';
import type { ClientAuthMethod } from '../config/schema-upstream-auth.js';
import { BoundedFetch, TokenEndpointError } from './token-endpoint-fetch.js';

/** A client credentials setup with its defaults applied; no secret in it (see ClientCredentialsKey). */
export interface ClientCredentialsSpec {
  /** The upstreams that use it, comma-separated: the `upstream` label of its metrics and its messages. */
  readonly upstreams: string;
  /** The configured token endpoint, or null when it is discovered from `issuer`. */
  readonly tokenEndpoint: string | null;
  readonly issuer: string | null;
  readonly clientId: string;
  readonly clientAuth: ClientAuthMethod;
  readonly scope: string | null;
  readonly audience: string | null;
  readonly resource: string | null;
  readonly refreshBeforeMs: number;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** HMAC-SHA256 (hex, under a random key of this process) of the secret or private key: the resource changes with them, its key never shows them. */
  readonly credentialDigest: string;
}

/** The Web Crypto parameters of a private_key_jwt key, from its type (and curve). */
export type AssertionKeyAlgorithm = { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384' | 'P-521' } | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' } | { name: 'Ed25519' };

/** The secret half of a setup: a client secret, or a private key (PKCS#8 DER) for private_key_jwt. */
export type ClientCredential =
  | { readonly kind: 'secret'; readonly secret: string }
  | { readonly kind: 'key'; readonly pkcs8: Buffer; readonly algorithm: AssertionKeyAlgorithm; readonly kid: string | null };

/** Why no token can be had now: the private reason (audit, logs) and when to try again. */
export interface TokenUnavailable {
  readonly reason: string;
  readonly retryAfterSeconds: number;
}

/** A token response's lifetime when it gives none (RFC 6749 §5.1 makes expires_in optional). */
export const DEFAULT_TOKEN_LIFETIME_MS = 300_000;
/** Longest a token is used, whatever expires_in says: a day. */
export const MAX_TOKEN_LIFETIME_MS = 86_400_000;
/** A token stops being sent this long before it expires (a tenth of its lifetime when shorter), so it does not expire in flight. */
export const EXPIRY_MARGIN_MS = 5000;
/** After a failed call, requests that need a new token are answered at once for this long instead of calling again. */
export const FAILURE_RETRY_MS = 1000;

/**
 * A token the upstream refuses (401) is renewed only once it is this old: an upstream that refuses
 * every request (or one path) cannot make the gateway call the token endpoint for each of them.
 */
export const MIN_TOKEN_AGE_FOR_RENEWAL_MS = 5000;

/** RFC 6750 §2.1 b64token: what can follow `Bearer ` in an Authorization header. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

interface CachedToken {
  readonly value: string;
  /** Clock time the call that obtained it was made. */
  readonly obtainedAt: number;
  /** Clock time from which a request starts a background renewal. */
  readonly refreshAt: number;
  /** Clock time from which the token is no longer sent. */
  readonly usableUntil: number;
}

/**
 * An access token for upstreams, obtained with the OAuth 2.0 client credentials grant (RFC 6749
 * §4.4) through openid-client, and kept until shortly before it expires. A resource: one per
 * distinct setup, shared by the upstreams that use it; compiling opens nothing, and nothing is
 * fetched until a request needs a token.
 *
 * A request is served from the cached token without a promise. In the refresh window (from
 * `refreshBeforeMs` before expiry) the first request starts a renewal in the background and is
 * still sent with the current token. Only a request with no usable token waits, and every request
 * waiting shares one call (single-flight). A failed renewal keeps the current token in use until it
 * expires; without one, requests are refused (503) and, for FAILURE_RETRY_MS, refused at once.
 */
export class UpstreamTokenSource implements Resource {
  readonly key: string;
  /** Calls made to the token endpoint (tests read it; the metrics count them by outcome). */
  calls = 0;
  private token: CachedToken | null = null;
  private inflight: Promise<string | TokenUnavailable> | null = null;
  private retryAt = -Infinity;
  private lastFailure = '';
  private configuration: Configuration | null = null;
  private readonly http: BoundedFetch;
  private clock: Clock = systemClock;
  private context: ResourceContext | null = null;

  /** Describes the source; opens nothing. */
  constructor(readonly spec: ClientCredentialsSpec, private readonly credential: ClientCredential) {
    this.key = UpstreamTokenSource.keyOf(spec);
    this.http = new BoundedFetch(spec.timeoutMs, spec.maxResponseBytes);
  }

  static keyOf(spec: ClientCredentialsSpec): string {
    return `upstream-token ${JSON.stringify(spec)}`;
  }

  /** Where tokens come from, for messages. */
  get endpoint(): string {
    return this.spec.tokenEndpoint ?? `the token endpoint of ${this.spec.issuer ?? ''}`;
  }

  start(context: ResourceContext): Promise<void> {
    this.context = context;
    this.clock = context.clock;
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.token = null;
    await this.http.close();
  }

  /**
   * The cached token when it may be sent now, else null (then `obtain`). In the refresh window it
   * starts one background renewal, unless a call failed within FAILURE_RETRY_MS.
   */
  current(): string | null {
    const token = this.token;
    if (token === null) return null;
    const now = this.clock.now();
    if (now >= token.usableUntil) return null;
    if (now >= token.refreshAt && this.inflight === null && now >= this.retryAt) void this.call();
    return token.value;
  }

  /** A token to send: the cached one, or one from the call under way or a new call. Never rejects. */
  obtain(): Promise<string | TokenUnavailable> {
    const token = this.current();
    if (token !== null) return Promise.resolve(token);
    if (this.inflight !== null) return this.inflight;
    const now = this.clock.now();
    if (now < this.retryAt) return Promise.resolve(this.unavailable(now));
    return this.call();
  }

  /**
   * Whether a 401 to a request sent with `used` is worth a retry: `used` was replaced meanwhile, or
   * is at least MIN_TOKEN_AGE_FOR_RENEWAL_MS old (a fresh token refused is not cured by another).
   */
  renewable(used: string): boolean {
    const token = this.token;
    return token === null || token.value !== used || this.clock.now() - token.obtainedAt >= MIN_TOKEN_AGE_FOR_RENEWAL_MS;
  }

  /**
   * The upstream refused `rejected` (401): it is dropped if it is still the cached token, and a
   * token is obtained as by `obtain`. Requests that saw the same token refused share one call;
   * those whose token was already replaced get the replacement.
   */
  renew(rejected: string): Promise<string | TokenUnavailable> {
    if (this.token?.value === rejected) this.token = null;
    return this.obtain();
  }

  private unavailable(now: number): TokenUnavailable {
    return { reason: this.lastFailure, retryAfterSeconds: Math.max(1, Math.ceil((this.retryAt - now) / 1000)) };
  }

  /** One call to the token endpoint, shared by every request waiting for it. */
  private call(): Promise<string | TokenUnavailable> {
    const sentAt = this.clock.now();
    this.calls++;
    const run = this.request().then((response) => {
      this.inflight = null;
      const lifetimeMs = Math.min(response.expiresInMs ?? DEFAULT_TOKEN_LIFETIME_MS, MAX_TOKEN_LIFETIME_MS);
      const usableUntil = sentAt + lifetimeMs - Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 10);
      this.token = {
        value: response.accessToken,
        obtainedAt: sentAt,
        usableUntil,
        refreshAt: Math.min(usableUntil, sentAt + Math.max(lifetimeMs - this.spec.refreshBeforeMs, lifetimeMs / 2)),
      };
      this.retryAt = -Infinity;
      this.context?.metrics.upstreamTokenRequests.inc({ upstream: this.spec.upstreams, outcome: 'ok' });
      this.context?.metrics.upstreamTokenExpiry.set({ upstream: this.spec.upstreams }, Math.floor((sentAt + lifetimeMs) / 1000));
      return response.accessToken;
    }, (err: unknown) => {
      this.inflight = null;
      const failure = describeFailure(err, this.endpoint);
      const now = this.clock.now();
      this.retryAt = now + FAILURE_RETRY_MS;
      this.lastFailure = `upstream ${this.spec.upstreams}: no token (${failure.category}): ${failure.message}`;
      this.context?.metrics.upstreamTokenRequests.inc({ upstream: this.spec.upstreams, outcome: failure.category });
      this.context?.logger.warn({ upstream: this.spec.upstreams, outcome: failure.category, detail: failure.message, tokenStillUsable: this.token !== null && now < this.token.usableUntil },
        'client credentials token request failed');
      return this.unavailable(now);
    });
    this.inflight = run;
    return run;
  }

  private async request(): Promise<{ accessToken: string; expiresInMs: number | null }> {
    const configuration = await this.configure();
    const parameters: Record<string, string> = {};
    if (this.spec.scope !== null) parameters.scope = this.spec.scope;
    if (this.spec.audience !== null) parameters.audience = this.spec.audience;
    if (this.spec.resource !== null) parameters.resource = this.spec.resource;
    const response = await clientCredentialsGrant(configuration, parameters);
    if (response.token_type !== 'bearer') throw new TokenEndpointError('invalid', `token_type is ${printable(response.token_type)}, not Bearer`);
    if (!B64TOKEN.test(response.access_token)) throw new TokenEndpointError('invalid', 'access_token has characters a Bearer credential cannot carry (RFC 6750 §2.1)');
    const expiresIn = response.expires_in;
    if (expiresIn !== undefined && !(expiresIn > 0)) throw new TokenEndpointError('invalid', `expires_in is ${expiresIn}, not a positive number of seconds`);
    return { accessToken: response.access_token, expiresInMs: expiresIn === undefined ? null : expiresIn * 1000 };
  }

  /** openid-client's view of the server and the client, built (or discovered) on first use and kept. */
  private async configure(): Promise<Configuration> {
    if (this.configuration !== null) return this.configuration;
    const spec = this.spec;
    const auth = await this.clientAuth();
    let configuration: Configuration;
    if (spec.tokenEndpoint !== null) {
      // Without an issuer, the token endpoint is the audience of a private_key_jwt assertion, as
      // RFC 7523 §3 allows and some servers (Okta) require.
      configuration = new Configuration({ issuer: spec.tokenEndpoint, token_endpoint: spec.tokenEndpoint }, spec.clientId, undefined, auth);
    } else {
      const issuer = new URL(spec.issuer ?? '');
      configuration = await discovery(issuer, spec.clientId, undefined, auth, {
        [customFetch]: this.http.fetch,
        timeout: Math.ceil(spec.timeoutMs / 1000),
        // Plain http only to a loopback host, which the config check enforced (checkAuthorizationServerUrl).
        // eslint-disable-next-line @typescript-eslint/no-deprecated -- openid-client marks it so that it stands out; loopback only here
        ...(issuer.protocol === 'http:' ? { execute: [allowInsecureRequests] } : {}),
      });
      const endpoint = configuration.serverMetadata().token_endpoint;
      const problem = endpoint === undefined ? 'advertises no token_endpoint' : checkAuthorizationServerUrl(endpoint);
      if (problem !== null) throw new TokenEndpointError('invalid', `the metadata of ${issuer.href}: token_endpoint ${problem}`);
    }
    configuration[customFetch] = this.http.fetch;
    configuration.timeout = Math.ceil(spec.timeoutMs / 1000);
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- as above: loopback hosts only
    if (new URL(spec.tokenEndpoint ?? spec.issuer ?? '').protocol === 'http:') allowInsecureRequests(configuration);
    this.configuration = configuration;
    return configuration;
  }

  private async clientAuth(): Promise<ClientAuth> {
    const credential = this.credential;
    if (credential.kind === 'key') {
      const key = await webcrypto.subtle.importKey('pkcs8', credential.pkcs8, credential.algorithm, false, ['sign']);
      return PrivateKeyJwt(credential.kid === null ? key : { key, kid: credential.kid });
    }
    return this.spec.clientAuth === 'client_secret_post' ? ClientSecretPost(credential.secret) : ClientSecretBasic(credential.secret);
  }
}

/** Why `uri` cannot be an authorization server URL the gateway sends its client credentials to, or null (see secureUrlProblem). */
export function checkAuthorizationServerUrl(uri: string): string | null {
  return secureUrlProblem(uri, 'https://as.example.com/oauth2/token');
}

/** An error code or type from the server, as far as it can be shown: printable ASCII, bounded. */
function printable(value: unknown, max = 64): string {
  return String(value).replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}

/** What went wrong, precisely and without a secret: the status and OAuth error code, a timeout, a parse failure. */
function describeFailure(err: unknown, endpoint: string): TokenEndpointError {
  if (err instanceof TokenEndpointError) return err;
  const e = err as { status?: unknown; error?: unknown; message?: unknown; cause?: unknown };
  if (e.cause instanceof TokenEndpointError) return e.cause;
  if (typeof e.status === 'number') {
    // The OAuth error code: from the body (ResponseBodyError), or from a WWW-Authenticate challenge (RFC 6750 §3).
    const challenged = Array.isArray(e.cause) ? (e.cause as { parameters?: { error?: unknown } }[]).find((c) => typeof c.parameters?.error === 'string')?.parameters?.error : undefined;
    const code = typeof e.error === 'string' ? e.error : challenged;
    return new TokenEndpointError('refused', `${endpoint} answered ${e.status}${code === undefined ? '' : ` ${printable(code)}`}`);
  }
  if (e.cause instanceof Response) return new TokenEndpointError('refused', `${endpoint} answered ${e.cause.status}, not an OAuth response`);
  // openid-client wraps the protocol library's error, which holds the precise message (and the body).
  const messages: string[] = [];
  let tokenType: unknown;
  for (let cause: unknown = err, depth = 0; cause instanceof Error && depth < 3; cause = cause.cause, depth++) {
    if (!messages.includes(cause.message)) messages.push(cause.message);
    const body = (cause.cause as { body?: { token_type?: unknown } } | undefined)?.body;
    if (body !== undefined && tokenType === undefined) tokenType = body.token_type;
  }
  if (typeof tokenType === 'string' && tokenType.toLowerCase() !== 'bearer') return new TokenEndpointError('invalid', `token_type is ${printable(tokenType)}, not Bearer`);
  return new TokenEndpointError('invalid', `${endpoint} answered something unusable: ${printable(messages.join(': '), 300)}`);
}
