import type { Identity } from '../identity.js';
import type { KeySource } from './key-source.js';

/** Tokens longer than this are verified every time, which bounds the cache's memory by maxEntries × this. */
export const MAX_CACHED_TOKEN_BYTES = 4096;
/** A token without `exp` (only when `requireExp: false`) is re-verified at least this often. */
const NO_EXP_TTL_MS = 60_000;

interface Entry {
  readonly identity: Identity;
  readonly expiresAtMs: number;
  readonly source: KeySource;
  readonly revision: number;
}

/**
 * Verified tokens → their identity, so a repeated token skips signature verification. Bounded
 * (oldest entry evicted first); an entry is never served at or past the token's `exp`, nor after
 * its issuer's key set has changed (a removed key stops working at the next refresh, even for
 * tokens already seen). Keyed on the whole token text: a signature reused with another payload
 * is a different key.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly maxEntries: number) {}

  get(token: string, nowMs: number): Identity | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (nowMs >= entry.expiresAtMs || entry.source.revision !== entry.revision) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.identity;
  }

  set(token: string, identity: Identity, exp: number | null, nowMs: number, source: KeySource, revision: number): void {
    if (this.maxEntries === 0 || token.length > MAX_CACHED_TOKEN_BYTES) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    const expiresAtMs = exp === null ? nowMs + NO_EXP_TTL_MS : exp * 1000;
    this.entries.set(token, { identity, expiresAtMs, source, revision });
  }

  get size(): number {
    return this.entries.size;
  }
}
