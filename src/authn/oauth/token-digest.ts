import { createHash, createHmac } from 'node:crypto';

/** A token's SHA-256, base64url (43 characters): how an operator or an authorization server names a token without holding it. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

const HASH = /^[A-Za-z0-9_-]{43}$/;

/** Whether `value` has the form of a tokenHash (43 base64url characters). */
export function isTokenHash(value: string): boolean {
  return HASH.test(value);
}

/**
 * The keyed digest under which caches, revocation lists and a shared Redis know a token:
 * HMAC-SHA256(key, SHA-256(token)), base64url. The raw token is never a key anywhere, and without
 * the key a digest read out of Redis cannot be checked against guessed tokens. Digesting the
 * SHA-256 (not the token) lets a revocation by token hash find the same entry.
 */
export class TokenDigester {
  /** `key`: the key itself (oauth.tokenHashKey), or where it is read when the gateway starts (the host's key file). */
  constructor(private readonly key: Buffer | TokenHashKeySource) {}

  ofToken(token: string): string {
    return this.ofHash(tokenHash(token));
  }

  /** The digest of the token whose tokenHash is `hash` (callers check isTokenHash first). */
  ofHash(hash: string): string {
    const key = Buffer.isBuffer(this.key) ? this.key : this.key.tokenHashKey;
    return createHmac('sha256', key).update(hash, 'ascii').digest('base64url');
  }
}

/** A token hash key known only once the gateway runs (read from, or made in, the data directory). */
export interface TokenHashKeySource {
  readonly tokenHashKey: Buffer;
}
