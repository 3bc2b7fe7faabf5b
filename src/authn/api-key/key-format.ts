import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * API key format: `pk_<environment>_<id>_<secret><checksum>`.
 *
 * - `pk_` is a fixed prefix so secret scanners can recognise a leaked key;
 * - `<environment>` (`live`, `test`, …) keeps keys of one deployment from working in another;
 * - `<id>`: 16 characters of [0-9a-z], the public key id used for lookup, display and revocation;
 * - `<secret>`: 43 characters of [0-9A-Za-z], drawn uniformly: 43·log2(62) ≈ 256.03 bits;
 * - `<checksum>`: 6 characters of [0-9A-Za-z], the CRC-32 of everything before it, so a mistyped
 *   or truncated key is rejected before any store lookup.
 *
 * Every part is case-sensitive and the key contains no character that needs quoting in a header,
 * a URL or a shell.
 */
export const KEY_PREFIX = 'pk';
export const ID_LENGTH = 16;
export const SECRET_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
export const ENVIRONMENT_PATTERN = /^[a-z][a-z0-9]{0,15}$/;
/** No well-formed key is longer; anything longer is rejected without further work. */
export const MAX_KEY_LENGTH = KEY_PREFIX.length + 1 + 16 + 1 + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz';
const KEY_SHAPE = /^pk_([a-z][a-z0-9]{0,15})_([0-9a-z]{16})_([0-9A-Za-z]{49})$/;
const ID_SHAPE = /^[0-9a-z]{16}$/;

export type ParsedKey =
  | { readonly ok: true; readonly id: string; readonly environment: string }
  | { readonly ok: false; readonly reason: 'api_key_malformed' | 'api_key_wrong_environment'; readonly detail: string; readonly id: string | null };

/** `length` characters drawn uniformly from `alphabet` (rejection sampling, so no modulo bias). */
function randomString(alphabet: string, length: number): string {
  // The largest multiple of the alphabet size that fits in a byte: bytes at or above it are discarded.
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out += alphabet.charAt(byte % alphabet.length);
      if (out.length === length) break;
    }
  }
  return out;
}

/** CRC-32 of `body` as 6 base62 characters (62^6 > 2^32). */
function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = (BASE62[n % 62] as string) + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A new key id: 16 characters of [0-9a-z] (about 82 bits). */
export function newKeyId(): string {
  return randomString(BASE36, ID_LENGTH);
}

/** A new key for `environment` with the given id: the only time the full key exists. */
export function newKey(environment: string, id: string = newKeyId()): string {
  if (!ENVIRONMENT_PATTERN.test(environment)) throw new Error(`invalid key environment "${environment}"`);
  if (!ID_SHAPE.test(id)) throw new Error(`invalid key id "${id}"`);
  const body = `${KEY_PREFIX}_${environment}_${id}_${randomString(BASE62, SECRET_LENGTH)}`;
  return body + checksum(body);
}

/** True when `id` has the shape of a key id (for the CLI and admin API). */
export function isKeyId(id: string): boolean {
  return ID_SHAPE.test(id);
}

/**
 * Checks a presented key's shape and checksum, then its environment. Runs before any store
 * lookup: nothing malformed or from another environment costs a store round trip.
 */
export function parseKey(key: string, environment: string): ParsedKey {
  if (key.length > MAX_KEY_LENGTH) return { ok: false, reason: 'api_key_malformed', detail: `longer than ${MAX_KEY_LENGTH} characters`, id: null };
  const m = KEY_SHAPE.exec(key);
  if (m === null) return { ok: false, reason: 'api_key_malformed', detail: 'not of the form pk_<env>_<id>_<secret>', id: null };
  const id = m[2] as string;
  if (checksum(key.slice(0, -CHECKSUM_LENGTH)) !== key.slice(-CHECKSUM_LENGTH)) return { ok: false, reason: 'api_key_malformed', detail: 'checksum mismatch', id };
  const env = m[1] as string;
  if (env !== environment) return { ok: false, reason: 'api_key_wrong_environment', detail: `key of environment "${env}"`, id };
  return { ok: true, id, environment: env };
}

/** What the store keeps instead of the key: SHA-256 of the whole key (see docs/api-keys.md, "Hashing"). */
export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** The non-secret part shown in listings and logs: `pk_live_<id>`. */
export function displayPrefix(environment: string, id: string): string {
  return `${KEY_PREFIX}_${environment}_${id}`;
}
