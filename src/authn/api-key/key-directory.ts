import { systemClock, type Clock } from '../../lib/clock.js';
import { ChangeLogFollower, type FollowerReporting, type KeyChangeSink } from './change-log-follower.js';
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

/** Where the directory's own follower of the change log reports (logs, health metric). */
export type DirectoryReporting = FollowerReporting;

/** A running subscription to changes read elsewhere (the host's primary). */
export interface KeyChangeFeed {
  stop(): Promise<void>;
}

/**
 * Subscribes `sink` to the change log as another process reads it; resolves once the current
 * state (the existing ids, the age of the last good read) was delivered or could not be.
 */
export type KeyChangeSource = (sink: KeyChangeSink) => Promise<KeyChangeFeed>;

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
 * One process reads the change log itself (ChangeLogFollower). A worker of `start --workers` is
 * given a KeyChangeSource instead: its primary reads the log once for the host and passes every
 * change and every successful read on, and the staleness rule above counts from the last
 * successful read the primary reported. Look-ups of ids not in memory still go to the store from
 * each process: they are per request, not synchronisation.
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
  /** True once the change log's first read was applied: loads before it are not cached. */
  private primedOnce = false;
  /** Local time of the last successful read of the change log (or of start). */
  private syncedAt: number;
  /** Store clock minus local clock, measured at the last successful sync. */
  private clockOffsetMs = 0;
  private migrated: Promise<void> | null = null;
  /** The follower of the store's change log (one process), or the feed from the host's primary (a worker). */
  private follower: ChangeLogFollower | null = null;
  private feed: KeyChangeFeed | null = null;
  /** Where each read the source reports is passed on (the follower reports its own reads). */
  private fed: DirectoryReporting | null = null;
  private healthy = true;
  /** Why the last read of the change log failed; null after a success. */
  private lastError: string | null = null;

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
        if (epoch === this.epoch && this.primedOnce) {
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

  /**
   * Starts following the change log: migrates the schema and reads the log (a store that is down
   * is retried in the background), or, given `source`, hears the changes from there instead (a
   * worker of `start --workers`, whose primary reads the log for the whole host).
   */
  async start(reporting: DirectoryReporting, source?: KeyChangeSource): Promise<void> {
    this.syncedAt = this.now();
    if (source !== undefined) {
      this.fed = reporting;
      this.feed = await source(this.sink);
      return;
    }
    this.follower = new ChangeLogFollower(this.store, {
      pollIntervalMs: this.options.pollIntervalMs,
      listen: this.options.listen,
      maxEntries: this.options.maxEntries,
      maxStalenessMs: this.options.maxStalenessMs,
    }, this.sink, this.clock, () => this.ensureSchema());
    await this.follower.start(reporting);
  }

  /** Reads the change log now (one process; under a host's primary, it reads on its own schedule). */
  sync(): Promise<void> {
    return this.follower?.sync() ?? Promise.resolve();
  }

  /** What the change log says, applied to the caches. */
  private readonly sink: KeyChangeSink = {
    primed: (existing) => {
      // Anything loaded before the first read may predate a change we have not seen.
      this.known.clear();
      this.unknown.clear();
      this.epoch++;
      this.primedOnce = true;
      // Every id the log names exists: its first look-up takes the reload lane.
      for (const id of existing) this.invalidate(id);
    },
    changed: (ids) => {
      if (!this.primedOnce) return;
      const inUse = ids.filter((id) => this.invalidate(id));
      this.epoch++;
      this.reload(inUse);
    },
    synced: (clockOffsetMs, ageMs = 0) => {
      if (Number.isFinite(clockOffsetMs)) this.clockOffsetMs = clockOffsetMs;
      this.syncedAt = this.now() - ageMs;
      this.healthy = true;
      this.lastError = null;
      this.fed?.synced?.(true);
    },
    failed: (err) => {
      this.healthy = false;
      this.lastError = err instanceof Error ? err.message : String(err);
      this.fed?.synced?.(false);
    },
  };

  get isHealthy(): boolean {
    return this.healthy;
  }

  /** True once a read of the change log succeeded (here, or reported by the host's primary). */
  get primed(): boolean {
    return this.primedOnce;
  }

  /**
   * Whether look-ups can be answered: the change log was read at least once, and within
   * maxStalenessMs. `reason` says why not; it names no address beyond the store error's own text.
   */
  readiness(): { readonly ready: boolean; readonly reason?: string } {
    const why = this.lastError === null ? '' : ` (last read: ${this.lastError.slice(0, 200)})`;
    if (!this.primedOnce) return { ready: false, reason: `the api key store has not been read yet${why}` };
    const age = this.now() - this.syncedAt;
    if (age > this.options.maxStalenessMs) return { ready: false, reason: `key changes not read for ${age} ms, over apiKeys.maxStalenessMs ${this.options.maxStalenessMs}${why}` };
    return { ready: true };
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    await this.feed?.stop();
    await this.store.close();
  }
}
