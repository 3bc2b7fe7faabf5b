/**
 * Server-side login sessions (the `oidc` authenticator). The browser holds only an opaque random
 * session id in a cookie; everything else lives behind this port, in memory (one process) or in
 * Redis (many gateways). Stores never see the cookie value itself: they are handed its keyed
 * digest (`SessionKey.id`) and the cookie value only as the secret that seals what they keep
 * (`SessionKey.secret`), so a copy of the store yields neither usable cookies nor tokens.
 */

/** How a store knows one session: the cookie value's keyed digest, and the cookie value itself for sealing. */
export interface SessionKey {
  /** HMAC of the cookie value under the token hash key, base64url (43 characters): the store's key. */
  readonly id: string;
  /** The cookie value (43 base64url characters, 256 random bits): what a store seals the record under, never stored. */
  readonly secret: string;
}

/** What one session holds. Times are milliseconds since the epoch (the injected clock's). */
export interface SessionRecord {
  /** The authenticator that made it (its config name). */
  readonly authenticator: string;
  /** The ID token's `sub`. */
  readonly subject: string;
  /** The ID token's `sid` (the provider's session), or null: back-channel logout by sid finds it. */
  readonly sid: string | null;
  /** Claims identity headers are mapped from: the ID token's, with the userinfo answer's over them. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The raw ID token, sent back as id_token_hint at logout. */
  readonly idToken: string;
  readonly accessToken: string | null;
  /** When the access token expires, or null when the provider did not say. */
  readonly accessExpiresAt: number | null;
  readonly refreshToken: string | null;
  readonly createdAt: number;
  /** Absolute end of the session, whatever its activity. */
  readonly expiresAt: number;
  /** Raised by one on every refresh: a writer that read an older version lost a race. */
  readonly version: number;
}

/** Bounds and timeouts a store applies (passed per call: a store outlives config reloads that change them). */
export interface SessionLimits {
  /** A session unused for this long ends. */
  readonly idleTimeoutMs: number;
  /** Sessions one store holds at most; a new login past it is refused (`full`), no session is evicted. */
  readonly maxSessions: number;
  /** Sessions one subject holds at most; past it the subject's own oldest session ends. */
  readonly maxSessionsPerSubject: number;
}

/**
 * The store port. Every implementation passes the same contract suite
 * (test/oidc-session-store.test.ts). A method that cannot reach its backend rejects with
 * SessionStoreUnavailableError; callers fail closed (503), they never treat an outage as "no session".
 */
export interface SessionStore {
  /**
   * The session and marks it used (sliding the idle timeout), or null when there is none, it
   * ended (idle, absolute, logout) or its sealed record does not open under `key.secret`. The
   * memory store answers synchronously (the hot path of a session route awaits nothing).
   */
  get(key: SessionKey, now: number, idleTimeoutMs: number): SessionRecord | null | Promise<SessionRecord | null>;
  /**
   * Stores a new session. `full`: maxSessions reached, nothing stored. Ends the subject's oldest
   * sessions beyond maxSessionsPerSubject.
   */
  create(key: SessionKey, record: SessionRecord, now: number, limits: SessionLimits): Promise<'created' | 'full'>;
  /**
   * Replaces the session's record when its stored version is `record.version - 1` (compare and
   * set): false when it changed meanwhile or ended. Keeps its idle deadline sliding.
   */
  update(key: SessionKey, record: SessionRecord, now: number, idleTimeoutMs: number): Promise<boolean>;
  /** Ends one session. */
  delete(key: SessionKey): Promise<void>;
  /**
   * Ends every session of `authenticator` whose sid (or, with `sub`, whose subject) matches:
   * back-channel logout. Returns how many ended.
   */
  deleteWhere(authenticator: string, match: { readonly sid: string } | { readonly subject: string }): Promise<number>;
  /**
   * Takes the refresh lock of one session for `ttlMs` (a crashed holder's lock lapses): a token
   * to release it with, or null when another holder (this process or another gateway) has it.
   */
  lock(key: SessionKey, ttlMs: number): Promise<string | null>;
  unlock(key: SessionKey, token: string): Promise<void>;
  /**
   * Records a one-time value (a login state, a logout token's jti) until `untilMs`: true the first
   * time, false when it was recorded before (a replay). Bounded (at most maxSessions names
   * remembered); when full of names not yet due, false: refusing is safe, forgetting is not.
   */
  once(name: string, untilMs: number, now: number, maxNames: number): Promise<boolean>;
  /**
   * Forgets a one-time name recorded by `once`: a login state whose code the provider never
   * accepted (refused, or not reached) may be tried again, and leaves nothing behind to fill the
   * names' bound with.
   */
  forget(name: string): Promise<void>;
  /** Sessions held now (memory: exact; Redis: this store's count of live keys, for metrics). */
  size(): Promise<number>;
}

/** The backend could not answer: the request fails closed (503 authentication_unavailable). */
export class SessionStoreUnavailableError extends Error {
  override readonly name = 'SessionStoreUnavailableError';
}
