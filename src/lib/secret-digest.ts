import { createHmac, randomBytes } from 'node:crypto';

/**
 * Key of the digests that tell resources with different secrets apart: random per process, since
 * such a digest only has to match within it (a reload reusing the running resource), so a digest
 * that reaches a log (in a resource key) cannot be checked against guessed secrets.
 */
const SECRET_DIGEST_KEY = randomBytes(32);

/** An HMAC of `secret` under the process's secret digest key (hex): a resource key that changes with a secret and never shows it. */
export function secretDigest(secret: string): string {
  return createHmac('sha256', SECRET_DIGEST_KEY).update(secret).digest('hex');
}

/** The incremental form of secretDigest, for a digest built from parts found one by one. */
export function secretDigester(): ReturnType<typeof createHmac> {
  return createHmac('sha256', SECRET_DIGEST_KEY);
}
