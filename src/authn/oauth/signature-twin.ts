/**
 * ECDSA signatures are malleable: when (r, s) verifies, so does (r, n − s), and anyone holding a
 * signed token can compute it without the key. A JWT signed with ES256/ES384/ES512 therefore has
 * a second spelling that verifies as the same token; whatever is keyed on a token's text (its
 * revocation) must answer for both. RSA and RSA-PSS (the verifier takes exactly k octets, so no
 * leading zero byte can be dropped), HMAC and EdDSA (OpenSSL refuses S ≥ L, RFC 8032 §5.1.7) have
 * one spelling each.
 */

/** Group orders of the curves of ES256, ES384, ES512 (SEC 2, FIPS 186-4 D.1.2). */
const ORDERS: Readonly<Record<string, bigint>> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  ES512: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};
const SIGNATURE_BYTES: Readonly<Record<string, number>> = { ES256: 64, ES384: 96, ES512: 132 };

/**
 * The other spelling of a JWS compact token signed with ECDSA, `(r, n − s)`; null for any other
 * token, or one whose signature could not verify anyway (wrong length, s out of range). Reads the
 * header without trusting it: a wrong guess only costs one more digest lookup.
 */
export function signatureTwin(token: string): string | null {
  const dot1 = token.indexOf('.');
  const dot2 = token.lastIndexOf('.');
  if (dot1 <= 0 || dot2 === dot1) return null;
  const alg = algorithmOf(token.slice(0, dot1));
  if (alg === null || !Object.hasOwn(ORDERS, alg)) return null;
  const n = ORDERS[alg];
  const bytes = SIGNATURE_BYTES[alg];
  const signature = Buffer.from(token.slice(dot2 + 1), 'base64url');
  if (n === undefined || bytes === undefined || signature.length !== bytes) return null;
  const half = bytes / 2;
  const s = BigInt(`0x${signature.subarray(half).toString('hex')}`);
  if (s === 0n || s >= n) return null;
  const other = Buffer.from((n - s).toString(16).padStart(half * 2, '0'), 'hex');
  return `${token.slice(0, dot2 + 1)}${Buffer.concat([signature.subarray(0, half), other]).toString('base64url')}`;
}

/** The `alg` of a protected header segment, or null (not JSON, no string alg). */
function algorithmOf(segment: string): string | null {
  try {
    const header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
    const alg = header !== null && typeof header === 'object' ? (header as { alg?: unknown }).alg : undefined;
    return typeof alg === 'string' ? alg : null;
  } catch {
    return null;
  }
}
