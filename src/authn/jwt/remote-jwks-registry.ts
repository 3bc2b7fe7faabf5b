import { RemoteJwks, type JwksReporting, type RemoteJwksOptions } from './remote-jwks.js';

/**
 * The remote key sets of the running gateway, shared across config reloads: a reload that keeps
 * an issuer's JWKS settings keeps its fetched keys and refresh timer instead of starting cold.
 */
export class RemoteJwksRegistry {
  private readonly sets = new Map<string, RemoteJwks>();

  /** The set for these options: the existing one when an identical one exists. */
  get(options: RemoteJwksOptions): RemoteJwks {
    const key = JSON.stringify(options);
    let set = this.sets.get(key);
    if (set === undefined) {
      set = new RemoteJwks(options);
      this.sets.set(key, set);
    }
    return set;
  }

  /**
   * Starts the sets a newly active config uses (waiting for each first fetch, bounded by its
   * timeout) and stops the ones it no longer uses.
   */
  async activate(inUse: readonly RemoteJwks[], reporting: JwksReporting): Promise<void> {
    const keep = new Set(inUse);
    for (const [key, set] of this.sets) {
      if (!keep.has(set)) { set.stop(); this.sets.delete(key); }
    }
    await Promise.all(inUse.map((set) => set.start(reporting)));
  }

  stopAll(): void {
    for (const set of this.sets.values()) set.stop();
    this.sets.clear();
  }
}
