import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { SessionKey } from './session-store.js';

/** HKDF `info` of the record key: a key derived for sealing records is good for nothing else. */
const LABEL = 'portcullis oidc session record v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The AES-256-GCM key of one session: HKDF-SHA256 (RFC 5869) of the cookie value, which no store keeps. */
function recordKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), LABEL, 32));
}

/**
 * `plaintext` sealed for the session `key`: base64url of IV ‖ ciphertext ‖ tag (AES-256-GCM,
 * AAD the session's id, so a sealed record moved under another session's key does not open).
 */
export function sealed(key: SessionKey, plaintext: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', recordKey(key.secret), iv);
  cipher.setAAD(Buffer.from(key.id, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** What `sealed` sealed for `key`, or null when it does not open (another secret or id, or altered). */
export function opened(key: SessionKey, blob: string): string | null {
  const bytes = Buffer.from(blob, 'base64url');
  if (bytes.length < IV_BYTES + TAG_BYTES) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', recordKey(key.secret), bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(key.id, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}
