import type { SessionRecord } from './session-store.js';

/**
 * A record as stores hand it out: a deep copy, frozen, so no caller can change what another
 * request (or the store itself) reads. Called when a record is stored, never on a read.
 */
export function frozenRecord(record: SessionRecord): SessionRecord {
  return Object.freeze({
    authenticator: record.authenticator,
    subject: record.subject,
    sid: record.sid,
    claims: deepFreeze(structuredClone(record.claims)),
    idToken: record.idToken,
    accessToken: record.accessToken,
    accessExpiresAt: record.accessExpiresAt,
    refreshToken: record.refreshToken,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    version: record.version,
  });
}

/**
 * The record in `json` (what a store sealed), or null when it is not one. A sealed record
 * opened, so it was written by a gateway holding the cookie; its shape is checked all the same:
 * a record from an older or newer gateway version must not reach the pipeline half-formed.
 */
export function parsedRecord(json: string): SessionRecord | null {
  let value: unknown;
  try { value = JSON.parse(json); } catch { return null; }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const r = value as Record<string, unknown>;
  const claims = r['claims'];
  const valid = typeof r['authenticator'] === 'string'
    && typeof r['subject'] === 'string'
    && (r['sid'] === null || typeof r['sid'] === 'string')
    && typeof claims === 'object' && claims !== null && !Array.isArray(claims)
    && typeof r['idToken'] === 'string'
    && (r['accessToken'] === null || typeof r['accessToken'] === 'string')
    && (r['accessExpiresAt'] === null || Number.isSafeInteger(r['accessExpiresAt']))
    && (r['refreshToken'] === null || typeof r['refreshToken'] === 'string')
    && Number.isSafeInteger(r['createdAt'])
    && Number.isSafeInteger(r['expiresAt'])
    && Number.isSafeInteger(r['version']);
  return valid ? frozenRecord(value as SessionRecord) : null;
}

/** Whether `next` is a later version of the same login: who, where and until when never change after it. */
export function sameSession(stored: SessionRecord, next: SessionRecord): boolean {
  return stored.authenticator === next.authenticator && stored.subject === next.subject && stored.sid === next.sid
    && stored.createdAt === next.createdAt && stored.expiresAt === next.expiresAt;
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}
