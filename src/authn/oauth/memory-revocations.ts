import type { Clock } from '../../lib/clock.js';
import type { RevocationList } from './revocations.js';

/**
 * Revocations held in this process. Bounded: at `maxEntries`, entries already past their
 * `untilMs` are dropped first, then the one that ends soonest (its token expires first anyway).
 */
export class MemoryRevocations implements RevocationList {
  private readonly until = new Map<string, number>();
  private readonly listeners = new Set<(digest: string) => void>();

  constructor(private readonly maxEntries: number, private readonly clock: Clock) {}

  get empty(): boolean {
    return this.until.size === 0;
  }

  /** A list in this process is always current. */
  get unavailable(): null {
    return null;
  }

  isRevoked(digest: string): boolean {
    const until = this.until.get(digest);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.until.delete(digest);
    return false;
  }

  revoke(digest: string, untilMs: number): Promise<void> {
    this.add(digest, untilMs);
    return Promise.resolve();
  }

  /** Records a revocation (made here, or learnt from another gateway) and tells the listeners. */
  add(digest: string, untilMs: number): void {
    if (!this.until.has(digest) && this.until.size >= this.maxEntries) this.evict();
    this.until.set(digest, Math.max(untilMs, this.until.get(digest) ?? 0));
    for (const listener of this.listeners) listener(digest);
  }

  onRevoked(listener: (digest: string) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  get size(): number {
    return this.until.size;
  }

  carryOver(digest: string, untilMs: number): void {
    if (!this.until.has(digest) && this.until.size >= this.maxEntries) this.evict();
    this.until.set(digest, Math.max(untilMs, this.until.get(digest) ?? 0));
  }

  /** The revocations in force: digest and end. */
  inForce(): [digest: string, untilMs: number][] {
    const now = this.clock.now();
    return [...this.until].filter(([, until]) => until > now);
  }

  private evict(): void {
    const now = this.clock.now();
    let soonest: string | null = null;
    let soonestUntil = Infinity;
    for (const [digest, until] of this.until) {
      if (until <= now) { this.until.delete(digest); return; }
      if (until < soonestUntil) { soonest = digest; soonestUntil = until; }
    }
    if (soonest !== null) this.until.delete(soonest);
  }
}
