import type { HostRevocationChannel, WireRevocation } from '../authn/oauth/host-revocations.js';
import type { Resource } from '../lifecycle/resources.js';
import type { LimitShape } from '../ratelimit/algorithms.js';
import type { BlockChannel, GuardBlock, GuardSourceKind } from '../ratelimit/brute-force-guard.js';
import type { Period } from '../ratelimit/calendar.js';
import { MemoryLimitStore } from '../ratelimit/memory-store.js';
import { SqliteQuotaStore, type QuotaStore, type QuotaUse, type SqliteQuotaSettings } from '../ratelimit/quota-store.js';
import { LimitStoreUnavailableError, type LimitStore, type StoreVerdict } from '../ratelimit/store.js';
import {
  consumeCall, hitCall, isStateMessage, revocationOf, STATE_TAG, useOf, verdictOf, wireBlocksOf, wireRevocationsOf,
  type BlockNotice, type Call, type CallResult, type ConsumeCall, type HitCall, type PrimaryMessage, type StoreDescriptor, type WireBlock, type WireUse, type WireVerdict, type WorkerMessage,
} from './host-state-protocol.js';

/**
 * How long a worker waits for the primary to answer a batch. The primary answers within
 * microseconds to a few milliseconds (a map lookup per hit); a second without an answer means it
 * is stuck or gone, and no request may hang on it: the batch's hits fail as an unreachable Redis
 * would, and each limit's `onStoreError` applies.
 */
export const REPLY_TIMEOUT_MS = 1000;

/**
 * Hits waiting for the primary, queued or sent, at most: about 70 ms of hits at the rate one
 * primary answered on a 2-core machine (150,000 hits/s), so it is reached only when the primary
 * stops keeping up. New hits then fail at once (fail closed) instead of queueing without bound.
 */
export const MAX_PENDING_CALLS = 10_000;

/** The worker's end of the IPC channel: `process` in a cluster worker or a forked child. */
export interface PrimaryChannel {
  send?: ((message: WorkerMessage, sendHandle: undefined, options: undefined, callback: (error: Error | null) => void) => boolean) | undefined;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

interface Waiter {
  readonly settle: (result: CallResult) => void;
  readonly fail: (err: Error) => void;
}

interface SentBatch {
  readonly waiters: readonly Waiter[];
  readonly timer: NodeJS.Timeout;
}

type BlockListener = (kind: GuardSourceKind, source: string | null, untilMs: number) => void;

/**
 * The channel to the primary as the stores use it: handles for the stores this worker holds there,
 * calls batched per event-loop turn and matched to their replies, and the guard's block notices.
 */
class PrimaryLink {
  private nextHandle = 1;
  private nextBatch = 1;
  private outgoing: Call[] = [];
  private waiting: Waiter[] = [];
  private scheduled = false;
  private readonly sent = new Map<number, SentBatch>();
  private pending = 0;
  private gone: string | null = null;
  private readonly watchers = new Map<string, Set<BlockListener>>();
  private nextAsk = 1;
  /** Questions for the blocks in force, waiting for the primary's answer (each ends by REPLY_TIMEOUT_MS). */
  private readonly asked = new Map<number, { readonly answer: (blocks: readonly WireBlock[] | null) => void; readonly timer: NodeJS.Timeout }>();
  private readonly revocationWatchers = new Set<(digest: string, untilMs: number) => void>();
  private readonly askedRevocations = new Map<number, { readonly answer: (revocations: readonly WireRevocation[] | null) => void; readonly timer: NodeJS.Timeout }>();

  constructor(private readonly channel: PrimaryChannel) {
    channel.on('message', this.onMessage);
    channel.on('disconnect', this.onDisconnect);
  }

  /** Tells the primary this worker uses the store; returns its handle. */
  use(store: StoreDescriptor): number {
    const handle = this.nextHandle++;
    this.control({ t: STATE_TAG, op: 'use', handle, store });
    return handle;
  }

  release(handle: number): void {
    this.control({ t: STATE_TAG, op: 'release', handle });
  }

  publish(notice: BlockNotice, maxEntries: number): void {
    this.control({ t: STATE_TAG, op: 'block', ...notice, maxEntries });
  }

  subscribe(guard: string, listener: BlockListener): () => void {
    let set = this.watchers.get(guard);
    if (set === undefined) this.watchers.set(guard, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(guard) === set) this.watchers.delete(guard);
    };
  }

  /** The blocks in force the primary keeps on `guard`; null when it is gone or does not answer within REPLY_TIMEOUT_MS. */
  blocksInForce(guard: string, maxEntries: number): Promise<readonly WireBlock[] | null> {
    if (this.gone !== null) return Promise.resolve(null);
    const id = this.nextAsk++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.answer(id, null), REPLY_TIMEOUT_MS);
      timer.unref();
      this.asked.set(id, { answer: resolve, timer });
      this.control({ t: STATE_TAG, op: 'blocks-in-force', id, guard, maxEntries });
    });
  }

  publishRevocation(digest: string, untilMs: number, maxEntries: number): void {
    this.control({ t: STATE_TAG, op: 'revoke', digest, untilMs, maxEntries });
  }

  subscribeRevocations(listener: (digest: string, untilMs: number) => void): () => void {
    this.revocationWatchers.add(listener);
    return () => { this.revocationWatchers.delete(listener); };
  }

  /** The revocations in force the primary keeps; null when it is gone or does not answer within REPLY_TIMEOUT_MS. */
  revocationsInForce(maxEntries: number): Promise<readonly WireRevocation[] | null> {
    if (this.gone !== null) return Promise.resolve(null);
    const id = this.nextAsk++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.answerRevocations(id, null), REPLY_TIMEOUT_MS);
      timer.unref();
      this.askedRevocations.set(id, { answer: resolve, timer });
      this.control({ t: STATE_TAG, op: 'revocations-in-force', id, maxEntries });
    });
  }

  private answerRevocations(id: number, revocations: readonly WireRevocation[] | null): void {
    const asked = this.askedRevocations.get(id);
    if (asked === undefined) return;
    this.askedRevocations.delete(id);
    clearTimeout(asked.timer);
    asked.answer(revocations);
  }

  private answer(id: number, blocks: readonly WireBlock[] | null): void {
    const asked = this.asked.get(id);
    if (asked === undefined) return;
    this.asked.delete(id);
    clearTimeout(asked.timer);
    asked.answer(blocks);
  }

  hit(call: HitCall): Promise<StoreVerdict> {
    return this.call(call, (r) => verdictOf(r as WireVerdict));
  }

  consume(call: ConsumeCall): Promise<QuotaUse> {
    return this.call(call, (r) => useOf(r as WireUse));
  }

  /**
   * Queues one call for this turn's batch. Rejects with LimitStoreUnavailableError when the
   * primary is gone, too far behind, or does not answer within REPLY_TIMEOUT_MS.
   */
  private call<T>(call: Call, decode: (result: WireVerdict | WireUse) => T): Promise<T> {
    if (this.gone !== null) return Promise.reject(new LimitStoreUnavailableError(this.gone));
    if (this.pending >= MAX_PENDING_CALLS) return Promise.reject(new LimitStoreUnavailableError(`the primary has ${this.pending} decisions unanswered`));
    return new Promise<T>((resolve, reject) => {
      this.pending++;
      this.outgoing.push(call);
      this.waiting.push({
        settle: (r) => (typeof r === 'string' ? reject(new LimitStoreUnavailableError(`primary: ${r}`)) : resolve(decode(r))),
        fail: reject,
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /**
   * Sends the calls queued in this turn as one message. Scheduled with setImmediate rather than
   * as a microtask: requests on different connections arrive in different callbacks of the same
   * poll phase, and only a flush after that phase puts them in one batch. Measured with hits
   * started in separate callbacks (bench/host-state.mjs): a microtask flush sends one
   * message per hit and answered six to eight times fewer hits per second.
   */
  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.outgoing.length === 0) return;
    const calls = this.outgoing;
    const waiters = this.waiting;
    this.outgoing = [];
    this.waiting = [];
    const id = this.nextBatch++;
    const timer = setTimeout(() => this.fail(id, `the primary did not answer within ${REPLY_TIMEOUT_MS} ms`), REPLY_TIMEOUT_MS);
    timer.unref();
    this.sent.set(id, { waiters, timer });
    this.send({ t: STATE_TAG, op: 'batch', id, calls }, (err) => this.fail(id, `cannot reach the primary: ${err.message}`));
  };

  /** Sends a message that must stay in order with the calls: the calls queued before it go first. */
  private control(message: WorkerMessage): void {
    this.flush();
    this.send(message, () => { /* the primary is gone: 'disconnect' fails what waits on it */ });
  }

  private send(message: WorkerMessage, failed: (err: Error) => void): void {
    if (this.gone !== null || this.channel.connected === false) { failed(new Error(this.gone ?? 'channel closed')); return; }
    this.channel.send?.(message, undefined, undefined, (err) => { if (err !== null) failed(err); });
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isStateMessage(message)) return;
    const m = message as PrimaryMessage;
    if (m.op === 'reply') this.answered(m.id, m.results);
    else if (m.op === 'blocks-in-force') this.answer(m.id, wireBlocksOf(m.blocks));
    else if (m.op === 'revocations-in-force') this.answerRevocations(m.id, wireRevocationsOf(m.revocations));
    else if (m.op === 'revoked') {
      const revocation = revocationOf(m.digest, m.untilMs);
      if (revocation !== null) for (const listener of this.revocationWatchers) listener(revocation[0], revocation[1]);
    } else for (const listener of this.watchers.get(m.guard) ?? []) listener(m.kind, m.source, m.untilMs);
  };

  private answered(id: number, results: readonly CallResult[]): void {
    const batch = this.sent.get(id);
    if (batch === undefined) return; // already failed (timed out): the hits were answered as unavailable
    this.sent.delete(id);
    clearTimeout(batch.timer);
    this.pending -= batch.waiters.length;
    batch.waiters.forEach((w, i) => w.settle(results[i] ?? 'no result for the call'));
  }

  private fail(id: number, why: string): void {
    const batch = this.sent.get(id);
    if (batch === undefined) return;
    this.sent.delete(id);
    clearTimeout(batch.timer);
    this.pending -= batch.waiters.length;
    for (const w of batch.waiters) w.fail(new LimitStoreUnavailableError(why));
  }

  private readonly onDisconnect = (): void => {
    this.close('the primary is gone (IPC channel closed)');
  };

  /** Fails everything waiting and every later call with `why`. */
  close(why: string): void {
    if (this.gone !== null) return;
    this.gone = why;
    this.channel.off('message', this.onMessage);
    this.channel.off('disconnect', this.onDisconnect);
    const queued = this.waiting;
    this.outgoing = [];
    this.waiting = [];
    this.pending -= queued.length;
    for (const w of queued) w.fail(new LimitStoreUnavailableError(why));
    for (const id of [...this.sent.keys()]) this.fail(id, why);
    for (const id of [...this.asked.keys()]) this.answer(id, null);
    for (const id of [...this.askedRevocations.keys()]) this.answerRevocations(id, null);
  }
}

/**
 * A worker's view of the state its host's primary keeps for all workers: the store kinds compile
 * with it in place of in-process ones (memory limit stores, the embedded quota store, the guard's
 * failure counts), and the channel the brute-force guard shares its blocks on.
 *
 * Every decision is one asynchronous round trip to the primary, batched per event-loop turn; the
 * primary decides with the same store classes and resource keys one process would use, so N
 * workers admit what one process would. A guard that starts asks the primary for the blocks in
 * force on the host before it decides anything.
 */
export class HostStateClient implements BlockChannel, HostRevocationChannel {
  private constructor(private readonly link: PrimaryLink) {}

  /** The client of this worker's primary; null when the process has no IPC channel (not a worker). */
  static connect(channel: PrimaryChannel = process): HostStateClient | null {
    return typeof channel.send === 'function' ? new HostStateClient(new PrimaryLink(channel)) : null;
  }

  /** The primary's memory limit store for table `id` (see MemoryLimitStore), unstarted. */
  limitStore(id: string, maxEntries: number): HostLimitStore {
    return new HostLimitStore(this.link, id, maxEntries);
  }

  /** The primary's embedded quota store of quota `name` (see SqliteQuotaStore), unstarted. */
  quotaStore(settings: SqliteQuotaSettings, name: string): HostQuotaStore {
    return new HostQuotaStore(this.link, settings, name);
  }

  publish(guard: string, block: GuardBlock, maxEntries: number): void {
    this.link.publish({ guard, kind: block.kind, source: block.source, untilMs: block.untilMs }, maxEntries);
  }

  subscribe(guard: string, apply: BlockListener): () => void {
    return this.link.subscribe(guard, apply);
  }

  async blocksInForce(guard: string, maxEntries: number): Promise<readonly GuardBlock[] | null> {
    const blocks = await this.link.blocksInForce(guard, maxEntries);
    return blocks === null ? null : blocks.map(([kind, source, untilMs]) => ({ kind, source, untilMs }));
  }

  publishRevocation(digest: string, untilMs: number, maxEntries: number): void {
    this.link.publishRevocation(digest, untilMs, maxEntries);
  }

  subscribeRevocations(apply: (digest: string, untilMs: number) => void): () => void {
    return this.link.subscribeRevocations(apply);
  }

  revocationsInForce(maxEntries: number): Promise<readonly WireRevocation[] | null> {
    return this.link.revocationsInForce(maxEntries);
  }

  /** Stops listening on the channel (the worker is shutting down); everything still waiting fails as unavailable. */
  close(): void {
    this.link.close('the worker closed its state client');
  }
}

/**
 * A memory limit store held by the primary. As a resource, `start` tells the primary this worker
 * uses the table and `stop` that it no longer does; the primary stops the table when no worker
 * uses it, so a reload that keeps the limit keeps its counts on every worker.
 */
export class HostLimitStore implements LimitStore, Resource {
  readonly kind = 'memory';
  readonly key: string;
  private handle: number | null = null;

  constructor(private readonly link: PrimaryLink, readonly id: string, readonly maxEntries: number) {
    this.key = HostLimitStore.keyOf(id, maxEntries);
  }

  /** The resource key in a worker: the one of the in-process table the primary holds for it. */
  static keyOf(id: string, maxEntries: number): string {
    return `host ${MemoryLimitStore.keyOf(id, maxEntries)}`;
  }

  start(): Promise<void> {
    this.handle = this.link.use({ kind: 'limit', id: this.id, maxEntries: this.maxEntries });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return this.close();
  }

  hit(shape: LimitShape, key: string): Promise<StoreVerdict> {
    if (this.handle === null) return Promise.reject(new LimitStoreUnavailableError(`${this.id}: not started`));
    return this.link.hit(hitCall(this.handle, shape, key));
  }

  close(): Promise<void> {
    if (this.handle !== null) this.link.release(this.handle);
    this.handle = null;
    return Promise.resolve();
  }
}

/** An embedded quota store held by the primary (one SqliteQuotaStore per quota for all workers); a resource like HostLimitStore. */
export class HostQuotaStore implements QuotaStore, Resource {
  readonly kind = 'sqlite';
  readonly key: string;
  private handle: number | null = null;

  constructor(private readonly link: PrimaryLink, private readonly settings: SqliteQuotaSettings, readonly name: string) {
    this.key = HostQuotaStore.keyOf(settings, name);
  }

  /** The resource key in a worker: the one of the SQLite store the primary holds for it. */
  static keyOf(settings: SqliteQuotaSettings, name: string): string {
    return `host ${SqliteQuotaStore.keyOf(settings, name)}`;
  }

  start(): Promise<void> {
    this.handle = this.link.use({ kind: 'quota', name: this.name, settings: this.settings });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return this.close();
  }

  consume(key: string, period: Period, limit: number): Promise<QuotaUse> {
    if (this.handle === null) return Promise.reject(new LimitStoreUnavailableError(`quota ${this.name}: not started`));
    return this.link.consume(consumeCall(this.handle, key, period, limit));
  }

  close(): Promise<void> {
    if (this.handle !== null) this.link.release(this.handle);
    this.handle = null;
    return Promise.resolve();
  }
}
