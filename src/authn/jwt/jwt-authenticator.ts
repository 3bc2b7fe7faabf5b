import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import { bearerToken } from '../bearer.js';
import { isHeaderSafe, isListElement, MAX_IDENTITY_LIST, type Identity } from '../identity.js';
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
  readonly now?: () => number;
}

/**
 * Bearer JWTs (RFC 6750, RFC 7519): verified with verifyJwt, mapped to an Identity, and the
 * identity cached per token until the token's `exp`. Every failure is the same 401 with
 * `error="invalid_token"` for the client; the precise reason goes to the audit record.
 */
export class JwtAuthenticator implements Authenticator {
  readonly type = 'jwt';
  readonly challenge: string;
  readonly assertedHeaders: readonly string[];
  readonly credentialHeaders = ['authorization'];
  private readonly invalid: string;
  private readonly cache: VerifiedTokenCache;
  private readonly now: () => number;

  constructor(private readonly spec: JwtAuthenticatorSpec) {
    this.challenge = `Bearer realm="${spec.realm}"`;
    this.invalid = `Bearer realm="${spec.realm}", error="invalid_token"`;
    this.assertedHeaders = spec.claims.headers.map(([header]) => header);
    this.cache = new VerifiedTokenCache(spec.cacheMaxEntries);
    this.now = spec.now ?? Date.now;
  }

  get name(): string {
    return this.spec.name;
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const token = bearerToken(ex.req.rawHeaders);
    if (token === undefined) return ABSENT;
    if (token === null) return this.reject('malformed: Authorization header is not a single "Bearer <token>"');
    const now = this.now();
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
    if (!result.ok) return this.reject(result.reason);
    const identity = this.identityFrom(result.claims);
    if (typeof identity === 'string') return this.reject(`claim_invalid: ${identity}`);
    this.cache.set(token, identity, result.exp, now, result.source, result.revision);
    return { kind: 'authenticated', identity };
  }

  private failure(err: unknown): AuthOutcome {
    if (err instanceof KeysUnavailableError) return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.spec.name}: ${err.message}`) };
    throw err;
  }

  private reject(reason: string): AuthOutcome {
    return { kind: 'rejected', denial: deny('invalid_credential', `${this.spec.name}: ${reason}`, { 'www-authenticate': this.invalid }) };
  }

  /** The identity, or why the claims cannot be asserted upstream (wrong type, unsafe characters, too many). */
  private identityFrom(claims: Claims): Identity | string {
    const map = this.spec.claims;
    const subject = claimAt(claims, map.subject);
    if (typeof subject !== 'string' || !isHeaderSafe(subject)) return `subject claim "${map.subject}" is absent, not a string, or not printable ASCII`;
    const roles = list(claimAt(claims, map.roles));
    if (roles === null) return `roles claim "${map.roles}" is not a string or array of strings without spaces or commas`;
    const scopes = list(claimAt(claims, map.scopes));
    if (scopes === null) return `scopes claim "${map.scopes}" is not a string or array of strings without spaces or commas`;
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
      if (value !== undefined && value !== null) {
        if (typeof value !== 'string' || !isListElement(value)) return `tier claim "${map.tier}" is not a string without spaces or commas`;
        tier = value;
      }
    }
    const claimHeaders: (readonly [string, string])[] = [];
    for (const [header, path] of map.headers) {
      const value = claimAt(claims, path);
      if (value === undefined || value === null) continue;
      const text = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : null;
      if (text === null || !isHeaderSafe(text)) return `claim "${path}" for ${header} is not a printable ASCII string, number or boolean`;
      claimHeaders.push([header, text]);
    }
    return Object.freeze({
      subject, method: 'jwt', authenticator: this.spec.name, keyId: null,
      roles, scopes, tenant, tier, claims, claimHeaders, bearerRealm: this.spec.realm,
    });
  }
}

/**
 * A roles or scopes claim: absent → empty; a space-separated string (OAuth `scope`, RFC 8693
 * §4.2) or an array of strings. Elements must be list-safe (no space, comma or control
 * character); anything else makes the claim invalid rather than silently dropping a value.
 */
function list(value: unknown): readonly string[] | null {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : Array.isArray(value) ? value : null;
  if (items === null || items.length > MAX_IDENTITY_LIST) return null;
  for (const item of items) if (typeof item !== 'string' || !isListElement(item)) return null;
  return Object.freeze(items as string[]);
}
