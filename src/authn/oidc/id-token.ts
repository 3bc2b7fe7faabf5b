import { createHash, timingSafeEqual } from 'node:crypto';
import type { JwsAlgorithm } from '../jwt/algorithms.js';
import type { Claims } from '../jwt/jwt-verifier.js';
import type { KeySource } from '../jwt/key-source.js';
import { isBoundedString, normalisedTyp, secretsEqual, verifyProviderJwt } from './provider-jwt.js';

/** What the ID token from one login's token response must match. Times in milliseconds. */
export interface IdTokenExpectations {
  /** The provider's issuer identifier, compared exactly. */
  readonly issuer: string;
  readonly clientId: string;
  /** The nonce sent in this login's authorization request (bound to its pre-login cookie). */
  readonly nonce: string;
  /** The access token from the same token response, whose `at_hash` is checked when both are present. */
  readonly accessToken: string | null;
  /** auth_time bound when max_age was asked; null: not checked. */
  readonly maxAgeMs: number | null;
  /** How old `iat` may be at the callback, e.g. 10 minutes. */
  readonly maxIatAgeMs: number;
}

export type IdTokenResult = { readonly ok: true; readonly claims: Claims } | { readonly ok: false; readonly reason: string };

/** OIDC Core 1.0 §2: `sub` "MUST NOT exceed 255 ASCII characters"; measured in UTF-8 bytes. */
const MAX_SUB_BYTES = 255;

/**
 * `typ` values naming another kind of JWT: a logout token (Back-Channel Logout 1.0 §2.4), an
 * access token (RFC 9068 §2.1), a security event (RFC 8417 §2.3). An ID token has no `typ` of its
 * own, so anything else (usually `JWT` or none) is accepted; these are never an ID token.
 */
const FOREIGN_TYPS: ReadonlySet<string> = new Set(['logout+jwt', 'at+jwt', 'secevent+jwt']);

/**
 * Validates the ID token of a token response (OIDC Core 1.0 §3.1.3.7): the signature with only
 * the provider's keys and `algorithms` (never `none`; HMAC only when listed and a secret is
 * configured), `iss` exact, `aud` containing the client, `azp` present with several audiences and
 * equal to the client when present, `exp` in the future and `iat` neither in the future nor older
 * than `maxIatAgeMs` (both with `clockSkewMs`), `nonce` equal to the login's, `sub` a non-empty
 * string of at most 255 bytes, `auth_time` within `maxAgeMs` when set, and `at_hash` when present
 * with an access token. The reason names the failed check and is for logs only. Rejects with
 * KeysUnavailableError when the provider's keys cannot be had.
 */
export async function verifyIdToken(
  token: string, keys: KeySource, algorithms: readonly JwsAlgorithm[], expect: IdTokenExpectations, clockSkewMs: number, nowMs: number,
): Promise<IdTokenResult> {
  const verified = await verifyProviderJwt(token, keys, algorithms, { issuer: expect.issuer, clientId: expect.clientId, maxIatAgeMs: expect.maxIatAgeMs, requireExp: true }, clockSkewMs, nowMs);
  if (!verified.ok) return verified;
  const { claims, header, alg } = verified;

  const typ = normalisedTyp(header);
  if (typ === null || (typ !== undefined && FOREIGN_TYPS.has(typ))) return fail(`typ_mismatch: typ ${JSON.stringify(header.typ)?.slice(0, 40) ?? 'absent'} is not an ID token's`);

  // Step 11: the nonce ties the token to this browser's login; without it a token captured from
  // another login could be injected at the callback.
  const nonce = claims.nonce;
  if (typeof nonce !== 'string') return fail('nonce_missing: no nonce string in the ID token');
  if (expect.nonce === '' || !secretsEqual(nonce, expect.nonce)) return fail('nonce_mismatch: nonce is not this login\'s');

  if (!isBoundedString(claims.sub, MAX_SUB_BYTES)) return fail(`sub_invalid: sub is absent, not a string, empty or longer than ${MAX_SUB_BYTES} bytes`);

  // Step 13: when max_age was requested, auth_time is required and bounds how long ago the user
  // actually authenticated (a provider session older than asked for is not a fresh login).
  if (expect.maxAgeMs !== null) {
    const authTime = claims.auth_time;
    if (typeof authTime !== 'number' || !Number.isFinite(authTime) || authTime < 0) return fail('auth_time_invalid: auth_time is absent or not a number while max_age was asked');
    if (authTime * 1000 > nowMs + clockSkewMs) return fail(`auth_time_in_future: auth_time ${authTime}, now ${Math.floor(nowMs / 1000)}`);
    if (nowMs - authTime * 1000 > expect.maxAgeMs + clockSkewMs) return fail(`auth_time_too_old: auth_time ${authTime}, now ${Math.floor(nowMs / 1000)}, max_age ${expect.maxAgeMs} ms`);
  }

  const atHash = claims.at_hash;
  if (atHash !== undefined && expect.accessToken !== null) {
    if (typeof atHash !== 'string') return fail('at_hash_invalid: at_hash is not a string');
    const expected = await tokenHashes(expect.accessToken, alg, keys, typeof header.kid === 'string' ? header.kid : null);
    if (expected.length === 0) return fail('at_hash_unverifiable: no hash is defined for this alg and key');
    if (!expected.some((value) => constantTimeEquals(value, atHash))) return fail(`at_hash_mismatch: at_hash is not the ${alg} hash of the access token`);
  }
  return { ok: true, claims };
}

const fail = (reason: string): IdTokenResult => ({ ok: false, reason });

/**
 * The possible `at_hash` values of `accessToken` (OIDC Core §3.1.3.6): base64url of the left half
 * of the hash the JWS alg uses. EdDSA fixes no hash of its own; the OpenID errata use SHA-512 for
 * Ed25519 and SHAKE256 with 114 bytes of output for Ed448, so the curve comes from the provider's
 * keys that could have signed (one value per curve among them).
 */
async function tokenHashes(accessToken: string, alg: JwsAlgorithm, keys: KeySource, kid: string | null): Promise<string[]> {
  const hashes: { name: string; outputLength?: number }[] = [];
  if (alg === 'EdDSA') {
    const candidates = await keys.keysFor('EdDSA', kid);
    const curves = new Set(candidates.map((k) => k.key.asymmetricKeyType));
    if (curves.has('ed25519')) hashes.push({ name: 'sha512' });
    if (curves.has('ed448')) hashes.push({ name: 'shake256', outputLength: 114 });
  } else if (alg.endsWith('256')) hashes.push({ name: 'sha256' });
  else if (alg.endsWith('384')) hashes.push({ name: 'sha384' });
  else if (alg.endsWith('512')) hashes.push({ name: 'sha512' });
  return hashes.map(({ name, outputLength }) => {
    const digest = createHash(name, outputLength === undefined ? {} : { outputLength }).update(accessToken, 'utf8').digest();
    return digest.subarray(0, digest.length / 2).toString('base64url');
  });
}

/** The value is a hash of a secret: compared in constant time, its length (fixed per alg) is not secret. */
function constantTimeEquals(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(given, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
