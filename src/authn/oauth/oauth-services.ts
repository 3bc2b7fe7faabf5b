import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { formatted, Millis, strict } from '../../config/schema-parts.js';
import type { ConfigProblem } from '../../config/errors.js';
import type { ConfigSource } from '../../config/config-source.js';
import type { Clock } from '../../lib/clock.js';
import { MemoryRevocations } from './memory-revocations.js';
import type { RevocationList } from './revocations.js';
import { TokenDigester } from './token-digest.js';

/** `oauth.redis`: where gateways share introspection results and revocations. */
export const OAuthRedisSchema = strict({
  url: formatted('^rediss?://', 'a Redis URL like redis://redis:6379 or rediss://user:password@redis:6380/0', { description: 'redis://[user:password@]host:port[/db], or rediss:// for TLS. Put the password in the environment: ${REDIS_URL}.' }),
  keyPrefix: Type.Optional(formatted('^[A-Za-z0-9_.:-]{1,64}$', '1 to 64 letters, digits, `_`, `.`, `:` or `-`', { description: 'Prefix of every key and channel. Default portcullis:oauth.' })),
  timeoutMs: Type.Optional(Millis('Bound on one command\'s round trip. Default 100.')),
  connectTimeoutMs: Type.Optional(Millis('Bound on connecting. Default 1000.')),
}, 'The shared Redis of the OAuth features: introspection results (cache.shared) and revocations.');

/** The `oauth` section: what every bearer-token authenticator shares. */
export const OAuthSchema = strict({
  tokenHashKey: Type.Optional(Type.String({ minLength: 32, maxLength: 512, description: 'Key of the keyed hash (HMAC-SHA256) under which tokens are cached and revoked, at least 32 characters. Required with oauth.redis, so every gateway digests alike: ${TOKEN_HASH_KEY}. Default: a random key per process.' })),
  redis: Type.Optional(OAuthRedisSchema),
}, 'Shared by the bearer-token authenticators (jwt, introspection): token digests, the shared Redis, revocations (see docs/oauth.md).');

export type RawOAuth = Static<typeof OAuthSchema>;

/** `oauth.redis` with its defaults applied. */
export interface OAuthRedisSettings {
  readonly url: string;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
}

export const OAUTH_DEFAULTS = Object.freeze({
  'redis.keyPrefix': 'portcullis:oauth',
  'redis.timeoutMs': 100,
  'redis.connectTimeoutMs': 1000,
});

/** What every bearer-token authenticator of one config shares: how tokens are digested, which are revoked, and the shared Redis. */
export interface OAuthServices {
  readonly digester: TokenDigester;
  readonly revocations: RevocationList;
  /** Where introspection results and revocations are shared between gateways; null: this process only. */
  readonly redis: OAuthRedisSettings | null;
}

/** The `oauth` section compiled; problems are located under `oauth`. */
export function compileOAuthServices(raw: RawOAuth | undefined, loaded: ConfigSource, problems: ConfigProblem[], clock: Clock): OAuthServices {
  const redis = raw?.redis === undefined ? null : {
    url: raw.redis.url,
    keyPrefix: raw.redis.keyPrefix ?? OAUTH_DEFAULTS['redis.keyPrefix'],
    timeoutMs: raw.redis.timeoutMs ?? OAUTH_DEFAULTS['redis.timeoutMs'],
    connectTimeoutMs: raw.redis.connectTimeoutMs ?? OAUTH_DEFAULTS['redis.connectTimeoutMs'],
  };
  if (redis !== null && raw?.tokenHashKey === undefined) {
    problems.push(loaded.problem(['oauth', 'redis'], 'gateways sharing Redis must digest tokens with one key: set oauth.tokenHashKey (at least 32 characters, from the environment: ${TOKEN_HASH_KEY})'));
  }
  const key = raw?.tokenHashKey === undefined ? randomBytes(32) : Buffer.from(raw.tokenHashKey, 'utf8');
  return { digester: new TokenDigester(key), revocations: new MemoryRevocations(100_000, clock), redis };
}
