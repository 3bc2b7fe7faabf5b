import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import type { Logger } from '../../observability/logger.js';
import { isKeyId } from './key-format.js';
import type { ApiKeyStore } from './store.js';

/**
 * What the change log of the key store says, as it is read. A KeyDirectory applies it to its
 * caches; under `start --workers` the primary reads the log once for the host and passes each
 * event on to every worker's directory.
 */
export interface KeyChangeSink {
  /**
   * The first successful read of the log: every id in it exists. `existing` holds the newest
   * (at most `maxEntries`, newest last); anything cached before may predate a change not seen.
   */
  primed(existing: readonly string[]): void;
  /** Keys changed (created, revoked, rotated): from a read of the log after the first, or from a NOTIFY ahead of it. */
  changed(ids: readonly string[]): void;
  /**
   * A read of the log succeeded `ageMs` ago (0: just now; NaN offset: the store did not say its
   * clock); `clockOffsetMs` is the store's clock minus the local one.
   */
  synced(clockOffsetMs: number, ageMs?: number): void;
  /** A read of the log failed. */
  failed(err: unknown): void;
}

export interface FollowerOptions {
  /** How often the change log is read (also the retry interval while the store is down). */
  readonly pollIntervalMs: number;
  /** Also LISTEN for changes where the store supports it (PostgreSQL). */
  readonly listen: boolean;
  /** Most ids the first read reports as existing. */
  readonly maxEntries: number;
  /** For the unreachable/reachable log lines. */
  readonly maxStalenessMs: number;
}

export interface FollowerReporting {
  readonly logger: Logger;
  /** Each read's outcome, for the store health and poll metrics. */
  readonly synced?: (ok: boolean) => void;
}

/**
 * Follows a key store's change log: reads it every `pollIntervalMs` and, where the store supports
 * it, LISTENs so a change arrives at once. Each read walks every batch after the last sequence
 * seen; concurrent reads collapse into one more round. Each read also measures the offset between
 * the store's clock and this process's, so expiry is judged by the clock that stamped it.
 */
export class ChangeLogFollower {
  /** Last change-log sequence applied; null until the first successful read. */
  private seq: number | null = null;
  private migrated: Promise<void> | null = null;
  private timer: Timer | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private listening = false;
  private listenAttempt: Promise<void> | null = null;
  private healthy = true;
  private stopped = false;
  private reporting: FollowerReporting | null = null;

  constructor(
    readonly store: ApiKeyStore,
    private readonly options: FollowerOptions,
    private readonly sink: KeyChangeSink,
    private readonly clock: Clock = systemClock,
    /** The schema migration shared with the store's other users in this process (the directory's look-ups). */
    private readonly ensureSchema: () => Promise<void> = () => {
      this.migrated ??= store.migrate().catch((err: unknown) => { this.migrated = null; throw err; });
      return this.migrated;
    },
  ) {}

  /** Reads the log once (resolves after the attempt and any LISTEN attempt), then keeps reading every poll interval. */
  async start(reporting: FollowerReporting): Promise<void> {
    this.reporting = reporting;
    this.stopped = false;
    await this.sync();
    await this.listenAttempt;
    this.schedule();
  }

  /** True once a read of the log succeeded. */
  get primed(): boolean {
    return this.seq !== null;
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(() => {
      void this.sync().finally(() => this.schedule());
    }, this.options.pollIntervalMs);
  }

  /** Reads the change log; collapses concurrent calls into one more round. */
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
      // are reported, so a directory can route their first look-up to the reload lane, which a
      // flood of made-up ids cannot fill.
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
        } else this.sink.changed(batch.ids);
        if (!first) this.seq = batch.seq;
        sentAt = this.now();
        batch = await this.store.changesSince(batch.seq);
      }
      this.seq = batch.seq;
      if (first) this.sink.primed([...existing]);
      const receivedAt = this.now();
      // The store read its clock somewhere between sending and receiving: assume the middle. The
      // log is known as of the last read's sending, not its answer: a slow answer is that much older.
      this.sink.synced(Number.isFinite(batch.now) ? batch.now - (sentAt + receivedAt) / 2 : Number.NaN, Math.max(0, receivedAt - sentAt));
      this.report(true, null);
    } catch (err) {
      this.sink.failed(err);
      this.report(false, err);
    }
  }

  private now(): number {
    return this.clock.now();
  }

  private async listen(): Promise<void> {
    this.listening = await this.store.watch((id, seq) => {
      // Pass the change on at once, without waiting for the change-log read: on a gateway busy
      // with a flood that read is a round trip behind every queued request. A change the log has
      // already given is in whatever was loaded since: passing it again would only cost a look-up.
      if (this.seq !== null && isKeyId(id) && (seq === null || seq > this.seq)) this.sink.changed([id]);
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

  /** Stops reading; resolves once a read or LISTEN attempt under way has ended. Does not close the store. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.syncing;
    await this.listenAttempt;
  }
}
