import type { JwsAlgorithm } from '../jwt/algorithms.js';
import type { KeySource } from '../jwt/key-source.js';
import { isBoundedString, normalisedTyp, verifyProviderJwt } from './provider-jwt.js';

/** What a logout token posted to the back-channel logout endpoint must match. */
export interface LogoutTokenExpectations {
  readonly issuer: string;
  readonly clientId: string;
  /** How old `iat` may be when the token arrives, in milliseconds; also how long its `jti` is remembered without `exp`. */
  readonly maxIatAgeMs: number;
}

export type LogoutTokenResult =
  | {
    readonly ok: true;
    /** The provider session to end, or null: then every session of `subject` ends. */
    readonly sid: string | null;
    readonly subject: string | null;
    /** The token's id: a second token with the same jti is a replay. */
    readonly jti: string;
    /** When the jti may be forgotten (ms since the epoch): past it the token is refused as expired or too old anyway. */
    readonly until: number;
  }
  | { readonly ok: false; readonly reason: string };

/** Back-Channel Logout 1.0 §2.4: the member of `events` that makes a JWT a logout token. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const LOGOUT_TYP = 'logout+jwt';
const MAX_JTI_BYTES = 256;
/** `sub` and `sid` are bounded as an ID token's `sub` is (OIDC Core 1.0 §2). */
const MAX_ID_BYTES = 255;

/**
 * Validates a logout token (OIDC Back-Channel Logout 1.0 §2.4, §2.6): the signature, `iss`, `aud`
 * and `azp` as for an ID token, `iat` neither in the future nor older than `maxIatAgeMs`, `exp`
 * when present, header `typ` absent or `logout+jwt`, `events` carrying the back-channel logout
 * event as an object, a `jti`, `sid` and/or `sub`, and no `nonce` — so an ID token, which must
 * carry a nonce and usually says `typ: JWT`, can never end sessions. Replay (`jti` seen before) is
 * the caller's to check until `until`. Rejects with KeysUnavailableError when keys cannot be had.
 */
export async function verifyLogoutToken(
  token: string, keys: KeySource, algorithms: readonly JwsAlgorithm[], expect: LogoutTokenExpectations, clockSkewMs: number, nowMs: number,
): Promise<LogoutTokenResult> {
  const verified = await verifyProviderJwt(token, keys, algorithms, { issuer: expect.issuer, clientId: expect.clientId, maxIatAgeMs: expect.maxIatAgeMs, requireExp: false }, clockSkewMs, nowMs);
  if (!verified.ok) return verified;
  const { claims, header, iat } = verified;

  // §2.4: explicit typing (RFC 8725 §3.11) keeps other JWTs of the same issuer out; absent is
  // still allowed because providers predating it send none, and the claim checks below hold.
  const typ = normalisedTyp(header);
  if (typ !== undefined && typ !== LOGOUT_TYP) return fail(`typ_mismatch: typ ${JSON.stringify(header.typ)?.slice(0, 40) ?? 'not a string'} is not logout+jwt`);

  // §2.4: "A nonce Claim MUST NOT be present": this is what tells an ID token from a logout token.
  if (claims.nonce !== undefined) return fail('nonce_present: a logout token carries no nonce (an ID token?)');

  const events = claims.events;
  if (!isObject(events)) return fail('events_invalid: events is absent or not an object');
  if (!Object.hasOwn(events, BACKCHANNEL_LOGOUT_EVENT)) return fail('events_invalid: events has no back-channel logout member');
  if (!isObject(events[BACKCHANNEL_LOGOUT_EVENT])) return fail('events_invalid: the back-channel logout event is not an object');

  const jti = claims.jti;
  if (!isBoundedString(jti, MAX_JTI_BYTES)) return fail(`jti_invalid: jti is absent, not a string, empty or longer than ${MAX_JTI_BYTES} bytes`);

  const { sid, sub } = claims;
  if (sid === undefined && sub === undefined) return fail('subject_missing: neither sid nor sub');
  if (sid !== undefined && !isBoundedString(sid, MAX_ID_BYTES)) return fail(`sid_invalid: sid is not a non-empty string of at most ${MAX_ID_BYTES} bytes`);
  if (sub !== undefined && !isBoundedString(sub, MAX_ID_BYTES)) return fail(`sub_invalid: sub is not a non-empty string of at most ${MAX_ID_BYTES} bytes`);

  // The verifier accepted exp (if any), so it is a number here; the token stops being acceptable
  // at whichever of its bounds comes first, and its jti need not be remembered past that.
  const byIat = iat * 1000 + expect.maxIatAgeMs + clockSkewMs;
  const exp = claims.exp;
  const until = typeof exp === 'number' ? Math.min(byIat, exp * 1000 + Math.ceil(clockSkewMs / 1000) * 1000) : byIat;
  return { ok: true, sid: sid ?? null, subject: sub ?? null, jti, until };
}

const fail = (reason: string): LogoutTokenResult => ({ ok: false, reason });

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
