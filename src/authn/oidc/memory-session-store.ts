import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import { frozenRecord, sameSession } from './session-record.js';
import type { SessionKey, SessionLimits, SessionRecord, SessionStore } from './session-store.js';

interface Entry {
  record: SessionRecord;
  /** SHA-256 of the cookie value (the value itself is never kept): the right id with another secret finds nothing. */
  readonly secretDigest: Buffer;
  /** Last use (clock ms): the idle timeout runs from here. */
  lastUsed: number;
}

interface Held {
  readonly token: string;
  readonly untilMs: number;
}

/** Entries the amortised sweep looks at per create: ended sessions leave without any one call paying for all. */
const SWEEP_STEP = 8;
/** Lapsed refresh locks are dropped once this many are held (a holder that crashed never unlocks). */
const LOCKS_PRUNED_PAST = 1024;

const digestOf = (secret: string): Buffer => hash('sha256', secret, 'buffer');
const indexKey = (authenticator: string, value: string): string => `${authenticator}\u0000${value}`;

/**
 * Sessions in this process's memory: the default store, for one gateway process. Bounded by the
 * limits passed to `create`; a session ends when idle, at its absolute end, or when deleted, and
 * leaves its sid and subject indexes with it. Ended sessions are dropped when touched, a few at a
 * time by every create, and all at once before a create would answer `full` (no live session is
 * ever evicted for another login). Records are kept frozen, not sealed: the process holds the
 * tokens in the clear anyway; of the cookie value only a digest is kept, compared in constant time.
 */
export class MemorySessionStore implements SessionStore, Resource {
  readonly key = 'oidc-sessions memory';
  private readonly sessions = new Map<string, Entry>();
  /** (authenticator, sid) → session ids. */
  private readonly bySid = new Map<string, Set<string>>();
  /** (authenticator, subject) → session ids, in creation order. */
  private readonly bySubject = new Map<string, Set<string>>();
  private readonly locks = new Map<string, Held>();
  /** One-time names → when they may be forgotten. */
  private readonly names = new Map<string, number>();
  /** Resumes where the last sweep stopped (a Map iterator sees later deletions and insertions). */
  private sweeper: Iterator<[string, Entry]> | null = null;
  /**
   * No session ends before this (a lower bound, recomputed by every full sweep): a full store
   * answers `full` without scanning every session again until one can have ended.
   */
  private noEndBefore = Infinity;
  /** The longest idle timeout `noEndBefore` was computed with: it holds for no shorter one (a reload may shorten it). */
  private boundIdleMs = 0;
  private noNameEndBefore = Infinity;

  constructor(private clock: Clock = systemClock) {}

  start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.sessions.clear();
    this.bySid.clear();
    this.bySubject.clear();
    this.locks.clear();
    this.names.clear();
    this.sweeper = null;
    return Promise.resolve();
  }

  get(key: SessionKey, now: number, idleTimeoutMs: number): SessionRecord | null {
    const entry = this.sessions.get(key.id);
    if (entry === undefined) return null;
    if (!timingSafeEqual(entry.secretDigest, digestOf(key.secret))) return null;
    if (this.ended(entry, now, idleTimeoutMs)) {
      this.drop(key.id);
      return null;
    }
    entry.lastUsed = now;
    return entry.record;
  }

  create(key: SessionKey, record: SessionRecord, now: number, limits: SessionLimits): Promise<'created' | 'full'> {
    if (this.sessions.has(key.id)) this.drop(key.id);
    this.sweep(now, limits.idleTimeoutMs, SWEEP_STEP);
    if (this.sessions.size >= limits.maxSessions) {
      if (now >= this.noEndBefore || limits.idleTimeoutMs < this.boundIdleMs) this.sweep(now, limits.idleTimeoutMs, Infinity);
      if (this.sessions.size >= limits.maxSessions) return Promise.resolve('full');
    }
    const stored = frozenRecord(record);
    this.sessions.set(key.id, { record: stored, secretDigest: digestOf(key.secret), lastUsed: now });
    this.noEndBefore = Math.min(this.noEndBefore, now + limits.idleTimeoutMs, stored.expiresAt);
    this.boundIdleMs = Math.max(this.boundIdleMs, limits.idleTimeoutMs);
    if (stored.sid !== null) addTo(this.bySid, indexKey(stored.authenticator, stored.sid), key.id);
    const own = addTo(this.bySubject, indexKey(stored.authenticator, stored.subject), key.id);
    // The subject's own sessions beyond its cap end, oldest first; never the one just made.
    for (const id of [...own]) {
      if (own.size <= limits.maxSessionsPerSubject) break;
      const entry = this.sessions.get(id);
      if (id !== key.id && (entry === undefined || this.ended(entry, now, limits.idleTimeoutMs))) this.drop(id);
    }
    const byAge = [...own].filter((id) => id !== key.id)
      .sort((a, b) => (this.sessions.get(a)?.record.createdAt ?? 0) - (this.sessions.get(b)?.record.createdAt ?? 0));
    for (const id of byAge) {
      if (own.size <= limits.maxSessionsPerSubject) break;
      this.drop(id);
    }
    return Promise.resolve('created');
  }

  update(key: SessionKey, record: SessionRecord, now: number, idleTimeoutMs: number): Promise<boolean> {
    const entry = this.sessions.get(key.id);
    if (entry === undefined || !timingSafeEqual(entry.secretDigest, digestOf(key.secret))) return Promise.resolve(false);
    if (this.ended(entry, now, idleTimeoutMs)) {
      this.drop(key.id);
      return Promise.resolve(false);
    }
    const old = entry.record;
    if (old.version !== record.version - 1 || !sameSession(old, record)) return Promise.resolve(false);
    entry.record = frozenRecord(record);
    entry.lastUsed = now;
    return Promise.resolve(true);
  }

  delete(key: SessionKey): Promise<void> {
    this.drop(key.id);
    return Promise.resolve();
  }

  deleteWhere(authenticator: string, match: { readonly sid: string } | { readonly subject: string }): Promise<number> {
    const index = 'sid' in match ? this.bySid : this.bySubject;
    const ids = index.get(indexKey(authenticator, 'sid' in match ? match.sid : match.subject));
    let ended = 0;
    for (const id of [...(ids ?? [])]) {
      if (this.drop(id)) ended++;
    }
    return Promise.resolve(ended);
  }

  lock(key: SessionKey, ttlMs: number): Promise<string | null> {
    const now = this.clock.now();
    const held = this.locks.get(key.id);
    if (held !== undefined && held.untilMs > now) return Promise.resolve(null);
    if (this.locks.size >= LOCKS_PRUNED_PAST) {
      for (const [id, h] of this.locks) if (h.untilMs <= now) this.locks.delete(id);
    }
    const token = randomBytes(18).toString('base64url');
    this.locks.set(key.id, { token, untilMs: now + ttlMs });
    return Promise.resolve(token);
  }

  unlock(key: SessionKey, token: string): Promise<void> {
    if (this.locks.get(key.id)?.token === token) this.locks.delete(key.id);
    return Promise.resolve();
  }

  once(name: string, untilMs: number, now: number, maxNames: number): Promise<boolean> {
    const until = this.names.get(name);
    if (until !== undefined) {
      if (until > now) return Promise.resolve(false);
      this.names.delete(name);
    }
    // Already due: nothing to remember (the caller refuses what has expired on its own).
    if (untilMs <= now) return Promise.resolve(true);
    if (this.names.size >= maxNames && now >= this.noNameEndBefore) {
      let next = Infinity;
      for (const [n, u] of this.names) {
        if (u <= now) this.names.delete(n);
        else next = Math.min(next, u);
      }
      this.noNameEndBefore = next;
    }
    // Full of names not yet due: refuse (a replay let through is worse than a login retried).
    if (this.names.size >= maxNames) return Promise.resolve(false);
    this.names.set(name, untilMs);
    this.noNameEndBefore = Math.min(this.noNameEndBefore, untilMs);
    return Promise.resolve(true);
  }

  forget(name: string): Promise<void> {
    this.names.delete(name);
    return Promise.resolve();
  }

  size(): Promise<number> {
    return Promise.resolve(this.sessions.size);
  }

  private ended(entry: Entry, now: number, idleTimeoutMs: number): boolean {
    return now >= entry.record.expiresAt || now >= entry.lastUsed + idleTimeoutMs;
  }

  /** Looks at up to `steps` sessions from where the last sweep stopped and drops the ended ones. */
  private sweep(now: number, idleTimeoutMs: number, steps: number): void {
    const full = steps === Infinity;
    if (full) this.sweeper = null;
    let next = Infinity;
    for (let i = 0; i < steps; i++) {
      this.sweeper ??= this.sessions.entries();
      const step = this.sweeper.next();
      if (step.done === true) {
        this.sweeper = null;
        if (!full) return;
        break;
      }
      const [id, entry] = step.value;
      if (this.ended(entry, now, idleTimeoutMs)) this.drop(id);
      else next = Math.min(next, entry.record.expiresAt, entry.lastUsed + idleTimeoutMs);
    }
    if (full) {
      this.noEndBefore = next;
      this.boundIdleMs = idleTimeoutMs;
    }
  }

  /** Removes a session, its indexes and its lock; true when there was one. */
  private drop(id: string): boolean {
    const entry = this.sessions.get(id);
    if (entry === undefined) return false;
    this.sessions.delete(id);
    this.locks.delete(id);
    const { authenticator, subject, sid } = entry.record;
    if (sid !== null) removeFrom(this.bySid, indexKey(authenticator, sid), id);
    removeFrom(this.bySubject, indexKey(authenticator, subject), id);
    return true;
  }
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): Set<string> {
  let ids = index.get(key);
  if (ids === undefined) {
    ids = new Set();
    index.set(key, ids);
  }
  ids.add(id);
  return ids;
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  if (ids === undefined) return;
  ids.delete(id);
  if (ids.size === 0) index.delete(key);
}
