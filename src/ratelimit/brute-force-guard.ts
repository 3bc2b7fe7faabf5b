import { ipKey } from '../lib/ip.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Resource, ResourceContext } from '../lifecycle/resources.js';
import type { Logger } from '../observability/logger.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Stage } from '../pipeline/stage.js';
import type { LimitShape } from './algorithms.js';
import { BlockTable } from './block-table.js';
import { MemoryLimitStore } from './memory-store.js';
import type { LimitStore, StoreVerdict } from './store.js';

export interface GuardSpec {
  /** Failed authentications within `windowMs` that start a block. */
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly blockMs: number;
  /** Count per client address (blocks the address outright). */
  readonly byIp: boolean;
  /** Count per presented credential id (API key id): blocks failures with it, never a correct credential. */
  readonly byCredential: boolean;
  /**
   * Where failures are counted across instances (Redis) or across a host's workers (the primary's
   * tables), per source kind; null: in `counts`.
   */
  readonly shared: Readonly<Record<GuardSourceKind, LimitStore>> | null;
  /** The failure counts in this process per source kind: the count itself when `shared` is null, else the stand-in when it cannot count. */
  readonly counts: Readonly<Record<GuardSourceKind, GuardCountTable>>;
  /** The blocks of this gateway's guards: handed from a guard to the one a reload replaces it with, and shared with the host's other workers. */
  readonly blocks: GuardBlocks;
  /** Bound of each of the guard's own tables: failure counts and blocks, per source kind. */
  readonly maxEntries: number;
  readonly ipv6PrefixBits: number;
}

/** The guard's name in audit records and rate-limit figures. */
export const GUARD_NAME = 'bruteForce';

/** What the guard counts and blocks: a client address or a presented credential id. */
export type GuardSourceKind = 'ip' | 'credential';
type Kind = GuardSourceKind;

/** One block in force: a source of a kind (null: the kind's overflow block) and its end (ms). */
export interface GuardBlock {
  readonly kind: GuardSourceKind;
  readonly source: string | null;
  readonly untilMs: number;
}

/**
 * Blocks shared between the guards of one host's workers (through the primary) on a named
 * channel. A block a worker starts is published; the others apply it to their own block tables
 * when it arrives, and the primary keeps it until it ends, for a worker that starts later.
 */
export interface BlockChannel {
  /** Tells the other workers of a block (and the primary, which keeps it with room for `maxEntries` per kind). */
  publish(channel: string, block: GuardBlock, maxEntries: number): void;
  /** Calls `apply` with every block another worker publishes on `channel`; returns the unsubscribe. */
  subscribe(channel: string, apply: (kind: GuardSourceKind, source: string | null, untilMs: number) => void): () => void;
  /**
   * The blocks in force on the host's `channel` (as the primary kept them, room for `maxEntries`
   * per kind), for a guard that starts after they began; null when the primary did not answer in
   * time.
   */
  blocksInForce(channel: string, maxEntries: number): Promise<readonly GuardBlock[] | null>;
}

/**
 * The blocks of every guard a gateway runs, one resource for all of them: its key does not depend
 * on the guard's settings, so a reload reuses it even when it replaces the guard. A guard that
 * starts takes over the blocks in force of the guard it replaces or, as a worker's first guard,
 * those the primary kept; a block any guard starts (a replaced one still finishing requests too)
 * reaches the others in this process and, through the primary, every worker of the host.
 */
export class GuardBlocks implements Resource {
  /** One per gateway, whatever the guard's settings. */
  static readonly KEY = 'brute-force guard blocks';
  readonly key = GuardBlocks.KEY;
  private readonly guards = new Set<BruteForceGuard>();
  private unsubscribe: (() => void) | null = null;
  private logger: Logger | null = null;

  /** `channel`: the host's other workers (null: a gateway of its own). */
  constructor(private readonly channel: BlockChannel | null) {}

  start(context: ResourceContext): Promise<void> {
    this.logger = context.logger;
    this.unsubscribe = this.channel?.subscribe(GUARD_NAME, (kind, source, untilMs) => {
      for (const guard of this.guards) guard.receive(kind, source, untilMs);
    }) ?? null;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.guards.clear();
    return Promise.resolve();
  }

  /**
   * A guard starting: it takes over every block in force the newest running guard holds (the one
   * it replaces, which has also received every block started since it started). The first
   * guard of a worker instead asks the primary for the blocks in force on the host: from then on,
   * the blocks started anywhere on the host reach this worker as they start. The guard is
   * registered first, so a block started meanwhile reaches it too.
   */
  async join(guard: BruteForceGuard): Promise<void> {
    const newest = [...this.guards].at(-1);
    this.guards.add(guard);
    if (newest !== undefined) {
      guard.receiveAll(newest.blocksInForce());
      return;
    }
    if (this.channel === null) return;
    const kept = await this.channel.blocksInForce(GUARD_NAME, guard.maxEntries);
    if (kept === null) {
      this.logger?.warn('brute-force guard: the primary did not say which blocks are in force on the host; this worker applies the blocks it hears of from now on');
      return;
    }
    if (this.guards.has(guard)) guard.receiveAll(kept);
  }

  leave(guard: BruteForceGuard): void {
    this.guards.delete(guard);
  }

  /** A block `from` started: the other guards of this gateway apply it, and the host's other workers are told. */
  started(from: BruteForceGuard, kind: GuardSourceKind, source: string | null, untilMs: number): void {
    for (const guard of this.guards) if (guard !== from) guard.receive(kind, source, untilMs);
    this.channel?.publish(GUARD_NAME, { kind, source, untilMs }, from.maxEntries);
  }
}

/**
 * The guard's failure counts in this process for one source kind: a memory table (see
 * MemoryLimitStore) that says when it is full as the guard's. Its key names the kind and the bound
 * only, so a reload that changes the guard's other settings keeps the counts.
 */
export class GuardCountTable extends MemoryLimitStore {
  private readonly log: { logger: Logger | null };

  constructor(readonly sourceKind: GuardSourceKind, maxEntries: number, clock: Clock = systemClock) {
    const log: { logger: Logger | null } = { logger: null };
    super(maxEntries, clock, (max) => {
      log.logger?.error({ kind: sourceKind, maxEntries: max }, 'brute-force guard: failure table full; sources without an entry are counted together');
    }, GuardCountTable.idOf(sourceKind));
    this.log = log;
  }

  /** The table's id: also the id of the primary's table that counts the kind for a host's workers. */
  static idOf(kind: GuardSourceKind): string {
    return `${GUARD_NAME}:${kind}`;
  }

  /** The resource key of the table of `kind` with room for `maxEntries` sources. */
  static keyFor(kind: GuardSourceKind, maxEntries: number): string {
    return MemoryLimitStore.keyOf(GuardCountTable.idOf(kind), maxEntries);
  }

  override start(context: ResourceContext): Promise<void> {
    this.log.logger = context.logger;
    return super.start(context);
  }
}

/** One counted failure: whether it started a block, and whether the source was counted in the overflow entry. */
interface Count { readonly crossed: boolean; readonly overflow: boolean }

/**
 * What the guard counts: a credential its authenticator flagged as a possible guess (forged or
 * malformed token, unknown kid or key, wrong secret). An honest mistake — a correctly signed token
 * past its exp, an API key presented with its correct secret after it was revoked or expired — is
 * refused but not counted, so a client retrying with a stale credential does not get its address
 * blocked; nor is an outage (503) counted.
 */
function countsAsFailure(ex: Exchange): boolean {
  return ex.credentialGuess === true;
}

/** This failure reached the threshold (or the count was already past it, on another instance). */
const counted = (v: StoreVerdict): Count => ({ crossed: !v.allowed || v.remaining === 0, overflow: v.overflow === true });

/** The network length of an IPv6 address key (`…/64`); null for an IPv4 address. */
function prefixOf(addressKey: string): number | null {
  const slash = addressKey.lastIndexOf('/');
  if (slash === -1) return null;
  const bits = Number(addressKey.slice(slash + 1));
  return Number.isInteger(bits) && bits >= 0 && bits <= 128 ? bits : null;
}

/**
 * Counts failed authentications per client address and per presented credential id. Past
 * `maxFailures` within the window the source is blocked for `blockMs`:
 * - a blocked address gets 429 before authentication, whatever it sends;
 * - a blocked credential id gets 429 instead of 401 when it fails again, while a request that
 *   presents the correct credential still passes (so nobody can lock a key's owner out by
 *   failing on purpose with its public id).
 * Successful requests are never counted or slowed: the check before authentication is one map
 * lookup, and the store is written only on failures. Blocks are held in memory per instance; with
 * a shared store the failures count across instances and each instance blocks on the next failure
 * it sees from the source. The workers of one host also share their blocks (`blocks`): a block
 * one worker starts reaches the others one IPC hop later, and one that starts later learns the
 * blocks in force from the primary before it serves.
 *
 * The guard's state, per source kind: failure counts (in process, or in the shared store) and
 * blocks, each bounded by `maxEntries` and never emptied by pressure. A flood of new addresses
 * cannot reset a count or lift a block before it ends. Sources the tables have no room for are one
 * source, "overflow": their failures count together, and once that count crosses the threshold
 * (or a block finds the block table full) every source without an entry of its own is refused
 * until the overflow block ends. That is fail closed: it may refuse newcomers during a flood big
 * enough to fill the tables, but never forgets an attacker.
 *
 * A resource keyed by its settings: a reload that keeps them keeps the guard. One that changes
 * them starts a new guard, which takes over every block in force (each keeps its end, capped at
 * the new `blockMs` from then: a block never outlasts the settings in force by more than one
 * `blockFor`) and counts on in the same tables (`counts` are kept while `maxEntries` is, `shared`
 * while its store is). Constructing it arms nothing; `start` takes the blocks over, `stop` lets go.
 */
export class BruteForceGuard implements Resource {
  readonly key: string;
  private readonly shape: LimitShape;
  private logger: Logger | null = null;
  /** Failure counts in this process: the store when `shared` is null, the stand-in when it cannot count. */
  private readonly local: Readonly<Record<Kind, GuardCountTable>>;
  private readonly blocks: Readonly<Record<Kind, BlockTable>>;
  /**
   * IPv6 network lengths other than this guard's under which blocks it took over name their
   * address (an `ipv6PrefixLength` reload), each with the latest end among them: the gate checks
   * an address under each until then, so such a block holds exactly the network it blocked.
   */
  private readonly otherPrefixes = new Map<number, number>();
  private running = false;

  /** `storeName` says where failures are counted (`memory`, or the shared store's settings): part of the key. */
  constructor(private readonly spec: GuardSpec, storeName: string, private readonly clock: Clock = systemClock) {
    this.key = BruteForceGuard.keyOf(spec, storeName);
    this.shape = { algorithm: 'fixed-window', limit: spec.maxFailures, windowMs: spec.windowMs, burst: 1 };
    this.local = spec.counts;
    this.blocks = { ip: new BlockTable(spec.maxEntries, clock), credential: new BlockTable(spec.maxEntries, clock) };
  }

  /** The resource key of a guard with these settings counting in `storeName`. */
  static keyOf(spec: Pick<GuardSpec, 'maxFailures' | 'windowMs' | 'blockMs' | 'byIp' | 'byCredential' | 'maxEntries' | 'ipv6PrefixBits'>, storeName: string): string {
    return `brute-force guard ${JSON.stringify([spec.maxFailures, spec.windowMs, spec.blockMs, spec.byIp, spec.byCredential, spec.maxEntries, spec.ipv6PrefixBits, storeName])}`;
  }

  /** Takes over the blocks in force (of the guard a reload replaces, and in a worker of the host) before it decides anything. */
  async start(context: ResourceContext): Promise<void> {
    this.logger = context.logger;
    await this.spec.blocks.join(this);
    this.running = true;
  }

  stop(): Promise<void> {
    return this.close();
  }

  /** Started and not yet stopped: a guard a reload replaced runs until the requests that use it are done. */
  get isRunning(): boolean {
    return this.running;
  }

  /** Bound of each of its tables. */
  get maxEntries(): number {
    return this.spec.maxEntries;
  }

  private now(): number {
    return this.clock.now();
  }

  /**
   * A block this guard did not start (another worker's, the replaced guard's, or one the primary
   * kept): applied as its own, ending when it ends but at most `blockMs` from now.
   */
  receive(kind: Kind, source: string | null, untilMs: number): void {
    const until = Math.min(untilMs, this.now() + this.spec.blockMs);
    if (!(until > this.now())) return;
    if (source === null) {
      this.blocks[kind].blockOverflow(until);
      return;
    }
    if (kind === 'ip') {
      const bits = prefixOf(source);
      if (bits !== null && bits !== this.spec.ipv6PrefixBits) this.otherPrefixes.set(bits, Math.max(this.otherPrefixes.get(bits) ?? 0, until));
    }
    // A full table raises the overflow block instead.
    this.blocks[kind].block(source, until);
  }

  /** Applies blocks in the order they end, so the tables reclaim ended ones from the front. */
  receiveAll(blocks: readonly GuardBlock[]): void {
    for (const b of [...blocks].sort((x, y) => x.untilMs - y.untilMs)) this.receive(b.kind, b.source, b.untilMs);
  }

  /** Every block in force in this guard, its overflow blocks included. */
  blocksInForce(): GuardBlock[] {
    return (['ip', 'credential'] as const).flatMap((kind) => this.blocks[kind].inForce().map(([source, untilMs]) => ({ kind, source, untilMs })));
  }

  /**
   * The stage before authentication: a blocked address gets 429 whatever it sends. Nothing blocked
   * (the usual case) costs one check and builds no key.
   */
  gate(): Stage {
    return {
      name: 'brute-force-gate',
      run: (ex): Denial | undefined => {
        if (!this.spec.byIp || this.blocks.ip.empty) return undefined;
        const address = ipKey(ex.clientIp, this.spec.ipv6PrefixBits);
        const blocked = Math.max(this.blockedFor('ip', address), this.otherPrefixes.size === 0 ? 0 : this.blockedUnderOtherPrefixes(ex.clientIp, address));
        if (blocked > 0) return this.refuse(ex, blocked, `address ${ex.clientIp} blocked after repeated failed authentications`);
        const overflow = this.overflowFor('ip', address);
        if (overflow > 0) return this.refuse(ex, overflow, `address ${ex.clientIp} refused: the brute-force guard's tables are full and sources without an entry of their own are blocked together`);
        return undefined;
      },
      explain: () => ({ result: undefined, note: `would refuse the address if blocked after ${this.spec.maxFailures} failed authentications` }),
    };
  }

  /** Milliseconds a block taken over under another IPv6 network length lasts for the address, or 0. */
  private blockedUnderOtherPrefixes(clientIp: string, address: string): number {
    let left = 0;
    const now = this.now();
    for (const [bits, until] of this.otherPrefixes) {
      if (until <= now) { this.otherPrefixes.delete(bits); continue; }
      const key = ipKey(clientIp, bits);
      if (key !== address) left = Math.max(left, this.blockedFor('ip', key));
    }
    return left;
  }

  /**
   * Called by the authenticate stage when it refuses a credential: counts a possible guess against
   * its address and credential id, blocking them past the threshold, and returns the denial to
   * send (429 instead of 401 for a credential id already blocked).
   */
  failed(ex: Exchange, denial: Denial): Denial | Promise<Denial> {
    return this.after(ex, denial);
  }

  private after(ex: Exchange, denial: Denial): Denial | Promise<Denial> {
    if (!countsAsFailure(ex)) return denial;
    const sources: [Kind, string][] = [];
    if (this.spec.byIp) sources.push(['ip', ipKey(ex.clientIp, this.spec.ipv6PrefixBits)]);
    const credential = this.spec.byCredential ? ex.presentedKeyId : null;
    let credentialBlocked = 0;
    if (credential !== null) {
      credentialBlocked = Math.max(this.blockedFor('credential', credential), this.overflowFor('credential', credential));
      if (credentialBlocked === 0) sources.push(['credential', credential]);
    }
    const conclude = (counts: readonly Count[]): Denial => {
      const result = this.conclude(ex, denial, sources, counts);
      if (credentialBlocked === 0) return result;
      return this.refuse(ex, credentialBlocked, `credential ${credential ?? ''} blocked after repeated failed authentications; ${denial.reason}`);
    };
    const results = sources.map(([kind, value]) => this.count(kind, value));
    return results.some((c) => c instanceof Promise) ? Promise.all(results.map((c) => Promise.resolve(c))).then(conclude) : conclude(results as Count[]);
  }

  /**
   * Counts one failure of a source. A shared store that cannot count hands over to the in-process
   * table (the guard is not an access decision: failing to count must not refuse anyone).
   */
  private count(kind: Kind, value: string): Count | Promise<Count> {
    const shared = this.spec.shared?.[kind];
    if (shared === undefined) return this.countLocally(kind, value);
    try {
      const verdict = shared.hit(this.shape, `${GUARD_NAME}\0${kind}\0${value}`);
      return verdict instanceof Promise ? verdict.then(counted, () => this.countLocally(kind, value)) : counted(verdict);
    } catch {
      return this.countLocally(kind, value);
    }
  }

  private countLocally(kind: Kind, value: string): Count {
    return counted(this.local[kind].hit(this.shape, value));
  }

  private conclude(ex: Exchange, denial: Denial, sources: readonly [Kind, string][], counts: readonly Count[]): Denial {
    const until = this.now() + this.spec.blockMs;
    const started: string[] = [];
    sources.forEach(([kind, value], i) => {
      const c = counts[i];
      if (c?.crossed !== true) return;
      if (!c.overflow && this.blocks[kind].block(value, until)) {
        started.push(`${kind} ${value}`);
        this.spec.blocks.started(this, kind, value, until);
      } else {
        this.blocks[kind].blockOverflow(until);
        started.push(`${kind} ${value} (with every ${kind} the guard has no room for)`);
        this.spec.blocks.started(this, kind, null, until);
      }
    });
    if (started.length === 0) return denial;
    ex.limitName = GUARD_NAME;
    const what = started.join(', ');
    this.logger?.warn({ requestId: ex.requestId, ...(ex.trace === null ? {} : { traceId: ex.trace.traceId }), blocked: what, forMs: this.spec.blockMs }, 'brute-force guard: source blocked');
    return { ...denial, reason: `${denial.reason}; ${what} blocked for ${this.spec.blockMs} ms after ${this.spec.maxFailures} failures` };
  }

  /** Milliseconds the source's own block lasts, or 0. */
  private blockedFor(kind: Kind, value: string): number {
    return this.blocks[kind].leftFor(value);
  }

  /** Milliseconds the overflow block lasts for a source without an entry of its own, or 0. */
  private overflowFor(kind: Kind, value: string): number {
    const left = this.blocks[kind].overflowLeft();
    return left > 0 && !this.local[kind].has(value) ? left : 0;
  }

  private refuse(ex: Exchange, leftMs: number, reason: string): Denial {
    ex.limitName = GUARD_NAME;
    return deny('too_many_failures', reason, { 'retry-after': String(Math.ceil(leftMs / 1000)) });
  }

  /** Stops taking blocks from the others (its counts and the blocks' resource outlive it while a config uses them). */
  close(): Promise<void> {
    this.spec.blocks.leave(this);
    this.running = false;
    return Promise.resolve();
  }
}
