import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ApiKeyStore, UsageDelta } from './store.js';

interface Tally {
  count: number;
  lastUsedAt: number;
  lastUsedIp: string;
}

/**
 * Per-key usage (request count, last use, last client IP), aggregated in memory and written to the
 * store in one batch per interval — never a write per request. A failed flush keeps its counts and
 * merges them into the next one, and `stop` flushes what is left, so counts are exact after a
 * graceful shutdown.
 *
 * At most `maxKeys` keys are held: during a long store outage, uses of further keys are counted
 * as dropped (and logged) rather than growing memory without bound.
 */
export class UsageTracker {
  private pending = new Map<string, Tally>();
  private flushing: Promise<void> | null = null;
  /** The batch the write under way carries: its uses are not written until that write succeeds. */
  private writing: ReadonlyMap<string, Tally> | null = null;
  private timer: Timer | null = null;
  private logger: Logger | null = null;
  private failing = false;
  /** Uses not counted because the buffer was full, since the last report. */
  private droppedUses = 0;

  constructor(
    private readonly store: ApiKeyStore,
    private readonly intervalMs: number,
    private readonly maxKeys: number,
    private readonly clock: Clock = systemClock,
  ) {}

  record(id: string, ip: string, now: number): void {
    const tally = this.pending.get(id);
    if (tally === undefined) {
      if (this.pending.size >= this.maxKeys) { this.droppedUses++; return; }
      this.pending.set(id, { count: 1, lastUsedAt: now, lastUsedIp: ip });
    } else {
      tally.count++;
      if (now >= tally.lastUsedAt) { tally.lastUsedAt = now; tally.lastUsedIp = ip; }
    }
  }

  /** Keys with uses not yet written: counted since the last write, or carried by the write under way. */
  get backlog(): number {
    let keys = this.pending.size;
    if (this.writing !== null) for (const id of this.writing.keys()) if (!this.pending.has(id)) keys++;
    return keys;
  }

  /** Uses not counted because the buffer was full (since the last flush reported them). */
  get dropped(): number {
    return this.droppedUses;
  }

  start(logger: Logger): void {
    this.logger = logger;
    if (this.timer !== null) return;
    this.tick();
  }

  /** One flush per interval, on the injected clock; a failed flush is logged inside flush() and retried on the next tick. */
  private tick(): void {
    this.timer = this.clock.setTimer(() => {
      this.flush().catch(() => undefined);
      if (this.timer !== null) this.tick();
    }, this.intervalMs);
  }

  /** Writes everything recorded so far; concurrent calls wait for the same write and then write the rest. */
  async flush(): Promise<void> {
    while (this.flushing !== null) await this.flushing.catch(() => undefined);
    if (this.droppedUses > 0) {
      this.logger?.warn({ uses: this.droppedUses, maxKeys: this.maxKeys }, 'api key usage buffer full: uses of further keys were not counted');
      this.droppedUses = 0;
    }
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    const deltas: UsageDelta[] = [...batch].map(([id, t]) => ({ id, count: t.count, lastUsedAt: t.lastUsedAt, lastUsedIp: t.lastUsedIp }));
    this.flushing = this.store.recordUsage(deltas).then(() => {
      if (this.failing) this.logger?.info({ keys: deltas.length }, 'api key usage written again');
      this.failing = false;
    }, (err: unknown) => {
      // Put the counts back (merged with uses recorded meanwhile) for the next attempt, within the bound.
      for (const d of deltas) {
        const later = this.pending.get(d.id);
        if (later === undefined) {
          if (this.pending.size >= this.maxKeys) { this.droppedUses += d.count; continue; }
          this.pending.set(d.id, { count: d.count, lastUsedAt: d.lastUsedAt, lastUsedIp: d.lastUsedIp });
        } else {
          later.count += d.count;
          if (d.lastUsedAt > later.lastUsedAt) { later.lastUsedAt = d.lastUsedAt; later.lastUsedIp = d.lastUsedIp; }
        }
      }
      if (!this.failing) this.logger?.warn({ err: (err as Error).message, keys: this.pending.size }, 'api key usage not written; kept in memory and retried');
      this.failing = true;
      throw err;
    }).finally(() => { this.flushing = null; this.writing = null; });
    await this.flushing;
  }

  /** Stops the interval and writes what is left (one attempt; a failure is returned to the caller). */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    await this.flush();
  }
}
