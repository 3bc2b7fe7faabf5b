import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import type { Metrics } from '../../observability/metrics.js';
import { MemoryRevocations } from './memory-revocations.js';

/**
 * The revocation list of a single gateway process without oauth.redis: a MemoryRevocations that
 * outlives reloads (one per process, whatever the config: a reload never forgets a revocation).
 * Its size bound is the one it started with; a changed `oauth.revocations.maxEntries` applies on
 * restart.
 */
export class LocalRevocations extends MemoryRevocations implements Resource {
  static readonly KEY = 'revocations in this process';
  readonly key = LocalRevocations.KEY;
  private metrics: Metrics | null = null;

  override revoke(digest: string, untilMs: number): Promise<void> {
    this.metrics?.revocations.inc({ source: 'local' });
    return super.revoke(digest, untilMs);
  }

  start(context: ResourceContext): Promise<void> {
    this.metrics = context.metrics;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
