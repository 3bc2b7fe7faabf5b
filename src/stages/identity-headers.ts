import { isHeaderSafe, isListElement, MAX_IDENTITY_LIST, MAX_IDENTITY_LIST_BYTES, type Identity } from '../authn/identity.js';
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
  /** Says which identity headers had values left out, and how many: `x-roles=1, x-user-email=1`. */
  readonly omitted: string;
}

/**
 * The last step before the proxy: the verified identity is asserted to the upstream. Inbound
 * copies of these headers were removed before any stage ran (DESIGN.md invariant 3), so what the
 * upstream reads is what the gateway established. Roles and scopes are space-separated. The
 * credential headers (`Authorization`) are removed unless the route forwards them.
 *
 * A value that cannot be sent verbatim — CR/LF or other controls (header injection, RFC 9110
 * §5.5), non-ASCII, a space or comma inside a list element, too long, past the list's count or
 * byte limit, a forwarded claim that is an object — is left out, never altered, and the omitted
 * header names each header that lost values with the count. Authorization has already used the
 * real values. A subject or tenant the authenticator let through is always printable ASCII; one
 * that is not is a bug and is refused rather than sent.
 */
export function identityHeaders(names: IdentityHeaderNames, stripCredentials: ReadonlySet<string>, forwardAuthorization = false): Stage {
  // Authorization is forwarded only when it carried the bearer token that authenticated the
  // request: never a credential another authenticator decided without reading (a forged token
  // beside a valid API key), and never an API key in the `ApiKey` scheme.
  const stripUnverified = new Set([...stripCredentials, 'authorization']);
  // Identities are frozen and reused (verified-token cache, API key cache): render each once.
  const rendered = new WeakMap<Identity, readonly string[] | null>();
  return {
    name: 'identity-headers',
    run(ex) {
      const identity = ex.identity;
      if (identity === null) return deny('internal_error', 'identity headers reached without an identity');
      let values = rendered.get(identity);
      if (values === undefined) {
        values = render(names, identity);
        rendered.set(identity, values);
      }
      if (values === null) return deny('internal_error', `${identity.authenticator} produced a subject or tenant that cannot be sent as a header`);
      // The credential headers go unless the route forwards Authorization, and then only a bearer
      // token that authenticated the request; the upstream request is assembled from this.
      ex.asserted = { headers: values, strip: forwardAuthorization && identity.bearerRealm === null ? stripUnverified : stripCredentials };
      return undefined;
    },
  };
}

/** The identity as flat `[name, value, …]` header pairs, or null when its subject or tenant cannot be sent. */
function render(names: IdentityHeaderNames, identity: Identity): readonly string[] | null {
  if (!isHeaderSafe(identity.subject) || (identity.tenant !== null && !isHeaderSafe(identity.tenant))) return null;
  const headers: string[] = [names.subject, identity.subject, names.method, identity.method];
  if (identity.tenant !== null) headers.push(names.tenant, identity.tenant);
  if (identity.keyId !== null) headers.push(names.keyId, identity.keyId);
  let omitted = '';
  const note = (name: string, count: number): void => { if (count > 0) omitted += `${omitted === '' ? '' : ', '}${name}=${count}`; };
  for (const [name, values] of [[names.roles, identity.roles], [names.scopes, identity.scopes]] as const) {
    if (values.length === 0) continue;
    const { text, left } = listValue(values);
    if (text !== '') headers.push(name, text);
    note(name, left);
  }
  for (const [name, value] of identity.claimHeaders) {
    if (value !== null && isHeaderSafe(value)) headers.push(name, value);
    else note(name, 1);
  }
  if (identity.renderedHeaders !== undefined) headers.push(...identity.renderedHeaders);
  if (omitted !== '') headers.push(names.omitted, omitted);
  return Object.freeze(headers);
}

/** The space-separated list of the elements that can be sent, and how many were left out. */
function listValue(values: readonly string[]): { text: string; left: number } {
  let text = '';
  let sent = 0;
  for (const value of values) {
    if (sent >= MAX_IDENTITY_LIST || !isListElement(value) || text.length + 1 + value.length > MAX_IDENTITY_LIST_BYTES) continue;
    text += text === '' ? value : ` ${value}`;
    sent++;
  }
  return { text, left: values.length - sent };
}
