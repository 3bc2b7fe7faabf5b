import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import type { Logger } from '../../observability/logger.js';
import { isKeyId } from './key-format.js';
import { LookupLimitError, StoreUnavailableError, type ApiKeyRecord, type ApiKeyStore } from './store.js';

export interface DirectoryOptions {
  /** How long a loaded key is served without asking the store again. */
  readonly ttlMs: number;
  /** How long "no such key" is remembered. */
  readonly negativeTtlMs: number;
  /** Most keys that exist held in memory (loaded, or known from the change log to need a reload). */
  readonly maxEntries: number;
  /** Most unknown key ids remembered; kept apart so a flood of them cannot displace a real key. */
  readonly negativeMaxEntries: number;
  /**
   * Most store look-ups in flight for ids not known to exist, and separately for ids known to
   * exist (reloads after the TTL or a change). Past it a look-up is refused, not queued.
   */
  readonly maxConcurrentLookups: number;
  /** Past this long without a successful read of the change log, nothing is trusted: every look-up fails closed. */
  readonly maxStalenessMs: number;
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

/** A key that exists. `value` null: named by the change log since it was last loaded, so it must be reloaded before use. */
interface Known<T> {
  readonly value: T | null;
  readonly loadedAt: number;
}

type Lane = 'unknown' | 'known';

/** The store has not been read for longer than maxStalenessMs: cached answers may be out of date. */
export class DirectoryStaleError extends StoreUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryStaleError';
  }
}

/**
 * The in-process view of the key store: lookups by key id are answered from memory, and a key
 * changed anywhere (revoked, rotated) is dropped from memory as soon as the change log shows it —
 * at once on a NOTIFY, else within one poll interval.
 *
 * Key ids are public and anyone can mint well-formed keys, so what an attacker controls is kept
 * apart and bounded (the CVE class of cache-flooding and connection-pool exhaustion):
 * - keys that exist and unknown ids live in separate bounded maps: unknown ids can only displace
 *   other unknown ids;
 * - concurrent look-ups of one id share one query (single flight);
 * - look-ups in flight are bounded per lane (ids not known to exist; ids known to exist), and a
 *   look-up past the bound is refused at once (LookupLimitError) instead of queueing for the pool;
 * - when the change log has not been read for `maxStalenessMs` (LISTEN lost and polling failing),
 *   every look-up fails closed (DirectoryStaleError) until a read succeeds again.
 *
 * It also follows the store's clock: each read of the change log measures the offset between the
 * store's clock and this process's, so expiry and grace are judged by the clock that stamped them.
 *
 * `T` is what the caller builds from a record once per load (the authenticator's compiled key).
 */
export class KeyDirectory<T> {
  private readonly known = new Map<string, Known<T>>();
  /** Unknown ids and when they stop being remembered (local clock). */
  private readonly unknown = new Map<string, number>();
  private readonly loading = new Map<string, Promise<T | null>>();
  private readonly inFlight: Record<Lane, number> = { unknown: 0, known: 0 };
  /** Bumped whenever the change feed evicts: a load that straddles an eviction is not cached. */
  private epoch = 0;
  /** Last change-log sequence applied; null until the first successful sync. */
  private seq: number | null = null;
  /** Local time of the last successful read of the change log (or of start). */
  private syncedAt: number;
  /** Store clock minus local clock, measured at the last successful sync. */
  private clockOffsetMs = 0;
  private migrated: Promise<void> | null = null;
  private timer: Timer | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private listening = false;
  private listenAttempt: Promise<void> | null = null;
  private healthy = true;
  private stopped = false;
  private reporting: DirectoryReporting | null = null;

  constructor(
    readonly store: ApiKeyStore,
    private readonly options: DirectoryOptions,
    private readonly build: (record: ApiKeyRecord) => T,
    private readonly clock: Clock = systemClock,
  ) {
    this.syncedAt = clock.now();
  }

  private now(): number {
    return this.clock.now();
  }

  /**
   * The value for key `id` (null: no such key): synchronous when cached and fresh. Throws (or
   * rejects with) StoreUnavailableError when it must load and cannot, LookupLimitError when too
   * many look-ups are in flight, DirectoryStaleError when the change log is out of reach too long.
   */
  lookup(id: string): T | null | Promise<T | null> {
    this.assertFresh();
    const now = this.now();
    const entry = this.known.get(id);
    if (entry !== undefined) {
      if (entry.value !== null && now - entry.loadedAt < this.options.ttlMs) return entry.value;
      return this.load(id, 'known');
    }
    const until = this.unknown.get(id);
    if (until !== undefined) {
      if (now < until) return null;
      this.unknown.delete(id);
    }
    return this.load(id, 'unknown');
  }

  /** The fresh cached value for a key that exists, or undefined (never loads, never throws). */
  peek(id: string): T | undefined {
    if (this.isStale) return undefined;
    const entry = this.known.get(id);
    if (entry === undefined || entry.value === null || this.now() - entry.loadedAt >= this.options.ttlMs) return undefined;
    return entry.value;
  }

  /** The store's clock now, as estimated from the last read of the change log (epoch ms). */
  storeNow(): number {
    return this.now() + this.clockOffsetMs;
  }

  /** True when the change log has not been read for longer than maxStalenessMs. */
  get isStale(): boolean {
    return this.now() - this.syncedAt > this.options.maxStalenessMs;
  }

  private assertFresh(): void {
    const age = this.now() - this.syncedAt;
    if (age > this.options.maxStalenessMs) {
      throw new DirectoryStaleError(`key changes not read for ${age} ms (over apiKeys.maxStalenessMs ${this.options.maxStalenessMs}); cached keys are not trusted`);
    }
  }

  private load(id: string, lane: Lane): Promise<T | null> {
    const pending = this.loading.get(id);
    if (pending !== undefined) return pending;
    const limit = this.options.maxConcurrentLookups;
    if (this.inFlight[lane] >= limit) {
      throw new LookupLimitError(`api key look-up limit reached (${limit} ${lane === 'known' ? 'reloads' : 'look-ups of ids not in memory'} in flight)`);
    }
    this.inFlight[lane]++;
    const epoch = this.epoch;
    const loadedAt = this.now();
    const promise = this.ensureSchema()
      .then(() => this.store.get(id))
      .then((record) => {
        const value = record === null ? null : this.build(record);
        if (epoch === this.epoch && this.seq !== null) {
          if (value === null) this.rememberUnknown(id, loadedAt + this.options.negativeTtlMs);
          else this.rememberKnown(id, { value, loadedAt });
        }
        return value;
      })
      .finally(() => {
        this.inFlight[lane]--;
        this.loading.delete(id);
      });
    this.loading.set(id, promise);
    return promise;
  }

  private rememberKnown(id: string, entry: Known<T>): void {
    this.unknown.delete(id);
    this.known.delete(id);
    if (this.known.size >= this.options.maxEntries) {
      // The oldest insertion goes first; a hot key is re-inserted on its next load.
      const oldest = this.known.keys().next();
      if (oldest.done !== true) this.known.delete(oldest.value);
    }
    this.known.set(id, entry);
  }

  private rememberUnknown(id: string, until: number): void {
    if (this.options.negativeTtlMs <= 0) return;
    this.unknown.delete(id);
    if (this.unknown.size >= this.options.negativeMaxEntries) {
      const oldest = this.unknown.keys().next();
      if (oldest.done !== true) this.unknown.delete(oldest.value);
    }
    this.unknown.set(id, until);
  }

  /**
   * Marks a key changed: whatever was cached for it is dropped, and it is known to exist. Returns
   * true when a loaded value was dropped (the key is in use, so worth reloading at once).
   */
  private invalidate(id: string): boolean {
    this.unknown.delete(id);
    const wasLoaded = (this.known.get(id)?.value ?? null) !== null;
    this.rememberKnown(id, { value: null, loadedAt: Number.NEGATIVE_INFINITY });
    return wasLoaded;
  }

  /**
   * Reloads changed keys that were in use, in the background and within the reload allowance, so
   * the next request finds the new state (a revocation) without a store round trip of its own.
   * Call after bumping the epoch, so the reload is cached.
   */
  private reload(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.inFlight.known >= this.options.maxConcurrentLookups) return;
      this.load(id, 'known').catch(() => undefined);
    }
  }

  /** Drops one key (the local process changed it). */
  forget(id: string): void {
    this.epoch++;
    this.invalidate(id);
  }

  /** Sizes of the bounded structures, for metrics and tests. */
  get sizes(): { readonly known: number; readonly unknown: number; readonly loading: number; readonly inFlight: Readonly<Record<Lane, number>> } {
    return { known: this.known.size, unknown: this.unknown.size, loading: this.loading.size, inFlight: { ...this.inFlight } };
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
    this.syncedAt = this.now();
    await this.sync();
    await this.listenAttempt;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(() => {
      void this.sync().finally(() => this.schedule());
    }, this.options.pollIntervalMs);
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
      // LISTEN is an accelerator: it is (re-)established beside the read, and while it cannot be,
      // polling carries on alone.
      if (this.options.listen && !this.listening && this.listenAttempt === null && !this.stopped) {
        this.listenAttempt = this.listen().catch(() => undefined).finally(() => { this.listenAttempt = null; });
      }
      const first = this.seq === null;
      // The first read walks the whole log: every id in it exists. The newest maxEntries of them
      // are remembered as existing, so their first look-up takes the reload lane, which a flood of
      // made-up ids cannot fill.
      const existing = new Set<string>();
      let sentAt = this.now();
      let batch = await this.store.changesSince(this.seq ?? 0);
      while (batch.ids.length > 0) {
        if (first) {
          for (const id of batch.ids) {
            // The newest ids are kept: the likeliest to be in use.
            existing.delete(id);
            if (existing.size >= this.options.maxEntries) existing.delete(existing.values().next().value as string);
            existing.add(id);
          }
        }
        const inUse = first ? [] : batch.ids.filter((id) => this.invalidate(id));
        this.epoch++;
        this.reload(inUse);
        this.seq = batch.seq;
        sentAt = this.now();
        batch = await this.store.changesSince(batch.seq);
      }
      if (first) {
        // Anything loaded before the first sync may predate a change we have not seen.
        this.known.clear();
        this.unknown.clear();
        this.epoch++;
        for (const id of existing) this.invalidate(id);
      }
      this.seq = batch.seq;
      const receivedAt = this.now();
      // The store read its clock somewhere between sending and receiving: assume the middle.
      if (Number.isFinite(batch.now)) this.clockOffsetMs = batch.now - (sentAt + receivedAt) / 2;
      this.syncedAt = receivedAt;
      this.report(true, null);
    } catch (err) {
      this.report(false, err);
    }
  }

  private async listen(): Promise<void> {
    this.listening = await this.store.watch((id, seq) => {
      // Drop the key at once, without waiting for the change-log read: on a gateway busy with a
      // flood that read is a round trip behind every queued request. A change the log has already
      // given us is in whatever was loaded since: dropping it again would only cost a look-up.
      if (this.seq !== null && isKeyId(id) && (seq === null || seq > this.seq)) {
        const inUse = this.invalidate(id);
        this.epoch++;
        if (inUse) this.reload([id]);
      }
      void this.sync();
    }, (err) => {
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
      const message = err instanceof Error ? err.message : String(err);
      this.reporting?.logger.error({ err: message, store: this.store.kind, maxStalenessMs: this.options.maxStalenessMs },
        'api key store unreachable: cached keys work until their cache TTL or maxStalenessMs, whichever comes first; unknown keys are refused');
    }
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.syncing;
    await this.listenAttempt;
    await this.store.close();
  }
}
