import { claimAt, type Claims } from '../jwt/jwt-verifier.js';
import { isHeaderSafe, type Identity } from '../identity.js';

/**
 * Where the identity's parts are read from in a verified set of claims (claim paths, see
 * claimAt). Shared by every authenticator that maps claims to an identity: JWTs and token
 * introspection responses are read the same way.
 */
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

/** What the authenticator itself says of the identity it maps: everything claims do not. */
export interface IdentityBase {
  /** The authenticator type (`jwt`, `introspection`): X-Auth-Method. */
  readonly method: string;
  /** The configured authenticator's name. */
  readonly authenticator: string;
  readonly keyId: string | null;
  /** The bearer realm (the identity came from the request's bearer token), or null. */
  readonly bearerRealm: string | null;
}

/**
 * The identity the claims describe, or why they cannot describe one. Only the values the gateway
 * must assert and cannot represent make the credential invalid: a subject (who the caller is) and,
 * when mapped and present, a tenant (whose data) that are not printable ASCII strings. Roles,
 * scopes, the tier and forwarded claims keep their real values for authorization; values that
 * cannot be sent verbatim are left out of the identity headers by the identity-headers stage,
 * which says how many it left out.
 */
export function identityFromClaims(claims: Claims, map: ClaimMapping, base: IdentityBase): Identity | string {
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
    subject, method: base.method, authenticator: base.authenticator, keyId: base.keyId,
    roles: list(claimAt(claims, map.roles)), scopes: list(claimAt(claims, map.scopes)),
    tenant, tier, claims, claimHeaders, bearerRealm: base.bearerRealm,
  });
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
