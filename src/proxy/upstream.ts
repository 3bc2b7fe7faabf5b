import { Pool } from 'undici';
import type { UpstreamSpec } from '../config/compile.js';
import { Admission } from './admission.js';

/**
 * A named upstream at run time: one undici Pool per target, and the admission that decides which
 * pool a request may use and how long it may wait for one (see Admission).
 */
export class Upstream {
  private readonly pools: readonly Pool[];
  readonly admission: Admission;

  constructor(readonly spec: UpstreamSpec) {
    this.admission = new Admission(spec.targets.length, spec.connections, spec.maxQueued, spec.queueTimeoutMs);
    this.pools = spec.targets.map((origin) => new Pool(origin, {
      connections: spec.connections,
      connect: { timeout: spec.connectTimeoutMs },
      headersTimeout: spec.timeoutMs,
      bodyTimeout: spec.bodyTimeoutMs,
      keepAliveTimeout: spec.keepAliveTimeoutMs,
      keepAliveMaxTimeout: Math.max(spec.keepAliveTimeoutMs, 600_000),
      // Bound what an upstream can make the gateway hold in memory for one response's headers.
      maxHeaderSize: 64 * 1024,
    }));
  }

  /** The pool of the target an admission slot belongs to. */
  pool(slot: number): Pool {
    return this.pools[slot] as Pool;
  }

  /**
   * Waits for in-flight requests and for those still queued (each at most queueTimeoutMs) to
   * finish, then closes the connections: a request admitted on the old config is still served.
   */
  async close(): Promise<void> {
    await this.admission.drained();
    await Promise.all(this.pools.map((p) => p.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.destroy()));
  }
}

/**
 * Upstreams by definition across config reloads: an upstream whose settings did not change keeps
 * its pools and warm connections; changed or removed ones are closed once their requests finish.
 */
export class UpstreamSet {
  private byKey = new Map<string, Upstream>();

  /** Returns the upstreams for a new config (by name) and the ones it no longer uses. */
  activate(specs: ReadonlyMap<string, UpstreamSpec>): { current: Map<string, Upstream>; retired: Upstream[] } {
    const nextByKey = new Map<string, Upstream>();
    const current = new Map<string, Upstream>();
    for (const [name, spec] of specs) {
      const upstream = nextByKey.get(spec.key) ?? this.byKey.get(spec.key) ?? new Upstream(spec);
      nextByKey.set(spec.key, upstream);
      current.set(name, upstream);
    }
    const retired = [...this.byKey.values()].filter((u) => !nextByKey.has(u.spec.key));
    this.byKey = nextByKey;
    return { current, retired };
  }

  all(): Upstream[] {
    return [...this.byKey.values()];
  }
}
