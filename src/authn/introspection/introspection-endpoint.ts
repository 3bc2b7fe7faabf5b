import { secretDigest } from '../../lib/secret-digest.js';
import { createPrivateKey, webcrypto } from 'node:crypto';
import * as oidc from 'openid-client';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import { shownText, type ComponentReadiness } from '../../lifecycle/readiness.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import { boundedFetch, EndpointError } from './bounded-fetch.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { secureUrlProblem } from '../../lib/secure-url.js';
import type { CounterChild } from '../../observability/hot-metrics.js';
import { introspectionMetrics, type CacheResult, type IntrospectionMetrics, type IntrospectionOutcome } from './introspection-metrics.js';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** How one authenticator reaches its authorization server's introspection endpoint (defaults applied by the kind). */
export interface IntrospectionEndpointOptions {
  /** The authenticator's name: metrics and messages name it. */
  readonly authenticator: string;
  readonly issuer: string;
  /** The configured endpoint; null: discovered from the issuer's metadata (RFC 8414, then OpenID Connect Discovery). */
  readonly endpoint: string | null;
  readonly clientId: string;
  readonly clientAuth: ClientAuthMethod;
  readonly clientSecret: string | null;
  /** private_key_jwt: the PKCS#8 PEM and its key id. */
  readonly privateKey: { readonly pem: string; readonly kid: string | null } | null;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly breakerFailures: number;
  readonly breakerOpenMs: number;
  /** Plain http allowed: the issuer and the endpoint are loopback hosts. */
  readonly insecure: boolean;
}

/** Introspections one endpoint may have in flight; past it a call is refused at once (503) instead of queueing without bound. */
export const MAX_IN_FLIGHT = 256;
/** Of those, the most one client address may have started: a flood of made-up tokens from one client leaves the rest to the others. */
export const MAX_IN_FLIGHT_PER_CLIENT = MAX_IN_FLIGHT / 4;
/** How long after a failed discovery the next attempt starts. */
export const DISCOVERY_RETRY_MS = 5000;

/** An RFC 7662 answer: the members the authorization server returned (`active` is a boolean). */
export type IntrospectionClaims = Readonly<Record<string, unknown>>;

/**
 * One authorization server's token introspection endpoint (RFC 7662), spoken to through
 * openid-client: client authentication (client_secret_basic, client_secret_post,
 * private_key_jwt), every exchange bounded (boundedFetch), a circuit breaker, at most
 * MAX_IN_FLIGHT calls at once and MAX_IN_FLIGHT_PER_CLIENT of them started by one client address.
 * Without a configured endpoint the issuer's metadata is discovered
 * at start and, until that succeeds, again every DISCOVERY_RETRY_MS in the background; meanwhile
 * the endpoint is not ready and every call fails (503 for the request).
 */
export class IntrospectionEndpoint implements Resource {
  readonly key: string;
  private config: oidc.Configuration | null = null;
  private auth: oidc.ClientAuth | null = null;
  private stopped = true;
  private timer: Timer | null = null;
  private lastError: string | null = null;
  private clock: Clock = systemClock;
  private inFlight = 0;
  /** Calls in flight by the client address that started them (entries removed at zero: at most MAX_IN_FLIGHT). */
  private readonly inFlightByClient = new Map<string, number>();
  private metrics: IntrospectionMetrics | null = null;
  private readonly breaker: CircuitBreaker;
  private readonly fetch: oidc.CustomFetch;
  private readonly shown: string;
  /** Calls that reached the network (tests read it). */
  calls = 0;

  /** Describes the endpoint; opens nothing until `start`. */
  constructor(readonly options: IntrospectionEndpointOptions) {
    this.key = IntrospectionEndpoint.keyOf(options);
    this.fetch = boundedFetch(options);
    this.shown = shownText(options.endpoint ?? options.issuer);
    this.breaker = new CircuitBreaker(options.breakerFailures, options.breakerOpenMs, () => this.clock, (open) => {
      this.metrics?.breakerOpen.set({ authenticator: options.authenticator }, open ? 1 : 0);
    });
  }

  /** Equal settings, equal key; secrets enter it as digests only (a key may be logged). */
  static keyOf(o: IntrospectionEndpointOptions): string {
    const digest = (s: string | null | undefined) => (s === null || s === undefined ? null : secretDigest(s));
    return `introspection endpoint ${JSON.stringify({ ...o, clientSecret: digest(o.clientSecret), privateKey: o.privateKey === null ? null : { pem: digest(o.privateKey.pem), kid: o.privateKey.kid } })}`;
  }

  async start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    const metrics = introspectionMetrics(context.metrics);
    if (metrics !== this.metrics) this.cacheChildren.clear();
    this.metrics = metrics;
    this.metrics.breakerOpen.set({ authenticator: this.options.authenticator }, this.breaker.open ? 1 : 0);
    if (!this.stopped) return;
    this.stopped = false;
    this.auth ??= await clientAuthentication(this.options);
    if (this.options.endpoint !== null) {
      this.config = this.configure(new oidc.Configuration({ issuer: this.options.issuer, introspection_endpoint: this.options.endpoint }, this.options.clientId, this.metadata(), this.auth));
      return;
    }
    await this.discover(context);
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    return Promise.resolve();
  }

  /** Ready once running with an endpoint (configured, or discovered). */
  readiness(): ComponentReadiness {
    if (this.stopped) return { ready: false, reason: `introspection endpoint of ${this.shown} is not running` };
    if (this.config === null) return { ready: false, reason: `introspection endpoint of ${this.shown} not discovered yet${this.lastError === null ? '' : ` (${this.lastError})`}` };
    return { ready: true, introspectionEndpoint: this.shown, ...(this.breaker.open ? { breaker: 'open' } : {}) };
  }

  /**
   * Introspects `token`: the authorization server's answer, whose `active` is a boolean (checked
   * by oauth4webapi; a string "true" is malformed). Any outage, refusal of the gateway's client
   * authentication, malformed or oversized answer, or a breaker that is open, rejects with an
   * EndpointError (`retryAfterMs` set when the breaker says when to come back). Only outages
   * (unreachable, timeout, an error status, a redirect) count towards the breaker.
   */
  async introspect(token: string, client: string | null = null): Promise<IntrospectionClaims> {
    const config = this.config;
    if (this.stopped || config === null) throw new EndpointError(this.stopped ? 'is not running' : `not discovered yet${this.lastError === null ? '' : ` (${this.lastError})`}`, 'not_ready');
    if (this.inFlight >= MAX_IN_FLIGHT) { this.count('busy'); throw new EndpointError(`has ${MAX_IN_FLIGHT} introspections in flight already`, 'busy'); }
    const byClient = client === null ? 0 : this.inFlightByClient.get(client) ?? 0;
    if (byClient >= MAX_IN_FLIGHT_PER_CLIENT) { this.count('busy'); throw new EndpointError(`has ${MAX_IN_FLIGHT_PER_CLIENT} introspections in flight for this client address already`, 'busy'); }
    const waitMs = this.breaker.admit();
    if (waitMs !== null) {
      this.count('circuit_open');
      throw Object.assign(new EndpointError(`circuit open after repeated failures; next attempt in ${Math.ceil(waitMs)} ms`, 'circuit_open'), { retryAfterMs: waitMs });
    }
    this.inFlight++;
    if (client !== null) this.inFlightByClient.set(client, byClient + 1);
    this.calls++;
    const started = performance.now();
    try {
      const answer = await oidc.tokenIntrospection(config, token, { token_type_hint: 'access_token' });
      this.breaker.succeeded();
      this.count(answer.active ? 'active' : 'inactive');
      return answer;
    } catch (err) {
      const failure = endpointError(err);
      // An answer that came but cannot be used (too large, not RFC 7662, a member twice) says
      // something about this token's answer, not that the endpoint is down: one user's token
      // whose answer is oversized must not open the circuit for everyone. Outages count.
      if (failure.reason === 'oversized' || failure.reason === 'malformed') this.breaker.succeeded();
      else this.breaker.failed();
      this.count(failure.reason === 'timeout' ? 'timeout' : failure.reason === 'malformed' ? 'malformed' : 'error');
      throw failure;
    } finally {
      this.inFlight--;
      if (client !== null) {
        const left = (this.inFlightByClient.get(client) ?? 1) - 1;
        if (left > 0) this.inFlightByClient.set(client, left);
        else this.inFlightByClient.delete(client);
      }
      this.metrics?.duration.labels({ authenticator: this.options.authenticator }).observe((performance.now() - started) / 1000);
    }
  }

  /** Whether the breaker is open now (readiness and tests). */
  get breakerOpen(): boolean {
    return this.breaker.open;
  }

  private readonly cacheChildren = new Map<CacheResult, CounterChild>();

  /** Counts one token lookup of this endpoint's authenticator (portcullis_introspection_cache_total). */
  countCache(result: CacheResult): void {
    const metrics = this.metrics;
    if (metrics === null) return;
    let child = this.cacheChildren.get(result);
    if (child === undefined) {
      child = metrics.cache.labels({ authenticator: this.options.authenticator, result });
      this.cacheChildren.set(result, child);
    }
    child.inc();
  }

  private count(outcome: IntrospectionOutcome): void {
    this.metrics?.requests.labels({ authenticator: this.options.authenticator, outcome }).inc();
  }

  private metadata(): Partial<oidc.ClientMetadata> {
    return this.options.clientSecret === null ? {} : { client_secret: this.options.clientSecret };
  }

  private configure(config: oidc.Configuration): oidc.Configuration {
    config[oidc.customFetch] = this.fetch;
    // Loopback issuers only (the kind refuses plain http elsewhere): nothing crosses a network in clear text.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    if (this.options.insecure) oidc.allowInsecureRequests(config);
    return config;
  }

  /** One discovery attempt: RFC 8414 metadata first, OpenID Connect Discovery second; on failure, the next attempt is scheduled. */
  private async discover(context: ResourceContext): Promise<void> {
    const { issuer, clientId } = this.options;
    const options: oidc.DiscoveryRequestOptions = {
      [oidc.customFetch]: this.fetch,
      timeout: Math.max(1, Math.ceil(this.options.timeoutMs / 1000)),
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      ...(this.options.insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
    };
    const auth = this.auth ?? undefined;
    let config: oidc.Configuration | null = null;
    const errors: string[] = [];
    // RFC 8414 metadata first, then openid-client's default: OpenID Connect Discovery.
    const attempts: readonly (readonly [label: string, algorithm: Partial<oidc.DiscoveryRequestOptions>])[] = [['RFC 8414', { algorithm: 'oauth2' }], ['OpenID Connect', {}]];
    for (const [label, algorithm] of attempts) {
      try {
        config = await oidc.discovery(new URL(issuer), clientId, this.metadata(), auth, { ...options, ...algorithm });
        break;
      } catch (err) {
        errors.push(`${label} metadata: ${endpointError(err).message}`);
      }
    }
    if (this.stopped) return;
    const endpoint = config?.serverMetadata().introspection_endpoint;
    let problem: string | null = null;
    if (config === null) problem = errors.join('; ');
    else if (endpoint === undefined) problem = 'the metadata names no introspection_endpoint';
    else problem = secureUrlProblem(endpoint, 'https://as.example.com/oauth2/introspect');
    if (config === null || problem !== null) {
      this.lastError = (problem ?? 'discovery failed').slice(0, 500);
      context.logger.warn({ authenticator: this.options.authenticator, issuer: shownText(issuer), err: this.lastError, retryInMs: DISCOVERY_RETRY_MS },
        'introspection endpoint discovery failed; its tokens get 503 and /readyz is not ready until it succeeds');
      this.timer = this.clock.setTimer(() => { void this.discover(context); }, DISCOVERY_RETRY_MS);
      return;
    }
    this.lastError = null;
    this.config = this.configure(config);
    context.logger.info({ authenticator: this.options.authenticator, introspectionEndpoint: shownText(endpoint ?? '') }, 'introspection endpoint discovered');
  }
}

/** The client authentication method, with its key imported (private_key_jwt: ES256/384/512, EdDSA or RS256 by key type). */
export async function clientAuthentication(o: Pick<IntrospectionEndpointOptions, 'clientAuth' | 'clientSecret' | 'privateKey'>): Promise<oidc.ClientAuth> {
  if (o.clientAuth === 'client_secret_post') return oidc.ClientSecretPost(o.clientSecret ?? undefined);
  if (o.clientAuth === 'client_secret_basic') return oidc.ClientSecretBasic(o.clientSecret ?? undefined);
  if (o.privateKey === null) throw new Error('private_key_jwt needs privateKey');
  const key = createPrivateKey(o.privateKey.pem);
  const algorithm = webCryptoAlgorithm(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve);
  if (algorithm === null) throw new Error(`privateKey: a ${key.asymmetricKeyType ?? 'secret'} key cannot sign client assertions (use EC P-256/P-384/P-521, Ed25519 or RSA)`);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return oidc.PrivateKeyJwt(o.privateKey.kid === null ? cryptoKey : { key: cryptoKey, kid: o.privateKey.kid });
}

/** The Web Crypto algorithm of a private key for client assertions, or null for a key type that cannot sign one. */
export function webCryptoAlgorithm(type: string | undefined, curve: string | undefined): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams | webcrypto.Algorithm | null {
  if (type === 'ec') {
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : null;
    return namedCurve === null ? null : { name: 'ECDSA', namedCurve };
  }
  if (type === 'ed25519') return { name: 'Ed25519' };
  if (type === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return null;
}

/**
 * An OAuth error code as the endpoint sent it, when it is one (`invalid_client`), else null:
 * anything else is not repeated, as an endpoint that echoes the token it was sent must not put it
 * in the audit record.
 */
function errorCode(error: string | undefined): string | null {
  return error !== undefined && /^[a-z][a-z0-9_]{0,63}$/.test(error) ? error : null;
}

/** Any failure of an exchange as an EndpointError, its message fit for logs and the audit record (no token, no secret). */
export function endpointError(err: unknown): EndpointError {
  if (err instanceof EndpointError) return err;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof EndpointError) return cause;
  if (err instanceof oidc.ResponseBodyError) {
    const code = errorCode(err.error);
    return new EndpointError(`answered HTTP ${err.status}${code === null ? '' : ` ${code}`}`, 'status');
  }
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    const code = errorCode(err.cause[0]?.parameters.error);
    return new EndpointError(`answered HTTP ${err.status} with a WWW-Authenticate challenge${code === null ? '' : ` (${code})`}: the gateway's client authentication was refused`, 'status');
  }
  if (err instanceof oidc.ClientError) {
    const code = err.code ?? '';
    if (err.cause instanceof Response && err.cause.status !== 200) return new EndpointError(`answered HTTP ${err.cause.status}`, 'status');
    if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
      const status = (cause as { status?: unknown } | undefined)?.status;
      return new EndpointError(`answered HTTP ${typeof status === 'number' ? status : 'error'}`, 'status');
    }
    if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_PARSE_ERROR' || code === 'OAUTH_INVALID_RESPONSE' || code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON') {
      return new EndpointError(`answered what is not an RFC 7662 response: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}`.slice(0, 300), 'malformed');
    }
    return new EndpointError(err.message.slice(0, 300), 'malformed');
  }
  return new EndpointError(`failed: ${(err as Error).message}`.slice(0, 300), 'network');
}
