/**
 * The API key store port. The gateway, the `keys` CLI and the admin API speak only this
 * interface; SQLite (embedded default) and PostgreSQL (many instances) implement it, and one
 * contract test suite runs against both. Times are epoch milliseconds.
 *
 * Every stored instant (created, expires, revoked, grace end, change log) is taken from the store's
 * own clock (PostgreSQL `now()`, SQLite's clock on the host that holds the file), never from the
 * clock of the process that asks for the change: a revoker or creator whose clock is wrong cannot
 * write an instant that means something else elsewhere. Revocation is a state, not an instant.
 */

/** What is stored per key. The secret itself never is: only `hash`, SHA-256 of the whole key. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  readonly environment: string;
  readonly hash: Buffer;
  readonly tenant: string | null;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  /** CIDRs the key may be used from; empty means anywhere. */
  readonly allowedCidrs: readonly string[];
  /** Rate-limit tier name, or null for the route's default limits. */
  readonly rateLimitTier: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  /** Store clock at insert. */
  readonly createdAt: number;
  /** Store clock at insert plus the lifetime. */
  readonly expiresAt: number | null;
  /** Store clock when first revoked. Informational: a non-null value means revoked, whatever any clock says. */
  readonly revokedAt: number | null;
  /** The key this one was issued to replace (rotation). */
  readonly replaces: string | null;
  /** The successor issued by rotating this key. */
  readonly replacedBy: string | null;
  /** After rotation: the deadline until which this (old) key keeps working. */
  readonly graceUntil: number | null;
  readonly useCount: number;
  readonly lastUsedAt: number | null;
  readonly lastUsedIp: string | null;
}

/**
 * A key to insert: everything but usage, the times and the fields rotation and revocation set.
 * The store stamps `createdAt` with its own clock and sets `expiresAt` to that plus `lifetimeMs`
 * (null: never expires; 0: already expired).
 */
export type NewApiKey = Omit<ApiKeyRecord, 'createdAt' | 'expiresAt' | 'revokedAt' | 'replacedBy' | 'graceUntil' | 'useCount' | 'lastUsedAt' | 'lastUsedIp'> & {
  readonly lifetimeMs: number | null;
};

/** Usage aggregated in memory since the last flush, for one key. */
export interface UsageDelta {
  readonly id: string;
  readonly count: number;
  readonly lastUsedAt: number;
  readonly lastUsedIp: string;
}

/** Key ids changed after a sequence number (created, revoked, rotated). */
export interface ChangeBatch {
  readonly seq: number;
  readonly ids: readonly string[];
  /** The store's clock (epoch ms) when the batch was read, so readers can follow the store's time. */
  readonly now: number;
}

export interface ApiKeyStore {
  /** `sqlite` or `postgres`, for logs and metrics. */
  readonly kind: string;
  /** Creates or migrates the schema. Safe when several gateways start at once. */
  migrate(): Promise<void>;
  insert(key: NewApiKey): Promise<void>;
  get(id: string): Promise<ApiKeyRecord | null>;
  /** All keys, newest first. */
  list(): Promise<ApiKeyRecord[]>;
  /**
   * Marks a key revoked, stamped with the store's clock; null if unknown. Idempotent: revoking
   * again keeps the first time and writes no change, except that a revocation time in the store's
   * future (written by an older version from a client's clock) is brought back to now.
   */
  revoke(id: string): Promise<ApiKeyRecord | null>;
  /**
   * In one transaction: inserts `successor` (whose `replaces` is `id`) and ends the old key
   * `graceMs` after the store's clock. Fails with KeyConflictError when the old key is unknown,
   * revoked, expired (by the store's clock) or already rotated.
   */
  rotate(id: string, successor: NewApiKey, graceMs: number): Promise<void>;
  /** The store's clock, epoch ms: the one clock every key lifecycle decision is made against. */
  clock(): Promise<number>;
  /** Adds counts and moves last-use forward (never backward), for many keys in one round trip. */
  recordUsage(deltas: readonly UsageDelta[]): Promise<void>;
  /** Ids changed after `seq`, the latest sequence number seen, and the store's clock. */
  changesSince(seq: number): Promise<ChangeBatch>;
  /**
   * Calls `onChange` with the changed key's id and its change-log sequence number (null when the
   * writer did not say) when another process changed keys (LISTEN/NOTIFY); returns false where
   * unsupported. The id lets a reader drop the key before reading the change log; the change log
   * stays the authority.
   */
  watch(onChange: (id: string, seq: number | null) => void, onError: (err: Error) => void): Promise<boolean>;
  close(): Promise<void>;
}

/** The store cannot be reached or failed: callers fail closed. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** A lifecycle operation does not apply to the key's current state (409 on the admin API). */
export class KeyConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyConflictError';
  }
}

/** Too many store look-ups in flight: the caller refuses (503 with Retry-After) instead of queueing. */
export class LookupLimitError extends StoreUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'LookupLimitError';
  }
}

/** The state a key is in at `now` (the store's clock), for listings and the authenticator. */
export type KeyStatus = 'active' | 'expiring' | 'grace' | 'expired' | 'revoked' | 'superseded';

/** When the key stops working (expiry or end of rotation grace), or null if never. */
export function effectiveExpiry(key: Pick<ApiKeyRecord, 'expiresAt' | 'graceUntil'>): number | null {
  if (key.graceUntil === null) return key.expiresAt;
  return key.expiresAt === null ? key.graceUntil : Math.min(key.expiresAt, key.graceUntil);
}

/**
 * A revoked key is revoked whatever `now` is: comparing a stored revocation instant with a clock
 * let a revoker whose clock ran ahead write a revocation that had not "started" yet, and let a
 * gateway whose clock stepped back re-activate a revoked key.
 */
export function keyStatus(key: ApiKeyRecord, now: number, warnBeforeMs: number): KeyStatus {
  if (key.revokedAt !== null) return 'revoked';
  const until = effectiveExpiry(key);
  if (until !== null && until <= now) return key.graceUntil !== null && key.graceUntil <= now ? 'superseded' : 'expired';
  if (key.replacedBy !== null) return 'grace';
  if (key.expiresAt !== null && key.expiresAt - now <= warnBeforeMs) return 'expiring';
  return 'active';
}

/** Throws KeyConflictError unless `key` can be rotated at `now` (the store's clock). Shared by every backend. */
export function rotationConflict(key: ApiKeyRecord | null, id: string, now: number): asserts key is ApiKeyRecord {
  if (key === null) throw new KeyConflictError(`no key ${id}`);
  if (key.revokedAt !== null) throw new KeyConflictError(`key ${id} is revoked`);
  if (key.replacedBy !== null) throw new KeyConflictError(`key ${id} was already rotated to ${key.replacedBy}; rotate that key instead`);
  const until = effectiveExpiry(key);
  if (until !== null && until <= now) throw new KeyConflictError(`key ${id} has expired`);
}
