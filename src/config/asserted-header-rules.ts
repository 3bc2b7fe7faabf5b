import type { Authenticator } from '../authn/authenticator.js';
import { normaliseHeaderName } from '../http/headers.js';
import type { IdentityHeaderNames } from '../stages/identity-headers.js';
import { AUTH_DEFAULTS } from './compile-auth.js';


/** What limits may not count by, from the rest of the config. */
export interface HeaderRules {
  /** Headers authenticators read credentials from (lower case). */
  readonly credential: ReadonlySet<string>;
  /** Headers the gateway asserts or recomputes (lower case, `_` read as `-`), each with the dimension to count by instead. */
  readonly asserted: ReadonlyMap<string, string>;
  /** Name prefixes the gateway owns (`x-client-cert-`), each with the dimension to count by instead. */
  readonly assertedPrefixes: ReadonlyMap<string, string>;
}

/**
 * The headers the gateway asserts or recomputes, with the dimension that counts what they carry.
 * A limit keyed on one would read the client's copy (removed only on the way upstream), which is
 * spoofed by definition: config error, pointing to the dimension.
 */
export function assertedHeaderRules(
  authenticators: readonly Authenticator[], identity: IdentityHeaderNames, requestIdHeader: string, protectedHeaders: ReadonlySet<string>, credential: ReadonlySet<string>,
): HeaderRules {
  const asserted = new Map<string, string>();
  const add = (name: string, instead: string): void => { const n = normaliseHeaderName(name); if (!asserted.has(n)) asserted.set(n, instead); };
  // The configured names, then the default ones (removed from every request whatever is configured).
  for (const names of [identity, AUTH_DEFAULTS.identityHeaders]) {
    add(names.subject, 'subject');
    add(names.tenant, 'tenant');
    add(names.keyId, 'keyId');
    add(names.roles, 'subject, or claim:<path> of the roles claim');
    add(names.scopes, 'subject, or claim:<path> of the scopes claim');
    add(names.method, 'subject (qualified by its authenticator) or keyId');
  }
  add('x-client-cert-subject', 'subject');
  for (const a of authenticators) for (const [header, carries] of a.assertedHeaders) add(header, carries);
  add(requestIdHeader, 'ip or an identity dimension (a request id names one request, not a caller)');
  for (const name of ['x-forwarded-for', 'forwarded', 'x-real-ip']) add(name, 'ip (the address resolved through trustedProxies)');
  for (const name of protectedHeaders) add(name, 'subject, keyId, tenant or claim:<path>');
  return {
    credential,
    asserted,
    assertedPrefixes: new Map([['x-client-cert-', 'subject'], ['x-portcullis-', 'subject, keyId, tenant or claim:<path>']]),
  };
}
