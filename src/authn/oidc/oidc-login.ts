import { createHash, randomBytes } from 'node:crypto';
import { expiredCookie, GATEWAY_COOKIE_PREFIX, readCookie, setCookie } from '../../http/cookies.js';
import type { Clock } from '../../lib/clock.js';
import { deny, type Denial } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { identityFromClaims } from '../claims/claim-mapping.js';
import { audienceList, checkClaimRules, type ClaimRules } from '../claims/claim-rules.js';
import type { Identity } from '../identity.js';
import type { JwsAlgorithm } from '../jwt/algorithms.js';
import type { TokenDigester } from '../oauth/token-digest.js';
import { LOGIN_STATE_KEY_LABEL, presentedLoginStateCookies, sealLoginState } from './login-state-cookie.js';
import type { OidcProviderClient } from './oidc-provider-client.js';
import type { SessionKey, SessionLimits, SessionStore } from './session-store.js';

/** The gateway-owned paths of one oidc authenticator. */
export interface OidcPaths {
  readonly callback: string;
  readonly login: string;
  readonly logout: string;
  readonly backChannelLogout: string;
}

/** One oidc authenticator's settings, defaults applied (see kind.ts). */
export interface OidcSettings {
  readonly name: string;
  readonly realm: string;
  readonly provider: OidcProviderClient;
  readonly sessions: SessionStore;
  readonly digester: TokenDigester;
  readonly rules: ClaimRules;
  readonly clock: Clock;
  readonly clientId: string;
  readonly issuer: string;
  readonly algorithms: readonly JwsAlgorithm[];
  readonly scope: string;
  readonly responseMode: 'query' | 'form_post';
  readonly prompt: string | null;
  readonly userinfo: boolean;
  readonly redirectUri: string;
  /** The origin of redirectUri: the gateway's own for same-origin checks. */
  readonly origin: string;
  readonly postLogoutRedirectUri: string | null;
  readonly logoutAtProvider: boolean;
  readonly paths: OidcPaths;
  readonly clockSkewMs: number;
  readonly loginTimeoutMs: number;
  readonly limits: SessionLimits;
  readonly absoluteTimeoutMs: number;
  readonly refreshBeforeMs: number;
  readonly refreshWaitMs: number;
}

/** A session id as the cookie carries it: 32 random bytes, base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/**
 * Logins one browser may have in flight. Each pre-login cookie takes some 400 bytes of every
 * request's head, so about 40 unfinished logins (10 minutes each) would fill a 16 KiB request head
 * and lock that browser out of the whole gateway (431) until they expire. Past this many, a new
 * login drops the pending ones.
 */
const MAX_LOGINS_IN_FLIGHT = 8;
/**
 * One oidc authenticator's login: its settings, how a request's session cookie names a session,
 * how a login starts (state, nonce and PKCE verifier sealed into a pre-login cookie), and how a
 * session's claims map to an identity. Shared by the authenticator (requests on its routes) and
 * its endpoints (callback, login, logout, back-channel logout).
 */
export class OidcLogin {
  readonly name: string;
  /** `__Host-portcullis-session-<name>`. */
  readonly cookieName: string;

  constructor(readonly settings: OidcSettings) {
    this.name = settings.name;
    this.cookieName = `${GATEWAY_COOKIE_PREFIX}session-${settings.name}`;
  }

  /** The store key of a session id (the cookie's value). */
  sessionKey(id: string): SessionKey {
    return { id: this.settings.digester.ofToken(id), secret: id };
  }

  /** The session key the request's cookie names, or null when it names none (absent, repeated or malformed). */
  presentedKey(ex: Exchange): SessionKey | null {
    const cookie = readCookie(ex.req.headers.cookie, this.cookieName);
    if (typeof cookie === 'string' || !SESSION_ID.test(cookie.value)) return null;
    return this.sessionKey(cookie.value);
  }

  /**
   * Whether a session's claims (its ID token's, checked at login) come from this authenticator's
   * issuer and client as now configured. A session outlives a reload; a login at the provider the
   * authenticator pointed to before is not a login at the one it points to now.
   */
  issuedHere(claims: Readonly<Record<string, unknown>>): boolean {
    return claims.iss === this.settings.issuer && audienceList(claims.aud).includes(this.settings.clientId);
  }

  /** The identity `claims` map to under the authenticator's rules, or why they do not. */
  mapIdentity(claims: Readonly<Record<string, unknown>>): Identity | string {
    const broken = checkClaimRules(claims, this.settings.rules, audienceList(claims.aud));
    if (broken !== null) return broken;
    return identityFromClaims(claims, this.settings.rules.mapping, { method: 'oidc', authenticator: this.name, keyId: null, bearerRealm: null });
  }

  /** The gateway's own origins for a request: the redirect URI's, and the one the request was sent to. */
  ownOrigins(ex: Exchange): ReadonlySet<string> {
    const host = ex.req.headers.host;
    return host === undefined ? new Set([this.settings.origin]) : new Set([this.settings.origin, `${ex.secure ? 'https' : 'http'}://${host.toLowerCase()}`]);
  }

  /**
   * Starts a login: a fresh state, nonce and PKCE verifier sealed into a pre-login cookie of its
   * own, and a redirect to the provider's authorization endpoint. `cookieHeader`: the request's,
   * whose pre-login cookies are cleared when MAX_LOGINS_IN_FLIGHT are already there.
   */
  beginLogin(returnTo: string, cookieHeader?: string | string[]): Denial {
    const s = this.settings;
    const state = randomBytes(32).toString('base64url');
    const nonce = randomBytes(32).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    let location: string;
    try {
      location = s.provider.authorizationUrl({ state, nonce, codeChallenge: challenge, scope: s.scope, responseMode: s.responseMode, prompt: s.prompt });
    } catch (err) {
      return deny('authentication_unavailable', `${this.name}: cannot start a login: ${(err as Error).message}`, { 'retry-after': '5' });
    }
    const pending = presentedLoginStateCookies(cookieHeader);
    const dropped = pending.length >= MAX_LOGINS_IN_FLIGHT ? pending : [];
    const cookie = sealLoginState(this.loginKey(), { authenticator: this.name, state, nonce, verifier, returnTo, expiresAt: s.clock.now() + s.loginTimeoutMs });
    return deny('login_required', `${this.name}: no session; sent to log in at ${s.issuer}`, {
      location,
      // form_post: the provider's page POSTs the response from its own site, and browsers send no
      // SameSite=Lax cookie on a cross-site POST; the sealed state is worthless without the state
      // parameter, so None costs nothing there.
      'set-cookie': [setCookie(cookie.name, cookie.value, Math.ceil(s.loginTimeoutMs / 1000), s.responseMode === 'form_post' ? 'None' : 'Lax'), ...dropped.map(expiredCookie)],
      'cache-control': 'no-store',
    });
  }

  /** The key pre-login cookies are sealed under: derived from the token hash key, the same on every gateway sharing it. */
  loginKey(): Buffer {
    return this.settings.digester.derivedKey(LOGIN_STATE_KEY_LABEL);
  }
}

/** Whether a request is a browser navigation (a login redirect helps it; an API call gets 401). */
export function isNavigation(ex: Exchange): boolean {
  const method = ex.req.method;
  if (method !== 'GET' && method !== 'HEAD') return false;
  const mode = ex.req.headers['sec-fetch-mode'];
  if (mode !== undefined) return mode === 'navigate';
  const accept = ex.req.headers.accept;
  return accept !== undefined && accept.includes('text/html');
}

