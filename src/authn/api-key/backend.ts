import { systemClock, type Clock } from '../../lib/clock.js';
import { fsFailure, isLastingFsFailure, shownPath } from '../../lib/fs-failure.js';
import { OperatorError } from '../../lib/operator-error.js';
import { ipSet, type IpSet } from '../../lib/ip.js';
import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { redacted, type Resource, type ResourceContext } from '../../lifecycle/resources.js';
import { KeyDirectory } from './key-directory.js';
import { KeyService, type KeyPolicy } from './key-service.js';
import { PostgresKeyStore } from './postgres-store.js';
import { SqliteKeyStore, type StoreClockSource } from './sqlite-store.js';
import { StoreUnavailableError, type ApiKeyRecord, type ApiKeyStore } from './store.js';
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

/**
 * The store the settings name. `clockSource` can give SQLite another clock than its own (see
 * SqliteKeyStore); PostgreSQL always reads the database server's.
 */
export function openStore(settings: StoreSettings, clockSource: StoreClockSource): ApiKeyStore {
  return settings.type === 'sqlite'
    ? new SqliteKeyStore(settings.file, clockSource)
    : new PostgresKeyStore({ url: settings.url, poolSize: settings.poolSize, timeoutMs: settings.timeoutMs });
}

/** How often one key's approaching expiry is logged while it is in use. */
const EXPIRY_WARNING_EVERY_MS = 3_600_000;

/** What a started backend runs: the cached directory, the usage tracker and the clock both read. */
interface Running {
  readonly context: ResourceContext;
  readonly directory: KeyDirectory<CompiledKey>;
  readonly usage: UsageTracker;
}

/**
 * One gateway's API key machinery: the store, the cached directory that follows its change log,
 * the usage tracker and the lifecycle service. Shared by every apiKey authenticator; a reload
 * whose `apiKeys` settings are equal keeps the running one (same store connection, cache and
 * usage counts), one that changes them gets a new backend and the old one stops (flushing usage)
 * once the requests that started on it are done.
 *
 * Constructing one opens nothing: the store connects on first use, and the directory (polling,
 * LISTEN) and the usage flush timer exist from `start` on. The `keys` CLI uses `store` and
 * `service` of a backend it never starts.
 */
export class ApiKeyBackend implements Resource {
  readonly key: string;
  readonly store: ApiKeyStore;
  readonly service: KeyService;
  private running: Running | null = null;
  /** The injected clock of the gateway that started this backend, for SQLite; null: SQLite's own. */
  private injectedClock: Clock | null = null;
  private readonly warned = new Map<string, number>();

  constructor(readonly settings: ApiKeySettings) {
    this.key = ApiKeyBackend.keyOf(settings);
    this.store = openStore(settings.store, () => this.injectedClock);
    this.service = new KeyService(this.store, settings);
  }

  static keyOf(settings: ApiKeySettings): string {
    return `apiKeys ${JSON.stringify(settings)}`;
  }

  private get started(): Running {
    if (this.running === null) throw new StoreUnavailableError('the api key backend is not started');
    return this.running;
  }

  /** The cached view of the store (from `start` on). */
  get directory(): KeyDirectory<CompiledKey> {
    return this.started.directory;
  }

  /** Usage counts waiting to be written (from `start` on). */
  get usage(): UsageTracker {
    return this.started.usage;
  }

  /** This process's clock (the resource context's), for usage times. */
  now(): number {
    return this.started.context.clock.now();
  }

  /** Migrates and starts following changes; a PostgreSQL store that is down does not stop the gateway from starting, a SQLite file that cannot be opened does. */
  async start(context: ResourceContext): Promise<void> {
    if (this.running !== null) return;
    const { settings } = this;
    // A PostgreSQL server may come back; a local file that cannot be opened at start is a mistake
    // in the config or the data directory, and the gateway would refuse every key until fixed.
    if (settings.store.type === 'sqlite') {
      const file = settings.store.file;
      await this.store.clock().catch((err: unknown) => {
        // A lock another process holds is waited out below like any outage.
        if (!isLastingFsFailure(err)) return;
        throw new OperatorError(`apiKeys.store.file: the key store ${shownPath(file)} cannot be opened ${fsFailure(err)}; point dataDir (or apiKeys.store.file) at a place the gateway can write`, { cause: err });
      });
    }
    // SQLite stamps with its own clock; a gateway on an injected clock stamps with that one (as
    // the Redis limit store decides on its own clock or the injected one).
    this.injectedClock = context.clock === systemClock ? null : context.clock;
    const directory = new KeyDirectory(this.store, {
      ttlMs: settings.cacheTtlMs,
      negativeTtlMs: settings.negativeCacheTtlMs,
      maxEntries: settings.cacheMaxEntries,
      negativeMaxEntries: settings.negativeCacheMaxEntries,
      maxConcurrentLookups: settings.maxConcurrentLookups,
      maxStalenessMs: settings.maxStalenessMs,
      pollIntervalMs: settings.pollIntervalMs,
      listen: settings.store.type === 'postgres' && settings.store.listen,
    }, compileKey, context.clock);
    // Only keys that authenticated are counted, so the directory's bound is theirs too.
    const usage = new UsageTracker(this.store, settings.usageFlushMs, settings.cacheMaxEntries, context.clock);
    this.running = { context, directory, usage };
    const { metrics, logger } = context;
    // In a worker the host's primary reads the change log, and reports the reads and the store's health.
    const source = context.host?.apiKeyChanges(settings);
    await directory.start({
      logger,
      synced: (ok) => {
        if (source === undefined) {
          metrics.apiKeyStoreUp.set(ok ? 1 : 0);
          metrics.apiKeyStorePolls.inc({ result: ok ? 'ok' : 'error' });
        }
        metrics.apiKeyUsageBacklog.set(usage.backlog);
      },
    }, source);
    usage.start(logger);
  }

  /** Started and not yet stopped. */
  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Whether keys can be checked now: started, and the store's change log read within maxStalenessMs. */
  readiness(): ComponentReadiness {
    const store = this.settings.store.type;
    if (this.running === null) return { ready: false, reason: 'the api key store is not started', store };
    const state = this.running.directory.readiness();
    return state.ready ? { ready: true, store } : { ready: false, reason: redacted(state.reason ?? 'not ready'), store };
  }

  /** Logs, at most hourly per key, that a key in use expires soon; `now` is the store's clock. */
  warnIfExpiring(record: ApiKeyRecord, now: number): void {
    if (record.expiresAt === null || record.expiresAt - now > this.settings.expiryWarningMs) return;
    const last = this.warned.get(record.id);
    if (last !== undefined && now - last < EXPIRY_WARNING_EVERY_MS) return;
    if (this.warned.size > 10_000) this.warned.clear();
    this.warned.set(record.id, now);
    this.running?.context.logger.warn({ keyId: record.id, name: record.name, expiresAt: new Date(record.expiresAt).toISOString() },
      'api key in use expires soon: rotate it (portcullis keys rotate)');
  }

  /** Writes pending usage, then closes the store. */
  async stop(): Promise<void> {
    const running = this.running;
    this.running = null;
    if (running === null) { await this.store.close(); return; }
    try {
      await running.usage.stop();
    } catch (err) {
      running.context.logger.error({ err: (err as Error).message, keys: running.usage.backlog }, 'api key usage could not be written at shutdown');
    }
    await running.directory.stop();
  }
}
