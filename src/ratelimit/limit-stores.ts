import type { Logger } from '../observability/logger.js';
import { BruteForceGuard, type GuardSpec } from './brute-force-guard.js';
import { MemoryLimitStore } from './memory-store.js';
import { SqliteQuotaStore } from './quota-store.js';
import { RedisLimitStore, type RedisStoreSettings } from './redis-store.js';

/** A Redis store with the in-process limiter that stands in for it under `failOpen`. */
export interface SharedStore {
  readonly redis: RedisLimitStore;
  readonly fallback: MemoryLimitStore;
}

/** Reports a store going down or coming back. */
export type StoreStatus = (store: string, up: boolean) => void;

/**
 * Limit stores live across config reloads, so counts survive a reload: one in-process store per
 * size, one embedded quota store per file, one Redis store (with its fallback) per connection
 * settings. `activate` connects the
 * stores a config going live uses and closes the ones no longer used.
 */
export class LimitStores {
  private readonly memory = new Map<number, MemoryLimitStore>();
  private readonly shared = new Map<string, SharedStore>();
  private readonly quotas = new Map<string, SqliteQuotaStore>();
  private readonly guards = new Map<string, BruteForceGuard>();
  private active = new Set<string>();
  private logger: Logger | null = null;
  private status: StoreStatus = () => {};

  memoryStore(maxEntries: number): MemoryLimitStore {
    let store = this.memory.get(maxEntries);
    if (store === undefined) { store = new MemoryLimitStore(maxEntries); this.memory.set(maxEntries, store); }
    return store;
  }

  /** The embedded quota store in `file` (opened on first use). */
  quotaStore(file: string): SqliteQuotaStore {
    let store = this.quotas.get(file);
    if (store === undefined) { store = new SqliteQuotaStore(file); this.quotas.set(file, store); }
    return store;
  }

  /** The brute-force guard for these settings; kept across reloads, so blocks outlive a reload. */
  guard(spec: GuardSpec, storeName: string, fallback: MemoryLimitStore | null): BruteForceGuard {
    const key = JSON.stringify([spec.maxFailures, spec.windowMs, spec.blockMs, spec.byIp, spec.byCredential, spec.maxEntries, spec.ipv6PrefixBits, storeName]);
    let guard = this.guards.get(key);
    if (guard === undefined) {
      guard = new BruteForceGuard(spec, fallback, () => this.logger);
      this.guards.set(key, guard);
    }
    return guard;
  }

  redisStore(settings: RedisStoreSettings, maxEntries: number): SharedStore {
    const key = JSON.stringify([settings, maxEntries]);
    let store = this.shared.get(key);
    if (store === undefined) {
      const redis = new RedisLimitStore(settings, (up, detail) => {
        const where = redactedUrl(settings.url);
        if (up) this.logger?.info({ redis: where }, 'rate-limit store reachable');
        else this.logger?.error({ redis: where, detail }, 'rate-limit store unavailable: limits follow their onStoreError policy');
        this.status(where, up);
      });
      store = { redis, fallback: new MemoryLimitStore(maxEntries) };
      this.shared.set(key, store);
    }
    return store;
  }

  /** Connects the Redis stores in `used` and closes the others. Never throws: a store that cannot connect reports down. */
  async activate(used: readonly SharedStore[], logger: Logger, status: StoreStatus): Promise<void> {
    this.logger = logger;
    this.status = status;
    const next = new Set([...this.shared].filter(([, store]) => used.includes(store)).map(([key]) => key));
    await Promise.all([...next].filter((key) => !this.active.has(key)).map((key) => this.shared.get(key)?.redis.connect() ?? Promise.resolve()));
    for (const [key, store] of [...this.shared]) {
      if (next.has(key)) continue;
      this.shared.delete(key);
      await store.redis.close();
    }
    this.active = next;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.shared.values()].map((s) => s.redis.close()));
    this.shared.clear();
    this.active.clear();
    for (const m of this.memory.values()) await m.close();
    this.memory.clear();
    for (const q of this.quotas.values()) await q.close();
    this.quotas.clear();
  }
}

/** The Redis URL without its password, for logs and metrics. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
