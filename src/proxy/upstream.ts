import { Pool, type Dispatcher } from 'undici';
import type { UpstreamSpec } from './upstream-spec.js';
import { fixedServerName, serverNameOf, tlsConnector } from './upstream-tls.js';
import { Admission } from './admission.js';
import type { Resource } from '../lifecycle/resources.js';

/**
 * A named upstream at run time: one undici Pool per target, and the admission that decides which
 * pool a request may use and how long it may wait for one (see Admission). A resource: built inert
 * by compile, its pools opened on start and closed once no request can use them any more.
 */
export class Upstream implements Resource {
  readonly key: string;
  private pools: readonly Pool[] = [];
  /** What requests are dispatched on, per target: the pool itself, or a wrapper of it (fixedServerName). */
  private dispatchers: readonly Dispatcher[] = [];
  readonly admission: Admission;
  private isClosed = false;

  constructor(readonly spec: UpstreamSpec) {
    this.key = Upstream.keyOf(spec);
    this.admission = new Admission(spec.targets.length, spec.connections, spec.maxQueued, spec.queueTimeoutMs);
  }

  static keyOf(spec: UpstreamSpec): string {
    return `upstream ${spec.key}`;
  }

  start(): Promise<void> {
    const spec = this.spec;
    const tls = spec.tls;
    this.pools = spec.targets.map((origin) => new Pool(origin, {
      connections: spec.connections,
      connect: tls === null ? { timeout: spec.connectTimeoutMs } : tlsConnector(tls, origin, spec.connectTimeoutMs),
      headersTimeout: spec.timeoutMs,
      bodyTimeout: spec.bodyTimeoutMs,
      keepAliveTimeout: spec.keepAliveTimeoutMs,
      keepAliveMaxTimeout: Math.max(spec.keepAliveTimeoutMs, 600_000),
      // Bound what an upstream can make the gateway hold in memory for one response's headers.
      maxHeaderSize: 64 * 1024,
    }));
    this.dispatchers = tls === null || !spec.preserveHost ? this.pools
      : this.pools.map((pool, i) => {
        const origin = spec.targets[i] as string;
        return fixedServerName(pool, serverNameOf(tls, origin) ?? new URL(origin).hostname);
      });
    return Promise.resolve();
  }

  /** Whether the pools are closed (the upstream was retired or the gateway stopped). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** What dispatches to the target an admission slot belongs to. */
  pool(slot: number): Dispatcher {
    return this.dispatchers[slot] as Dispatcher;
  }

  /**
   * Waits for in-flight requests and for those still queued (each at most queueTimeoutMs) to
   * finish, then closes the connections: a request admitted on the old config is still served.
   */
  async stop(): Promise<void> {
    if (this.isClosed) return;
    await this.admission.drained();
    if (this.isClosed) return;
    this.isClosed = true;
    await Promise.all(this.pools.map((p) => p.close()));
  }

  /** Closes every connection now (shutdown, after the drain timeout). */
  async destroy(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await Promise.all(this.pools.map((p) => p.destroy()));
  }
}
