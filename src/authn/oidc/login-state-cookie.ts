/**
 * The pre-login cookie: what the callback needs to finish a login the same browser started —
 * `state` (CSRF on the redirect, RFC 6749 §10.12), `nonce` (ID token replay, OIDC Core §15.5.2),
 * the PKCE verifier (RFC 7636) and where to return. It is sealed with AES-256-GCM under a key
 * derived from the token hash key, so every gateway sharing that key opens it and nothing is stored
 * server-side before login. The cookie name carries a digest of `state`: each login in flight has
 * its own cookie, so two tabs logging in at once do not overwrite each other's.
 */

import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseStrictJson } from '../../lib/strict-json.js';
import { readCookie } from '../../http/cookies.js';
import { MAX_RETURN_PATH_LENGTH, safeReturnPath } from './return-path.js';

/** What one login in flight binds. `expiresAt`: milliseconds since the epoch (the injected clock's). */
export interface LoginState {
  /** The authenticator (its config name) the login is for. */
  readonly authenticator: string;
  readonly state: string;
  readonly nonce: string;
  /** The PKCE code verifier (RFC 7636 §4.1). */
  readonly verifier: string;
  /** A path safeReturnPath returned. */
  readonly returnTo: string;
  readonly expiresAt: number;
}

/** Every login state cookie's name starts so (the `__Host-` prefix: see cookies.ts). */
export const LOGIN_STATE_COOKIE_PREFIX = '__Host-portcullis-login-';
/** The HKDF info (RFC 5869 §2.3) deriving the login state key from the token hash key. */
/** The label of the login state key derived from the token hash key (TokenDigester.derivedKey): the same on every gateway sharing that key. */
export const LOGIN_STATE_KEY_LABEL = 'portcullis oidc login state';
const IV_BYTES = 12; // NIST SP 800-38D §8.2: 96-bit IVs, random, under one key far fewer than 2^32 times per login
const TAG_BYTES = 16;
/** An authenticator's config name (NAME_PATTERN in the config schema). */
const AUTHENTICATOR = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** state and nonce: base64url, at least 128 bits (22 characters), at most 128 characters. */
const RANDOM_VALUE = /^[A-Za-z0-9_-]{22,128}$/;
/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const FIELDS = ['authenticator', 'state', 'nonce', 'verifier', 'returnTo', 'expiresAt'] as const;
/**
 * The longest sealed value: IV, tag and the largest JSON a valid LoginState makes (~2.7 KB),
 * base64url — under the 4096 bytes browsers keep for name and value together (RFC 6265 §6.1).
 */
export const MAX_LOGIN_STATE_VALUE_LENGTH = 3800;

/** The cookie that holds the login started with `state`: the prefix and 16 base64url characters (96 bits) of SHA-256(state). */
export function loginStateCookieName(state: string): string {
  return LOGIN_STATE_COOKIE_PREFIX + createHash('sha256').update(state).digest('base64url').slice(0, 16);
}

/** The names of the pre-login cookies a Cookie header carries, each once: the logins this browser has in flight. */
export function presentedLoginStateCookies(header: string | string[] | undefined): string[] {
  const text = header === undefined ? '' : typeof header === 'string' ? header : header.join('; ');
  const names = new Set<string>();
  if (!text.includes(LOGIN_STATE_COOKIE_PREFIX)) return [];
  for (const pair of text.split(';')) {
    const name = pair.slice(0, pair.indexOf('=')).trim();
    if (name.startsWith(LOGIN_STATE_COOKIE_PREFIX) && LOGIN_COOKIE_SUFFIX.test(name.slice(LOGIN_STATE_COOKIE_PREFIX.length))) names.add(name);
  }
  return [...names];
}

/** What follows the prefix in a pre-login cookie's name (loginStateCookieName). */
const LOGIN_COOKIE_SUFFIX = /^[A-Za-z0-9_-]{16}$/;


/**
 * Seals a login state into its cookie: AES-256-GCM, a random 12-byte IV, the cookie name as
 * additional data (a value moved under another login's name does not open), `IV ‖ ciphertext ‖ tag`
 * in base64url. Throws on a key that is not 32 bytes or a state openLoginState would refuse
 * (a bug in the caller).
 */
export function sealLoginState(key: Buffer, s: LoginState): { name: string; value: string } {
  if (key.length !== 32) throw new Error('login state key: 32 bytes expected');
  const plain: Record<string, unknown> = {};
  for (const field of FIELDS) plain[field] = s[field];
  const fault = shapeFault(plain);
  if (fault !== null) throw new Error(`login state: ${fault}`);
  const name = loginStateCookieName(s.state);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(name, 'latin1'));
  const body = Buffer.concat([cipher.update(JSON.stringify(plain), 'utf8'), cipher.final()]);
  const value = Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  if (value.length > MAX_LOGIN_STATE_VALUE_LENGTH) throw new Error('login state: sealed value too long');
  return { name, value };
}

/**
 * The login state the callback for `state` resumes, from the request's Cookie header(s), or the
 * private reason it cannot: no cookie for that state, the cookie sent twice, a value that is not
 * base64url, too long or too short, does not open under `key` with this name, is not exactly a
 * LoginState, names another state, or expired at `now` (milliseconds since the epoch).
 */
export function openLoginState(key: Buffer, cookieHeader: string | string[] | undefined, state: string, now: number): LoginState | string {
  if (!RANDOM_VALUE.test(state)) return 'state parameter malformed';
  const name = loginStateCookieName(state);
  const cookie = readCookie(cookieHeader, name);
  if (cookie === 'absent') return 'no login state cookie for this state';
  if (cookie === 'ambiguous') return 'login state cookie sent more than once or oversized';
  const value = cookie.value;
  if (value.length > MAX_LOGIN_STATE_VALUE_LENGTH) return 'login state cookie oversized';
  if (!BASE64URL.test(value)) return 'login state cookie not base64url';
  const sealed = Buffer.from(value, 'base64url');
  if (sealed.length <= IV_BYTES + TAG_BYTES) return 'login state cookie too short';
  let text: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(name, 'latin1'));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    text = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return 'login state cookie does not open (tampered, another key or another cookie name)';
  }
  const parsed = parseStrictJson(text, 1);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'login state not a JSON object';
  const fault = shapeFault(parsed as Record<string, unknown>);
  if (fault !== null) return `login state ${fault}`;
  const login = parsed as unknown as LoginState;
  const a = Buffer.from(login.state);
  const b = Buffer.from(state);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return 'login state is for another state';
  if (login.expiresAt <= now) return 'login state expired';
  return login;
}

/** What is wrong with a would-be LoginState (exact fields, types and bounds), or null. */
function shapeFault(o: Record<string, unknown>): string | null {
  const keys = Object.keys(o);
  if (keys.length !== FIELDS.length || !FIELDS.every((f) => Object.hasOwn(o, f))) return 'fields are not exactly those of a login state';
  const { authenticator, state, nonce, verifier, returnTo, expiresAt } = o;
  if (typeof authenticator !== 'string' || !AUTHENTICATOR.test(authenticator)) return 'authenticator malformed';
  if (typeof state !== 'string' || !RANDOM_VALUE.test(state)) return 'state malformed';
  if (typeof nonce !== 'string' || !RANDOM_VALUE.test(nonce)) return 'nonce malformed';
  if (typeof verifier !== 'string' || !VERIFIER.test(verifier)) return 'verifier malformed';
  if (typeof returnTo !== 'string' || returnTo.length > MAX_RETURN_PATH_LENGTH || safeReturnPath(returnTo) !== returnTo) return 'returnTo not a safe return path';
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt <= 0) return 'expiresAt malformed';
  return null;
}
