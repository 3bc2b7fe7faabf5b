import { createHash, timingSafeEqual } from 'node:crypto';
import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { ipKey } from '../../lib/ip.js';
import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import { bearerToken } from '../bearer.js';
import { identityFromClaims } from '../claims/claim-mapping.js';
import { audienceList, checkClaimRules, type ClaimRules } from '../claims/claim-rules.js';
import type { Identity } from '../identity.js';
import type { OAuthServices } from '../oauth/oauth-services.js';
import { revocationStatus } from '../oauth/revocation-status.js';
import { EndpointError } from './bounded-fetch.js';
import type { CacheEntry, IntrospectionCache, PositiveEntry } from './introspection-cache.js';
import type { IntrospectionClaims, IntrospectionEndpoint } from './introspection-endpoint.js';
import { checkAnswer, type AnswerPolicy } from './answer-checks.js';
import type { SharedIntrospectionStore } from './shared-introspection-store.js';

export interface IntrospectionAuthenticatorSpec {
  readonly name: string;
  readonly realm: string;
  readonly policy: AnswerPolicy;
  /** Claim mapping and checks, shared with the jwt kind (the subject defaults to `sub`, then `client_id`: a machine token has no sub). */
  readonly rules: ClaimRules;
  readonly maxTokenBytes: number;
  /** Issuers whose JWT-shaped tokens are introspected (unverified `iss`); other JWTs are left to other authenticators. */
  readonly jwtIssuers: ReadonlySet<string>;
  readonly endpoint: IntrospectionEndpoint;
  readonly cache: IntrospectionCache;
  /** The shared cache and this authenticator's scope in it; null: not shared. */
  readonly shared: { readonly store: SharedIntrospectionStore; readonly scope: string } | null;
  readonly oauth: OAuthServices;
  readonly clock?: Clock;
}

/** What the checks and the mapping made of an active answer, remembered per authenticator in the cache entry. */
type Mapped = { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly reason: string; readonly owner: Identity | undefined };

/** An IPv6 client is its /64 (what one subscriber is handed) when its share of introspections in flight is counted. */
const CLIENT_IPV6_PREFIX_BITS = 64;

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*$/;

/**
 * Bearer tokens the authorization server vouches for through token introspection (RFC 7662):
 * opaque tokens, and JWTs of the issuers in `jwtIssuers`. A revoked token is refused before any
 * cache or network; a cached answer is served within its bounds (IntrospectionCache); otherwise
 * the endpoint is asked, once per token however many requests carry it at the same time. An
 * endpoint that cannot answer is 503 authentication_unavailable (with Retry-After), or, on a route
 * with `onAuthUnavailable: serveStale`, a cached positive answer still within `cache.staleMs` and
 * the token's exp. Every refusal of the token itself is the same 401 for the client, the precise
 * reason in the audit record.
 */
export class IntrospectionAuthenticator implements Authenticator {
  readonly type = 'introspection';
  readonly challenge: string;
  readonly assertedHeaders: ReadonlyMap<string, string>;
  readonly credentialHeaders = ['authorization'];
  readonly authorizationScheme = null;
  readonly queryParam = null;
  readonly alwaysAdmits = false;
  readonly servesStale = true;
  private readonly invalid: string;
  private readonly clock: Clock;

  constructor(private readonly spec: IntrospectionAuthenticatorSpec) {
    this.challenge = `Bearer realm="${spec.realm}"`;
    this.invalid = `Bearer realm="${spec.realm}", error="invalid_token"`;
    this.assertedHeaders = new Map(spec.rules.mapping.headers.map(([header, path]) => [header, `claim:${path.text}`]));
    this.clock = spec.clock ?? systemClock;
    // A revocation (made here, or learnt from another gateway) drops the token's answers at once.
    const { shared } = spec;
    spec.cache.onDrop = shared === null ? null : (digest) => { void shared.store.delete(shared.scope, digest); };
    spec.cache.follow(spec.oauth.revocations);
  }

  get name(): string {
    return this.spec.name;
  }

  readiness(): ComponentReadiness {
    return { ...this.spec.endpoint.readiness(), type: this.type };
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const token = bearerToken(ex.req.rawHeaders);
    if (token === undefined) return ABSENT;
    if (token === null) return this.reject('malformed: Authorization header is not a single "Bearer <token>"', true);
    // Another authenticator's JWT is not this one's to judge, whatever its length.
    const jwt = JWT_SHAPE.exec(token);
    if (jwt !== null && !this.introspectsJwt(jwt[1] ?? '')) return ABSENT;
    if (token.length > this.spec.maxTokenBytes) return this.reject(`token longer than maxTokenBytes ${this.spec.maxTokenBytes}`, true);
    const digest = this.spec.oauth.digester.ofToken(token);
    const refused = this.revocationOf(token, digest);
    if (refused !== null) return refused;
    const now = this.clock.now();
    const { cache } = this.spec;
    const cached = cache.fresh(digest, now);
    if (cached !== undefined) {
      this.spec.endpoint.countCache(cached.kind === 'positive' ? 'hit' : 'negative');
      return this.conclude(cached, now);
    }
    this.spec.endpoint.countCache('miss');
    const serveStale = ex.route?.onAuthUnavailable === 'serveStale';
    let flight = cache.flights.get(digest);
    if (flight === undefined) {
      flight = this.lookup(digest, token, ipKey(ex.clientIp, CLIENT_IPV6_PREFIX_BITS)).finally(() => { cache.flights.delete(digest); });
      cache.flights.set(digest, flight);
    }
    // Revoked while the answer was awaited: the revocation wins over the answer.
    return flight.then((entry) => this.revocationOf(token, digest) ?? this.conclude(entry, this.clock.now()), (err: unknown) => this.unavailable(err, digest, serveStale));
  }

  /** The revocation list's verdict on the token (see revocationStatus), or null to go on. */
  private revocationOf(token: string, digest: string): AuthOutcome | null {
    const status = revocationStatus(token, this.spec.oauth.revocations, this.spec.oauth.digester, digest);
    if (status === null) return null;
    if (status === 'revoked') return this.reject('revoked', false);
    return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.spec.name}: ${status.unavailable}`), guess: false };
  }

  private revoked(digest: string): boolean {
    const { revocations } = this.spec.oauth;
    return !revocations.empty && revocations.isRevoked(digest);
  }

  /** Whether a JWT-shaped token is one this authenticator introspects: its unverified `iss` is in jwtIssuers. */
  private introspectsJwt(payload: string): boolean {
    if (this.spec.jwtIssuers.size === 0) return false;
    try {
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
      const iss = typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>).iss : undefined;
      return typeof iss === 'string' && this.spec.jwtIssuers.has(iss);
    } catch {
      return false;
    }
  }

  /** The answer for a token not in the cache: from the shared cache, else from the endpoint; cached either way. */
  private async lookup(digest: string, token: string, client: string): Promise<CacheEntry> {
    const { cache, shared, endpoint } = this.spec;
    if (shared !== null) {
      const stored = await shared.store.get(shared.scope, digest);
      const found = stored === null ? null : parseShared(stored, this.sharedSeal(shared.scope, digest));
      const now = this.clock.now();
      // Served no longer than the gateway that introspected it would: until its `until`.
      if (found !== null && found.until > now) {
        endpoint.countCache('shared');
        const entry = cache.positive(digest, found.claims, now, expMsOf(found.claims), Math.min(cache.options.ttlMs, found.until - now));
        if (this.revoked(digest)) cache.drop(digest);
        return entry;
      }
    }
    const claims = await endpoint.introspect(token, client);
    const now = this.clock.now();
    if (claims.active !== true) return cache.negative(digest, now);
    const entry = cache.positive(digest, claims, now, expMsOf(claims));
    // A revocation that came during the call already dropped the token's answers here and in Redis: the answer is not kept.
    if (this.revoked(digest)) {
      cache.drop(digest);
      return entry;
    }
    if (shared !== null) {
      const json = JSON.stringify({ until: entry.freshUntil, claims });
      void shared.store.set(shared.scope, digest, `${this.sharedSeal(shared.scope, digest)(json)} ${json}`, entry.freshUntil - now);
    }
    return entry;
  }

  /**
   * The seal of a shared answer: HMAC under the token hash key (the digester's) of the scope, the
   * token's digest and the answer. Whoever can write Redis but lacks the key can neither change an
   * answer nor move one under another token's digest; domain-separated from token digests (a token
   * hash holds no newline).
   */
  private sharedSeal(scope: string, digest: string): (json: string) => string {
    return (json) => this.spec.oauth.digester.ofHash(`introspection-shared\n${scope}\n${digest}\n${createHash('sha256').update(json).digest('base64url')}`);
  }

  private conclude(entry: CacheEntry, now: number): AuthOutcome {
    // An inactive token: unknown, expired or revoked at the authorization server — or a guess.
    if (entry.kind === 'negative') return this.reject('inactive: the authorization server says the token is not active', true);
    const timing = checkTimes(entry.claims, this.spec.policy.clockSkewMs, now);
    const mapped = this.mapped(entry);
    if (timing !== null) return this.reject(timing, false, mapped.ok ? mapped.identity : mapped.owner);
    if (!mapped.ok) return this.reject(mapped.reason, false, mapped.owner);
    return { kind: 'authenticated', identity: mapped.identity };
  }

  /** The checks that do not depend on time, and the identity, computed once per entry for this authenticator. */
  private mapped(entry: PositiveEntry): Mapped {
    if (entry.memo?.by === this) return entry.memo.value as Mapped;
    const identity = this.identityFrom(entry.claims);
    const problem = checkAnswer(entry.claims, this.spec.policy) ?? checkClaimRules(entry.claims, this.spec.rules, audienceList(entry.claims.aud));
    const value: Mapped = problem === null && typeof identity !== 'string'
      ? { ok: true, identity }
      : { ok: false, reason: problem ?? `claim_invalid: ${identity as string}`, owner: typeof identity === 'string' ? undefined : identity };
    entry.memo = { by: this, value };
    return value;
  }

  private identityFrom(claims: IntrospectionClaims): Identity | string {
    return identityFromClaims(claims, this.spec.rules.mapping, { method: 'introspection', authenticator: this.spec.name, keyId: null, bearerRealm: this.spec.realm });
  }

  /** The endpoint could not answer: a stale positive on a serveStale route, else 503. */
  private unavailable(err: unknown, digest: string, serveStale: boolean): AuthOutcome {
    if (!(err instanceof EndpointError)) throw err;
    const now = this.clock.now();
    if (serveStale) {
      const stale = this.spec.cache.stale(digest, now);
      // Revoked meanwhile: isRevoked was asked before the flight, the revocation may have come since.
      if (stale !== undefined && !this.revoked(digest)) {
        this.spec.endpoint.countCache('stale');
        return this.conclude(stale, now);
      }
    }
    const retryAfterMs = (err as EndpointError & { retryAfterMs?: number }).retryAfterMs ?? 1000;
    const denial = deny('authentication_unavailable', `${this.spec.name}: introspection endpoint ${err.message}`, { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) });
    return { kind: 'rejected', denial, guess: false };
  }

  private reject(reason: string, guess: boolean, owner?: Identity): AuthOutcome {
    const denial = deny('invalid_credential', `${this.spec.name}: ${reason}`, { 'www-authenticate': this.invalid });
    return owner === undefined ? { kind: 'rejected', denial, guess } : { kind: 'rejected', denial, guess, owner };
  }
}

/** exp (never served at or past it, leeway for the clocks of gateway and server aside) and nbf. */
function checkTimes(claims: IntrospectionClaims, skewMs: number, now: number): string | null {
  const { exp, nbf } = claims;
  if (typeof exp === 'number' && now >= exp * 1000 + skewMs) return 'expired: exp is in the past';
  if (typeof nbf === 'number' && now < nbf * 1000 - skewMs) return 'not yet valid: nbf is in the future';
  return null;
}

function expMsOf(claims: IntrospectionClaims): number | null {
  return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : null;
}

/**
 * A shared answer read back from Redis, `<seal> { until, claims }`: only one whose seal is right
 * (see sharedSeal), with claims with `active: true` and a numeric `until` (anything else reads as
 * a miss; the claims are checked again like any answer).
 */
function parseShared(stored: string, seal: (json: string) => string): { until: number; claims: IntrospectionClaims } | null {
  const space = stored.indexOf(' ');
  if (space === -1) return null;
  const json = stored.slice(space + 1);
  const given = Buffer.from(stored.slice(0, space));
  const expected = Buffer.from(seal(json));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    const value = JSON.parse(json) as unknown;
    if (typeof value !== 'object' || value === null) return null;
    const { until, claims } = value as { until?: unknown; claims?: unknown };
    if (typeof until !== 'number' || typeof claims !== 'object' || claims === null || Array.isArray(claims)) return null;
    return (claims as Record<string, unknown>).active === true ? { until, claims: claims as IntrospectionClaims } : null;
  } catch {
    return null;
  }
}
