import { deny } from '../pipeline/denials.js';
import type { Stage } from '../pipeline/stage.js';

/** Header names (lower case) the gateway asserts the identity in; configurable under headers.identity. */
export interface IdentityHeaderNames {
  readonly subject: string;
  readonly tenant: string;
  readonly roles: string;
  readonly scopes: string;
  readonly method: string;
  /** Carries the API key id (never the key) for API-key identities. */
  readonly keyId: string;
}

/**
 * The last step before the proxy: the verified identity is asserted to the upstream. Inbound
 * copies of these headers were removed before any stage ran (DESIGN.md invariant 3), so what the
 * upstream reads is what the gateway established. Roles and scopes are space-separated. The
 * credential headers (`Authorization`) are removed unless the route forwards them.
 */
export function identityHeaders(names: IdentityHeaderNames, stripCredentials: ReadonlySet<string>): Stage {
  return {
    name: 'identity-headers',
    run(ex) {
      const identity = ex.identity;
      if (identity === null) return deny('internal_error', 'identity headers reached without an identity');
      let headers = ex.forwardHeaders;
      if (stripCredentials.size > 0) {
        const kept: string[] = [];
        for (let i = 0; i < headers.length; i += 2) {
          const name = headers[i] as string;
          if (!stripCredentials.has(name.toLowerCase())) kept.push(name, headers[i + 1] as string);
        }
        headers = kept;
        ex.forwardHeaders = kept;
      }
      headers.push(names.subject, identity.subject, names.method, identity.method);
      if (identity.tenant !== null) headers.push(names.tenant, identity.tenant);
      if (identity.keyId !== null) headers.push(names.keyId, identity.keyId);
      if (identity.roles.length > 0) headers.push(names.roles, identity.roles.join(' '));
      if (identity.scopes.length > 0) headers.push(names.scopes, identity.scopes.join(' '));
      for (const [name, value] of identity.claimHeaders) headers.push(name, value);
      return undefined;
    },
  };
}
