import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { redactedUrl } from '../../lib/redacted-url.js';
import { MemoryRevocations } from './memory-revocations.js';
import { oauthRedisOptions, type OAuthRedisSettings } from './oauth-redis-settings.js';
import type { RevocationList } from './revocations.js';

/** What a shared list is built from: the Redis, the bound on entries, and how stale it may grow before bearer tokens are refused. */
export interface RedisRevocationSettings {
  readonly redis: OAuthRedisSettings;
  readonly maxEntries: number;
  readonly maxStalenessMs: number;
}

/** A digest as it travels: 43 base64url characters (HMAC-SHA256). */
const DIGEST = /^[A-Za-z0-9_-]{43}$/;
/** A published revocation: `<digest> <untilMs>`, nothing else. */
const MESSAGE = /^([A-Za-z0-9_-]{43}) ([1-9][0-9]{0,15})$/;
/** Largest `untilMs` taken from Redis: the year 2286. */
const MAX_UNTIL_MS = 9_999_999_999_999;

/** Why revoking failed: the shared Redis did not take it (this gateway refuses the token already). */
export class RevocationUnavailableError extends Error {}

/**
 * Revocations shared by every gateway on one Redis, and the memory list each keeps of them.
 *
 * A revocation is one MULTI: expired entries leave the sorted set `<prefix>:revocations` (member
 * the digest, score the end in epoch ms), the digest is added (ZADD GT: a later end wins), the set
 * is cut to `maxEntries` (the entries that end soonest leave first), and `<digest> <untilMs>` is
 * published on the channel `<prefix>:revocations`. Each gateway subscribes on a connection of its
 * own and applies what it hears to its memory list (MemoryRevocations), which is what requests
 * read: the hot path never waits on Redis.
 *
 * On every (re)connection the gateway subscribes first and then loads the set, so a revocation
 * made while it was disconnected is not lost, and one made meanwhile arrives at least once. While
 * the subscription is down for longer than `maxStalenessMs`, the list no longer knows what other
 * gateways revoked: `unavailable` says why, readiness is false, and the bearer authenticators
 * refuse tokens with 503 authentication_unavailable (fail closed) until it is back.
 */
export class RedisRevocations implements RevocationList, Resource {
  readonly key: string;
  private readonly memory: MemoryRevocations;
  private client: Redis | null = null;
  private subscriber: Redis | null = null;
  private clock: Clock;
  private logger: Logger | null = null;
  private metrics: Metrics | null = null;
  /** Since when the list has not been known current (clock ms); null while subscribed and loaded. */
  private downSince: number | null;
  /** Whether the list was ever loaded: until then it knows nothing of what was revoked before this process started. */
  private loaded = false;
  private onFirstLoad: (() => void) | null = null;
  private up: boolean | null = null;
  /** Bumped by every (re)subscription: a load that a newer one overtook does not mark the list current. */
  private epoch = 0;
  private stopped = false;

  constructor(private readonly settings: RedisRevocationSettings, clock: Clock = systemClock) {
    this.key = RedisRevocations.keyOf(settings);
    this.clock = clock;
    this.memory = new MemoryRevocations(settings.maxEntries, clock);
    this.downSince = clock.now();
  }

  static keyOf(settings: RedisRevocationSettings): string {
    return `redis revocations ${JSON.stringify(settings)}`;
  }

  private get setKey(): string {
    return `${this.settings.redis.keyPrefix}:revocations`;
  }

  private get channel(): string {
    return `${this.settings.redis.keyPrefix}:revocations`;
  }

  get empty(): boolean {
    return this.memory.empty && this.unavailable === null;
  }

  /** Why the list may be missing revocations made elsewhere (the subscription is down longer than maxStalenessMs); null while current. */
  get unavailable(): string | null {
    // Never started (`check`, `explain`: compiling opens nothing): no list to be stale, and none to consult.
    if (this.client === null && !this.stopped) return null;
    if (!this.loaded) return 'the shared revocation list has not been loaded from Redis yet';
    const since = this.downSince;
    if (since === null) return null;
    const downMs = this.clock.now() - since;
    return downMs > this.settings.maxStalenessMs
      ? `the shared revocation list (Redis) has not been reachable for ${Math.round(downMs)} ms (oauth.revocations.maxStalenessMs ${this.settings.maxStalenessMs})`
      : null;
  }

  /** True while subscribed and loaded: every revocation made anywhere reaches this list. */
  get current(): boolean {
    return this.loaded && this.downSince === null;
  }

  isRevoked(digest: string): boolean {
    return this.memory.isRevoked(digest);
  }

  /** Entries held in memory. */
  get size(): number {
    return this.memory.size;
  }

  inForce(): [digest: string, untilMs: number][] {
    return this.memory.inForce();
  }

  carryOver(digest: string, untilMs: number): void {
    this.memory.carryOver(digest, untilMs);
  }

  onRevoked(listener: (digest: string) => void): () => void {
    return this.memory.onRevoked(listener);
  }

  /**
   * Refuses the token here at once, then stores and publishes the revocation; rejects with
   * RevocationUnavailableError when Redis does not take it within its timeout (the other
   * gateways then do not know of it).
   */
  async revoke(digest: string, untilMs: number): Promise<void> {
    this.memory.add(digest, untilMs);
    this.metrics?.revocations.inc({ source: 'local' });
    const client = this.client;
    if (client === null || client.status !== 'ready') throw new RevocationUnavailableError(`redis ${client?.status ?? 'not started'}`);
    try {
      const replies = await client.multi()
        .zremrangebyscore(this.setKey, '-inf', this.clock.now())
        .zadd(this.setKey, 'GT', untilMs, digest)
        .zremrangebyrank(this.setKey, 0, -(this.settings.maxEntries + 1))
        .publish(this.channel, `${digest} ${untilMs}`)
        .exec();
      // A command refused inside the transaction (ZADD GT needs Redis 6.2) is a reply, not a throw.
      const refused = replies === null ? new Error('transaction discarded') : replies.find(([err]) => err !== null)?.[0];
      if (refused != null) throw refused;
    } catch (err) {
      throw new RevocationUnavailableError(`redis: ${(err as Error).message}`);
    }
  }

  async start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    this.logger = context.logger;
    this.metrics = context.metrics;
    this.downSince = this.clock.now();
    const { url, timeoutMs, connectTimeoutMs } = this.settings.redis;
    const options = oauthRedisOptions(this.settings.redis);
    const client = new Redis(url, options);
    // The subscriber waits for its own SUBSCRIBE reply; no command timeout there (a subscribed connection sends nothing else).
    const subscriber = new Redis(url, { ...options, commandTimeout: undefined, enableOfflineQueue: true });
    this.client = client;
    this.subscriber = subscriber;
    client.on('error', () => { /* reported through revoke and the subscriber's state; ioredis reconnects */ });
    subscriber.on('error', () => { /* ioredis reconnects; 'close' marks the list stale */ });
    subscriber.on('message', (channel: string, message: string) => { if (channel === this.channel) this.heard(message); });
    subscriber.on('close', () => this.down('connection closed'));
    subscriber.on('ready', () => { void this.synchronise(); });
    // The first load, bounded: a gateway whose Redis is unreachable starts all the same, and
    // refuses bearer tokens (503) until the list is loaded, as it does for a JWKS never fetched.
    const firstLoad = new Promise<void>((resolve) => { this.onFirstLoad = resolve; });
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, 2 * connectTimeoutMs + timeoutMs); });
    await Promise.all([
      client.connect().catch((err: unknown) => this.report(false, (err as Error).message)),
      subscriber.connect().catch((err: unknown) => this.report(false, (err as Error).message)),
    ]);
    await Promise.race([firstLoad, bound]);
    clearTimeout(timer);
    this.onFirstLoad = null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const clients = [this.client, this.subscriber];
    this.client = null;
    this.subscriber = null;
    await Promise.all(clients.map(async (c) => {
      if (c === null) return;
      try { await c.quit(); } catch { c.disconnect(); }
    }));
  }

  /** Subscribes, then loads every revocation in force; the list is current once both are done. */
  private async synchronise(): Promise<void> {
    const epoch = ++this.epoch;
    const subscriber = this.subscriber;
    const client = this.client;
    if (subscriber === null || client === null || this.stopped) return;
    try {
      await subscriber.subscribe(this.channel);
      const loaded = await this.load(client);
      if (epoch !== this.epoch || this.stopped) return;
      this.downSince = null;
      this.loaded = true;
      this.onFirstLoad?.();
      this.report(true, `subscribed; ${loaded} revocations in force loaded`);
    } catch (err) {
      if (epoch === this.epoch) this.report(false, `synchronising failed: ${(err as Error).message}`);
    }
  }

  /** Adds the revocations in force (the latest-ending maxEntries of them) to memory. */
  private async load(client: Redis): Promise<number> {
    if (client.status !== 'ready') await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { client.off('ready', ready); reject(new Error('the command connection is not ready')); }, this.settings.redis.connectTimeoutMs);
      const ready = (): void => { clearTimeout(timer); resolve(); };
      client.once('ready', ready);
    });
    const reply = await client.zrevrangebyscore(this.setKey, '+inf', this.clock.now(), 'WITHSCORES', 'LIMIT', 0, this.settings.maxEntries);
    let count = 0;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const digest = reply[i] ?? '';
      const until = Number(reply[i + 1]);
      if (!DIGEST.test(digest) || !Number.isSafeInteger(until) || until > MAX_UNTIL_MS) continue;
      this.memory.add(digest, until);
      count++;
    }
    this.metrics?.revocationsLoaded.inc(count);
    return count;
  }

  /** A revocation another gateway (or this one) published. Anything malformed is dropped: the channel is not trusted further than its form. */
  private heard(message: string): void {
    const match = MESSAGE.exec(message);
    const digest = match?.[1] ?? '';
    const until = Number(match?.[2]);
    if (match === null || until > MAX_UNTIL_MS) {
      this.logger?.warn({ length: message.length }, 'revocations: a malformed message on the channel was dropped');
      return;
    }
    if (!this.memory.isRevoked(digest)) this.metrics?.revocations.inc({ source: 'shared' });
    this.memory.add(digest, until);
  }

  private down(detail: string): void {
    if (this.downSince === null) this.downSince = this.clock.now();
    this.epoch++;
    if (!this.stopped) this.report(false, detail);
  }

  private report(up: boolean, detail: string): void {
    if (!up && this.downSince === null) this.downSince = this.clock.now();
    this.metrics?.revocationsSubscribed.set({ redis: redactedUrl(this.settings.redis.url) }, up ? 1 : 0);
    if (this.up === up) return;
    this.up = up;
    if (up) this.logger?.info({ detail }, 'revocation list synchronised with Redis');
    else this.logger?.error({ detail, maxStalenessMs: this.settings.maxStalenessMs }, 'revocation list cut off from Redis: bearer tokens are refused once it is stale');
  }
}
