// `portcullis admin token`: a new admin API token, and the hash to put in admin.tokenHash.
import { createHash, randomBytes } from 'node:crypto';
import type { Invocation } from './command.js';

/** 32 random bytes, base64url: 256 bits, nothing to guess. */
const TOKEN_BYTES = 32;

/** A fresh token and its `admin.tokenHash` (`sha256:<64 hex>` of the token's UTF-8 bytes, as the admin listener hashes the bearer token). */
export function newAdminToken(): { token: string; tokenHash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  return { token, tokenHash: `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}` };
}

/** Prints a new token and its hash; the token is shown this once and stored nowhere. */
export function adminTokenCommand({ values }: Invocation): Promise<number> {
  const { token, tokenHash } = newAdminToken();
  process.stdout.write(values.json === true ? `${JSON.stringify({ token, tokenHash }, null, 2)}\n` : `token: ${token}\ntokenHash: ${tokenHash}\n`);
  return Promise.resolve(0);
}
