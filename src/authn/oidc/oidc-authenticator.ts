import { originAllowed } from '../../cors/origin.js';
import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { deny, type Denial } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthenticatorEndpoint, type AuthOutcome } from '../authenticator.js';
import type { Identity } from '../identity.js';
import { oidcEndpoints } from './oidc-endpoints.js';
import { isNavigation, type OidcLogin, type OidcSettings } from './oidc-login.js';
import { RefreshRefusedError } from './oidc-provider-client.js';
import { verifyProviderJwt } from './provider-jwt.js';
import { safeReturnPath } from './return-path.js';
import { crossSiteRefusal } from './same-origin.js';
import { SessionStoreUnavailableError, type SessionKey, type SessionRecord } from './session-store.js';

/** A refreshed ID token that fails its checks. */
const REFUSED = Symbol('refused');
/** How old the iat of an ID token returned by a refresh may be (it comes straight from the token endpoint: any age is a time claim only). */
const MAX_REFRESHED_ID_TOKEN_AGE_MS = 86_400_000;
/** Refusals of a refreshed ID token that concern only its times. */
const TIMES = /^(expired|issued_in_future|not_yet_valid|iat_too_old)\b/;
/** How often a request waiting for another holder's refresh looks at the session again. */
const REFRESH_POLL_MS = 50;
/**
 * After a refresh the provider could not answer (down, hung past timeoutMs), how long this
 * gateway serves a session's still-valid access token before it tries again: during an outage a
 * request waits for the provider at most once per session in this span, not every time.
 */
export const REFRESH_RETRY_MS = 5000;
/** Identities mapped from Redis-held sessions, kept by session and version; past it the map starts over (a recomputation, never a lost session). */
const MAX_CACHED_IDENTITIES = 10_000;

/** What a refresh came to: the new record, the session ended, or the provider or store could not answer. */
type Refreshed = SessionRecord | 'ended' | 'unavailable';

/**
 * Browser sessions established by an OpenID Connect login at the gateway. On a request it reads
 * the session cookie, finds the session (memory or Redis), refreshes its tokens when they are
 * about to expire (one refresh per session at a time: in this process by a shared promise,
 * across gateways by the store's lock; when the provider cannot answer, the still-valid token
 * serves and the refresh is tried again after REFRESH_RETRY_MS), and maps the session's claims to
 * the identity. A request
 * without a session abstains; when no authenticator of the route found a credential and the
 * request is a browser navigation, `onMissing` answers with a redirect to the provider instead of
 * 401. State-changing requests authenticated by the cookie must come from the gateway's own
 * origin (or one the route's CORS policy admits with credentials): cross-site requests are
 * refused (403), whatever SameSite the browser applies.
 */
export class OidcAuthenticator implements Authenticator {
  readonly name: string;
  readonly type = 'oidc';
  readonly challenge: string;
  readonly assertedHeaders: ReadonlyMap<string, string>;
  /**
   * The credential is the session cookie (stripped on every route). A client's own Authorization
   * is removed too on the routes this authenticates, unless forwardAuthorization: the upstream of
   * a browser session learns who the user is from the identity headers (or, with
   * forwardAccessToken, the session's own token), never from a token the client chose.
   */
  readonly credentialHeaders: readonly string[] = ['authorization'];
  readonly authorizationScheme = null;
  readonly queryParam = null;
  readonly alwaysAdmits = false;
  readonly sessionTokens = true;
  readonly endpoints: readonly AuthenticatorEndpoint[];
  private readonly identities = new WeakMap<SessionRecord, Identity>();
  private readonly sharedIdentities = new Map<string, Identity>();
  private readonly refreshing = new Map<string, Promise<Refreshed>>();
  /** Sessions whose last refresh found the provider unavailable: when to try again (this clock). */
  private readonly retryAt = new Map<string, number>();

  readonly settings: OidcSettings;

  constructor(readonly login: OidcLogin) {
    const settings = login.settings;
    this.settings = settings;
    this.name = settings.name;
    this.challenge = `OIDC realm="${settings.realm}", login="${settings.paths.login}"`;
    this.assertedHeaders = new Map(settings.rules.mapping.headers.map(([header, path]) => [header, `claim:${path.text}`]));
    this.endpoints = oidcEndpoints(login);
  }

  readiness(): ComponentReadiness {
    return this.settings.provider.readiness();
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const key = this.login.presentedKey(ex);
    if (key === null) return ABSENT;
    const now = this.settings.clock.now();
    let found: SessionRecord | null | Promise<SessionRecord | null>;
    try {
      found = this.settings.sessions.get(key, now, this.settings.limits.idleTimeoutMs);
    } catch (err) {
      return unavailable(err);
    }
    if (found instanceof Promise) return found.then((record) => this.decide(ex, key, record, now), unavailable);
    return this.decide(ex, key, found, now);
  }

  private decide(ex: Exchange, key: SessionKey, record: SessionRecord | null, now: number): AuthOutcome | Promise<AuthOutcome> {
    // A cookie for no live session (ended, expired, forged) is no credential: a navigation logs in again.
    if (record === null || record.authenticator !== this.name) return ABSENT;
    // A reload may point this authenticator at another provider or client: a session whose ID
    // token they never issued is no login there (OpenID Connect Core §3.1.3.7 steps 2-3).
    if (!this.login.issuedHere(record.claims)) return ABSENT;
    const crossSite = this.crossSite(ex);
    if (crossSite !== null) return { kind: 'rejected', denial: deny('cross_site_request_refused', `${this.name}: ${crossSite}`), guess: false };
    if (record.accessExpiresAt !== null && now >= record.accessExpiresAt - this.settings.refreshBeforeMs) {
      if (record.refreshToken === null) {
        if (now < record.accessExpiresAt) return this.admit(ex, key, record);
        // Tokens expired and nothing to renew them with: the session is over.
        return this.settings.sessions.delete(key).then(() => ABSENT, unavailable);
      }
      // The provider failed this session's refresh a moment ago: the token still serves, no new wait.
      const retryAt = this.retryAt.get(key.id);
      if (retryAt !== undefined && now < retryAt && now < record.accessExpiresAt) return this.admit(ex, key, record);
      return this.refreshOnce(key, record).then((refreshed) => {
        if (refreshed === 'unavailable') {
          if (this.retryAt.size >= MAX_CACHED_IDENTITIES) this.retryAt.clear();
          this.retryAt.set(key.id, this.settings.clock.now() + REFRESH_RETRY_MS);
        } else {
          this.retryAt.delete(key.id);
        }
        if (refreshed === 'ended') return ABSENT;
        if (refreshed !== 'unavailable') return this.admit(ex, key, refreshed);
        // The provider could not answer: the current tokens serve until they expire.
        if (record.accessExpiresAt !== null && this.settings.clock.now() < record.accessExpiresAt) return this.admit(ex, key, record);
        return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.name}: the session's tokens expired and the provider could not refresh them`), guess: false };
      });
    }
    return this.admit(ex, key, record);
  }

  private admit(ex: Exchange, key: SessionKey, record: SessionRecord): AuthOutcome {
    const identity = this.identityOf(key, record);
    if (typeof identity === 'string') return { kind: 'rejected', denial: deny('invalid_credential', `${this.name}: session claims no longer map to an identity: ${identity}`), guess: false };
    ex.sessionAccessToken = record.accessToken;
    return { kind: 'authenticated', identity };
  }

  /** The identity a session's claims map to, kept per record (memory) or per session version (Redis). */
  identityOf(key: SessionKey, record: SessionRecord): Identity | string {
    const kept = this.identities.get(record);
    if (kept !== undefined) return kept;
    const sharedKey = `${key.id}.${record.version}`;
    const shared = this.sharedIdentities.get(sharedKey);
    if (shared !== undefined) return shared;
    const identity = this.login.mapIdentity(record.claims);
    if (typeof identity === 'string') return identity;
    this.identities.set(record, identity);
    if (this.sharedIdentities.size >= MAX_CACHED_IDENTITIES) this.sharedIdentities.clear();
    this.sharedIdentities.set(sharedKey, identity);
    return identity;
  }

  /** Why a state-changing request may not use the session cookie, or null. */
  private crossSite(ex: Exchange): string | null {
    // The method the upstream acts on: an override forwarded on this route counts, not the GET carrying it.
    const method = ex.methodOverride ?? ex.req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return null;
    const cors = ex.route?.cors ?? null;
    return crossSiteRefusal(method, ex.req.headers, this.login.ownOrigins(ex),
      (origin) => cors !== null && cors.credentials && !cors.origins.any && originAllowed(cors.origins, origin));
  }

  /**
   * Refreshes a session's tokens, once: concurrent requests of this process share one attempt;
   * another gateway's attempt is waited for (the store's lock) up to refresh.waitMs.
   */
  private refreshOnce(key: SessionKey, record: SessionRecord): Promise<Refreshed> {
    let running = this.refreshing.get(key.id);
    if (running === undefined) {
      running = this.refresh(key, record).finally(() => this.refreshing.delete(key.id));
      this.refreshing.set(key.id, running);
    }
    return running;
  }

  private async refresh(key: SessionKey, record: SessionRecord): Promise<Refreshed> {
    const { sessions, provider, clock, limits } = this.settings;
    let lock: string | null;
    try {
      lock = await sessions.lock(key, this.lockTtlMs());
    } catch {
      return 'unavailable';
    }
    if (lock === null) return this.awaitRefresh(key, record);
    try {
      // Another holder may have refreshed between this request's read and the lock.
      const current = await sessions.get(key, clock.now(), limits.idleTimeoutMs);
      if (current === null) return 'ended';
      if (current.version !== record.version) return current;
      if (current.refreshToken === null) return 'ended';
      let tokens;
      try {
        tokens = await provider.refresh(current.refreshToken);
      } catch (err) {
        if (err instanceof RefreshRefusedError) {
          await sessions.delete(key);
          return 'ended';
        }
        return 'unavailable';
      }
      const now = clock.now();
      const idToken = await this.refreshedIdToken(tokens.idToken, current, now);
      if (idToken === REFUSED) {
        await sessions.delete(key);
        return 'ended';
      }
      let claims = current.claims;
      if (this.settings.userinfo) {
        // Unanswered, the claims stay as they were: the rotated tokens must be kept whatever happens.
        const info = await provider.userinfo(tokens.accessToken, current.subject).catch(() => null);
        if (info !== null) claims = { ...claims, ...info, sub: current.subject, iss: claims.iss, aud: claims.aud };
      }
      const next: SessionRecord = Object.freeze({
        ...current,
        claims,
        idToken: idToken ?? current.idToken,
        accessToken: tokens.accessToken,
        accessExpiresAt: tokens.expiresIn === null ? null : now + tokens.expiresIn * 1000,
        // Refresh-token rotation: a new one replaces the old, which the provider no longer honours.
        refreshToken: tokens.refreshToken ?? current.refreshToken,
        version: current.version + 1,
      });
      if (await sessions.update(key, next, now, limits.idleTimeoutMs)) return next;
      // Ended meanwhile (a logout), or another holder wrote first (this lock lapsed): what is stored now decides.
      return await sessions.get(key, clock.now(), limits.idleTimeoutMs) ?? 'ended';
    } catch {
      return 'unavailable';
    } finally {
      await sessions.unlock(key, lock).catch(() => undefined);
    }
  }

  /**
   * How long a refresh lock is held at most: the provider's two exchanges (token, userinfo) and
   * the store's round trips. A holder that crashed leaves a lock that lapses after it.
   */
  private lockTtlMs(): number {
    return this.settings.refreshWaitMs + 2 * this.settings.provider.options.timeoutMs;
  }

  /**
   * The ID token a refresh returned, when it is one to keep (OpenID Connect Core §12.2: signed by
   * the provider, for this client, about the same subject); null when there is none, it cannot be
   * checked now (keys unavailable) or only its times fail (some providers send the login's ID
   * token again, expired): the previous one is kept. REFUSED when it is not the provider's, not
   * for this client or about someone else: an answer that cannot be trusted ends the session.
   */
  private async refreshedIdToken(token: string | null, current: SessionRecord, now: number): Promise<string | null | typeof REFUSED> {
    if (token === null) return null;
    const s = this.settings;
    let checked;
    try {
      checked = await verifyProviderJwt(token, s.provider, s.algorithms, { issuer: s.issuer, clientId: s.clientId, requireExp: true, maxIatAgeMs: MAX_REFRESHED_ID_TOKEN_AGE_MS }, s.clockSkewMs, now);
    } catch {
      return null;
    }
    if (!checked.ok) return TIMES.test(checked.reason) ? null : REFUSED;
    return checked.claims.sub === current.subject ? token : REFUSED;
  }

  /**
   * Waits for another holder's refresh: the session's next version once it is stored. When the
   * lock is free again and the version has not moved, the holder's attempt failed (provider
   * down, refused, crashed after its lock lapsed): that is the answer at once, not a wait until
   * refresh.waitMs. Past refresh.waitMs the wait ends as 'unavailable' whatever the holder does.
   */
  private async awaitRefresh(key: SessionKey, record: SessionRecord): Promise<Refreshed> {
    const { sessions, clock, limits } = this.settings;
    const deadline = clock.now() + this.settings.refreshWaitMs;
    try {
      while (clock.now() < deadline) {
        await new Promise<void>((resolve) => { clock.setTimer(resolve, Math.min(REFRESH_POLL_MS, Math.max(1, deadline - clock.now()))); });
        const current = await sessions.get(key, clock.now(), limits.idleTimeoutMs);
        if (current === null) return 'ended';
        if (current.version !== record.version) return current;
        const lock = await sessions.lock(key, this.lockTtlMs());
        if (lock === null) continue;
        try {
          // Free: the holder is done. It stores before it unlocks, so a success shows now.
          const after = await sessions.get(key, clock.now(), limits.idleTimeoutMs);
          if (after === null) return 'ended';
          return after.version !== record.version ? after : 'unavailable';
        } finally {
          await sessions.unlock(key, lock).catch(() => undefined);
        }
      }
    } catch {
      return 'unavailable';
    }
    return 'unavailable';
  }

  /** A browser navigation without a session is sent to log in, and comes back to where it was going. */
  onMissing(ex: Exchange): Denial | null {
    if (!isNavigation(ex)) return null;
    return this.login.beginLogin(safeReturnPath(ex.req.url) ?? '/', ex.req.headers.cookie);
  }

}

function unavailable(err: unknown): AuthOutcome {
  const reason = err instanceof SessionStoreUnavailableError ? err.message : `session store failed: ${(err as Error).message}`;
  return { kind: 'rejected', denial: deny('authentication_unavailable', reason), guess: false };
}
