/** `oauth.redis` with its defaults applied: the Redis where gateways share introspection answers and revocations. */
export interface OAuthRedisSettings {
  readonly url: string;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
}
