import type { Clock } from '../../lib/clock.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import type { Metrics } from '../../observability/metrics.js';
import { MemoryRevocations } from './memory-revocations.js';
import type { RevocationList } from './revocations.js';

/** How soon a worker asks the primary again for the host's revocations after it did not answer. */
export const RELOAD_AFTER_MS = 500;

/** A revocation on the wire between a worker and its primary: digest, end (epoch ms). */
export type WireRevocation = readonly [digest: string, untilMs: number];

/** How a worker shares revocations with the other workers of its host, through the primary (HostStateClient). */
export interface HostRevocationChannel {
  /** Tells the primary (which keeps the host's list, room for `maxEntries`) and through it every other worker. */
  publishRevocation(digest: string, untilMs: number, maxEntries: number): void;
  /** Calls `apply` with every revocation another worker (or the primary's admin API) made; returns the unsubscribe. */
  subscribeRevocations(apply: (digest: string, untilMs: number) => void): () => void;
  /** The revocations in force the primary keeps; null when it did not answer in time. */
  revocationsInForce(maxEntries: number): Promise<readonly WireRevocation[] | null>;
}

/**
 * The revocation list of a worker of `start --workers` without oauth.redis: the host's list, kept
 * by the primary. A revocation made in a worker (its webhook) is refused there at once and passed
 * on through the primary to every other worker; a worker that starts (a replacement) loads the
 * revocations in force from the primary before it serves. Requests read the worker's memory copy.
 * Until the primary has answered, the worker knows none of the host's revocations: the list is
 * unavailable (bearer tokens are refused, 503) and the worker keeps asking.
 */
export class HostRevocations implements RevocationList, Resource {
  static readonly KEY = 'revocations of the host';
  readonly key = HostRevocations.KEY;
  private readonly memory: MemoryRevocations;
  private unsubscribe: (() => void) | null = null;
  private metrics: Metrics | null = null;
  /** False from start until the primary has handed over the revocations in force. */
  private loaded = true;
  private reload: NodeJS.Timeout | null = null;

  constructor(private readonly channel: HostRevocationChannel, private readonly maxEntries: number, clock: Clock) {
    this.memory = new MemoryRevocations(maxEntries, clock);
  }

  get empty(): boolean {
    return this.loaded && this.memory.empty;
  }

  get unavailable(): string | null {
    return this.loaded ? null : 'the host\'s revocations are not loaded yet: the primary did not say which tokens were revoked';
  }

  isRevoked(digest: string): boolean {
    return this.memory.isRevoked(digest);
  }

  revoke(digest: string, untilMs: number): Promise<void> {
    this.memory.add(digest, untilMs);
    this.metrics?.revocations.inc({ source: 'local' });
    this.channel.publishRevocation(digest, untilMs, this.maxEntries);
    return Promise.resolve();
  }

  onRevoked(listener: (digest: string) => void): () => void {
    return this.memory.onRevoked(listener);
  }

  get size(): number {
    return this.memory.size;
  }

  inForce(): [digest: string, untilMs: number][] {
    return this.memory.inForce();
  }

  carryOver(digest: string, untilMs: number): void {
    this.memory.carryOver(digest, untilMs);
  }

  async start(context: ResourceContext): Promise<void> {
    this.metrics = context.metrics;
    this.unsubscribe = this.channel.subscribeRevocations((digest, untilMs) => {
      this.metrics?.revocations.inc({ source: 'host' });
      this.memory.add(digest, untilMs);
    });
    this.loaded = false;
    if (!await this.load()) context.logger.error('revocations: the primary did not say which tokens the host revoked; bearer tokens are refused until it does');
  }

  /** Asks the primary for the revocations in force; asks again after RELOAD_AFTER_MS while it does not answer. */
  private async load(): Promise<boolean> {
    const inForce = await this.channel.revocationsInForce(this.maxEntries);
    if (this.unsubscribe === null) return false;
    if (inForce === null) {
      this.reload = setTimeout(() => { this.reload = null; void this.load(); }, RELOAD_AFTER_MS);
      this.reload.unref();
      return false;
    }
    for (const [digest, untilMs] of inForce) this.memory.add(digest, untilMs);
    this.loaded = true;
    return true;
  }

  stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.reload !== null) clearTimeout(this.reload);
    this.reload = null;
    return Promise.resolve();
  }
}
