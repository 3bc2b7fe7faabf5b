import type { Resource } from '../../lifecycle/resources.js';
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

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
