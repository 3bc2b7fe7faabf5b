import { isHeaderSafe, type Identity } from '../identity.js';
import { readClaim, type ClaimPath, type Claims } from './claim-path.js';
import { listValues, singleValue, type ClaimSource } from './claim-source.js';

/**
 * Where the identity's parts are read from in a verified set of claims, compiled from the config
 * (see compileClaimRules). Shared by every authenticator that maps claims to an identity: JWTs
 * and token introspection responses are read the same way. Each part has one or more sources;
 * lists (roles, scopes) are their union, single values (subject, tenant, tier) come from the
 * first source present.
 */
export interface ClaimMapping {
  readonly subject: readonly ClaimSource[];
  readonly roles: readonly ClaimSource[];
  readonly scopes: readonly ClaimSource[];
  /** Empty: the identity has no tenant. */
  readonly tenant: readonly ClaimSource[];
  /** The claim naming the caller's rate-limit tier; empty: none. */
  readonly tier: readonly ClaimSource[];
  /** `[header name, claim path]` pairs forwarded upstream when the claim is present. */
  readonly headers: readonly (readonly [string, ClaimPath])[];
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
 * when mapped and present, a tenant (whose data) that are not printable ASCII strings or are
 * ambiguous (an object source with several keys). Roles and scopes over MAX_LIST_VALUES, or taken
 * from an object too large to read (MAX_TAKEN), also refuse: evaluation is bounded and never cuts
 * a list silently. Otherwise roles, scopes, the tier and forwarded claims keep their real values
 * for authorization; values that cannot be sent verbatim are left out of the identity headers by
 * the identity-headers stage, which says how many it left out.
 */
export function identityFromClaims(claims: Claims, map: ClaimMapping, base: IdentityBase): Identity | string {
  const subjectFound = singleValue(claims, map.subject);
  if (subjectFound !== null && 'problem' in subjectFound) return `subject ${subjectFound.problem}`;
  const subject = subjectFound?.value;
  if (typeof subject !== 'string' || !isHeaderSafe(subject)) {
    return `subject claim "${subjectFound?.source.text ?? describe(map.subject)}" is absent, not a string, or not printable ASCII`;
  }
  let tenant: string | null = null;
  const tenantFound = singleValue(claims, map.tenant);
  if (tenantFound !== null) {
    if ('problem' in tenantFound) return `tenant ${tenantFound.problem}`;
    const value = tenantFound.value;
    if (typeof value !== 'string' || !isHeaderSafe(value)) return `tenant claim "${tenantFound.source.text}" is not a printable ASCII string`;
    tenant = value;
  }
  let tier: string | null = null;
  const tierFound = singleValue(claims, map.tier);
  // Tier names are config names; any other value, or an ambiguous one, selects the base limits.
  if (tierFound !== null && !('problem' in tierFound) && typeof tierFound.value === 'string' && TIER_NAME.test(tierFound.value)) tier = tierFound.value;
  const roles = listValues(claims, map.roles);
  if ('problem' in roles) return `roles ${roles.problem}`;
  const scopes = listValues(claims, map.scopes);
  if ('problem' in scopes) return `scopes ${scopes.problem}`;
  const claimHeaders: (readonly [string, string | null])[] = [];
  for (const [header, path] of map.headers) {
    const value = readClaim(claims, path);
    if (value === undefined || value === null) continue;
    claimHeaders.push([header, typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : null]);
  }
  return Object.freeze({
    subject, method: base.method, authenticator: base.authenticator, keyId: base.keyId,
    roles, scopes, tenant, tier, claims, claimHeaders, bearerRealm: base.bearerRealm,
  });
}

/** The config's pattern for tier names. */
const TIER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function describe(sources: readonly ClaimSource[]): string {
  return sources.map((s) => s.text).join('", "');
}
