import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { algorithmsForKey, type JwsAlgorithm, type VerifyKey } from './algorithms.js';

/**
 * The keys a token needs cannot be obtained right now (never loaded, endpoint down, or an
 * unknown-`kid` refetch not allowed yet): the request fails closed with 503, not a 401 that would
 * tell the client its token is bad. `retryAfterMs` is when asking again can succeed, if known.
 */
export class KeysUnavailableError extends Error {
  constructor(message: string, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

/**
 * Where an issuer's verification keys come from. `keysFor` answers synchronously from memory when
 * it can; only a remote set that has to refetch (unknown `kid`, never loaded) returns a promise.
 */
export interface KeySource {
  /** Changes whenever the key set changes, so cached verifications made with older keys are redone. */
  readonly revision: number;
  /** Whether it has keys to verify with now; absent: keys fixed at config load, always ready. */
  readiness?(): ComponentReadiness;
  keysFor(alg: JwsAlgorithm, kid: string | null): readonly VerifyKey[] | Promise<readonly VerifyKey[]>;
}

/**
 * Selects the keys that may verify `alg`. When the token names a `kid`, keys with another kid are
 * skipped; keys without a kid (a PEM configured without one) are candidates for any token.
 */
export function selectKeys(keys: readonly VerifyKey[], alg: JwsAlgorithm, kid: string | null): VerifyKey[] {
  return keys.filter((k) => k.algorithms.has(alg) && (kid === null || k.kid === null || k.kid === kid));
}

/** Keys fixed at config load: a local JWKS file, PEM public keys or an HMAC secret. */
export class StaticKeys implements KeySource {
  readonly revision = 0;
  constructor(private readonly keys: readonly VerifyKey[]) {}
  keysFor(alg: JwsAlgorithm, kid: string | null): readonly VerifyKey[] {
    return selectKeys(this.keys, alg, kid);
  }
}

export const MAX_JWKS_KEYS = 100;

/**
 * Imports a JWK Set (RFC 7517 §5). Keys that are not for signatures, symmetric, or of a type no
 * allowed algorithm fits are skipped (listed in `skipped`); a set with no usable key at all, or
 * that is not a JWK Set, is an error (the caller keeps its previous keys).
 */
export function importJwks(doc: unknown, allowed: readonly JwsAlgorithm[]): { keys: VerifyKey[]; skipped: string[] } | string {
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) return 'not a JWK Set (no "keys" array)';
  const entries = (doc as { keys: unknown[] }).keys;
  if (entries.length > MAX_JWKS_KEYS) return `${entries.length} keys, more than the ${MAX_JWKS_KEYS} accepted`;
  const keys: VerifyKey[] = [];
  const skipped: string[] = [];
  entries.forEach((jwk, i) => {
    const imported = importJwk(jwk, allowed);
    if (typeof imported === 'string') skipped.push(`key ${i}: ${imported}`);
    else keys.push(imported);
  });
  if (keys.length === 0) return `no usable key${skipped.length > 0 ? ` (${skipped.join('; ')})` : ''}`;
  return { keys, skipped };
}

function importJwk(jwk: unknown, allowed: readonly JwsAlgorithm[]): VerifyKey | string {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return 'not an object';
  const { kty, kid, use, alg } = jwk as Record<string, unknown>;
  const keyOps = (jwk as Record<string, unknown>).key_ops;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > 256)) return 'kid is not a string of at most 256 characters';
  if (use !== undefined && use !== 'sig') return `use is ${JSON.stringify(use)}, not "sig"`;
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) return 'key_ops does not include "verify"';
  if (alg !== undefined && typeof alg !== 'string') return 'alg is not a string';
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return `kty ${JSON.stringify(kty)} is not RSA, EC or OKP (HMAC needs a configured secret)`;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (err) {
    return `cannot import: ${(err as Error).message}`;
  }
  return verifyKey(key, allowed, typeof kid === 'string' ? kid : null, alg);
}

function verifyKey(key: KeyObject, allowed: readonly JwsAlgorithm[], kid: string | null, jwkAlg?: string): VerifyKey | string {
  const algorithms = algorithmsForKey(key, allowed, jwkAlg);
  return typeof algorithms === 'string' ? algorithms : { kid, algorithms, key };
}

/** A PEM public key or certificate (SPKI or X.509). */
export function importPem(pem: string, allowed: readonly JwsAlgorithm[], kid: string | null): VerifyKey | string {
  let key: KeyObject;
  try { key = createPublicKey(pem); } catch (err) { return `not a PEM public key or certificate: ${(err as Error).message}`; }
  return verifyKey(key, allowed, kid);
}

/** An HMAC shared secret; only HS* algorithms can use it. */
export function importSecret(secret: string, allowed: readonly JwsAlgorithm[]): VerifyKey | string {
  return verifyKey(createSecretKey(Buffer.from(secret, 'utf8')), allowed, null);
}
