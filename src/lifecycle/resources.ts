import type { Clock } from '../lib/clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { HostServices } from './host-services.js';

/**
 * Something that lives across config reloads and holds the outside world: a remote key set, an
 * API key store, a limit or quota store, an upstream pool, and later sessions, caches and TLS
 * contexts. Constructing one opens nothing (no socket, file handle or timer), so compiling a
 * config is pure; `start` opens it, `stop` releases it.
 *
 * Two resources with the same `key` are the same resource: a reload whose config builds an equal
 * definition reuses the running one (warm connections, fetched keys, counts) instead of a new one.
 */
export interface Resource {
  /** Identity across reloads: the kind and every setting that shapes the resource. */
  readonly key: string;
  /** Opens the resource. Called once, before the first config that uses it goes live. */
  start(context: ResourceContext): Promise<void>;
  /** Releases the resource once no request can reach it any more. Called once, after start. */
  stop(): Promise<void>;
}

/** What a resource may use while it runs. */
export interface ResourceContext {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** In a worker of `start --workers`: what the host's primary does for every worker (absent in one process). */
  readonly host?: HostServices;
}

/** Live resources by key, for a compile that wants to reuse the running instance of an equal definition. */
export interface ResourceCatalog {
  find<R extends Resource>(key: string, kind: abstract new (...args: never[]) => R): R | undefined;
}

/**
 * How compile obtains a resource: the one with this key already used by the config being
 * compiled, else the running one of an equal definition, else `create()`.
 */
export type UseResource = <R extends Resource>(key: string, kind: abstract new (...args: never[]) => R, create: () => R) => R;

/** An empty catalog: every resource a compile asks for is new (and, unstarted, opens nothing). */
export const NO_RESOURCES: ResourceCatalog = Object.freeze({ find: () => undefined });

/**
 * A generation of the running gateway: one compiled config and the resources it uses. Requests
 * enter the generation that is current when they start and leave it when their audit record is
 * written; a generation that has been replaced retires its resources once its last request left.
 */
export class Generation {
  private inFlight = 0;
  private replaced = false;
  private onIdle: (() => void) | null = null;

  constructor(readonly resources: ReadonlySet<Resource>) {}

  enter(): void {
    this.inFlight++;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.replaced) this.onIdle?.();
  }

  /** Resolves once the generation is replaced and no request is left in it. */
  drained(): Promise<void> {
    this.replaced = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((done) => { this.onIdle = done; });
  }
}

/**
 * The one lifecycle of long-lived resources: start the new, swap, retire the old after the
 * requests that use it are done. Every kind of resource goes through it in the same order.
 */
export class ResourceSet implements ResourceCatalog {
  private readonly live = new Map<string, Resource>();
  private queue: Promise<void> = Promise.resolve();
  /** Generations not yet retired, and which resources each holds. */
  private readonly generations = new Set<Generation>();
  private current: Generation | null = null;

  constructor(private readonly context: ResourceContext) {}

  get metrics(): Metrics {
    return this.context.metrics;
  }

  find<R extends Resource>(key: string, kind: abstract new (...args: never[]) => R): R | undefined {
    const found = this.live.get(key);
    return found instanceof kind ? found : undefined;
  }

  /**
   * Starts every resource of a config that is about to go live and returns its generation; the
   * caller swaps it in, then calls `retire` for the generation it replaced. A resource that fails
   * to start is stopped again with the others started here, and the error is thrown: the running
   * generation is untouched.
   */
  async prepare(resources: Iterable<Resource>): Promise<Generation> {
    const unique = new Map<string, Resource>();
    for (const r of resources) unique.set(r.key, this.live.get(r.key) ?? unique.get(r.key) ?? r);
    // Registered before the first start, so a retirement finishing meanwhile sees these as in use.
    const generation = new Generation(new Set(unique.values()));
    this.generations.add(generation);
    const started: Resource[] = [];
    try {
      for (const r of unique.values()) {
        if (this.live.get(r.key) === r) continue;
        await r.start(this.context);
        started.push(r);
        this.live.set(r.key, r);
      }
    } catch (err) {
      this.generations.delete(generation);
      for (const r of started) { this.live.delete(r.key); await this.stopQuietly(r); }
      throw err;
    }
    this.current = generation;
    return generation;
  }

  /**
   * Runs `fn` alone among the set's changes: a compile that looks resources up, the start of a new
   * generation and the stopping of a retired one never interleave, so a resource a compile chose
   * to reuse is not stopped before its generation holds it.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.then(() => undefined, () => undefined);
    return run;
  }

  /**
   * Stops the resources of a replaced generation that no newer generation uses, once its last
   * request has left it.
   */
  async retire(old: Generation): Promise<void> {
    await old.drained();
    await this.exclusive(async () => {
      this.generations.delete(old);
      const stillUsed = new Set<Resource>();
      for (const g of this.generations) for (const r of g.resources) stillUsed.add(r);
      for (const r of old.resources) {
        if (stillUsed.has(r) || this.live.get(r.key) !== r) continue;
        this.live.delete(r.key);
        await this.stopQuietly(r);
      }
    });
  }

  /** Stops every live resource (shutdown, after the listeners drained), after any stop already under way. */
  stopAll(): Promise<void> {
    return this.exclusive(async () => {
      const all = [...this.live.values()];
      this.live.clear();
      this.generations.clear();
      this.current = null;
      await Promise.all(all.map((r) => this.stopQuietly(r)));
    });
  }

  /** The generation requests should enter now. */
  get active(): Generation | null {
    return this.current;
  }

  private async stopQuietly(r: Resource): Promise<void> {
    try { await r.stop(); } catch (err) { this.context.logger.warn({ err, resource: redacted(r.key) }, 'stopping a retired resource failed'); }
  }
}

/** A resource key for logs: a key may hold a store URL, whose userinfo and `password` query parameter are removed. */
export function redacted(key: string): string {
  // ioredis also reads a password from the URL's query (`?password=…`).
  return key.replace(/\/\/[^/@\s"]*@/g, '//[redacted]@').replace(/([?&]password=)[^&#\s"]*/gi, '$1[redacted]');
}
