import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import { bearerToken } from '../bearer.js';
import type { Identity } from '../identity.js';
import { identityFromClaims } from '../claims/claim-mapping.js';
import { audienceList, checkClaimRules, type ClaimRules } from '../claims/claim-rules.js';
import { verifyJwt, type Claims, type JwtPolicy, type VerifyResult } from './jwt-verifier.js';
import { KeysUnavailableError } from './key-source.js';
import { revocationStatus } from '../oauth/revocation-status.js';
import { VerifiedTokenCache } from './token-cache.js';
import type { RevocationList } from '../oauth/revocations.js';
import type { TokenDigester } from '../oauth/token-digest.js';

export interface JwtAuthenticatorSpec {
  readonly name: string;
  readonly realm: string;
  readonly policy: JwtPolicy;
  /** Claim mapping and the checks that run once the signature and the time and audience claims verified. */
  readonly rules: ClaimRules;
  readonly cacheMaxEntries: number;
  /** The clock that judges exp/nbf/iat and the token cache (default: the machine's). */
  readonly clock?: Clock;
  /** Revoked tokens, refused before the cache is consulted (absent: none are). */
  readonly revocations?: RevocationList;
  /** How a token is named in `revocations`. */
  readonly digester?: TokenDigester;
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
    this.assertedHeaders = new Map(spec.rules.mapping.headers.map(([header, path]) => [header, `claim:${path.text}`]));
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
    const revocations = this.spec.revocations?.unavailable ?? null;
    if (revocations !== null) reasons.push(revocations);
    return reasons.length === 0 ? { ready: true, type: this.type } : { ready: false, type: this.type, reason: reasons.join('; ') };
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const token = bearerToken(ex.req.rawHeaders);
    if (token === undefined) return ABSENT;
    if (token === null) return this.reject('malformed: Authorization header is not a single "Bearer <token>"', true);
    const revoked = this.revocationOf(token);
    if (revoked !== null) return revoked;
    const now = this.clock.now();
    const cached = this.cache.get(token, now);
    if (cached !== undefined) return { kind: 'authenticated', identity: cached };
    try {
      const result = verifyJwt(token, this.spec.policy, now);
      // The issuer's keys are being fetched (seconds, at worst): a revocation made meanwhile holds too.
      return result instanceof Promise ? result.then((r) => this.revocationOf(token) ?? this.conclude(token, r, now), (err: unknown) => this.failure(err)) : this.conclude(token, result, now);
    } catch (err) {
      return this.failure(err);
    }
  }

  /**
   * A revoked token is refused before the verified-token cache, so a revocation holds at once for
   * tokens cached before it. A list cut off from the gateways it shares revocations with (past
   * oauth.revocations.maxStalenessMs) refuses every token: it may be missing a revocation (see
   * revocationStatus).
   */
  private revocationOf(token: string): AuthOutcome | null {
    const { revocations, digester } = this.spec;
    if (revocations === undefined || digester === undefined) return null;
    const status = revocationStatus(token, revocations, digester);
    if (status === null) return null;
    if (status === 'revoked') return this.reject('revoked', false);
    return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.spec.name}: ${status.unavailable}`), guess: false };
  }

  private conclude(token: string, result: VerifyResult, now: number): AuthOutcome {
    if (!result.ok) return this.reject(result.reason, !result.signatureValid, this.ownerOf(result));
    const identity = this.identityFrom(result.claims);
    // The signature verified: a refusal from here on is the issuer's doing (or the holder's
    // honest use of a token meant for another client), not a guess.
    const broken = checkClaimRules(result.claims, this.spec.rules, audienceList(result.claims.aud));
    if (broken !== null) return this.reject(broken, false, typeof identity === 'string' ? undefined : identity);
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

  private identityFrom(claims: Claims): Identity | string {
    return identityFromClaims(claims, this.spec.rules.mapping, { method: 'jwt', authenticator: this.spec.name, keyId: null, bearerRealm: this.spec.realm });
  }
}
