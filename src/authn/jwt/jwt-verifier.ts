import { isUtf8 } from 'node:buffer';
import { parseStrictJson } from '../../lib/strict-json.js';
import { isJwsAlgorithm, verifySignature, type JwsAlgorithm, type VerifyKey } from './algorithms.js';
import type { KeySource } from './key-source.js';
import type { Claims } from '../claims/claim-path.js';

/** Everything a JWT must satisfy, compiled once per authenticator. */
export interface JwtPolicy {
  readonly algorithms: ReadonlySet<JwsAlgorithm>;
  /** Exact `iss` value → that issuer's keys and the algorithms they may verify. */
  readonly issuers: ReadonlyMap<string, IssuerKeys>;
  readonly audiences: ReadonlySet<string>;
  readonly clockSkewSec: number;
  readonly requireExp: boolean;
  /** Required `typ` header, lower case without `application/` (RFC 7515 §4.1.9), or null. */
  readonly typ: string | null;
  readonly maxTokenBytes: number;
}

/** One trusted issuer: its key source and the subset of the allowed algorithms its keys can serve. */
export interface IssuerKeys {
  readonly source: KeySource;
  readonly algorithms: ReadonlySet<JwsAlgorithm>;
}

export type { Claims } from '../claims/claim-path.js';
export { claimAt } from '../claims/claim-path.js';

export type VerifyResult =
  | { readonly ok: true; readonly claims: Claims; readonly exp: number | null; readonly source: KeySource; readonly revision: number }
  | {
    readonly ok: false;
    readonly reason: string;
    /**
     * True when the signature verified with a trusted key and only the claims failed (expired, not
     * yet valid, another audience): an honest mistake, not a guess at a key or secret.
     */
    readonly signatureValid: boolean;
    /** The claims of a token whose signature verified (only then): what its issuer vouched for, though refused. */
    readonly claims?: Claims;
  };

const MAX_JSON_DEPTH = 16;
/** Header parameters that would make the token choose or carry its own key (RFC 7515 §4.1.2–6). */
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
const B64URL = /^[A-Za-z0-9_-]+$/;
const B64URL_VALUE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const fail = (reason: string): VerifyResult => ({ ok: false, reason, signatureValid: false });
/** A failure of a token whose signature verified: see `signatureValid`. */
const stale = (reason: string): VerifyResult => ({ ok: false, reason, signatureValid: true });

/**
 * Verifies a JWS compact-serialised JWT (RFC 7519) against `policy`. Parsing is strict and
 * happens before any key is touched: exactly three base64url segments in canonical form, JSON
 * without duplicate keys, an allowed `alg` bound to the key's type, no `crit`, no key-carrying
 * header. Only the configured issuer's keys are used; no header can cause a network request.
 * Returns a promise only when the issuer's remote key set must refetch (unknown `kid`); throws
 * KeysUnavailableError when no keys could ever be loaded.
 */
export function verifyJwt(token: string, policy: JwtPolicy, nowMs: number): VerifyResult | Promise<VerifyResult> {
  if (token.length > policy.maxTokenBytes) return fail(`token_too_large: ${token.length} bytes, limit ${policy.maxTokenBytes}`);
  const dot1 = token.indexOf('.');
  const dot2 = dot1 === -1 ? -1 : token.indexOf('.', dot1 + 1);
  if (dot2 === -1) return fail('malformed: not three dot-separated segments');
  if (token.indexOf('.', dot2 + 1) !== -1) {
    return fail(token.split('.').length === 5 ? 'jwe_not_accepted: five segments (JWE) where a JWS is expected' : 'malformed: more than three segments');
  }
  const header = decodeJson(token.slice(0, dot1));
  if (header === undefined) return fail('malformed: header is not canonical base64url JSON without duplicate keys');
  const alg = header.alg;
  if (header.enc !== undefined) return fail('jwe_not_accepted: header has "enc"');
  if (typeof alg !== 'string') return fail('malformed: header has no alg');
  if (alg.toLowerCase() === 'none') return fail(`alg_none: alg "${alg.slice(0, 20)}"`);
  if (!isJwsAlgorithm(alg) || !policy.algorithms.has(alg)) return fail(`alg_not_allowed: alg "${alg.slice(0, 20)}"`);
  for (const name of KEY_CARRYING_HEADERS) {
    if (header[name] !== undefined) return fail(`embedded_key: header carries "${name}"`);
  }
  if (header.crit !== undefined) return fail('crit_unsupported: header has "crit"');
  if (header.b64 !== undefined) return fail('malformed: header has "b64" (unencoded payload)');
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > 256)) return fail('malformed: kid is not a string of at most 256 characters');
  if (policy.typ !== null && !typMatches(header.typ, policy.typ)) return fail(`typ_mismatch: typ ${JSON.stringify(header.typ)?.slice(0, 40) ?? 'absent'}`);

  const claims = decodeJson(token.slice(dot1 + 1, dot2));
  if (claims === undefined) return fail('malformed: payload is not canonical base64url JSON without duplicate keys');
  const iss = claims.iss;
  if (typeof iss !== 'string') return fail('issuer_invalid: iss is absent or not a string');
  const issuer = policy.issuers.get(iss);
  if (issuer === undefined) return fail(`issuer_unknown: iss ${JSON.stringify(iss.slice(0, 100))}`);
  if (!issuer.algorithms.has(alg)) return fail(`alg_not_allowed: alg ${alg} is not used by issuer ${iss.slice(0, 100)}`);
  const source = issuer.source;
  const signature = decodeSegment(token.slice(dot2 + 1));
  if (signature === null) return fail('malformed: signature is not canonical base64url');

  const signingInput = Buffer.from(token.slice(0, dot2), 'latin1');
  const revision = source.revision;
  const finish = (keys: readonly VerifyKey[]): VerifyResult => {
    if (keys.length === 0) return fail(`key_unknown: no ${alg} key${kid === undefined ? '' : ` with kid ${JSON.stringify(kid.slice(0, 64))}`} for ${iss.slice(0, 100)}`);
    if (!keys.some((k) => verifySignature(alg, k.key, signingInput, signature))) return fail('signature_invalid');
    const checked = checkClaims(claims, policy, nowMs, source, revision);
    return checked.ok ? checked : { ...checked, claims };
  };
  const keys = source.keysFor(alg, kid ?? null);
  return keys instanceof Promise ? keys.then(finish) : finish(keys);
}

function checkClaims(claims: Claims, policy: JwtPolicy, nowMs: number, source: KeySource, revision: number): VerifyResult {
  const now = Math.floor(nowMs / 1000);
  const skew = policy.clockSkewSec;
  const { exp, nbf, iat, aud } = claims;
  if (exp === undefined) {
    if (policy.requireExp) return stale('claim_invalid: exp is required');
  } else if (!isNumericDate(exp)) return stale('claim_invalid: exp is not a number');
  else if (now >= exp + skew) return stale(`expired: exp ${exp}, now ${now}, leeway ${skew}s`);
  if (nbf !== undefined) {
    if (!isNumericDate(nbf)) return stale('claim_invalid: nbf is not a number');
    if (nbf > now + skew) return stale(`not_yet_valid: nbf ${nbf}, now ${now}, leeway ${skew}s`);
  }
  if (iat !== undefined) {
    if (!isNumericDate(iat)) return stale('claim_invalid: iat is not a number');
    if (iat > now + skew) return stale(`issued_in_future: iat ${iat}, now ${now}, leeway ${skew}s`);
  }
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : null;
  if (audiences === null || audiences.length === 0 || !audiences.every((a) => typeof a === 'string' && a !== '')) {
    return stale('audience_invalid: aud is absent, empty or not a string or array of strings');
  }
  if (!audiences.some((a) => policy.audiences.has(a as string))) return stale('audience_mismatch: no accepted audience in aud');
  return { ok: true, claims, exp: exp ?? null, source, revision };
}

/** NumericDate (RFC 7519 §2): a JSON number; strings, booleans and non-finite values are invalid. */
function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function typMatches(typ: unknown, required: string): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return (lower.startsWith('application/') ? lower.slice('application/'.length) : lower) === required;
}

/**
 * base64url without padding, in canonical form: a length of 1 mod 4 is impossible, and the bits
 * of the last character that do not fill a byte must be zero (RFC 4648 §3.5). Otherwise one token
 * would have several spellings, and caches or replay checks keyed on the text could be dodged.
 */
function decodeSegment(segment: string): Buffer | null {
  const rest = segment.length % 4;
  if (rest === 1 || !B64URL.test(segment)) return null;
  if (rest !== 0) {
    const last = B64URL_VALUE.indexOf(segment.charAt(segment.length - 1));
    if ((last & (rest === 2 ? 0x0f : 0x03)) !== 0) return null;
  }
  return Buffer.from(segment, 'base64url');
}

function decodeJson(segment: string): Record<string, unknown> | undefined {
  const bytes = decodeSegment(segment);
  if (bytes === null) return undefined;
  if (!isUtf8(bytes)) return undefined;
  const json = bytes.toString('utf8');
  const value = parseStrictJson(json, MAX_JSON_DEPTH);
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
}
