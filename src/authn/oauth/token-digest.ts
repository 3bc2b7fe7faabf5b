import { createHash, createHmac, hash } from 'node:crypto';

/** A token's SHA-256, base64url (43 characters): how an operator or an authorization server names a token without holding it. */
export function tokenHash(token: string): string {
  return hash('sha256', token, 'base64url');
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
  /** HMAC's padded keys (RFC 2104), made once the key is known, then reused for every digest. */
  private pads: { readonly inner: Buffer; readonly outer: Buffer } | null = null;

  /** `key`: the key itself (oauth.tokenHashKey), or where it is read when the gateway starts (the host's key file). */
  constructor(private readonly key: Buffer | TokenHashKeySource) {}

  ofToken(token: string): string {
    return this.ofHash(tokenHash(token));
  }

  /**
   * The digest of the token whose tokenHash is `hash` (callers check isTokenHash first). HMAC is
   * computed from its definition with one-shot hashes over the precomputed pads: it is on the path
   * of every request with a bearer token, and this costs about half of a `createHmac` per call.
   */
  ofHash(tokenHashValue: string): string {
    const pads = this.pads ?? this.padsOf();
    if (tokenHashValue.length !== HASH_LENGTH) return createHmac('sha256', this.rawKey()).update(tokenHashValue, 'latin1').digest('base64url');
    pads.inner.write(tokenHashValue, BLOCK, HASH_LENGTH, 'latin1');
    hash('sha256', pads.inner, 'buffer').copy(pads.outer, BLOCK);
    return hash('sha256', pads.outer, 'base64url');
  }

  /**
   * A key for another purpose derived from the token hash key (HMAC-SHA256 of `label` under it),
   * so every gateway sharing the key derives the same one: login state cookies are sealed under
   * one. Read only once the gateway runs (the key file's key is known then).
   */
  derivedKey(label: string): Buffer {
    return createHmac('sha256', this.rawKey()).update(label, 'utf8').digest();
  }

  private rawKey(): Buffer {
    return Buffer.isBuffer(this.key) ? this.key : this.key.tokenHashKey;
  }

  private padsOf(): { readonly inner: Buffer; readonly outer: Buffer } {
    const raw = this.rawKey();
    const key = raw.length > BLOCK ? createHash('sha256').update(raw).digest() : raw;
    const inner = Buffer.alloc(BLOCK + HASH_LENGTH);
    const outer = Buffer.alloc(BLOCK + 32);
    for (let i = 0; i < BLOCK; i++) {
      const byte = key[i] ?? 0;
      inner[i] = byte ^ 0x36;
      outer[i] = byte ^ 0x5c;
    }
    // Only a key known for good is kept: a key file's key is read at start, before the first request.
    if (Buffer.isBuffer(this.key) || raw.length > 0) this.pads = { inner, outer };
    return { inner, outer };
  }
}

/** SHA-256's block size, in bytes (the HMAC key pads). */
const BLOCK = 64;
/** The length of a tokenHash (43 base64url characters). */
const HASH_LENGTH = 43;

/** A token hash key known only once the gateway runs (read from, or made in, the data directory). */
export interface TokenHashKeySource {
  readonly tokenHashKey: Buffer;
}
