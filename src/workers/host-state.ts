import { systemClock, type Clock } from '../lib/clock.js';
import { redacted, type ResourceContext } from '../lifecycle/resources.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { BlockTable } from '../ratelimit/block-table.js';
import { MEMORY_STORE_DEFAULTS } from '../ratelimit/kinds.js';
import { MemoryLimitStore } from '../ratelimit/memory-store.js';
import { MemoryRevocations } from '../authn/oauth/memory-revocations.js';
import { SqliteQuotaStore } from '../ratelimit/quota-store.js';
import { LimitStoreUnavailableError } from '../ratelimit/store.js';
import {
  blockNoticeOf, blockRoomOf, isStateMessage, MAX_BLOCK_CHANNEL_LENGTH, MAX_REVOCATION_ROOM, periodOf, revocationOf, shapeOf, STATE_TAG, wireUse, wireVerdict,
  type BlockNotice, type Call, type CallResult, type HitCall, type PrimaryMessage, type StoreDescriptor, type WireBlock, type WorkerMessage,
} from './host-state-protocol.js';

/** Channels of blocks the primary keeps (a host's workers use one); blocks on others are passed on, not kept. */
export const MAX_BLOCK_CHANNELS = 8;

/** The primary's end of one worker's IPC channel: a cluster Worker or a forked ChildProcess. */
export interface WorkerChannel {
  send(message: PrimaryMessage, sendHandle: undefined, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface HostStateOptions {
  readonly logger: Logger;
  /** The clock the stores decide and sweep on (default: the machine's). */
  readonly clock?: Clock;
  /** Default: a registry of the primary's own. */
  readonly metrics?: Metrics;
}

type HeldStore = MemoryLimitStore | SqliteQuotaStore;

/** A store and how many worker handles use it. */
interface Held {
  readonly store: HeldStore;
  users: number;
}

interface Attached {
  readonly listener: (message: unknown) => void;
  /** The stores this worker uses, by the handle it named them with. */
  readonly handles: Map<number, Held>;
}

/**
 * The blocks in force on one channel of the host, as its workers announced them: what a worker
 * that starts later (a replacement) is told before it serves. Bounded like a guard's own tables
 * (room for `maxEntries` per kind, the most any worker asked with; past it the overflow block),
 * and a block leaves only when it has ended.
 */
class HostBlocks {
  private tables: Record<'ip' | 'credential', BlockTable>;

  constructor(private room: number, private readonly clock: Clock) {
    this.tables = { ip: new BlockTable(room, clock), credential: new BlockTable(room, clock) };
  }

  /** Makes room for `maxEntries` per kind, keeping every block in force. */
  grow(maxEntries: number): void {
    if (maxEntries <= this.room) return;
    this.room = maxEntries;
    const next = { ip: new BlockTable(maxEntries, this.clock), credential: new BlockTable(maxEntries, this.clock) };
    for (const kind of ['ip', 'credential'] as const) {
      for (const [source, until] of this.tables[kind].inForce().sort((a, b) => a[1] - b[1])) {
        if (source === null) next[kind].blockOverflow(until);
        else next[kind].block(source, until);
      }
    }
    this.tables = next;
  }

  add(notice: BlockNotice): void {
    const table = this.tables[notice.kind];
    if (notice.source === null) table.blockOverflow(notice.untilMs);
    else table.block(notice.source, notice.untilMs);
  }

  inForce(): WireBlock[] {
    return (['ip', 'credential'] as const).flatMap((kind) => this.tables[kind].inForce().map(([source, until]): WireBlock => [kind, source, until]));
  }
}

/**
 * The in-process state a host's workers share, held by the primary: memory limit stores, embedded
 * quota stores and the brute-force guard's failure counts, each one instance of the class one
 * process would use (MemoryLimitStore, SqliteQuotaStore) under the resource key one process would
 * give it. Workers decide through it (HostStateClient), so N workers admit exactly what one
 * process would; a worker's guard block is passed on to every other worker.
 *
 * Stores live while a worker uses them: a worker's `use` starts the store (with the primary's
 * logger, clock and metrics) or joins the running one, and when the last handle is released — its
 * `release`, or its detach when it exits — the store stops (a quota store writes its counts).
 * Workers that keep a limit across a reload keep its counts.
 *
 * Each batch of calls is answered with one message, in call order; the stores decide
 * synchronously, so a batch is answered within the turn that received it.
 */
export class HostState {
  private readonly context: ResourceContext;
  private readonly stores = new Map<string, Held>();
  private readonly workers = new Map<WorkerChannel, Attached>();
  private readonly stopping = new Set<Promise<void>>();
  /** The guards' blocks in force, per channel. */
  private readonly blocks = new Map<string, HostBlocks>();
  /** The host's revoked tokens (workers without oauth.redis), made with the most room any worker asked for. */
  private revocations: MemoryRevocations | null = null;
  private revocationRoom = 0;
  private closed = false;

  constructor(options: HostStateOptions) {
    this.context = { logger: options.logger, clock: options.clock ?? systemClock, metrics: options.metrics ?? new Metrics(false) };
  }

  /** Serves the worker's messages of this protocol (others on the channel are left alone). */
  attach(worker: WorkerChannel): void {
    if (this.closed || this.workers.has(worker)) return;
    const attached: Attached = {
      handles: new Map(),
      listener: (message) => { if (isStateMessage(message)) this.receiveSafely(worker, attached, message as WorkerMessage); },
    };
    this.workers.set(worker, attached);
    worker.on('message', attached.listener);
  }

  /** Forgets the worker (it exited): the stores only it used are stopped. */
  detach(worker: WorkerChannel): void {
    const attached = this.workers.get(worker);
    if (attached === undefined) return;
    this.workers.delete(worker);
    worker.off('message', attached.listener);
    for (const held of attached.handles.values()) this.release(held);
    attached.handles.clear();
  }

  /** The resource keys of the stores held now. */
  get storeKeys(): readonly string[] {
    return [...this.stores.keys()];
  }

  /** Detaches every worker and stops every store, writing the quota stores' counts. */
  async close(): Promise<void> {
    this.closed = true;
    for (const worker of [...this.workers.keys()]) this.detach(worker);
    for (const held of [...this.stores.values()]) this.stop(held);
    await Promise.all(this.stopping);
  }

  /** A message the primary cannot handle is logged and dropped: the primary must outlive any one worker's mistake. */
  private receiveSafely(worker: WorkerChannel, attached: Attached, m: WorkerMessage): void {
    try {
      this.receive(worker, attached, m);
    } catch (err) {
      this.context.logger.error({ err, op: m.op }, 'host state: a worker message could not be handled');
    }
  }

  private receive(worker: WorkerChannel, attached: Attached, m: WorkerMessage): void {
    switch (m.op) {
      case 'use':
        if (!this.closed && !attached.handles.has(m.handle)) attached.handles.set(m.handle, this.acquire(m.store));
        return;
      case 'release': {
        const held = attached.handles.get(m.handle);
        attached.handles.delete(m.handle);
        if (held !== undefined) this.release(held);
        return;
      }
      case 'batch':
        this.send(worker, { t: STATE_TAG, op: 'reply', id: m.id, results: m.calls.map((c) => this.run(attached, c)) });
        return;
      case 'block': {
        const notice = blockNoticeOf(m as unknown as Record<string, unknown>);
        if (notice === null) { this.context.logger.warn({ op: m.op }, 'host state: a malformed block notice was dropped'); return; }
        this.blocksOf(notice.guard, blockRoomOf(m.maxEntries) ?? MEMORY_STORE_DEFAULTS.maxEntries)?.add(notice);
        this.broadcast(worker, notice);
        return;
      }
      case 'blocks-in-force': {
        const { id, guard } = m as unknown as Record<string, unknown>;
        const room = blockRoomOf(m.maxEntries);
        if (!Number.isSafeInteger(id) || typeof guard !== 'string' || guard.length === 0 || guard.length > MAX_BLOCK_CHANNEL_LENGTH || room === null) {
          this.context.logger.warn({ op: m.op }, 'host state: a malformed question for the blocks in force was dropped');
          return;
        }
        this.send(worker, { t: STATE_TAG, op: 'blocks-in-force', id: id as number, guard, blocks: this.blocksOf(guard, room)?.inForce() ?? [] });
        return;
      }
      case 'revoke': {
        const revocation = revocationOf(m.digest, m.untilMs);
        const room = revocationRoom(m.maxEntries);
        if (revocation === null || room === null) { this.context.logger.warn({ op: m.op }, 'host state: a malformed revocation was dropped'); return; }
        this.revocationsWith(room).add(revocation[0], revocation[1]);
        for (const other of this.workers.keys()) if (other !== worker) this.send(other, { t: STATE_TAG, op: 'revoked', digest: revocation[0], untilMs: revocation[1] });
        return;
      }
      case 'revocations-in-force': {
        const room = revocationRoom(m.maxEntries);
        if (!Number.isSafeInteger(m.id) || room === null) { this.context.logger.warn({ op: m.op }, 'host state: a malformed question for the revocations in force was dropped'); return; }
        this.send(worker, { t: STATE_TAG, op: 'revocations-in-force', id: m.id, revocations: this.revocationsWith(room).inForce() });
        return;
      }
    }
  }

  /** The host's revocation list, with room for at least `maxEntries` (a larger ask keeps every revocation in force). */
  private revocationsWith(maxEntries: number): MemoryRevocations {
    if (this.revocations !== null && maxEntries <= this.revocationRoom) return this.revocations;
    const next = new MemoryRevocations(maxEntries, this.context.clock);
    for (const [digest, until] of this.revocations?.inForce() ?? []) next.add(digest, until);
    this.revocations = next;
    this.revocationRoom = maxEntries;
    return next;
  }

  /** The blocks kept on `guard`, with room for at least `maxEntries` per kind; null past MAX_BLOCK_CHANNELS channels. */
  private blocksOf(guard: string, maxEntries: number): HostBlocks | null {
    let record = this.blocks.get(guard);
    if (record === undefined) {
      if (this.blocks.size >= MAX_BLOCK_CHANNELS) {
        this.context.logger.error({ channels: MAX_BLOCK_CHANNELS }, 'host state: too many channels of blocks; blocks on a new one reach the workers running now only');
        return null;
      }
      record = new HostBlocks(maxEntries, this.context.clock);
      this.blocks.set(guard, record);
    }
    record.grow(maxEntries);
    return record;
  }

  /** The running store of this description, or a new one started now; counted as one more user. */
  private acquire(d: StoreDescriptor): Held {
    const key = d.kind === 'limit' ? MemoryLimitStore.keyOf(d.id, d.maxEntries) : SqliteQuotaStore.keyOf(d.settings, d.name);
    let held = this.stores.get(key);
    if (held === undefined) {
      const clock = this.context.clock;
      const store = d.kind === 'limit' ? new MemoryLimitStore(d.maxEntries, clock, null, d.id) : new SqliteQuotaStore(d.settings, clock, null, d.name);
      held = { store, users: 0 };
      this.stores.set(key, held);
      void store.start(this.context).catch((err: unknown) => this.context.logger.error({ err, store: redacted(key) }, 'host state: a store failed to start'));
    }
    held.users++;
    return held;
  }

  private release(held: Held): void {
    if (--held.users === 0) this.stop(held);
  }

  private stop(held: Held): void {
    const key = held.store.key;
    if (this.stores.get(key) === held) this.stores.delete(key);
    const stop = held.store.stop().catch((err: unknown) => this.context.logger.warn({ err, store: redacted(key) }, 'host state: stopping a store failed'));
    this.stopping.add(stop);
    void stop.finally(() => this.stopping.delete(stop));
  }

  /** One call's result; a store that cannot decide answers why, and the worker fails the call as unavailable. */
  private run(attached: Attached, call: Call): CallResult {
    const held = attached.handles.get(call[0]);
    if (held === undefined) return 'the store is not in use (released, or the primary is shutting down)';
    const store = held.store;
    try {
      return store instanceof MemoryLimitStore
        ? wireVerdict(store.hit(shapeOf(call as HitCall), call[1]))
        : wireUse(store.consume(call[1], periodOf(call), call[5]));
    } catch (err) {
      if (!(err instanceof LimitStoreUnavailableError)) this.context.logger.error({ err, store: redacted(store.key) }, 'host state: a store failed to decide');
      return err instanceof Error ? err.message : String(err);
    }
  }

  /** Passes a block a worker started on to every other worker. */
  private broadcast(from: WorkerChannel, notice: BlockNotice): void {
    for (const worker of this.workers.keys()) if (worker !== from) this.send(worker, { t: STATE_TAG, op: 'block', ...notice });
  }

  private send(worker: WorkerChannel, message: PrimaryMessage): void {
    // A worker that exited cannot be told; the supervisor detaches it.
    worker.send(message, undefined, () => undefined);
  }
}

/** The room a worker asked for in the host's revocation list, or null when it is not a count the schema allows. */
function revocationRoom(maxEntries: unknown): number | null {
  return Number.isSafeInteger(maxEntries) && (maxEntries as number) >= 1 && (maxEntries as number) <= MAX_REVOCATION_ROOM ? maxEntries as number : null;
}
