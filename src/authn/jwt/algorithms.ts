import { constants, createHmac, timingSafeEqual, verify, type KeyObject } from 'node:crypto';

/**
 * The JWS algorithms Portcullis verifies (RFC 7518), each bound to the one key type it may be
 * used with. Binding is what defeats algorithm confusion: an `HS256` token is never checked
 * against an RSA public key, because HMAC needs a configured secret and an RSA key is not one.
 * `none` is not in the table and cannot be configured.
 */
export const JWS_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512',
] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

interface AlgorithmSpec {
  /** Node's asymmetricKeyType values the algorithm accepts, or 'secret' for HMAC. */
  readonly keyTypes: readonly string[];
  /** For ECDSA: the curve (Node's name) and the exact signature length (RFC 7518 §3.4). */
  readonly curve?: string;
  readonly signatureBytes?: number;
  readonly hash: string | null;
  readonly pss?: boolean;
}

const SPECS: Readonly<Record<JwsAlgorithm, AlgorithmSpec>> = {
  RS256: { keyTypes: ['rsa'], hash: 'sha256' },
  RS384: { keyTypes: ['rsa'], hash: 'sha384' },
  RS512: { keyTypes: ['rsa'], hash: 'sha512' },
  PS256: { keyTypes: ['rsa', 'rsa-pss'], hash: 'sha256', pss: true },
  PS384: { keyTypes: ['rsa', 'rsa-pss'], hash: 'sha384', pss: true },
  PS512: { keyTypes: ['rsa', 'rsa-pss'], hash: 'sha512', pss: true },
  ES256: { keyTypes: ['ec'], curve: 'prime256v1', signatureBytes: 64, hash: 'sha256' },
  ES384: { keyTypes: ['ec'], curve: 'secp384r1', signatureBytes: 96, hash: 'sha384' },
  ES512: { keyTypes: ['ec'], curve: 'secp521r1', signatureBytes: 132, hash: 'sha512' },
  EdDSA: { keyTypes: ['ed25519', 'ed448'], hash: null },
  HS256: { keyTypes: ['secret'], hash: 'sha256' },
  HS384: { keyTypes: ['secret'], hash: 'sha384' },
  HS512: { keyTypes: ['secret'], hash: 'sha512' },
};

/** RSA keys below this size are refused at import (RFC 7518 §3.3). */
export const MIN_RSA_BITS = 2048;

export function isJwsAlgorithm(value: unknown): value is JwsAlgorithm {
  return typeof value === 'string' && Object.hasOwn(SPECS, value);
}

export function isHmac(alg: JwsAlgorithm): boolean {
  return SPECS[alg].keyTypes[0] === 'secret';
}

/** A verification key and the algorithms it may verify (its type, narrowed by the JWK's `alg`). */
export interface VerifyKey {
  readonly kid: string | null;
  readonly algorithms: ReadonlySet<JwsAlgorithm>;
  readonly key: KeyObject;
}

/**
 * Algorithms from `allowed` that this key can verify, or a reason it is unusable. A secret key
 * gets HMAC algorithms only; a public key gets only the algorithms of its type and curve.
 */
export function algorithmsForKey(key: KeyObject, allowed: readonly JwsAlgorithm[], jwkAlg?: string): Set<JwsAlgorithm> | string {
  const type = key.type === 'secret' ? 'secret' : key.asymmetricKeyType ?? 'unknown';
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return `RSA key of ${bits} bits is below the ${MIN_RSA_BITS}-bit minimum`;
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const usable = new Set<JwsAlgorithm>();
  for (const alg of allowed) {
    const spec = SPECS[alg];
    if (!spec.keyTypes.includes(type)) continue;
    if (spec.curve !== undefined && spec.curve !== curve) continue;
    if (jwkAlg !== undefined && jwkAlg !== alg) continue;
    usable.add(alg);
  }
  if (usable.size === 0) return `a ${type}${curve === undefined ? '' : ` (${curve})`} key${jwkAlg === undefined ? '' : ` for ${jwkAlg}`} fits none of the allowed algorithms (${allowed.join(', ')})`;
  return usable;
}

/**
 * Checks a JWS signature over `signingInput` with node:crypto. The caller has already bound `alg`
 * to `key` (VerifyKey.algorithms). ECDSA signatures must be exactly the raw r‖s length; an
 * all-zero signature is rejected by OpenSSL's range check (r, s ≥ 1), unlike CVE-2022-21449.
 */
export function verifySignature(alg: JwsAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): boolean {
  const spec = SPECS[alg];
  if (spec.keyTypes[0] === 'secret') {
    const expected = createHmac(spec.hash ?? 'sha256', key).update(signingInput).digest();
    return expected.length === signature.length && timingSafeEqual(expected, signature);
  }
  if (spec.signatureBytes !== undefined) {
    if (signature.length !== spec.signatureBytes) return false;
    return verify(spec.hash, signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature);
  }
  // RFC 8017 §8.1.2 and §8.2.2 step 1: an RSA signature is exactly k octets. OpenSSL takes a
  // shorter one (a leading zero byte dropped) for PSS, which would give one token two spellings.
  if (spec.keyTypes[0] === 'rsa' && signature.length !== ((key.asymmetricKeyDetails?.modulusLength ?? 0) + 7) >> 3) return false;
  if (spec.pss === true) {
    return verify(spec.hash, signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
  }
  return verify(spec.hash, signingInput, key, signature);
}
