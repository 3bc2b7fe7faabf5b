import { Redis, type RedisOptions } from 'ioredis';

/** `oauth.redis` with its defaults applied: the Redis where gateways share introspection answers, revocations and sessions. */
export interface OAuthRedisSettings {
  readonly url: string;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
}

/**
 * The connection options every user of `oauth.redis` shares: connected at start (not when made),
 * every command bounded by `timeoutMs`, none queued while disconnected and none retried or resent
 * (a caller fails closed, or falls back, at once), reconnection backing off up to a second.
 */
export function oauthRedisOptions(settings: OAuthRedisSettings): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: settings.timeoutMs,
    connectTimeout: settings.connectTimeoutMs,
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
  };
}

/** A client of `oauth.redis` for request-path commands (auto-pipelined), not yet connected. */
export function oauthRedisClient(settings: OAuthRedisSettings): Redis {
  return new Redis(settings.url, { ...oauthRedisOptions(settings), enableAutoPipelining: true });
}
