import type { Logger } from '../../observability/logger.js';
import { StoreUnavailableError, type ApiKeyRecord, type ApiKeyStore } from './store.js';

export interface DirectoryOptions {
  /** How long a loaded key is served without asking the store again. */
  readonly ttlMs: number;
  /** How long "no such key" is remembered. */
  readonly negativeTtlMs: number;
  readonly maxEntries: number;
  /** How often the change log is read (also the retry interval while the store is down). */
  readonly pollIntervalMs: number;
  /** Also LISTEN for changes where the store supports it (PostgreSQL). */
  readonly listen: boolean;
}

export interface DirectoryReporting {
  readonly logger: Logger;
  /** Each sync attempt's outcome, for the store health metric. */
  readonly synced?: (ok: boolean) => void;
}

interface Entry<T> {
  readonly value: T | null;
  readonly loadedAt: number;
}

/**
 * The in-process view of the key store: lookups by key id are answered from memory, and a key
 * changed anywhere (revoked, rotated) is dropped from memory as soon as the change log shows it —
 * at once on a NOTIFY, else within one poll interval. When the store is down, entries keep being
 * served until their TTL and nothing new is loaded (callers fail closed).
 *
 * `T` is what the caller builds from a record once per load (the authenticator's compiled key).
 */
export class KeyDirectory<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly loading = new Map<string, Promise<T | null>>();
  /** Bumped whenever the change feed evicts: a load that straddles an eviction is not cached. */
  private epoch = 0;
  /** Last change-log sequence applied; null until the first successful sync. */
  private seq: number | null = null;
  private migrated: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private listening = false;
  private healthy = true;
  private stopped = false;
  private reporting: DirectoryReporting | null = null;

  constructor(
    readonly store: ApiKeyStore,
    private readonly options: DirectoryOptions,
    private readonly build: (record: ApiKeyRecord) => T,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value for key `id`: synchronous when cached and fresh. Rejects with StoreUnavailableError when it must load and cannot. */
  lookup(id: string): T | null | Promise<T | null> {
    const value = this.peek(id);
    return value === undefined ? this.load(id) : value;
  }

  /** The fresh cached value for `id`, or undefined (never loads). */
  peek(id: string): T | null | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined || this.now() - entry.loadedAt >= (entry.value === null ? this.options.negativeTtlMs : this.options.ttlMs)) return undefined;
    return entry.value;
  }

  private load(id: string): Promise<T | null> {
    const pending = this.loading.get(id);
    if (pending !== undefined) return pending;
    const epoch = this.epoch;
    const loadedAt = this.now();
    const promise = this.ensureSchema()
      .then(() => this.store.get(id))
      .then((record) => {
        const value = record === null ? null : this.build(record);
        if (epoch === this.epoch && this.seq !== null) this.remember(id, { value, loadedAt });
        return value;
      })
      .finally(() => this.loading.delete(id));
    this.loading.set(id, promise);
    return promise;
  }

  private remember(id: string, entry: Entry<T>): void {
    this.entries.delete(id);
    if (this.entries.size >= this.options.maxEntries) {
      // The oldest insertion goes first; a hot key is re-inserted on its next load.
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(id, entry);
  }

  /** Drops one key (the local process changed it). */
  forget(id: string): void {
    this.epoch++;
    this.entries.delete(id);
  }

  private ensureSchema(): Promise<void> {
    this.migrated ??= this.store.migrate().catch((err: unknown) => {
      this.migrated = null;
      throw err;
    });
    return this.migrated;
  }

  /** Migrates the schema and starts following the change log. A store that is down is retried in the background. */
  async start(reporting: DirectoryReporting): Promise<void> {
    this.reporting = reporting;
    this.stopped = false;
    await this.sync();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sync().finally(() => this.schedule());
    }, this.options.pollIntervalMs);
    this.timer.unref();
  }

  /** Reads the change log and evicts what changed; collapses concurrent calls into one more round. */
  sync(): Promise<void> {
    if (this.syncing !== null) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = this.syncOnce().finally(() => {
      this.syncing = null;
      if (this.syncAgain && !this.stopped) {
        this.syncAgain = false;
        void this.sync();
      }
    });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    try {
      await this.ensureSchema();
      if (this.options.listen && !this.listening) await this.listen();
      let batch = await this.store.changesSince(this.seq ?? 0);
      const first = this.seq === null;
      while (batch.ids.length > 0) {
        if (!first) for (const id of batch.ids) this.entries.delete(id);
        this.epoch++;
        this.seq = batch.seq;
        batch = await this.store.changesSince(batch.seq);
      }
      if (first) {
        // Anything loaded before the first sync may predate a change we have not seen.
        this.entries.clear();
        this.epoch++;
      }
      this.seq = batch.seq;
      this.report(true, null);
    } catch (err) {
      this.report(false, err);
    }
  }

  private async listen(): Promise<void> {
    this.listening = await this.store.watch(() => void this.sync(), (err) => {
      this.listening = false;
      this.reporting?.logger.warn({ err: err.message, store: this.store.kind }, 'api key change notifications lost; polling until they resume');
    });
  }

  private report(ok: boolean, err: unknown): void {
    this.reporting?.synced?.(ok);
    if (ok === this.healthy) return;
    this.healthy = ok;
    if (ok) this.reporting?.logger.info({ store: this.store.kind }, 'api key store reachable again');
    else {
      const message = err instanceof StoreUnavailableError || err instanceof Error ? err.message : String(err);
      this.reporting?.logger.error({ err: message, store: this.store.kind },
        'api key store unreachable: cached keys work until their cache TTL, unknown keys are refused');
    }
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.syncing;
    await this.store.close();
  }
}
