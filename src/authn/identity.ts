/**
 * Who a request is from, as established by an authenticator. Frozen once built; authorization
 * reads it, the identity headers are rendered from it, and the audit record names it.
 */
export interface Identity {
  readonly subject: string;
  /** The authenticator type (`jwt`, `anonymous`, …): sent as X-Auth-Method and audited. */
  readonly method: string;
  /** The configured authenticator's name. */
  readonly authenticator: string;
  /** Credential id safe to log (an API key id); never the secret. */
  readonly keyId: string | null;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  readonly tenant: string | null;
  /** The caller's rate-limit tier (an API key's tier, a token's tier claim), selecting per-tier limits; null: the base limits. */
  readonly tier: string | null;
  /** The verified token claims (read-only), for limits keyed on a claim; null for credentials without claims. */
  readonly claims: Readonly<Record<string, unknown>> | null;
  /**
   * Extra headers for the upstream, `[name, value]`: the claim's value as text, or null when it is
   * present but not a string, number or boolean. Values that cannot be sent verbatim are left out
   * (and counted) when the headers are rendered.
   */
  readonly claimHeaders: readonly (readonly [string, string | null])[];
  /**
   * The realm for RFC 6750 `insufficient_scope` challenges, or null when not a bearer method. Non-null
   * exactly when the request was authenticated by the bearer token in its `Authorization`: the only
   * `Authorization` a route with forwardAuthorization forwards.
   */
  readonly bearerRealm: string | null;
  /**
   * Headers the authenticator rendered itself from verified material, flat `[name, value, …]`,
   * sent upstream as they are: values the gateway encoded (base64 of a client certificate, RFC
   * 9440), never text a client chose. Absent: none.
   */
  readonly renderedHeaders?: readonly string[];
}

/** Longest subject, tenant, role, scope or claim header value sent upstream (characters, all ASCII). */
export const MAX_IDENTITY_VALUE = 1024;
/** Most roles or scopes sent upstream in one list header; the rest are left out and counted. */
export const MAX_IDENTITY_LIST = 256;
/** Longest list header (X-Roles, X-Scopes) sent upstream, in bytes; elements past it are left out and counted. */
export const MAX_IDENTITY_LIST_BYTES = 8192;

/** Printable ASCII only: a value with CR, LF, NUL, other controls or non-ASCII cannot be asserted verbatim in a header. */
const HEADER_SAFE = /^[\x20-\x7e]+$/;
/** List elements also exclude space and comma, the separators of the list headers. */
const LIST_ELEMENT = /^[\x21-\x2b\x2d-\x7e]+$/;

/** True when `value` can be sent upstream verbatim as a header value. */
export function isHeaderSafe(value: string): boolean {
  return value.length <= MAX_IDENTITY_VALUE && HEADER_SAFE.test(value) && value.trim() === value;
}

/** True when `value` can be one element of a space-separated list header (X-Roles, X-Scopes). */
export function isListElement(value: string): boolean {
  return value.length <= MAX_IDENTITY_VALUE && LIST_ELEMENT.test(value);
}
