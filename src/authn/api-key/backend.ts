import { ipSet, type IpSet } from '../../lib/ip.js';
import type { Logger } from '../../observability/logger.js';
import { KeyDirectory } from './key-directory.js';
import { KeyService, type KeyPolicy } from './key-service.js';
import { PostgresKeyStore } from './postgres-store.js';
import { SqliteKeyStore } from './sqlite-store.js';
import type { ApiKeyRecord, ApiKeyStore } from './store.js';
import { UsageTracker } from './usage.js';

export type StoreSettings =
  | { readonly type: 'sqlite'; readonly file: string }
  | { readonly type: 'postgres'; readonly url: string; readonly poolSize: number; readonly timeoutMs: number; readonly listen: boolean };

/** The compiled `apiKeys` section. */
export interface ApiKeySettings extends KeyPolicy {
  readonly store: StoreSettings;
  readonly cacheTtlMs: number;
  readonly negativeCacheTtlMs: number;
  readonly cacheMaxEntries: number;
  readonly negativeCacheMaxEntries: number;
  readonly maxConcurrentLookups: number;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
  readonly usageFlushMs: number;
}

/** What the authenticator needs of a stored key, built once per load. */
export interface CompiledKey {
  readonly record: ApiKeyRecord;
  /** Null: usable from anywhere. A stored CIDR that no longer parses allows nothing (fail closed). */
  readonly cidrs: IpSet | null;
}

const NOWHERE: IpSet = { size: 0, has: () => false };

function compileKey(record: ApiKeyRecord): CompiledKey {
  if (record.allowedCidrs.length === 0) return { record, cidrs: null };
  try {
    return { record, cidrs: ipSet(record.allowedCidrs) };
  } catch {
    return { record, cidrs: NOWHERE };
  }
}

export function openStore(settings: StoreSettings): ApiKeyStore {
  return settings.type === 'sqlite'
    ? new SqliteKeyStore(settings.file)
    : new PostgresKeyStore({ url: settings.url, poolSize: settings.poolSize, timeoutMs: settings.timeoutMs });
}

/** How often one key's approaching expiry is logged while it is in use. */
const EXPIRY_WARNING_EVERY_MS = 3_600_000;

/**
 * One gateway's API key machinery: the store, the cached directory that follows its change log,
 * the usage tracker and the lifecycle service. Shared by every apiKey authenticator and kept across
 * config reloads; `apiKeys` settings change only on restart.
 */
export class ApiKeyBackend {
  readonly store: ApiKeyStore;
  readonly directory: KeyDirectory<CompiledKey>;
  readonly usage: UsageTracker;
  readonly service: KeyService;
  private started: Promise<void> | null = null;
  private logger: Logger | null = null;
  private readonly warned = new Map<string, number>();

  constructor(readonly settings: ApiKeySettings, readonly now: () => number = Date.now) {
    this.store = openStore(settings.store);
    this.directory = new KeyDirectory(this.store, {
      ttlMs: settings.cacheTtlMs,
      negativeTtlMs: settings.negativeCacheTtlMs,
      maxEntries: settings.cacheMaxEntries,
      negativeMaxEntries: settings.negativeCacheMaxEntries,
      maxConcurrentLookups: settings.maxConcurrentLookups,
      maxStalenessMs: settings.maxStalenessMs,
      pollIntervalMs: settings.pollIntervalMs,
      listen: settings.store.type === 'postgres' && settings.store.listen,
    }, compileKey, now);
    // Only keys that authenticated are counted, so the directory's bound is theirs too.
    this.usage = new UsageTracker(this.store, settings.usageFlushMs, settings.cacheMaxEntries);
    this.service = new KeyService(this.store, settings);
  }

  /** Migrates and starts following changes; a store that is down does not stop the gateway from starting. Idempotent. */
  start(logger: Logger, synced?: (ok: boolean) => void): Promise<void> {
    this.logger = logger;
    this.started ??= (async () => {
      await this.directory.start(synced === undefined ? { logger } : { logger, synced });
      this.usage.start(logger);
    })();
    return this.started;
  }

  /** Logs, at most hourly per key, that a key in use expires soon; `now` is the store's clock. */
  warnIfExpiring(record: ApiKeyRecord, now: number): void {
    if (record.expiresAt === null || record.expiresAt - now > this.settings.expiryWarningMs) return;
    const last = this.warned.get(record.id);
    if (last !== undefined && now - last < EXPIRY_WARNING_EVERY_MS) return;
    if (this.warned.size > 10_000) this.warned.clear();
    this.warned.set(record.id, now);
    this.logger?.warn({ keyId: record.id, name: record.name, expiresAt: new Date(record.expiresAt).toISOString() },
      'api key in use expires soon: rotate it (portcullis keys rotate)');
  }

  /** Writes pending usage, then closes the store. */
  async stop(): Promise<void> {
    try {
      await this.usage.stop();
    } catch (err) {
      this.logger?.error({ err: (err as Error).message, keys: this.usage.backlog }, 'api key usage could not be written at shutdown');
    }
    await this.directory.stop();
  }
}

/**
 * The API key backends of the running gateway, shared across reloads: a reload that keeps the
 * `apiKeys` settings keeps the same store connection, cache and usage counts.
 */
export class ApiKeyBackends {
  private readonly backends = new Map<string, ApiKeyBackend>();

  constructor(private readonly now: () => number = Date.now) {}

  get(settings: ApiKeySettings): ApiKeyBackend {
    const key = JSON.stringify(settings);
    let backend = this.backends.get(key);
    if (backend === undefined) {
      backend = new ApiKeyBackend(settings, this.now);
      this.backends.set(key, backend);
    }
    return backend;
  }

  /** Starts the backend a newly active config uses and stops (flushing usage) any other. */
  async activate(inUse: ApiKeyBackend | null, logger: Logger, synced?: (ok: boolean) => void): Promise<void> {
    for (const [key, backend] of this.backends) {
      if (backend !== inUse) {
        this.backends.delete(key);
        await backend.stop();
      }
    }
    await inUse?.start(logger, synced);
  }

  async stopAll(): Promise<void> {
    const all = [...this.backends.values()];
    this.backends.clear();
    await Promise.all(all.map((b) => b.stop()));
  }
}
