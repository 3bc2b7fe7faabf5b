import { Redis } from 'ioredis';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import { oauthRedisClient, type OAuthRedisSettings } from '../oauth/oauth-redis-settings.js';

/**
 * Introspection answers shared by every gateway of one Redis (`cache.shared`): the answer's JSON
 * under `<prefix>:introspection:<scope>:<digest>` — the token's keyed digest, never the token —
 * expiring with the remaining lifetime of the cached answer. Redis being down or slow never denies
 * a request: each command is bounded by oauth.redis.timeoutMs, not queued while disconnected, and
 * a failure reads as "not shared" (the gateway introspects itself).
 */
export class SharedIntrospectionStore implements Resource {
  readonly key: string;
  private client: Redis | null = null;
  private warned = false;
  private context: ResourceContext | null = null;

  constructor(readonly settings: OAuthRedisSettings) {
    this.key = `introspection shared cache ${JSON.stringify(settings)}`;
  }

  async start(context: ResourceContext): Promise<void> {
    this.context = context;
    if (this.client !== null) return;
    const client = oauthRedisClient(this.settings);
    client.on('error', () => { /* a failed command reads as a miss; ioredis reconnects */ });
    client.on('ready', () => { this.warned = false; });
    this.client = client;
    try { await client.connect(); } catch (err) { this.warn(err); }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client !== null) client.disconnect();
    return Promise.resolve();
  }

  /** The shared answer of `scope`/`digest`, or null (none, or Redis unavailable). */
  async get(scope: string, digest: string): Promise<string | null> {
    const client = this.client;
    if (client?.status !== 'ready') return null;
    try { return await client.get(this.redisKey(scope, digest)); } catch (err) { this.warn(err); return null; }
  }

  /** Shares an answer for `ttlMs` (at least 1 ms); a failure is only logged. */
  async set(scope: string, digest: string, json: string, ttlMs: number): Promise<void> {
    const client = this.client;
    if (client?.status !== 'ready' || ttlMs < 1) return;
    try { await client.set(this.redisKey(scope, digest), json, 'PX', Math.floor(ttlMs)); } catch (err) { this.warn(err); }
  }

  /** Removes a revoked token's shared answer. */
  async delete(scope: string, digest: string): Promise<void> {
    const client = this.client;
    if (client?.status !== 'ready') return;
    try { await client.del(this.redisKey(scope, digest)); } catch (err) { this.warn(err); }
  }

  private redisKey(scope: string, digest: string): string {
    return `${this.settings.keyPrefix}:introspection:${scope}:${digest}`;
  }

  private warn(err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.context?.logger.warn({ err: (err as Error).message }, 'shared introspection cache (Redis) unavailable: gateways introspect tokens themselves meanwhile');
  }
}
