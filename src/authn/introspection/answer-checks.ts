import type { IntrospectionClaims } from './introspection-endpoint.js';

/** What an active introspection answer must say besides `active: true` (the kind's options). */
export interface AnswerPolicy {
  /** The expected `iss`: an answer that names another issuer is refused; one without `iss` is accepted (it came from this issuer's endpoint). */
  readonly issuer: string;
  /** Accepted audiences: `aud` (string or array) must contain one. Null: aud is not checked. */
  readonly audiences: ReadonlySet<string> | null;
  /** Accepted `token_type` values, lower case, when the answer has one. */
  readonly tokenTypes: ReadonlySet<string>;
  readonly clockSkewMs: number;
}

/**
 * Why an active answer does not authenticate a request here, or null. The checks that do not
 * depend on time (exp and nbf are checked per request): the members RFC 7662 §2.2 defines have
 * their types, `iss` is the configured issuer, `aud` contains a configured audience, `token_type`
 * is accepted. A token the authorization server vouches for, but for another resource server or
 * issuer, must not open this one.
 */
export function checkAnswer(claims: IntrospectionClaims, policy: AnswerPolicy): string | null {
  for (const member of ['exp', 'nbf', 'iat'] as const) {
    const value = claims[member];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) return `claim_invalid: ${member} is not a number`;
  }
  for (const member of ['iss', 'token_type', 'client_id', 'scope'] as const) {
    const value = claims[member];
    if (value !== undefined && typeof value !== 'string') return `claim_invalid: ${member} is not a string`;
  }
  const { iss, aud } = claims;
  if (iss !== undefined && iss !== policy.issuer) return `issuer mismatch: iss is not ${policy.issuer}`;
  if (policy.audiences !== null) {
    const values = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!values.some((a) => typeof a === 'string' && policy.audiences?.has(a) === true)) return `audience mismatch: aud does not contain ${[...policy.audiences].join(' or ')}`;
  }
  const type = claims.token_type;
  if (typeof type === 'string' && !policy.tokenTypes.has(type.toLowerCase())) return `token_type ${type.slice(0, 32)} is not accepted (tokenTypes)`;
  return null;
}
