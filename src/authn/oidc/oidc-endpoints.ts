import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { deny, type Denial } from '../../pipeline/denials.js';
import { redirect, type Decision, type Exchange, type LocalResponse, type Stage, type StageResult } from '../../pipeline/exchange.js';
import type { AuthenticatorEndpoint } from '../authenticator.js';
import { EndpointError } from '../introspection/bounded-fetch.js';
import { expiredCookie, setCookie } from '../../http/cookies.js';
import { verifyIdToken } from './id-token.js';
import { loginStateCookieName, openLoginState } from './login-state-cookie.js';
import { verifyLogoutToken } from './logout-token.js';
import { IdTokenRefusedError } from './oidc-provider-client.js';
import type { OidcLogin } from './oidc-login.js';
import { safeReturnPath } from './return-path.js';
import { crossSiteRefusal } from './same-origin.js';
import type { SessionRecord } from './session-store.js';

/** Largest form accepted at the callback (form_post) and the back-channel logout endpoint. */
export const MAX_FORM_BYTES = 16_384;
/** How old an ID token's iat may be at the callback. */
const MAX_ID_TOKEN_AGE_MS = 600_000;
/** How old a logout token's iat may be. */
const MAX_LOGOUT_TOKEN_AGE_MS = 300_000;
/** Parameters of an authorization response a callback reads; any of them twice is refused (RFC 6749 §3.1). */
const RESPONSE_PARAMS = ['code', 'state', 'error', 'error_description', 'iss', 'session_state'];

const FORM = ['application/x-www-form-urlencoded'];

/**
 * The four gateway-owned paths of one oidc authenticator: callback, login, logout, back-channel
 * logout. Logout takes GET (a link) and POST (a form, which sends no body the gateway reads).
 */
export function oidcEndpoints(login: OidcLogin): AuthenticatorEndpoint[] {
  const { paths, responseMode } = login.settings;
  const formPost = responseMode === 'form_post';
  return [
    { path: paths.callback, methods: formPost ? ['POST'] : ['GET'], name: 'oidc-callback', option: 'redirectUri', maxBodyBytes: formPost ? MAX_FORM_BYTES : 0, contentTypes: formPost ? FORM : null, stage: callbackStage(login) },
    { path: paths.login, methods: ['GET'], name: 'oidc-login', option: 'loginPath', maxBodyBytes: 0, contentTypes: null, stage: loginStage(login) },
    { path: paths.logout, methods: ['GET', 'POST'], name: 'oidc-logout', option: 'logoutPath', maxBodyBytes: MAX_FORM_BYTES, contentTypes: null, stage: logoutStage(login) },
    { path: paths.backChannelLogout, methods: ['POST'], name: 'oidc-back-channel-logout', option: 'backChannelLogoutPath', maxBodyBytes: MAX_FORM_BYTES, contentTypes: FORM, stage: backChannelStage(login) },
  ];
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

/**
 * A page a browser shows when a login cannot complete: what happened in plain words and a link
 * to start again. The provider's own error text is shown only as printable ASCII, cut short and
 * escaped; the precise reason goes to the audit record.
 */
function loginPage(status: number, code: string, headline: string, detail: string, again: string, setCookies: readonly string[] = []): LocalResponse {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(headline)}</title></head>` +
    `<body><h1>${escapeHtml(headline)}</h1><p><a href="${escapeHtml(again)}">Log in again</a></p></body></html>\n`;
  const decision: Decision = status >= 500 ? 'error' : 'deny';
  return {
    kind: 'response', status, body, code, detail, decision,
    headers: {
      'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      ...(setCookies.length === 0 ? {} : { 'set-cookie': [...setCookies] }),
    },
  };
}

/** The text of one provider-supplied error value fit to show: printable ASCII, at most 120 characters. */
function shown(value: string | null): string {
  return (value ?? '').replace(/[^\x20-\x7e]/g, '').slice(0, 120);
}

/** Reads a urlencoded form of at most MAX_FORM_BYTES; a Denial when it is not one. */
async function readForm(req: IncomingMessage, what: string): Promise<URLSearchParams | Denial> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return deny('unsupported_media_type', `${what}: Content-Type ${(req.headers['content-type'] ?? '(none)').slice(0, 60)}; send application/x-www-form-urlencoded`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_FORM_BYTES) return deny('body_too_large', `${what}: Content-Length over ${MAX_FORM_BYTES}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return deny('body_too_large', `${what}: body over ${MAX_FORM_BYTES} bytes`);
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Marks a parameter given more than once. */
const REPEATED = Symbol('repeated');

/** The one value of `name`, null when absent, or REPEATED. */
function single(params: URLSearchParams, name: string): string | null | typeof REPEATED {
  const all = params.getAll(name);
  return all.length > 1 ? REPEATED : all[0] ?? null;
}

function callbackStage(login: OidcLogin): Stage {
  const s = login.settings;
  const again = s.paths.login;
  return {
    name: 'oidc-callback',
    async run(ex: Exchange): Promise<StageResult> {
      let params: URLSearchParams;
      if (s.responseMode === 'form_post') {
        const form = await readForm(ex.req, 'oidc callback');
        if (!(form instanceof URLSearchParams)) return form;
        params = form;
      } else {
        params = new URLSearchParams(ex.target?.query ?? '');
      }
      const repeated = RESPONSE_PARAMS.find((p) => single(params, p) === REPEATED);
      if (repeated !== undefined) return loginPage(400, 'login_state_invalid', 'This login link is not valid.', `${repeated} appears more than once in the authorization response`, again);
      const state = single(params, 'state');
      if (state === null || state === REPEATED || state.length > 512) return loginPage(400, 'login_state_invalid', 'This login link is not valid.', 'authorization response without a usable state', again);
      const clearLogin = expiredCookie(loginStateCookieName(state));
      const opened = openLoginState(login.loginKey(), ex.req.headers.cookie, state, s.clock.now());
      if (typeof opened === 'string' || opened.authenticator !== login.name) {
        return loginPage(400, 'login_state_invalid', 'This login was not started here, or took too long.', `state not bound to this browser: ${typeof opened === 'string' ? opened : `started by ${opened.authenticator}`}`, again, [clearLogin]);
      }
      const retry = `${again}?rd=${encodeURIComponent(opened.returnTo)}`;
      const error = single(params, 'error');
      if (error !== null) {
        const code = error === REPEATED ? 'unknown' : shown(error);
        const description = single(params, 'error_description');
        return loginPage(code === 'access_denied' ? 403 : 400, 'login_failed', `The identity provider did not log you in (${code}).`,
          `provider error ${code}${typeof description === 'string' ? `: ${shown(description)}` : ''}`, retry, [clearLogin]);
      }
      // One use per state while it is handled, on every gateway sharing the store: copies of a
      // callback sent at once are refused before a second exchange of its code.
      let first: boolean;
      const marker = `state.${createHash('sha256').update(state).digest('base64url')}`;
      try {
        first = await s.sessions.once(marker, opened.expiresAt, s.clock.now(), s.limits.maxSessions);
      } catch (err) {
        return loginPage(503, 'authentication_unavailable', 'Logins cannot be completed right now.', `session store: ${(err as Error).message}`, retry, [clearLogin]);
      }
      if (!first) return loginPage(400, 'login_replayed', 'This login was completed already.', 'state used before: a replayed authorization response', retry, [clearLogin]);
      let tokens;
      try {
        tokens = await s.provider.exchange(params, { state: opened.state, verifier: opened.verifier, nonce: opened.nonce });
      } catch (err) {
        if (err instanceof IdTokenRefusedError) return loginPage(400, 'id_token_invalid', 'The login could not be completed.', `ID token refused: ${err.message}`, retry, [clearLogin]);
        // No tokens were issued for this state: its marker goes, so callbacks with made-up codes
        // (a state is free to obtain) leave nothing behind to fill the markers' bound with.
        await s.sessions.forget(marker).catch(() => undefined);
        const failure = err instanceof EndpointError ? err : null;
        const outage = failure === null || failure.reason === 'timeout' || failure.reason === 'network' || failure.reason === 'not_ready' || failure.reason === 'redirect';
        return loginPage(outage ? 502 : 400, outage ? 'login_provider_unavailable' : 'login_failed', outage ? 'The identity provider could not be reached.' : 'The login could not be completed.',
          `code exchange: ${(err as Error).message}`, retry, [clearLogin]);
      }
      if (tokens.idToken === null) return loginPage(400, 'login_failed', 'The login could not be completed.', 'the token response has no ID token', retry, [clearLogin]);
      const now = s.clock.now();
      const verified = await verifyIdToken(tokens.idToken, s.provider, s.algorithms,
        { issuer: s.issuer, clientId: s.clientId, nonce: opened.nonce, accessToken: tokens.accessToken, maxAgeMs: null, maxIatAgeMs: MAX_ID_TOKEN_AGE_MS }, s.clockSkewMs, now)
        .catch((err: unknown) => ({ ok: false as const, reason: `keys: ${(err as Error).message}` }));
      if (!verified.ok) return loginPage(400, 'id_token_invalid', 'The login could not be completed.', `ID token refused: ${verified.reason}`, retry, [clearLogin]);
      let claims: Record<string, unknown> = { ...verified.claims };
      const subject = claims.sub as string;
      if (s.userinfo) {
        try {
          // The ID token says who issued the login and for which client; userinfo adds claims only.
          claims = { ...claims, ...await s.provider.userinfo(tokens.accessToken, subject), sub: subject, iss: claims.iss, aud: claims.aud };
        } catch (err) {
          return loginPage(502, 'login_provider_unavailable', 'The identity provider could not be reached.', `userinfo: ${(err as Error).message}`, retry, [clearLogin]);
        }
      }
      const identity = login.mapIdentity(claims);
      if (typeof identity === 'string') return loginPage(403, 'login_refused', 'Your account may not use this application.', `claims refused: ${identity}`, retry, [clearLogin]);
      const record: SessionRecord = Object.freeze({
        authenticator: login.name,
        subject,
        sid: typeof claims.sid === 'string' && claims.sid.length <= 255 ? claims.sid : null,
        claims: Object.freeze(claims),
        idToken: tokens.idToken,
        accessToken: tokens.accessToken,
        accessExpiresAt: tokens.expiresIn === null ? null : now + tokens.expiresIn * 1000,
        refreshToken: tokens.refreshToken,
        createdAt: now,
        expiresAt: now + s.absoluteTimeoutMs,
        version: 1,
      });
      // A new id at every login: a session id planted before it (fixation) is never the one logged in.
      const id = randomBytes(32).toString('base64url');
      const previous = login.presentedKey(ex);
      try {
        if (previous !== null) await s.sessions.delete(previous);
        if (await s.sessions.create(login.sessionKey(id), record, now, s.limits) === 'full') {
          return loginPage(503, 'sessions_full', 'Logins cannot be completed right now.', `${s.limits.maxSessions} sessions held: session.maxSessions reached`, retry, [clearLogin]);
        }
      } catch (err) {
        return loginPage(503, 'authentication_unavailable', 'Logins cannot be completed right now.', `session store: ${(err as Error).message}`, retry, [clearLogin]);
      }
      // The marker has done its work: copies of this callback sent meanwhile were refused, the code
      // is spent (the provider refuses it again) and the browser's pre-login cookie is cleared. Kept
      // for loginTimeout, one account logging in again and again would fill the markers' bound and
      // lock every other user's login out as a replay.
      await s.sessions.forget(marker).catch(() => undefined);
      const done = redirect(opened.returnTo, 'login_completed', `${login.name}: session for ${subject.slice(0, 64)} started`, 303);
      return { ...done, headers: { ...done.headers, 'set-cookie': [setCookie(login.cookieName, id, Math.ceil(s.absoluteTimeoutMs / 1000)), clearLogin] } };
    },
    explain: () => ({ result: undefined, note: 'would check the state against its pre-login cookie, exchange the code (PKCE) and verify the ID token' }),
  };
}

function loginStage(login: OidcLogin): Stage {
  return {
    name: 'oidc-login',
    run: (ex) => {
      const rd = new URLSearchParams(ex.target?.query ?? '').getAll('rd');
      return login.beginLogin(rd.length === 1 ? safeReturnPath(rd[0]) ?? '/' : '/', ex.req.headers.cookie);
    },
    explain: () => ({ result: undefined, note: 'would send the browser to the provider to log in' }),
  };
}

function logoutStage(login: OidcLogin): Stage {
  const s = login.settings;
  return {
    name: 'oidc-logout',
    async run(ex: Exchange): Promise<StageResult> {
      const method = ex.req.method ?? 'GET';
      // A cross-site page must not log the user out either (an <img> or a form aimed at this path).
      const site = ex.req.headers['sec-fetch-site'];
      const crossSite = method === 'POST'
        ? crossSiteRefusal(method, ex.req.headers, login.ownOrigins(ex), () => false)
        : site === 'cross-site' || site === 'same-site' ? `Sec-Fetch-Site: ${site}` : null;
      if (crossSite !== null) return deny('cross_site_request_refused', `${login.name} logout: ${crossSite}`);
      const rd = new URLSearchParams(ex.target?.query ?? '').getAll('rd');
      const back = rd.length === 1 ? safeReturnPath(rd[0]) ?? '/' : '/';
      const key = login.presentedKey(ex);
      let record: SessionRecord | null = null;
      if (key !== null) {
        try {
          record = await s.sessions.get(key, s.clock.now(), s.limits.idleTimeoutMs);
          await s.sessions.delete(key);
        } catch (err) {
          return deny('authentication_unavailable', `${login.name} logout: session store: ${(err as Error).message}`);
        }
      }
      const atProvider = record !== null && record.authenticator === login.name && s.logoutAtProvider
        ? s.provider.endSessionUrl(record.idToken, s.postLogoutRedirectUri) : null;
      const done = redirect(atProvider ?? back, 'logout_completed', `${login.name}: ${record === null ? 'no session' : `session of ${record.subject.slice(0, 64)} ended`}${atProvider === null ? '' : '; provider logout next'}`, 303);
      return { ...done, headers: { ...done.headers, 'set-cookie': expiredCookie(login.cookieName) } };
    },
    explain: () => ({ result: undefined, note: 'would end the session and log out at the provider' }),
  };
}

function backChannelStage(login: OidcLogin): Stage {
  const s = login.settings;
  const refuse = (reason: string): Denial => deny('logout_token_invalid', `${login.name} back-channel logout: ${reason}`);
  return {
    name: 'oidc-back-channel-logout',
    async run(ex: Exchange): Promise<StageResult> {
      const form = await readForm(ex.req, 'back-channel logout');
      if (!(form instanceof URLSearchParams)) return form;
      const token = single(form, 'logout_token');
      if (token === null || token === REPEATED) return refuse('one logout_token parameter required');
      const now = s.clock.now();
      let verified;
      try {
        verified = await verifyLogoutToken(token, s.provider, s.algorithms, { issuer: s.issuer, clientId: s.clientId, maxIatAgeMs: MAX_LOGOUT_TOKEN_AGE_MS }, s.clockSkewMs, now);
      } catch (err) {
        return deny('authentication_unavailable', `${login.name} back-channel logout: provider keys: ${(err as Error).message}`);
      }
      if (!verified.ok) return refuse(verified.reason);
      let ended: number;
      try {
        if (!await s.sessions.once(`jti.${createHash('sha256').update(`${s.issuer}\n${verified.jti}`).digest('base64url')}`, verified.until, now, s.limits.maxSessions)) return refuse('jti used before: a replayed logout token');
        ended = verified.sid !== null
          ? await s.sessions.deleteWhere(login.name, { sid: verified.sid })
          : await s.sessions.deleteWhere(login.name, { subject: verified.subject ?? '' });
      } catch (err) {
        return deny('authentication_unavailable', `${login.name} back-channel logout: session store: ${(err as Error).message}`);
      }
      return {
        kind: 'response', status: 200, body: '', code: 'logout_accepted',
        headers: { 'cache-control': 'no-store' },
        detail: `${login.name}: ${ended} session(s) ended by ${verified.sid !== null ? 'sid' : 'sub'}`,
      };
    },
    explain: () => ({ result: undefined, note: 'would verify the logout token and end the sessions it names' }),
  };
}
