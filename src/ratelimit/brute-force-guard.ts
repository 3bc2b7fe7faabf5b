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
  /** Where failures are counted across instances (Redis) or across a host's workers (the primary); null: in this process. */
  readonly shared: LimitStore | null;
  /** Where blocks are shared with the other workers of this host; null: this process only. */
  readonly blocks: BlockChannel | null;
  /** Bound of each of the guard's own tables: failure counts and blocks, per source kind. */
  readonly maxEntries: number;
  readonly ipv6PrefixBits: number;
}

/** The guard's name in audit records and rate-limit figures. */
export const GUARD_NAME = 'bruteForce';

/** What the guard counts and blocks: a client address or a presented credential id. */
export type GuardSourceKind = 'ip' | 'credential';
type Kind = GuardSourceKind;

/**
 * Blocks shared between the guards of one host's workers (through the primary), each guard named
 * by its resource key. A block a worker starts is published; the others apply it to their own
 * block tables when it arrives.
 */
export interface BlockChannel {
  /** Tells the other workers `source` of `kind` is blocked until `untilMs` (null: the overflow block). */
  publish(guard: string, kind: GuardSourceKind, source: string | null, untilMs: number): void;
  /** Calls `apply` with every block another worker publishes for `guard`; returns the unsubscribe. */
  subscribe(guard: string, apply: (kind: GuardSourceKind, source: string | null, untilMs: number) => void): () => void;
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
 * one worker starts reaches the others one IPC hop later.
 *
 * The guard's state is its own, per source kind: failure counts (in process, or in the shared
 * store) and blocks, each bounded by `maxEntries` and never emptied by pressure. A flood of new
 * addresses cannot reset a count or lift a block before it ends. Sources the tables have no room
 * for are one source, "overflow": their failures count together, and once that count crosses the
 * threshold (or a block finds the block table full) every source without an entry of its own is
 * refused until the overflow block ends. That is fail closed: it may refuse newcomers during a flood
 * big enough to fill the tables, but never forgets an attacker.
 *
 * A resource: its tables live across reloads that keep its settings (`key`), so counts and blocks
 * outlive a reload. Constructing it arms nothing; `start` arms the tables' sweeps, `stop` ends them.
 */
export class BruteForceGuard implements Resource {
  readonly key: string;
  private readonly shape: LimitShape;
  private logger: Logger | null = null;
  /** Failure counts in this process: the store when `shared` is null, the stand-in when it cannot count. */
  private readonly local: Readonly<Record<Kind, MemoryLimitStore>>;
  private readonly blocks: Readonly<Record<Kind, BlockTable>>;
  private unsubscribe: (() => void) | null = null;
  private running = false;

  /** `storeName` says where failures are counted (`memory`, or the shared store's settings): part of the key. */
  constructor(private readonly spec: GuardSpec, storeName: string, private readonly clock: Clock = systemClock) {
    this.key = BruteForceGuard.keyOf(spec, storeName);
    this.shape = { algorithm: 'fixed-window', limit: spec.maxFailures, windowMs: spec.windowMs, burst: 1 };
    const full = (kind: Kind) => (maxEntries: number): void => {
      this.logger?.error({ kind, maxEntries }, 'brute-force guard: failure table full; sources without an entry are counted together');
    };
    this.local = {
      ip: new MemoryLimitStore(spec.maxEntries, clock, full('ip'), 'bruteForce:ip'),
      credential: new MemoryLimitStore(spec.maxEntries, clock, full('credential'), 'bruteForce:credential'),
    };
    this.blocks = { ip: new BlockTable(spec.maxEntries, clock), credential: new BlockTable(spec.maxEntries, clock) };
  }

  /** The resource key of a guard with these settings counting in `storeName`. */
  static keyOf(spec: GuardSpec, storeName: string): string {
    return `brute-force guard ${JSON.stringify([spec.maxFailures, spec.windowMs, spec.blockMs, spec.byIp, spec.byCredential, spec.maxEntries, spec.ipv6PrefixBits, storeName])}`;
  }

  async start(context: ResourceContext): Promise<void> {
    this.logger = context.logger;
    this.unsubscribe = this.spec.blocks?.subscribe(this.key, (kind, source, untilMs) => this.applyBlock(kind, source, untilMs)) ?? null;
    await Promise.all([this.local.ip.start(context), this.local.credential.start(context)]);
    this.running = true;
  }

  /** A block another worker started: the same as one started here, without announcing it again. */
  private applyBlock(kind: Kind, source: string | null, untilMs: number): void {
    if (source === null || !this.blocks[kind].block(source, untilMs)) this.blocks[kind].blockOverflow(untilMs);
  }

  stop(): Promise<void> {
    return this.close();
  }

  /** Started and not yet stopped: a guard a reload replaced runs until the requests that use it are done. */
  get isRunning(): boolean {
    return this.running;
  }

  private now(): number {
    return this.clock.now();
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
        const blocked = this.blockedFor('ip', address);
        if (blocked > 0) return this.refuse(ex, blocked, `address ${ex.clientIp} blocked after repeated failed authentications`);
        const overflow = this.overflowFor('ip', address);
        if (overflow > 0) return this.refuse(ex, overflow, `address ${ex.clientIp} refused: the brute-force guard's tables are full and sources without an entry of their own are blocked together`);
        return undefined;
      },
      explain: () => ({ result: undefined, note: `would refuse the address if blocked after ${this.spec.maxFailures} failed authentications` }),
    };
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
    const shared = this.spec.shared;
    if (shared === null) return this.countLocally(kind, value);
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
        this.spec.blocks?.publish(this.key, kind, value, until);
      } else {
        this.blocks[kind].blockOverflow(until);
        started.push(`${kind} ${value} (with every ${kind} the guard has no room for)`);
        this.spec.blocks?.publish(this.key, kind, null, until);
      }
    });
    if (started.length === 0) return denial;
    ex.limitName = GUARD_NAME;
    const what = started.join(', ');
    this.logger?.warn({ requestId: ex.requestId, blocked: what, forMs: this.spec.blockMs }, 'brute-force guard: source blocked');
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

  /** Stops the tables' sweep timers and listening for other workers' blocks. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.running = false;
    await Promise.all([this.local.ip.close(), this.local.credential.close()]);
  }
}
