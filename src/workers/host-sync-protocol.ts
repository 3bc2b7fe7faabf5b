import type { StoreSettings } from '../authn/api-key/backend.js';
import { isJwsAlgorithm, type JwsAlgorithm } from '../authn/jwt/algorithms.js';
import type { JwksFetchReason, RemoteJwksOptions } from '../authn/jwt/remote-jwks.js';

/**
 * The messages between a host's workers and its primary about what the primary does once for all
 * of them: reading the API key store's change log (the primary pushes every change and every
 * successful read to the workers that follow that store) and fetching remote JWK Sets (a worker
 * asks, the primary answers with the set). Every message carries `t: SYNC_TAG`; the channel is
 * shared with the supervisor's and the host state's messages, which each side ignores here.
 */
export const SYNC_TAG = 'portcullis:sync';

/** What the primary needs to follow a key store's change log for its workers. */
export interface FollowSettings {
  readonly store: StoreSettings;
  readonly pollIntervalMs: number;
  /** Most ids reported as existing (the directory's cacheMaxEntries). */
  readonly maxEntries: number;
  readonly maxStalenessMs: number;
}

type Tagged<T> = T & { readonly t: typeof SYNC_TAG };

/** Worker → primary. `follow` and `unfollow` bracket a directory's life in the worker; `handle` is the worker's name for it. */
export type SyncRequest = Tagged<
  | { readonly op: 'follow'; readonly handle: number; readonly settings: FollowSettings }
  | { readonly op: 'unfollow'; readonly handle: number }
  | { readonly op: 'jwks'; readonly id: number; readonly options: RemoteJwksOptions; readonly reason: JwksFetchReason }
>;

/** The state of a followed change log, sent once when a worker starts following it. */
export interface FollowState {
  /** Ids known to exist (newest last), or null while the log has not been read yet. */
  readonly existing: readonly string[] | null;
  /** How long ago the last successful read was, or null if none was yet. */
  readonly ageMs: number | null;
  readonly clockOffsetMs: number;
  /** Whether the last read succeeded. */
  readonly healthy: boolean;
}

/** A JWKS answer: the set (see FetchedJwks), or why there is none. */
export type JwksAnswer =
  | { readonly ok: true; readonly text: string; readonly maxAgeMs: number | null; readonly ageMs: number; readonly deferredMs: number | null }
  | { readonly ok: false; readonly error: string };

/** Primary → worker. */
export type SyncPush = Tagged<
  | ({ readonly op: 'state'; readonly handle: number } & FollowState)
  | { readonly op: 'primed'; readonly handle: number; readonly existing: readonly string[] }
  | { readonly op: 'changed'; readonly handle: number; readonly ids: readonly string[] }
  | { readonly op: 'synced'; readonly handle: number; readonly clockOffsetMs: number }
  | { readonly op: 'failed'; readonly handle: number }
  | ({ readonly op: 'jwks'; readonly id: number } & JwksAnswer)
>;

/** True for a message of this protocol (of either direction); anything else on the channel is someone else's. */
export function isSyncMessage(message: unknown): message is { readonly t: typeof SYNC_TAG; readonly op: unknown } {
  return typeof message === 'object' && message !== null && (message as { t?: unknown }).t === SYNC_TAG;
}

/** Longest URL, file path or database URL accepted in a message. */
const MAX_TEXT = 4096;
/** Most ids in one message a worker accepts (a change-log batch, or the ids known to exist). */
export const MAX_IDS_PER_MESSAGE = 1_000_000;

const isInt = (v: unknown, min: number, max: number): v is number => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

/**
 * A worker's request, checked field by field (the primary trusts nothing a worker sends: a
 * malformed request is dropped, never thrown on); null when it is not a well-formed one.
 */
export function parseSyncRequest(message: unknown): SyncRequest | null {
  if (!isSyncMessage(message)) return null;
  const m = message as Record<string, unknown>;
  switch (m.op) {
    case 'follow': {
      const settings = parseFollowSettings(m.settings);
      return isInt(m.handle, 1, 2 ** 31) && settings !== null ? { t: SYNC_TAG, op: 'follow', handle: m.handle, settings } : null;
    }
    case 'unfollow':
      return isInt(m.handle, 1, 2 ** 31) ? { t: SYNC_TAG, op: 'unfollow', handle: m.handle } : null;
    case 'jwks': {
      const options = parseJwksOptions(m.options);
      return isInt(m.id, 1, Number.MAX_SAFE_INTEGER) && options !== null && (m.reason === 'load' || m.reason === 'kid')
        ? { t: SYNC_TAG, op: 'jwks', id: m.id, options, reason: m.reason } : null;
    }
    default:
      return null;
  }
}

function parseFollowSettings(value: unknown): FollowSettings | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const s = v.store as Record<string, unknown> | null | undefined;
  if (typeof s !== 'object' || s === null) return null;
  let store: StoreSettings;
  if (s.type === 'sqlite' && isText(s.file)) store = { type: 'sqlite', file: s.file };
  else if (s.type === 'postgres' && isText(s.url) && isInt(s.poolSize, 1, 10_000) && isInt(s.timeoutMs, 1, 86_400_000) && typeof s.listen === 'boolean') {
    store = { type: 'postgres', url: s.url, poolSize: s.poolSize, timeoutMs: s.timeoutMs, listen: s.listen };
  } else return null;
  if (!isInt(v.pollIntervalMs, 1, 86_400_000) || !isInt(v.maxEntries, 0, 10_000_000) || !isInt(v.maxStalenessMs, 1, 86_400_000 * 30)) return null;
  return { store, pollIntervalMs: v.pollIntervalMs, maxEntries: v.maxEntries, maxStalenessMs: v.maxStalenessMs };
}

function parseJwksOptions(value: unknown): RemoteJwksOptions | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (!isText(v.uri, 2048) || !/^https?:\/\/[^\s]+$/.test(v.uri)) return null;
  const algorithms = v.algorithms;
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.length > 32 || !algorithms.every(isJwsAlgorithm)) return null;
  if (!isInt(v.timeoutMs, 1, 86_400_000) || !isInt(v.maxBytes, 1, 1 << 30) || !isInt(v.refreshMs, 1, 86_400_000) || !isInt(v.cooldownMs, 1, 86_400_000)) return null;
  return { uri: v.uri, algorithms: [...algorithms] as JwsAlgorithm[], timeoutMs: v.timeoutMs, maxBytes: v.maxBytes, refreshMs: v.refreshMs, cooldownMs: v.cooldownMs };
}

/** The primary's push, checked before a worker acts on it; null when it is not a well-formed one. */
export function parseSyncPush(message: unknown): SyncPush | null {
  if (!isSyncMessage(message)) return null;
  const m = message as Record<string, unknown>;
  const handle = m.handle;
  const ids = (v: unknown): v is string[] => Array.isArray(v) && v.length <= MAX_IDS_PER_MESSAGE && v.every((id) => isText(id, 256));
  switch (m.op) {
    case 'state':
      if (!isInt(handle, 1, 2 ** 31) || !(m.existing === null || ids(m.existing)) || !(m.ageMs === null || isInt(m.ageMs, 0, Number.MAX_SAFE_INTEGER))
        || typeof m.clockOffsetMs !== 'number' || typeof m.healthy !== 'boolean') return null;
      return { t: SYNC_TAG, op: 'state', handle, existing: m.existing, ageMs: m.ageMs, clockOffsetMs: m.clockOffsetMs, healthy: m.healthy };
    case 'primed':
      return isInt(handle, 1, 2 ** 31) && ids(m.existing) ? { t: SYNC_TAG, op: 'primed', handle, existing: m.existing } : null;
    case 'changed':
      return isInt(handle, 1, 2 ** 31) && ids(m.ids) ? { t: SYNC_TAG, op: 'changed', handle, ids: m.ids } : null;
    case 'synced':
      return isInt(handle, 1, 2 ** 31) && typeof m.clockOffsetMs === 'number' ? { t: SYNC_TAG, op: 'synced', handle, clockOffsetMs: m.clockOffsetMs } : null;
    case 'failed':
      return isInt(handle, 1, 2 ** 31) ? { t: SYNC_TAG, op: 'failed', handle } : null;
    case 'jwks': {
      if (!isInt(m.id, 1, Number.MAX_SAFE_INTEGER)) return null;
      if (m.ok === false) return { t: SYNC_TAG, op: 'jwks', id: m.id, ok: false, error: typeof m.error === 'string' ? m.error.slice(0, 1024) : 'unknown error' };
      if (m.ok !== true || typeof m.text !== 'string' || !(m.maxAgeMs === null || isInt(m.maxAgeMs, 0, Number.MAX_SAFE_INTEGER))
        || !isInt(m.ageMs, 0, Number.MAX_SAFE_INTEGER) || !(m.deferredMs === null || (typeof m.deferredMs === 'number' && m.deferredMs >= 0))) return null;
      return { t: SYNC_TAG, op: 'jwks', id: m.id, ok: true, text: m.text, maxAgeMs: m.maxAgeMs, ageMs: m.ageMs, deferredMs: m.deferredMs };
    }
    default:
      return null;
  }
}
