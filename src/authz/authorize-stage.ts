import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Stage } from '../pipeline/stage.js';

/** Where a route finds the tenant a request is for. */
export type TenantRule =
  | { readonly kind: 'param'; readonly name: string; readonly segment: number }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'fixed'; readonly tenants: ReadonlySet<string> };

/** A route's authorization requirements, compiled; absent parts are null or empty. */
export interface AuthorizationPolicy {
  readonly rolesAnyOf: readonly string[] | null;
  readonly rolesAllOf: readonly string[] | null;
  /** All required (RFC 6750 §3.1 `insufficient_scope` otherwise). */
  readonly scopes: readonly string[];
  readonly tenant: TenantRule | null;
}

/**
 * Checks the authenticated identity against the route's roles, scopes and tenant. It runs after
 * authentication; an exchange without an identity here is a bug and is refused.
 */
export function authorizeStage(policy: AuthorizationPolicy): Stage {
  const scopeList = policy.scopes.join(' ');
  return {
    name: 'authorize',
    run(ex): Denial | undefined {
      const identity = ex.identity;
      if (identity === null) return deny('internal_error', 'authorization reached without an identity');
      const { rolesAnyOf, rolesAllOf } = policy;
      if (rolesAnyOf !== null && !rolesAnyOf.some((r) => identity.roles.includes(r))) {
        return deny('insufficient_role', `needs one of roles ${rolesAnyOf.join(', ')}`);
      }
      if (rolesAllOf !== null) {
        const lacking = rolesAllOf.filter((r) => !identity.roles.includes(r));
        if (lacking.length > 0) return deny('insufficient_role', `lacks roles ${lacking.join(', ')}`);
      }
      const lackingScopes = policy.scopes.filter((s) => !identity.scopes.includes(s));
      if (lackingScopes.length > 0) {
        const realm = identity.bearerRealm;
        return deny('insufficient_scope', `lacks scopes ${lackingScopes.join(' ')}`,
          realm === null ? undefined : { 'www-authenticate': `Bearer realm="${realm}", error="insufficient_scope", scope="${scopeList}"` });
      }
      if (policy.tenant !== null) return checkTenant(ex, policy.tenant, identity.tenant);
      return undefined;
    },
  };
}

function checkTenant(ex: Exchange, rule: TenantRule, tenant: string | null): Denial | undefined {
  if (tenant === null) return deny('tenant_mismatch', 'the identity has no tenant');
  let requested: string | undefined;
  if (rule.kind === 'fixed') {
    return rule.tenants.has(tenant) ? undefined : deny('tenant_mismatch', `tenant ${tenant} is not one of the route's tenants`);
  } else if (rule.kind === 'param') {
    // Path segments are canonical: what remains percent-encoded decodes to valid UTF-8.
    const segment = ex.target?.segments[rule.segment];
    requested = segment === undefined ? undefined : decodeURIComponent(segment);
  } else {
    // Node joins repeated unknown headers with ", ": a repeated tenant header never matches one tenant.
    const value = ex.req.headers[rule.name];
    requested = typeof value === 'string' ? value : undefined;
  }
  if (requested === tenant) return undefined;
  return deny('tenant_mismatch', `identity tenant ${tenant} does not match requested ${requested === undefined ? '(none)' : JSON.stringify(requested.slice(0, 100))}`);
}
