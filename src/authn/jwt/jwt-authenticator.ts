import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import { bearerToken } from '../bearer.js';
import { isHeaderSafe, type Identity } from '../identity.js';
import { claimAt, verifyJwt, type Claims, type JwtPolicy, type VerifyResult } from './jwt-verifier.js';
import { KeysUnavailableError } from './key-source.js';
import { VerifiedTokenCache } from './token-cache.js';

/** Where the identity's parts are read from in the claims (claim paths, see claimAt). */
export interface ClaimMapping {
  readonly subject: string;
  readonly roles: string;
  readonly scopes: string;
  readonly tenant: string | null;
  /** The claim naming the caller's rate-limit tier, or null. */
  readonly tier: string | null;
  /** `[header name, claim path]` pairs forwarded upstream when the claim is present. */
  readonly headers: readonly (readonly [string, string])[];
}

export interface JwtAuthenticatorSpec {
  readonly name: string;
  readonly realm: string;
  readonly policy: JwtPolicy;
  readonly claims: ClaimMapping;
  readonly cacheMaxEntries: number;
  /** The clock that judges exp/nbf/iat and the token cache (default: the machine's). */
  readonly clock?: Clock;
}

/**
 * Bearer JWTs (RFC 6750, RFC 7519): verified with verifyJwt, mapped to an Identity, and the
 * identity cached per token until the token's `exp`. Every failure is the same 401 with
 * `error="invalid_token"` for the client; the precise reason goes to the audit record.
 */
export class JwtAuthenticator implements Authenticator {
  readonly type = 'jwt';
  readonly challenge: string;
  readonly assertedHeaders: ReadonlyMap<string, string>;
  readonly credentialHeaders = ['authorization'];
  /** Bearer tokens may be forwarded on routes that ask (forwardAuthorization), so the scheme is not removed everywhere. */
  readonly authorizationScheme = null;
  readonly queryParam = null;
  readonly alwaysAdmits = false;
  private readonly invalid: string;
  private readonly cache: VerifiedTokenCache;
  private readonly clock: Clock;

  constructor(private readonly spec: JwtAuthenticatorSpec) {
    this.challenge = `Bearer realm="${spec.realm}"`;
    this.invalid = `Bearer realm="${spec.realm}", error="invalid_token"`;
    this.assertedHeaders = new Map(spec.claims.headers.map(([header, path]) => [header, `claim:${path}`]));
    this.cache = new VerifiedTokenCache(spec.cacheMaxEntries);
    this.clock = spec.clock ?? systemClock;
  }

  get name(): string {
    return this.spec.name;
  }

  /** Ready when every issuer's keys are at hand (a remote set loaded); keys from the config always are. */
  readiness(): ComponentReadiness {
    const reasons: string[] = [];
    for (const { source } of this.spec.policy.issuers.values()) {
      const state = source.readiness?.();
      if (state !== undefined && !state.ready) reasons.push(state.reason ?? 'keys not available');
    }
    return reasons.length === 0 ? { ready: true, type: this.type } : { ready: false, type: this.type, reason: reasons.join('; ') };
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const token = bearerToken(ex.req.rawHeaders);
    if (token === undefined) return ABSENT;
    if (token === null) return this.reject('malformed: Authorization header is not a single "Bearer <token>"', true);
    const now = this.clock.now();
    const cached = this.cache.get(token, now);
    if (cached !== undefined) return { kind: 'authenticated', identity: cached };
    try {
      const result = verifyJwt(token, this.spec.policy, now);
      return result instanceof Promise ? result.then((r) => this.conclude(token, r, now), (err: unknown) => this.failure(err)) : this.conclude(token, result, now);
    } catch (err) {
      return this.failure(err);
    }
  }

  private conclude(token: string, result: VerifyResult, now: number): AuthOutcome {
    if (!result.ok) return this.reject(result.reason, !result.signatureValid, this.ownerOf(result));
    const identity = this.identityFrom(result.claims);
    // The signature verified: an unusable subject or tenant is the issuer's doing, not a guess.
    if (typeof identity === 'string') return this.reject(`claim_invalid: ${identity}`, false);
    this.cache.set(token, identity, result.exp, now, result.source, result.revision);
    return { kind: 'authenticated', identity };
  }

  private failure(err: unknown): AuthOutcome {
    if (err instanceof KeysUnavailableError) {
      const headers = err.retryAfterMs === null ? undefined : { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) };
      return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.spec.name}: ${err.message}`, headers), guess: false };
    }
    throw err;
  }

  /**
   * Whose a refused token is, for the audit record: only when its signature verified with a key of
   * its issuer (the claims are then the issuer's word, though the token is expired, not yet valid
   * or for another audience) and its subject is usable. A token that did not verify names nobody:
   * anyone can write any `sub` into an unsigned payload.
   */
  private ownerOf(result: VerifyResult): Identity | undefined {
    if (result.ok || !result.signatureValid || result.claims === undefined) return undefined;
    const identity = this.identityFrom(result.claims);
    return typeof identity === 'string' ? undefined : identity;
  }

  /** `guess`: the token could be forged or guessed (anything before a valid signature); counted by the brute-force guard. */
  private reject(reason: string, guess: boolean, owner?: Identity): AuthOutcome {
    const denial = deny('invalid_credential', `${this.spec.name}: ${reason}`, { 'www-authenticate': this.invalid });
    return owner === undefined ? { kind: 'rejected', denial, guess } : { kind: 'rejected', denial, guess, owner };
  }

  /**
   * The identity, or why the token cannot have one. Only the values the gateway must assert and
   * cannot represent make the token invalid: a subject (who the caller is) and, when mapped and
   * present, a tenant (whose data) that are not printable ASCII strings. Roles, scopes, the tier
   * and forwarded claims keep their real values for authorization; values that cannot be sent
   * verbatim are left out of the identity headers by the identity-headers stage, which says how
   * many it left out.
   */
  private identityFrom(claims: Claims): Identity | string {
    const map = this.spec.claims;
    const subject = claimAt(claims, map.subject);
    if (typeof subject !== 'string' || !isHeaderSafe(subject)) return `subject claim "${map.subject}" is absent, not a string, or not printable ASCII`;
    let tenant: string | null = null;
    if (map.tenant !== null) {
      const value = claimAt(claims, map.tenant);
      if (value !== undefined && value !== null) {
        if (typeof value !== 'string' || !isHeaderSafe(value)) return `tenant claim "${map.tenant}" is not a printable ASCII string`;
        tenant = value;
      }
    }
    let tier: string | null = null;
    if (map.tier !== null) {
      const value = claimAt(claims, map.tier);
      // Tier names are config names; any other value selects the base limits.
      if (typeof value === 'string' && TIER_NAME.test(value)) tier = value;
    }
    const claimHeaders: (readonly [string, string | null])[] = [];
    for (const [header, path] of map.headers) {
      const value = claimAt(claims, path);
      if (value === undefined || value === null) continue;
      claimHeaders.push([header, typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : null]);
    }
    return Object.freeze({
      subject, method: 'jwt', authenticator: this.spec.name, keyId: null,
      roles: list(claimAt(claims, map.roles)), scopes: list(claimAt(claims, map.scopes)),
      tenant, tier, claims, claimHeaders, bearerRealm: this.spec.realm,
    });
  }
}

/** The config's pattern for tier names. */
const TIER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * A roles or scopes claim: absent → empty; a space-separated string (OAuth `scope`, RFC 8693
 * §4.2) or an array. Every string element is kept as it is (Okta's `"Order Clerks"`, non-ASCII
 * group names): authorization compares real values. Elements that are not strings are not role or
 * scope names and are ignored, as is a claim of another type.
 */
function list(value: unknown): readonly string[] {
  if (typeof value === 'string') return Object.freeze(value.split(' ').filter((s) => s !== ''));
  if (!Array.isArray(value)) return EMPTY;
  return Object.freeze(value.filter((item): item is string => typeof item === 'string' && item !== ''));
}

const EMPTY: readonly string[] = Object.freeze([]);
