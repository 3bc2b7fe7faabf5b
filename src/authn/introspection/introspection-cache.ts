import type { Resource } from '../../lifecycle/resources.js';
import type { RevocationList } from '../oauth/revocations.js';
import type { IntrospectionClaims } from './introspection-endpoint.js';

/** How long answers are kept (the kind's `cache` options, defaults applied). */
export interface IntrospectionCacheOptions {
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  readonly negativeMaxEntries: number;
  readonly staleMs: number;
}

/** An `active: true` answer, kept until `staleUntil`. */
export interface PositiveEntry {
  readonly kind: 'positive';
  readonly claims: IntrospectionClaims;
  /** Served without asking until then: min(now + ttlMs, exp). */
  readonly freshUntil: number;
  /** Served when the endpoint is unavailable on a serveStale route until then: min(now + ttlMs + staleMs, exp). */
  readonly staleUntil: number;
  /** What an authenticator made of the claims (its identity, or why not), remembered for that authenticator only. */
  memo: { readonly by: object; readonly value: unknown } | null;
}

/** An `active: false` answer, kept negativeTtlMs. */
export interface NegativeEntry {
  readonly kind: 'negative';
  readonly until: number;
}

export type CacheEntry = PositiveEntry | NegativeEntry;

/**
 * Introspection answers by token digest (TokenDigester: never the raw token). Positives are
 * served until min(ttlMs, the token's exp) and never at or past exp, whatever the TTL says;
 * negatives (`active: false`) for negativeTtlMs. The two are bounded separately, oldest out first,
 * so a flood of unknown tokens evicts only other refusals, never a good token's entry. One
 * introspection per digest is in flight at a time (`flights`): concurrent requests with one new
 * token share it. A resource so that a reload with equal settings keeps what is cached.
 */
export class IntrospectionCache implements Resource {
  readonly key: string;
  private readonly positives = new Map<string, PositiveEntry>();
  private readonly negatives = new Map<string, NegativeEntry>();
  /** Introspections under way, by digest. */
  readonly flights = new Map<string, Promise<CacheEntry>>();
  /** The revocation lists followed, newest last (see follow). */
  private readonly following: { readonly list: RevocationList; readonly unsubscribe: () => void }[] = [];
  /** Told of each revoked digest after it is dropped here (the shared cache's removal); set by the newest authenticator. */
  onDrop: ((digest: string) => void) | null = null;

  constructor(scope: string, readonly options: IntrospectionCacheOptions) {
    this.key = `introspection cache ${scope} ${JSON.stringify(options)}`;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    for (const { unsubscribe } of this.following.splice(0)) unsubscribe();
    this.positives.clear();
    this.negatives.clear();
    return Promise.resolve();
  }

  /** The entry to serve without asking at `now`: a fresh positive or a live negative. */
  fresh(digest: string, now: number): CacheEntry | undefined {
    const positive = this.positives.get(digest);
    if (positive !== undefined) {
      if (now < positive.freshUntil) return positive;
      if (now >= positive.staleUntil) this.positives.delete(digest);
    }
    const negative = this.negatives.get(digest);
    if (negative === undefined) return undefined;
    if (now < negative.until) return negative;
    this.negatives.delete(digest);
    return undefined;
  }

  /** A positive past its freshness but within staleMs and before exp (serveStale); never a negative. */
  stale(digest: string, now: number): PositiveEntry | undefined {
    const positive = this.positives.get(digest);
    return positive !== undefined && now < positive.staleUntil ? positive : undefined;
  }

  /** Remembers an active answer; `expMs` is the token's exp (null: none). Not kept when already at or past exp. */
  positive(digest: string, claims: IntrospectionClaims, now: number, expMs: number | null, ttlMs = this.options.ttlMs): PositiveEntry {
    const end = expMs ?? Infinity;
    const entry: PositiveEntry = { kind: 'positive', claims, freshUntil: Math.min(now + ttlMs, end), staleUntil: Math.min(now + ttlMs + this.options.staleMs, end), memo: null };
    if (this.options.maxEntries > 0 && entry.freshUntil > now) {
      this.negatives.delete(digest);
      this.positives.delete(digest);
      if (this.positives.size >= this.options.maxEntries) evictOldest(this.positives);
      this.positives.set(digest, entry);
    }
    return entry;
  }

  /** Remembers an inactive answer for negativeTtlMs. */
  negative(digest: string, now: number): NegativeEntry {
    const entry: NegativeEntry = { kind: 'negative', until: now + this.options.negativeTtlMs };
    if (this.options.negativeMaxEntries > 0 && this.options.negativeTtlMs > 0) {
      this.positives.delete(digest);
      this.negatives.delete(digest);
      if (this.negatives.size >= this.options.negativeMaxEntries) evictOldest(this.negatives);
      this.negatives.set(digest, entry);
    }
    return entry;
  }

  /**
   * Drops a token's answers whenever `list` revokes it. Each config compiles its own authenticator
   * but the cache outlives reloads: a list followed already is not followed twice, and only the
   * few newest lists are (a reload's predecessor may still take requests), so reloads do not pile
   * up listeners.
   */
  follow(list: RevocationList): void {
    if (this.following.some((f) => f.list === list)) return;
    const unsubscribe = list.onRevoked((digest) => {
      this.drop(digest);
      this.onDrop?.(digest);
    });
    this.following.push({ list, unsubscribe });
    if (this.following.length > MAX_FOLLOWED) this.following.shift()?.unsubscribe();
  }

  /** Forgets a token (revoked). */
  drop(digest: string): void {
    this.positives.delete(digest);
    this.negatives.delete(digest);
  }

  get sizes(): { positives: number; negatives: number } {
    return { positives: this.positives.size, negatives: this.negatives.size };
  }
}

/** Revocation lists followed at once: the running config's, and those of configs a reload may still be retiring. */
const MAX_FOLLOWED = 4;

function evictOldest(map: Map<string, unknown>): void {
  const oldest = map.keys().next();
  if (oldest.done !== true) map.delete(oldest.value);
}
