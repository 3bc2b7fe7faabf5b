import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Resource } from '../lifecycle/resources.js';
import type { Kind } from '../config/kind.js';
import { formatted } from '../config/schema-parts.js';
import type { Algorithm, LimitShape } from './algorithms.js';
import { MemoryLimitStore } from './memory-store.js';
import { SqliteQuotaStore, type SqliteQuotaSettings } from './quota-store.js';
import { RedisLimitStore, type RedisStoreSettings } from './redis-store.js';
import type { LimitStore } from './store.js';
import type { QuotaStore } from './quota-store.js';
import { HostLimitStore, HostQuotaStore, type HostStateClient } from '../workers/host-state-client.js';

/**
 * The kinds of rate limiting, one table per family: limit algorithms, limit stores and quota
 * stores. The config schema takes its `algorithm` and `store` enums from these tables, compilation
 * looks kinds up here, and test/ratelimit-kinds-defaults.test.ts checks every kind's defaults
 * against its schema and docs/rate-limits.md. A new kind is one entry here.
 */

const DOCS = 'docs/rate-limits.md';
const strict = <T extends Record<string, TSchema>>(props: T, description: string): TObject<T> =>
  Type.Object(props, { additionalProperties: false, description });
const Count = (description: string) => Type.Integer({ minimum: 1, maximum: 1_000_000, description });
const Millis = (description: string, minimum = 1) => Type.Integer({ minimum, maximum: 86_400_000, description });

/** What a limit algorithm builds a shape from: the limit, its window and the configured burst, if any. */
export interface ShapeInput {
  readonly limit: number;
  readonly windowMs: number;
  readonly burst: number | undefined;
  /** The limit's base `limit` (a tier's shape takes the base limit's defaults). */
  readonly baseLimit: number;
}

/** A limit algorithm: how its options become a LimitShape. */
export interface AlgorithmKind extends Kind<ShapeInput, LimitShape, void> {
  readonly type: Algorithm;
  /** Whether `burst` applies (token-bucket, gcra); the window algorithms allow `limit` per window. */
  readonly takesBurst: boolean;
}

function windowAlgorithm(type: Algorithm): AlgorithmKind {
  return {
    type,
    schema: strict({ algorithm: Type.Literal(type) }, `${type}: limit per window; no burst.`),
    defaults: Object.freeze({}),
    docs: DOCS,
    takesBurst: false,
    compile: ({ limit, windowMs }) => ({ algorithm: type, limit, windowMs, burst: 1 }),
  };
}

/** The four algorithms, in the order the docs present them. */
export const ALGORITHM_KINDS: readonly AlgorithmKind[] = Object.freeze([
  windowAlgorithm('fixed-window'),
  windowAlgorithm('sliding-window'),
  {
    type: 'token-bucket',
    schema: strict({
      algorithm: Type.Literal('token-bucket'),
      burst: Type.Optional(Count('The bucket\'s capacity. Default the limit.')),
    }, 'token-bucket: a bucket of burst tokens refilled at limit per window.'),
    // The burst defaults to the limit: a value of the config, not a constant.
    defaults: Object.freeze({}),
    docs: DOCS,
    takesBurst: true,
    compile: ({ limit, windowMs, burst, baseLimit }) => ({ algorithm: 'token-bucket', limit, windowMs, burst: burst ?? baseLimit }),
  },
  {
    type: 'gcra',
    schema: strict({
      algorithm: Type.Literal('gcra'),
      burst: Type.Optional(Count('Requests that may arrive back to back. Default 1.')),
    }, 'gcra: one request per window / limit, at most burst back to back.'),
    defaults: Object.freeze({ burst: 1 }),
    docs: DOCS,
    takesBurst: true,
    compile: ({ limit, windowMs, burst }) => ({ algorithm: 'gcra', limit, windowMs, burst: burst ?? 1 }),
  },
] satisfies AlgorithmKind[]);

/** The algorithm kind of `type` (validated config names only known ones). */
export function algorithmKind(type: Algorithm): AlgorithmKind {
  return ALGORITHM_KINDS.find((k) => k.type === type) as AlgorithmKind;
}

/**
 * What store kinds use while compiling: the resource lookup (reuse a running equal store), the
 * clock, and in a worker of `start --workers` the primary, which then holds the in-process state
 * (memory limit tables, embedded quota stores) for every worker of the host.
 */
export interface StoreContext {
  readonly clock: Clock;
  readonly hostState: HostStateClient | null;
  use<R extends Resource>(key: string, kind: abstract new (...args: never[]) => R, make: () => R): R;
}

/** `rateLimiting.redis` as configured. */
export const RedisSettingsSchema = strict({
  url: formatted('^rediss?://', 'a Redis URL like redis://redis:6379 or rediss://user:password@redis:6380/0', { description: 'redis://[user:password@]host:port[/db], or rediss:// for TLS. Put the password in the environment: ${REDIS_URL}.' }),
  keyPrefix: Type.Optional(formatted('^[A-Za-z0-9_.:-]{1,64}$', '1 to 64 letters, digits, `_`, `.`, `:` or `-`', { description: 'Prefix of every key. Default portcullis:rl.' })),
  timeoutMs: Type.Optional(Millis('Bound on one decision\'s round trip; past it the limit\'s onStoreError applies. Default 100.')),
  connectTimeoutMs: Type.Optional(Millis('Bound on connecting. Default 1000.')),
  breakerFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Consecutive failures that open the circuit (decisions then fail at once). Default 5.' })),
  breakerOpenMs: Type.Optional(Millis('How long the circuit stays open before one probe. Default 1000.', 10)),
}, 'The shared Redis (standalone; keys are Redis Cluster safe).');
export type RawRedisSettings = Static<typeof RedisSettingsSchema>;

/** What a limit store is compiled from: the table's identity (role and limit), its bound, and the shared Redis settings. */
export interface LimitStoreInput {
  readonly id: string;
  readonly maxEntries: number | undefined;
  readonly redis: RawRedisSettings | undefined;
}

/** A limit store backend. `compile` returns null when the backend's settings are missing (the caller reports it). */
export type LimitStoreKind = Kind<LimitStoreInput, LimitStore | null, StoreContext> & { readonly type: 'memory' | 'redis' };

/** The in-process tables' bound; also the bound of the guard's tables and each quota's count cache. */
export const MEMORY_STORE_DEFAULTS = Object.freeze({ maxEntries: 100_000 });
const memoryDefaults = MEMORY_STORE_DEFAULTS;
const redisDefaults = Object.freeze({ keyPrefix: 'portcullis:rl', timeoutMs: 100, connectTimeoutMs: 1000, breakerFailures: 5, breakerOpenMs: 1000 });

/** The Redis store for `raw` with every default applied, reused across everything that names it. */
function redisStore(raw: RawRedisSettings, context: StoreContext): RedisLimitStore {
  const d = redisDefaults;
  const settings: RedisStoreSettings = {
    url: raw.url,
    keyPrefix: raw.keyPrefix ?? d.keyPrefix,
    timeoutMs: raw.timeoutMs ?? d.timeoutMs,
    connectTimeoutMs: raw.connectTimeoutMs ?? d.connectTimeoutMs,
    breakerFailures: raw.breakerFailures ?? d.breakerFailures,
    breakerOpenMs: raw.breakerOpenMs ?? d.breakerOpenMs,
  };
  // Redis decides on its own clock; a gateway on an injected clock (tests) decides on that one.
  const clock = context.clock;
  const scriptClock = clock === systemClock ? null : () => clock.now();
  return context.use(RedisLimitStore.keyOf(settings), RedisLimitStore, () => new RedisLimitStore(settings, null, scriptClock));
}

export const MEMORY_STORE_KIND: LimitStoreKind = {
  type: 'memory',
  schema: strict({
    maxEntries: Type.Optional(Type.Integer({ minimum: 100, maximum: 100_000_000, description: 'Most callers each in-process table tracks. Default 100000.' })),
  }, 'In-process limit state: exact for one gateway.'),
  defaults: memoryDefaults,
  docs: DOCS,
  compile: ({ id, maxEntries }, context) => {
    const entries = maxEntries ?? memoryDefaults.maxEntries;
    const host = context.hostState;
    if (host !== null) return context.use(HostLimitStore.keyOf(id, entries), HostLimitStore, () => host.limitStore(id, entries));
    return context.use(MemoryLimitStore.keyOf(id, entries), MemoryLimitStore, () => new MemoryLimitStore(entries, context.clock, null, id));
  },
};

export const REDIS_STORE_KIND: LimitStoreKind = {
  type: 'redis',
  schema: RedisSettingsSchema,
  defaults: redisDefaults,
  docs: DOCS,
  compile: ({ redis }, context) => (redis === undefined ? null : redisStore(redis, context)),
};

/** Where limits (and the brute-force guard's failures) are counted. */
export const LIMIT_STORE_KINDS: readonly LimitStoreKind[] = Object.freeze([MEMORY_STORE_KIND, REDIS_STORE_KIND]);

/** What a quota store is compiled from: the quota's name, the embedded file's settings as configured, and the shared Redis. */
export interface QuotaStoreInput {
  readonly name: string;
  /** `quotaFile` resolved against the data directory by the caller (relative to it when unset). */
  readonly resolveFile: (file: string) => string;
  readonly quotaFile: string | undefined;
  readonly quotaFlushMs: number | undefined;
  readonly maxEntries: number | undefined;
  readonly redis: RawRedisSettings | undefined;
}

export type QuotaStoreKind = Kind<QuotaStoreInput, QuotaStore | null, StoreContext> & { readonly type: 'embedded' | 'redis' };

const embeddedDefaults = Object.freeze({ quotaFile: 'quotas/quotas.db', quotaFlushMs: 1000 });

/** The embedded quota store's options (under `rateLimiting`). */
export const EmbeddedQuotaSchema = strict({
  quotaFile: Type.Optional(Type.String({ minLength: 1, description: 'The embedded quota store, relative to dataDir. Default quotas/quotas.db.' })),
  quotaFlushMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, description: 'How often (ms) the embedded quota store writes the uses counted in memory, in one transaction; a crash loses at most this much. Default 1000.' })),
}, 'Quota counts in a SQLite file in the data directory.');

export const EMBEDDED_QUOTA_KIND: QuotaStoreKind = {
  type: 'embedded',
  schema: EmbeddedQuotaSchema,
  defaults: embeddedDefaults,
  docs: DOCS,
  compile: (input, context) => {
    const settings: SqliteQuotaSettings = {
      file: input.resolveFile(input.quotaFile ?? embeddedDefaults.quotaFile),
      flushMs: input.quotaFlushMs ?? embeddedDefaults.quotaFlushMs,
      maxEntries: input.maxEntries ?? memoryDefaults.maxEntries,
    };
    const host = context.hostState;
    if (host !== null) return context.use(HostQuotaStore.keyOf(settings, input.name), HostQuotaStore, () => host.quotaStore(settings, input.name));
    return context.use(SqliteQuotaStore.keyOf(settings, input.name), SqliteQuotaStore, () => new SqliteQuotaStore(settings, context.clock, null, input.name));
  },
};

export const REDIS_QUOTA_KIND: QuotaStoreKind = {
  type: 'redis',
  schema: RedisSettingsSchema,
  defaults: Object.freeze({}),
  docs: DOCS,
  compile: ({ redis }, context) => (redis === undefined ? null : redisStore(redis, context)),
};

/** Where quota counts are kept. */
export const QUOTA_STORE_KINDS: readonly QuotaStoreKind[] = Object.freeze([EMBEDDED_QUOTA_KIND, REDIS_QUOTA_KIND]);

/** The kind named `type` in `table` (validated config names only known ones). */
export function kindOf<K extends { readonly type: string }>(table: readonly K[], type: string): K {
  return table.find((k) => k.type === type) as K;
}
