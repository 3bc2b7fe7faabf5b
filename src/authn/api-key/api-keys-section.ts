import { resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { ConfigProblem } from '../../config/errors.js';
import type { ConfigSource } from '../../config/config-source.js';
import { Duration, formatted, Millis, strict } from '../../config/schema-parts.js';
import { parseDuration } from '../../lib/duration.js';
import type { UseResource } from '../../lifecycle/resources.js';
import { ApiKeyBackend, type ApiKeySettings } from './backend.js';

/** The `apiKeys` section: one store, cache and policy shared by every apiKey authenticator. */
export const ApiKeysSchema = strict({
  environment: Type.Optional(formatted('^[a-z][a-z0-9]{0,15}$', 'a lower-case label like live or test: a letter, then up to 15 letters or digits', { description: 'Environment label in every key issued and accepted (pk_<environment>_…); keys of another environment are refused. Default live.' })),
  store: Type.Optional(strict({
    type: Type.Optional(Type.Unsafe<'sqlite' | 'postgres'>({ type: 'string', enum: ['sqlite', 'postgres'], description: 'sqlite (embedded, one gateway or several on one host) or postgres (any number of gateways). Default sqlite.' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'sqlite: database file, relative to dataDir. Default keys/api-keys.db.' })),
    url: Type.Optional(formatted('^postgres(ql)?://', 'a PostgreSQL URL like postgres://user:password@db:5432/portcullis', { description: 'postgres: connection URL, e.g. postgres://portcullis:${PGPASSWORD}@db:5432/portcullis. Required for postgres.' })),
    poolSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'postgres: most connections per gateway for look-ups and key management (plus one for reading the change log and one for LISTEN). Default 5.' })),
    timeoutMs: Type.Optional(Millis('postgres: bound on connecting and on each statement; past it the store counts as down. Default 2000.')),
    listen: Type.Optional(Type.Boolean({ description: 'postgres: LISTEN for key changes so revocations apply at once; polling (pollIntervalMs) remains the fallback. Default true.' })),
  }, 'Where keys are stored.')),
  cacheTtlMs: Type.Optional(Millis('How long a looked-up key is served from memory without asking the store; with the store down, cached keys work this long (at most maxStalenessMs after the last read of the change log). Default 60000.')),
  negativeCacheTtlMs: Type.Optional(Millis('How long an unknown key id is remembered as unknown (0: not remembered). Default 5000.', 0)),
  cacheMaxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'Most existing keys held in memory; also the most keys with usage waiting to be written. Default 100000.' })),
  negativeCacheMaxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'Most unknown key ids remembered, apart from existing keys so they can never displace them. Default 10000.' })),
  maxConcurrentLookups: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'Most store look-ups in flight for key ids not in memory (and, separately, for reloads of existing keys); past it a request is refused with 503 authentication_unavailable and Retry-After. Default 16.' })),
  maxStalenessMs: Type.Optional(Millis('Past this long without a successful read of the change log (notifications lost and polling failing), cached keys are not trusted: every API key request gets 503 until a read succeeds. At least twice pollIntervalMs. Default 5000, or twice pollIntervalMs if that is longer.', 100)),
  pollIntervalMs: Type.Optional(Millis('How often the store\'s change log is read; bounds how long a revoked key keeps working when notifications are unavailable. Default 500.', 50)),
  usageFlushMs: Type.Optional(Millis('How often usage counts are written to the store in one batch. Default 5000.', 100)),
  maxLifetime: Type.Optional(Duration('Longest lifetime a key may be issued with, and the default: 90d, 24h, … Default 90d.')),
  expiryWarning: Type.Optional(Duration('Keys this close to expiry are listed as expiring and logged when used. Default 14d.')),
}, 'API key store, cache and lifecycle policy (see docs/api-keys.md).');

export type RawApiKeys = Static<typeof ApiKeysSchema>;

/** Documented defaults of the apiKeys section, by option path; docs/api-keys.md lists the same values. */
export const API_KEYS_DEFAULTS = Object.freeze({
  environment: 'live',
  'store.type': 'sqlite',
  'store.file': 'keys/api-keys.db',
  'store.poolSize': 5,
  'store.timeoutMs': 2000,
  'store.listen': true,
  cacheTtlMs: 60_000,
  negativeCacheTtlMs: 5000,
  cacheMaxEntries: 100_000,
  negativeCacheMaxEntries: 10_000,
  maxConcurrentLookups: 16,
  maxStalenessMs: 5000,
  pollIntervalMs: 500,
  usageFlushMs: 5000,
  maxLifetime: '90d',
  expiryWarning: '14d',
});

/** The apiKeys section as its defaults' checker sees it (the section is not an authenticator kind). */
export const API_KEYS_SECTION = Object.freeze({ type: 'apiKeys', schema: ApiKeysSchema, defaults: API_KEYS_DEFAULTS, docs: 'docs/api-keys.md' });

/** Compiles the apiKeys section (defaults when absent) into its backend, or null after reporting problems. */
export function compileApiKeysSection(
  section: RawApiKeys | undefined, loaded: ConfigSource, dataDir: string, problems: ConfigProblem[], use: UseResource,
): ApiKeyBackend | null {
  const c = section ?? {};
  const at = (...path: string[]) => ['apiKeys', ...path];
  const d = API_KEYS_DEFAULTS;
  const before = problems.length;
  const s = c.store ?? {};
  const type = s.type ?? d['store.type'];
  const misplaced = type === 'sqlite' ? (['url', 'poolSize', 'timeoutMs', 'listen'] as const) : (['file'] as const);
  for (const option of misplaced) {
    if (s[option] !== undefined) problems.push(loaded.problem(at('store', option), `applies to store type ${type === 'sqlite' ? 'postgres' : 'sqlite'}, but the store is ${type}`, true));
  }
  if (type === 'postgres' && s.url === undefined) problems.push(loaded.problem(at('store', 'type'), 'a postgres store needs url (postgres://user:password@host:5432/database)'));
  const maxLifetimeMs = parseDuration(c.maxLifetime ?? d.maxLifetime) ?? 0;
  const expiryWarningMs = parseDuration(c.expiryWarning ?? d.expiryWarning) ?? 0;
  if (maxLifetimeMs > 3650 * 86_400_000) problems.push(loaded.problem(at('maxLifetime'), 'at most 3650d: a key that never needs replacing is a key nobody can rotate in a hurry'));
  if (expiryWarningMs >= maxLifetimeMs) problems.push(loaded.problem(at('expiryWarning'), `must be shorter than maxLifetime (${c.maxLifetime ?? d.maxLifetime})`));
  const pollIntervalMs = c.pollIntervalMs ?? d.pollIntervalMs;
  // The default follows a long poll interval, so a config that only slows polling stays valid.
  const maxStalenessMs = c.maxStalenessMs ?? Math.max(d.maxStalenessMs, 2 * pollIntervalMs);
  if (maxStalenessMs < 2 * pollIntervalMs) {
    problems.push(loaded.problem(at('maxStalenessMs'),
      `maxStalenessMs (${maxStalenessMs}) must be at least twice pollIntervalMs (${pollIntervalMs}): one missed poll would refuse every key`));
  }
  if (problems.length > before) return null;
  const settings: ApiKeySettings = {
    environment: c.environment ?? d.environment,
    store: type === 'sqlite'
      ? { type, file: resolve(dataDir, s.file ?? d['store.file']) }
      : { type, url: s.url ?? '', poolSize: s.poolSize ?? d['store.poolSize'], timeoutMs: s.timeoutMs ?? d['store.timeoutMs'], listen: s.listen ?? d['store.listen'] },
    cacheTtlMs: c.cacheTtlMs ?? d.cacheTtlMs,
    negativeCacheTtlMs: c.negativeCacheTtlMs ?? d.negativeCacheTtlMs,
    cacheMaxEntries: c.cacheMaxEntries ?? d.cacheMaxEntries,
    negativeCacheMaxEntries: c.negativeCacheMaxEntries ?? d.negativeCacheMaxEntries,
    maxConcurrentLookups: c.maxConcurrentLookups ?? d.maxConcurrentLookups,
    maxStalenessMs,
    pollIntervalMs,
    usageFlushMs: c.usageFlushMs ?? d.usageFlushMs,
    maxLifetimeMs,
    expiryWarningMs,
  };
  return use(ApiKeyBackend.keyOf(settings), ApiKeyBackend, () => new ApiKeyBackend(settings));
}

