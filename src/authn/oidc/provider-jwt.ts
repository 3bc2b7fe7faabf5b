import { createHash, timingSafeEqual } from 'node:crypto';
import { parseStrictJson } from '../../lib/strict-json.js';
import { verifyJwt, type Claims, type JwtPolicy } from '../jwt/jwt-verifier.js';
import { isJwsAlgorithm, type JwsAlgorithm } from '../jwt/algorithms.js';
import type { KeySource } from '../jwt/key-source.js';

/**
 * Longest ID or logout token accepted, in characters. Larger than a bearer JWT's default (8192):
 * an ID token may carry profile claims, but it is still read before any key is touched.
 */
export const MAX_PROVIDER_TOKEN_BYTES = 16_384;

/** What a token from the OpenID provider must be bound to. */
export interface ProviderBinding {
  /** The provider's exact `iss` (OIDC Core §3.1.3.7 step 2: exact match, no normalisation). */
  readonly issuer: string;
  /** This client's `client_id`: an audience of the token, and its `azp` when one is present. */
  readonly clientId: string;
  /** How old `iat` may be when the token arrives, in milliseconds. */
  readonly maxIatAgeMs: number;
  /** Whether `exp` is required (ID token) or checked only when present (logout token). */
  readonly requireExp: boolean;
}

export type ProviderJwtResult =
  | { readonly ok: true; readonly claims: Claims; readonly header: Readonly<Record<string, unknown>>; readonly alg: JwsAlgorithm; readonly iat: number }
  | { readonly ok: false; readonly reason: string };

/**
 * The checks an ID token (OIDC Core 1.0 §3.1.3.7) and a logout token (Back-Channel Logout 1.0
 * §2.6) share: the JWS verified by `verifyJwt` with only the provider's keys and `algorithms`
 * (its strict parsing, alg/key binding, no `none`, no key-carrying header), `iss` exact, `aud`
 * containing the client, the `azp` rule, `exp`, and `iat` present, not in the future and not older
 * than `maxIatAgeMs`. Skew is in milliseconds. Rejects with KeysUnavailableError when the
 * provider's keys cannot be had (the caller fails closed with 503, not a refusal of the token).
 */
export async function verifyProviderJwt(
  token: string, keys: KeySource, algorithms: readonly JwsAlgorithm[], binding: ProviderBinding, clockSkewMs: number, nowMs: number,
): Promise<ProviderJwtResult> {
  const allowed = new Set(algorithms);
  const policy: JwtPolicy = {
    algorithms: allowed,
    issuers: new Map([[binding.issuer, { source: keys, algorithms: allowed }]]),
    audiences: new Set([binding.clientId]),
    clockSkewSec: Math.ceil(clockSkewMs / 1000),
    requireExp: binding.requireExp,
    typ: null,
    maxTokenBytes: MAX_PROVIDER_TOKEN_BYTES,
  };
  const verified = await verifyJwt(token, policy, nowMs);
  if (!verified.ok) return { ok: false, reason: verified.reason };
  const claims = verified.claims;

  // OIDC Core §3.1.3.7 steps 3–5: with several audiences the token must say which party it was
  // issued to, and that party must be this client (a token for another relying party that lists
  // us as well is not ours to use).
  const { aud, azp, iat } = claims;
  if (azp !== undefined && azp !== binding.clientId) return { ok: false, reason: 'azp_mismatch: azp is not this client' };
  if (Array.isArray(aud) && aud.length > 1 && azp === undefined) return { ok: false, reason: 'azp_missing: several audiences and no azp' };

  // Step 10: iat bounds how long a nonce or jti must be remembered; the verifier only checks it when present.
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat < 0) return { ok: false, reason: 'iat_invalid: iat is absent or not a number' };
  if (iat * 1000 < nowMs - binding.maxIatAgeMs - clockSkewMs) {
    return { ok: false, reason: `iat_too_old: iat ${iat}, now ${Math.floor(nowMs / 1000)}, limit ${binding.maxIatAgeMs} ms` };
  }

  const header = verifiedHeader(token);
  if (header === null) return { ok: false, reason: 'malformed: header cannot be read again' };
  return { ok: true, claims, header: header.header, alg: header.alg, iat };
}

/** The verifier's own nesting bound, so a header it accepted parses here too. */
const HEADER_MAX_DEPTH = 16;

/**
 * The protected header of a token `verifyJwt` accepted, parsed again with the same strict JSON
 * (the verifier does not hand it out). Null when it cannot be read, which after a successful
 * verification means a bug, so the token is refused.
 */
function verifiedHeader(token: string): { header: Readonly<Record<string, unknown>>; alg: JwsAlgorithm } | null {
  const dot = token.indexOf('.');
  if (dot <= 0) return null;
  const text = Buffer.from(token.slice(0, dot), 'base64url').toString('utf8');
  const header = parseStrictJson(text, HEADER_MAX_DEPTH);
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return null;
  const alg = (header as Record<string, unknown>).alg;
  return isJwsAlgorithm(alg) ? { header: header as Record<string, unknown>, alg } : null;
}

/** Constant-time equality of two strings of any lengths: both are hashed first, so neither length nor content leaks. */
export function secretsEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** A non-empty string of at most `maxBytes` UTF-8 bytes (identifiers such as `sub`, `sid`, `jti`). */
export function isBoundedString(value: unknown, maxBytes: number): value is string {
  return typeof value === 'string' && value !== '' && Buffer.byteLength(value, 'utf8') <= maxBytes;
}

/**
 * The `typ` header in lower case without an `application/` prefix (RFC 7515 §4.1.9); undefined
 * when absent, null when present but not a string (never a match for anything).
 */
export function normalisedTyp(header: Readonly<Record<string, unknown>>): string | null | undefined {
  const typ = header.typ;
  if (typ === undefined) return undefined;
  if (typeof typ !== 'string') return null;
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}
