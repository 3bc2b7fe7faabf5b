import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Resource, ResourceContext } from '../lifecycle/resources.js';
import { decide, type LimitShape, type LimitState, type Verdict } from './algorithms.js';
import type { Period } from './calendar.js';
import type { QuotaStore, QuotaUse } from './quota-store.js';
import { DECIDE_SCRIPT, QUOTA_SCRIPT } from './redis-script.js';
import { LimitStoreUnavailableError, type LimitStore } from './store.js';

export interface RedisStoreSettings {
  /** redis:// or rediss:// URL. */
  readonly url: string;
  /** Prefix of every key the gateway writes. */
  readonly keyPrefix: string;
  /** Bound on each decision's round trip; past it the decision fails (and the limit's policy applies). */
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Consecutive failures that open the circuit. */
  readonly breakerFailures: number;
  /** How long an open circuit fails decisions at once before one probe is let through. */
  readonly breakerOpenMs: number;
}

interface Queued {
  readonly sha: string;
  readonly redisKey: string;
  readonly args: (string | number)[];
  readonly resolve: (reply: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** Reports the store going down or coming back (logs, metrics). */
export type StoreReport = (up: boolean, detail: string) => void;

/** Limit keys whose Redis key names are remembered. */
const KEY_CACHE_ENTRIES = 10_000;
const DECIDE_SHA = createHash('sha1').update(DECIDE_SCRIPT).digest('hex');
const QUOTA_SHA = createHash('sha1').update(QUOTA_SCRIPT).digest('hex');

/**
 * Limit state and quota counts in Redis, shared by every gateway instance: each decision is one
 * EVALSHA of the decide (or quota) script (read, apply, write, expire — atomic in Redis, so N instances hitting one limit
 * admit exactly what one would). The gateway never waits on Redis for long: commands are not
 * queued while disconnected, each has a timeout, and after `breakerFailures` consecutive failures
 * the circuit opens and decisions fail at once until a probe succeeds (or the connection is ready
 * again). Keys are `<prefix>:{<digest>}`: one key per decision, so Redis Cluster routes each
 * script by its key's hash slot, and caller-controlled text (a header value) never reaches a key
 * name.
 */
export class RedisLimitStore implements LimitStore, QuotaStore, Resource {
  readonly kind = 'redis';
  readonly key: string;
  /** Created on start: constructing the store opens nothing. */
  private client: Redis | null = null;
  private failures = 0;
  private openUntil = 0;
  private probing = false;
  /** Last reported state; null until the first connection attempt settles. */
  private up: boolean | null = null;
  private readonly keys = new Map<string, string>();
  /** Decisions waiting for this loop iteration's pipeline. */
  private queue: Queued[] = [];
  /** The circuit breaker's clock (the gateway's, once started). */
  private clock: Clock = systemClock;

  constructor(
    private readonly settings: RedisStoreSettings,
    /** Told when the store goes down or comes back; by default `start` logs it and sets the store-up metric. */
    private report: StoreReport | null = null,
    /**
     * Test clock for the decisions; null (the default) makes the script read Redis's own clock, one
     * clock for every instance. A gateway running on an injected clock passes that clock's `now`.
     */
    private readonly scriptClock: (() => number) | null = null,
  ) {
    this.key = RedisLimitStore.keyOf(settings);
  }

  /** The resource key of a store with these settings: equal settings share one connection. */
  static keyOf(settings: RedisStoreSettings): string {
    return `redis limit store ${JSON.stringify(settings)}`;
  }

  /** Connects (a failure is not fatal: decisions follow the limits' policies meanwhile) and reports through the context. */
  async start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    if (this.report === null) {
      const where = redactedUrl(this.settings.url);
      const { logger, metrics } = context;
      this.report = (up, detail) => {
        if (up) logger.info({ redis: where }, 'rate-limit store reachable');
        else logger.error({ redis: where, detail }, 'rate-limit store unavailable: limits follow their onStoreError policy');
        metrics.rateLimitStoreUp.set({ store: where }, up ? 1 : 0);
      };
    }
    await this.connect();
  }

  stop(): Promise<void> {
    return this.close();
  }

  /** True while connected. */
  get ready(): boolean {
    return this.client?.status === 'ready';
  }

  /** Creates the client and connects; a failure is not fatal (the gateway starts, decisions follow the limits' policies). */
  async connect(): Promise<void> {
    const client = this.client ?? this.createClient();
    try {
      await client.connect();
    } catch (err) {
      this.mark(false, (err as Error).message);
    }
  }

  private createClient(): Redis {
    const settings = this.settings;
    const client = new Redis(settings.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: settings.timeoutMs,
      // Decisions issued in the same event-loop turn leave in one write: one round trip each still,
      // far fewer system calls under load.
      enableAutoPipelining: true,
      connectTimeout: settings.connectTimeoutMs,
      // Reconnect quickly and forever; decisions fail fast meanwhile.
      retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
    });
    client.on('error', () => { /* reported through decisions and 'close'; ioredis reconnects */ });
    client.on('ready', () => { this.failures = 0; this.openUntil = 0; this.mark(true, 'connected'); });
    client.on('close', () => { this.mark(false, 'connection closed'); });
    this.client = client;
    return client;
  }

  /** Key names remembered (at most 10000). */
  get cachedKeys(): number {
    return this.keys.size;
  }

  /** The Redis key for a limit key: prefix plus a digest, inside a hash tag. Recent ones are remembered (hashing costs more than a lookup). */
  redisKey(key: string): string {
    let redisKey = this.keys.get(key);
    if (redisKey === undefined) {
      redisKey = `${this.settings.keyPrefix}:{${createHash('sha256').update(key).digest('base64url').slice(0, 22)}}`;
      if (this.keys.size >= KEY_CACHE_ENTRIES) this.keys.clear();
      this.keys.set(key, redisKey);
    }
    return redisKey;
  }

  async hit(shape: LimitShape, key: string): Promise<Verdict> {
    const args = [shape.algorithm, shape.limit, shape.windowMs, shape.burst, this.scriptClock === null ? -1 : this.scriptClock()];
    return verdictFrom(shape, await this.evaluate(DECIDE_SCRIPT, DECIDE_SHA, this.redisKey(key), args));
  }

  /** Counts one use of a quota (QuotaStore): the count lives in `<prefix>:{digest}:<period>` until the period ends. */
  async consume(key: string, period: Period, limit: number): Promise<QuotaUse> {
    const reply = await this.evaluate(QUOTA_SCRIPT, QUOTA_SHA, `${this.redisKey(key)}:${period.id}`, [limit, period.endMs]);
    if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'number') throw new LimitStoreUnavailableError('redis: unexpected reply from the quota script');
    return { allowed: reply[0] === 1, used: reply[1] };
  }

  /** One EVALSHA (EVAL when Redis lost the script), through the circuit breaker. */
  private async evaluate(script: string, sha: string, redisKey: string, args: (string | number)[]): Promise<unknown> {
    const client = this.client;
    if (client === null || this.clock.now() < this.openUntil || this.probing || client.status !== 'ready') {
      throw new LimitStoreUnavailableError(client?.status !== 'ready' ? `redis ${client?.status ?? 'not started'}` : 'redis circuit open');
    }
    if (this.openUntil !== 0) this.probing = true;
    let reply: unknown;
    try {
      try {
        reply = await this.batched(sha, redisKey, args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        reply = await client.eval(script, 1, redisKey, ...args);
      }
    } catch (err) {
      this.failed(err as Error);
      throw new LimitStoreUnavailableError(`redis: ${(err as Error).message}`);
    } finally {
      this.probing = false;
    }
    this.failures = 0;
    this.openUntil = 0;
    return reply;
  }

  /**
   * EVALSHA, sent together with the other decisions of this event-loop iteration: the requests
   * that arrive in one poll phase are decided in one pipeline (one write, one read), which is
   * what keeps Redis's cost per request low under load. Each is still its own round trip's worth
   * of latency at most one loop iteration later.
   */
  private batched(sha: string, redisKey: string, args: (string | number)[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ sha, redisKey, args, resolve, reject });
      if (this.queue.length === 1) setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    const batch = this.queue;
    this.queue = [];
    const client = this.client;
    if (client === null) { for (const c of batch) c.reject(new LimitStoreUnavailableError('redis stopped')); return; }
    if (batch.length === 1) {
      const only = batch[0] as Queued;
      client.evalsha(only.sha, 1, only.redisKey, ...only.args).then(only.resolve, only.reject);
      return;
    }
    const pipeline = client.pipeline();
    for (const c of batch) pipeline.evalsha(c.sha, 1, c.redisKey, ...c.args);
    pipeline.exec().then((results) => {
      batch.forEach((c, i) => {
        const [err, reply] = results?.[i] ?? [new Error('no reply in the pipeline'), null];
        if (err !== null) c.reject(err); else c.resolve(reply);
      });
    }, (err: unknown) => { for (const c of batch) c.reject(err); });
  };

  private failed(err: Error): void {
    this.failures++;
    if (this.failures >= this.settings.breakerFailures) {
      this.openUntil = this.clock.now() + this.settings.breakerOpenMs;
      this.mark(false, `circuit open after ${this.failures} failures: ${err.message}`);
    }
  }

  private mark(up: boolean, detail: string): void {
    if (up === this.up) return;
    this.up = up;
    this.report?.(up, detail);
  }

  async close(): Promise<void> {
    const client = this.client;
    if (client === null) return;
    this.client = null;
    client.removeAllListeners('close');
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }
}

/** The Redis URL without its password or query, for logs and metrics. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    // ioredis takes options from the query too, a password among them (`?password=…`): none is shown.
    u.search = '';
    return u.toString();
  } catch {
    return 'redis';
  }
}

/** Recomputes the verdict from the state the script found and the time it used; the script's own allow bit decides. */
function verdictFrom(shape: LimitShape, reply: unknown): Verdict {
  if (!Array.isArray(reply) || reply.length !== 6 || !reply.every((n) => typeof n === 'number')) {
    throw new LimitStoreUnavailableError('redis: unexpected reply from the decide script');
  }
  const [found, s0, s1, s2, now, allowed] = reply;
  const state: LimitState | null = found === 1 ? [s0 ?? 0, s1 ?? 0, s2 ?? 0] : null;
  const verdict = decide(shape, state, now ?? 0);
  return verdict.allowed === (allowed === 1) ? verdict : { ...verdict, allowed: allowed === 1 };
}
