import type { Logger } from '../observability/logger.js';
import { BruteForceGuard, type GuardSpec } from './brute-force-guard.js';
import { MemoryLimitStore } from './memory-store.js';
import { SqliteQuotaStore, type SqliteQuotaSettings } from './quota-store.js';
import { RedisLimitStore, type RedisStoreSettings } from './redis-store.js';

/** A Redis store, shared by every limit that names it. */
export interface SharedStore {
  readonly redis: RedisLimitStore;
}

/** The stores and guards one compiled config uses; `activate` keeps these and retires the rest. */
export interface StoresInUse {
  readonly shared: readonly SharedStore[];
  readonly memory: readonly MemoryLimitStore[];
  readonly quotas: readonly SqliteQuotaStore[];
  readonly guards: readonly BruteForceGuard[];
}

/** Reports a store going down or coming back. */
export type StoreStatus = (store: string, up: boolean) => void;

/**
 * Limit stores live across config reloads, so counts survive a reload: one in-process store per
 * limit (and per fail-open fallback) and size, one embedded quota store per quota and file, one Redis store
 * per connection settings, one brute-force guard per settings. No two limits share in-process
 * state, so one limit's callers can never crowd out another's counts. `activate` connects the
 * stores a config going live uses and closes the ones it no longer uses.
 */
export class LimitStores {
  private readonly memory = new Map<string, MemoryLimitStore>();
  private readonly shared = new Map<string, SharedStore>();
  private readonly quotas = new Map<string, SqliteQuotaStore>();
  private readonly guards = new Map<string, BruteForceGuard>();
  private active = new Set<string>();
  private logger: Logger | null = null;
  private status: StoreStatus = () => {};

  /** The in-process store of one limit (`id`: its role and name, e.g. `limit:perIp`), holding at most `maxEntries` callers. */
  memoryStore(id: string, maxEntries: number): MemoryLimitStore {
    const key = JSON.stringify([id, maxEntries]);
    let store = this.memory.get(key);
    if (store === undefined) {
      store = new MemoryLimitStore(maxEntries, Date.now, (max) => {
        this.logger?.error({ store: id, maxEntries: max }, 'rate-limit store full: callers without an entry of their own share one overflow count');
      });
      this.memory.set(key, store);
    }
    return store;
  }

  /**
   * The embedded quota store of one quota (`name`) in `settings.file`, opened on first use. Each
   * quota has its own connection and count cache, so one quota's callers never crowd out another's.
   */
  quotaStore(settings: SqliteQuotaSettings, name: string): SqliteQuotaStore {
    const key = JSON.stringify([settings, name]);
    let store = this.quotas.get(key);
    if (store === undefined) {
      store = new SqliteQuotaStore(settings, Date.now, (detail) => this.logger?.warn({ file: settings.file, detail }, 'quota store: counts not written yet; retrying'));
      this.quotas.set(key, store);
    }
    return store;
  }

  /** The brute-force guard for these settings; kept across reloads, so counts and blocks outlive a reload. */
  guard(spec: GuardSpec, storeName: string): BruteForceGuard {
    const key = JSON.stringify([spec.maxFailures, spec.windowMs, spec.blockMs, spec.byIp, spec.byCredential, spec.maxEntries, spec.ipv6PrefixBits, storeName]);
    let guard = this.guards.get(key);
    if (guard === undefined) {
      guard = new BruteForceGuard(spec, () => this.logger);
      this.guards.set(key, guard);
    }
    return guard;
  }

  redisStore(settings: RedisStoreSettings): SharedStore {
    const key = JSON.stringify(settings);
    let store = this.shared.get(key);
    if (store === undefined) {
      const redis = new RedisLimitStore(settings, (up, detail) => {
        const where = redactedUrl(settings.url);
        if (up) this.logger?.info({ redis: where }, 'rate-limit store reachable');
        else this.logger?.error({ redis: where, detail }, 'rate-limit store unavailable: limits follow their onStoreError policy');
        this.status(where, up);
      });
      store = { redis };
      this.shared.set(key, store);
    }
    return store;
  }

  /**
   * Connects the Redis stores in `used` and closes every store and guard it does not list (their
   * state goes with them: a limit removed from the config). Never throws: a store that cannot
   * connect reports down.
   */
  async activate(used: StoresInUse, logger: Logger, status: StoreStatus): Promise<void> {
    this.logger = logger;
    this.status = status;
    const next = new Set([...this.shared].filter(([, store]) => used.shared.includes(store)).map(([key]) => key));
    await Promise.all([...next].filter((key) => !this.active.has(key)).map((key) => this.shared.get(key)?.redis.connect() ?? Promise.resolve()));
    for (const [key, store] of [...this.shared]) {
      if (next.has(key)) continue;
      this.shared.delete(key);
      await store.redis.close();
    }
    this.active = next;
    await retire(this.memory, used.memory);
    await retire(this.quotas, used.quotas);
    await retire(this.guards, used.guards);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.shared.values()].map((s) => s.redis.close()));
    this.shared.clear();
    this.active.clear();
    await retire(this.memory, []);
    await retire(this.quotas, []);
    await retire(this.guards, []);
  }
}

/** Closes and forgets the entries of `all` not in `kept`. */
async function retire<T extends { close(): Promise<void> }>(all: Map<string, T>, kept: readonly T[]): Promise<void> {
  for (const [key, value] of [...all]) {
    if (kept.includes(value)) continue;
    all.delete(key);
    await value.close();
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
