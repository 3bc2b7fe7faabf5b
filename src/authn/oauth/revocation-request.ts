import { TOKEN68 } from '../bearer.js';
import { isTokenHash, tokenHash } from './token-digest.js';

/** Longest token a revocation names (larger than any bearer token a listener's header limit lets through). */
export const MAX_REVOKED_TOKEN_BYTES = 16_384;
/** The furthest a revocation may reach: a token living longer than this is not one a gateway should honour. */
export const MAX_REVOCATION_MS = 366 * 86_400_000;

/**
 * How long a revocation outlives the token's expiry: the most leeway (jwt `clockSkewMs`) any
 * authenticator may give a token past its `exp`. A revocation that ended at `exp` would let the
 * token in again for the rest of that leeway.
 */
export const EXPIRY_LEEWAY_MS = 300_000;

/** Until when the list keeps a revocation of a token that expires at `untilMs` (see EXPIRY_LEEWAY_MS). */
export function keptUntil(untilMs: number): number {
  return untilMs + EXPIRY_LEEWAY_MS;
}

/** Why a revocation request was refused: the field and what would be right. */
export class RevocationRequestError extends Error {}

/** The tokenHash of a token as revocations name it; throws RevocationRequestError for what cannot be a bearer token. */
export function hashOfToken(token: unknown, field: string): string {
  if (typeof token !== 'string' || token.length === 0) throw new RevocationRequestError(`${field}: a bearer token, a non-empty string`);
  if (token.length > MAX_REVOKED_TOKEN_BYTES) throw new RevocationRequestError(`${field}: longer than ${MAX_REVOKED_TOKEN_BYTES} characters; no bearer token accepted here is that long`);
  if (!TOKEN68.test(token)) throw new RevocationRequestError(`${field}: not a bearer token (RFC 6750 b64token: letters, digits, -._~+/ and trailing =); send the token exactly as clients send it after "Bearer "`);
  return tokenHash(token);
}

/** A tokenHash as given; throws RevocationRequestError when it is not one. */
export function checkedHash(hash: unknown, field: string): string {
  if (typeof hash !== 'string' || !isTokenHash(hash)) throw new RevocationRequestError(`${field}: the token's SHA-256, base64url without padding (43 characters)`);
  return hash;
}

/**
 * The `exp` of a JWT-shaped token in epoch ms, read without verifying it (the token is being
 * revoked, not trusted: its expiry only bounds how long the revocation is kept); null otherwise.
 */
export function unverifiedExpiry(token: string): number | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const payload = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as unknown;
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isSafeInteger(exp) && exp > 0 ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * Until when a revocation lasts (epoch ms): `expiresAt` (epoch seconds) when given, else the
 * token's own `exp` when it is a JWT, else now + `ttlMs`; at most MAX_REVOCATION_MS ahead. Throws
 * RevocationRequestError for an `expiresAt` that is not a whole number of seconds, or already past.
 */
export function revocationEnd(expiresAt: unknown, token: string | null, now: number, ttlMs: number): number {
  let until: number;
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt <= 0) throw new RevocationRequestError('expiresAt: the token\'s expiry in epoch seconds, a positive whole number');
    until = expiresAt * 1000;
    // A token just past its expiry may still be within an authenticator's leeway: it can be revoked.
    if (keptUntil(until) <= now) throw new RevocationRequestError(`expiresAt: ${expiresAt} is past (now ${Math.floor(now / 1000)}); an expired token is refused already`);
  } else {
    const exp = token === null ? null : unverifiedExpiry(token);
    until = exp !== null && exp > now ? exp : now + ttlMs;
  }
  return Math.min(until, now + MAX_REVOCATION_MS);
}
