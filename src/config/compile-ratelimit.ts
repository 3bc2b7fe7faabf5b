import { resolve } from 'node:path';
import { normaliseHeaderName } from '../http/headers.js';
import type { HeaderRules } from './asserted-header-rules.js';
import { parseDuration } from '../lib/duration.js';
import { Calendar, isTimeZone } from '../ratelimit/calendar.js';
import { QuotaLimiter } from '../ratelimit/quota.js';
import { BruteForceGuard, GUARD_NAME, GuardBlocks, GuardCountTable, type GuardSourceKind, type GuardSpec } from '../ratelimit/brute-force-guard.js';
import type { Stage } from '../pipeline/stage.js';
import { MAX_PRODUCT, type LimitShape } from '../ratelimit/algorithms.js';
import type { HeaderMode } from '../ratelimit/headers.js';
import { RateLimiter, type Dimension, type RateLimitSpec } from '../ratelimit/limit.js';
import type { Limiter } from '../ratelimit/limiter.js';
import { algorithmKind, kindOf, MEMORY_STORE_DEFAULTS, LIMIT_STORE_KINDS, QUOTA_STORE_KINDS, type StoreContext } from '../ratelimit/kinds.js';
import type { LimitStore } from '../ratelimit/store.js';
import type { Resource, ResourceCatalog } from '../lifecycle/resources.js';
import type { Clock } from '../lib/clock.js';
import { rateLimitStage } from '../ratelimit/rate-limit-stage.js';
import type { HostStateClient } from '../workers/host-state-client.js';
import type { ConfigProblem } from './errors.js';
import { unknownName } from './suggest.js';
import { compileClaimPath } from '../authn/claims/claim-path.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig, RawRateLimit, RawRoute } from './schema.js';

/**
 * Documented defaults of the settings shared by every kind; docs/rate-limits.md lists the same
 * values. Each algorithm and store kind owns its own defaults (src/ratelimit/kinds.ts).
 */
export const RATE_LIMITING_DEFAULTS = Object.freeze({
  store: 'memory',
  ipv6PrefixLength: 64,
});

/** Documented defaults of `rateLimiting.bruteForce`; docs/rate-limits.md lists the same values. */
export const BRUTE_FORCE_DEFAULTS = Object.freeze({
  maxFailures: 10,
  within: '1m',
  blockFor: '15m',
});

/** Request headers a limit may not count by: their values are credentials, whose spelling variants would each get a bucket. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

export interface CompiledRateLimiting {
  readonly headers: HeaderMode;
  readonly limits: ReadonlyMap<string, RateLimiter>;
  readonly quotas: ReadonlyMap<string, QuotaLimiter>;
  /** Wraps the authenticate stage of every authenticated route, when configured. */
  readonly guard: BruteForceGuard | null;
  readonly global: readonly Limiter[];
  /** The stores and guard this config uses (resources: started when the config goes live, retired after it). */
  readonly resources: readonly Resource[];
  /**
   * Lower-case names of the request headers any limit or quota counts by (`header:<name>`): the
   * header pass refuses ambiguous copies of these (duplicates, `_` twins, names listed in
   * `Connection`), since a limit decides on them.
   */
  readonly decisionHeaders: ReadonlySet<string>;
}

type At = (...path: (string | number)[]) => (string | number)[];

/**
 * What compiling rate limiting uses besides the config: the running resources to reuse, the clock,
 * and in a worker the primary that holds the host's in-process state (null: this process holds it).
 */
export interface RateLimitCompileContext {
  readonly resources: ResourceCatalog;
  readonly clock: Clock;
  readonly hostState: HostStateClient | null;
}

/**
 * The stores one compile uses: the running instance of an equal definition when there is one (so a
 * reload that keeps a limit keeps its counts), else a new, unstarted one. Each is listed once.
 */
class StoresUsed implements Pick<StoreContext, 'use'> {
  private readonly used = new Map<string, Resource>();

  constructor(private readonly catalog: ResourceCatalog) {}

  use<R extends Resource>(key: string, kind: abstract new (...args: never[]) => R, make: () => R): R {
    const known = this.used.get(key);
    const found = known instanceof kind ? known : this.catalog.find(key, kind) ?? make();
    this.used.set(key, found);
    return found;
  }

  get all(): readonly Resource[] {
    return [...this.used.values()];
  }
}

/** Compiles `rateLimiting`, `rateLimits` and `quotas`, collecting located problems. `rules`: headers limits may not count by. Pure: opens nothing. */
export function compileRateLimiting(
  raw: RawConfig, loaded: LoadedConfig, context: RateLimitCompileContext, dataDir: string, rules: HeaderRules, problems: ConfigProblem[],
): CompiledRateLimiting {
  const stores = new StoresUsed(context.resources);
  const storeContext: StoreContext = { clock: context.clock, hostState: context.hostState, use: (key, kind, make) => stores.use(key, kind, make) };
  const rl = raw.rateLimiting ?? {};
  const d = RATE_LIMITING_DEFAULTS;
  const maxEntries = rl.maxEntries;
  const ipv6PrefixBits = rl.ipv6PrefixLength ?? d.ipv6PrefixLength;
  const redisRaw = rl.redis;
  // Stores are looked up when a limit, quota or the guard uses them: a config that only defines Redis opens nothing.
  const shared = redisRaw ?? null;
  /** The limit store of kind `type` for the table `id`; null when its kind's settings are missing. */
  const limitStore = (type: string, id: string, entries: number | undefined): LimitStore | null =>
    kindOf(LIMIT_STORE_KINDS, type).compile({ id, maxEntries: entries, redis: redisRaw }, storeContext);
  const defaultStore = rl.store ?? d.store;
  if (defaultStore === 'redis' && shared === null) problems.push(loaded.problem(['rateLimiting', 'store'], 'store redis needs rateLimiting.redis.url'));

  const limits = new Map<string, RateLimiter>();
  const decisionHeaders = new Set<string>();
  // One in-process table per limit (and per fail-open stand-in): no two limits share counts.
  const inProcess = (id: string, entries: number | undefined): LimitStore => limitStore('memory', id, entries) as LimitStore;
  for (const [name, r] of Object.entries(raw.rateLimits ?? {})) {
    const at: At = (...path) => ['rateLimits', name, ...path];
    reservedLimitName(name, 'rate limit', at, loaded, problems);
    const storeKind = r.store ?? defaultStore;
    if (storeKind === 'redis' && shared === null) {
      if (r.store !== undefined) problems.push(loaded.problem(at('store'), 'store redis needs rateLimiting.redis.url'));
      continue;
    }
    if (r.onStoreError === 'failOpen' && storeKind !== 'redis') problems.push(loaded.problem(at('onStoreError'), 'applies to limits in redis; an in-process store cannot be unreachable', true));
    const limit = compileLimit(name, r, at, loaded, rules, problems);
    if (limit === null) continue;
    const onRedis = storeKind === 'redis' && shared !== null;
    const entries = r.maxEntries ?? maxEntries;
    for (const dim of limit.by) if (dim.kind === 'header') decisionHeaders.add(dim.name);
    const store = limitStore(storeKind, `limit:${name}`, entries);
    if (store === null) continue;
    limits.set(name, new RateLimiter({
      ...limit,
      store,
      fallback: onRedis && r.onStoreError === 'failOpen' ? inProcess(`fallback:${name}`, entries) : null,
      ipv6PrefixBits,
    }));
  }
  const quotas = new Map<string, QuotaLimiter>();
  for (const [name, q] of Object.entries(raw.quotas ?? {})) {
    const at: At = (...path) => ['quotas', name, ...path];
    const before = problems.length;
    reservedLimitName(name, 'quota', at, loaded, problems);
    if (raw.rateLimits?.[name] !== undefined) problems.push(loaded.problem(at(), `a rate limit is also named "${name}"; responses name both in their headers, so names must differ`));
    const storeKind = q.store ?? (defaultStore === 'redis' ? 'redis' : 'embedded');
    const timeZone = q.timeZone ?? 'UTC';
    if (!isTimeZone(timeZone)) problems.push(loaded.problem(at('timeZone'), `"${timeZone}" is not a time zone this runtime knows (IANA names, e.g. Europe/Berlin)`));
    const by = parseDimensions(q.by, at, loaded, rules, problems);
    // Without an explicit store, a missing Redis URL is rateLimiting.store's problem, reported once above.
    if (storeKind === 'redis' && shared === null && q.store !== undefined) problems.push(loaded.problem(at('store'), 'store redis needs rateLimiting.redis.url'));
    if (problems.length > before || (storeKind === 'redis' && shared === null)) continue;
    for (const dim of by) if (dim.kind === 'header') decisionHeaders.add(dim.name);
    const store = kindOf(QUOTA_STORE_KINDS, storeKind).compile({
      name, resolveFile: (file) => resolve(dataDir, file), quotaFile: rl.quotaFile, quotaFlushMs: rl.quotaFlushMs, maxEntries, redis: redisRaw,
    }, storeContext);
    if (store === null) continue;
    quotas.set(name, new QuotaLimiter({
      name,
      limit: q.limit,
      tiers: new Map(Object.entries(q.tiers ?? {}).map(([tier, t]) => [tier, t.limit])),
      by,
      calendar: new Calendar(q.period, timeZone),
      store,
      failOpen: q.onStoreError === 'failOpen',
      ipv6PrefixBits,
      clock: context.clock,
    }));
  }

  let guard: BruteForceGuard | null = null;
  const bf = rl.bruteForce;
  if (bf !== undefined) {
    const storeKind = bf.store ?? defaultStore;
    const windowMs = parseDuration(bf.within ?? BRUTE_FORCE_DEFAULTS.within) ?? 60_000;
    if (windowMs > 86_400_000) problems.push(loaded.problem(['rateLimiting', 'bruteForce', 'within'], 'at most 1d'));
    if (storeKind === 'redis' && shared === null) {
      if (bf.store !== undefined) problems.push(loaded.problem(['rateLimiting', 'bruteForce', 'store'], 'store redis needs rateLimiting.redis.url'));
    } else {
      const onRedis = storeKind === 'redis' && shared !== null;
      const by = bf.by ?? ['ip', 'credential'];
      const settings = {
        maxFailures: bf.maxFailures ?? BRUTE_FORCE_DEFAULTS.maxFailures,
        windowMs,
        blockMs: parseDuration(bf.blockFor ?? BRUTE_FORCE_DEFAULTS.blockFor) ?? 900_000,
        byIp: by.includes('ip'),
        byCredential: by.includes('credential'),
        maxEntries: maxEntries ?? MEMORY_STORE_DEFAULTS.maxEntries,
        ipv6PrefixBits,
      };
      const storeName = onRedis ? JSON.stringify(redisRaw) : 'memory';
      const key = BruteForceGuard.keyOf(settings, storeName);
      const host = context.hostState;
      // The guard's state outlives a guard: the blocks belong to the gateway (a reload that changes
      // the guard's settings hands them to the new guard), the counts to the table of their kind
      // and bound. Looked up before the guard, so they start first.
      const blocks = stores.use(GuardBlocks.KEY, GuardBlocks, () => new GuardBlocks(host));
      const counts = {
        ip: stores.use(GuardCountTable.keyFor('ip', settings.maxEntries), GuardCountTable, () => new GuardCountTable('ip', settings.maxEntries, context.clock)),
        credential: stores.use(GuardCountTable.keyFor('credential', settings.maxEntries), GuardCountTable, () => new GuardCountTable('credential', settings.maxEntries, context.clock)),
      };
      // Only a shared store is looked up by kind. In a worker the failures are counted in the
      // primary, in one table per source kind named as the in-process one (a reload that keeps
      // `maxEntries` keeps its counts), with room for `maxEntries` sources.
      const redis = onRedis ? limitStore(storeKind, GUARD_NAME, undefined) : null;
      const hostTable = (kind: GuardSourceKind): LimitStore => limitStore('memory', GuardCountTable.idOf(kind), settings.maxEntries) as LimitStore;
      const spec: GuardSpec = {
        ...settings,
        shared: redis !== null ? { ip: redis, credential: redis } : host === null ? null : { ip: hostTable('ip'), credential: hostTable('credential') },
        counts,
        blocks,
      };
      guard = stores.use(key, BruteForceGuard, () => new BruteForceGuard(spec, storeName, context.clock));
    }
  }

  const global: Limiter[] = [];
  (rl.global ?? []).forEach((name, i) => {
    const limit = limits.get(name);
    if (limit !== undefined) global.push(limit);
    else if (raw.rateLimits?.[name] === undefined) problems.push(loaded.problem(['rateLimiting', 'global', i], unknownLimit(name, raw)));
  });
  const headers = rl.headers ?? {};
  return {
    headers: { draft: headers.draft ?? true, classic: headers.classic ?? true },
    limits,
    quotas,
    guard,
    global,
    resources: stores.all,
    decisionHeaders,
  };
}

/** The guard's name is the audit record's `limit` for its refusals: no rate limit or quota may pass for it. */
function reservedLimitName(name: string, what: string, at: At, loaded: LoadedConfig, problems: ConfigProblem[]): void {
  if (name !== GUARD_NAME) return;
  problems.push(loaded.problem(at(), `"${GUARD_NAME}" is reserved for the brute-force guard (audit records name it as their limit); give this ${what} another name, such as "${GUARD_NAME}Limit"`));
}

function unknownLimit(name: string, raw: RawConfig): string {
  return unknownName('rate limit', name, Object.keys(raw.rateLimits ?? {}));
}

type LimitCore = Pick<RateLimitSpec, 'name' | 'shape' | 'tiers' | 'by'>;

function compileLimit(name: string, r: RawRateLimit, at: At, loaded: LoadedConfig, rules: HeaderRules, problems: ConfigProblem[]): LimitCore | null {
  const before = problems.length;
  const algorithm = algorithmKind(r.algorithm);
  const windowed = !algorithm.takesBurst;
  if (windowed && r.burst !== undefined) problems.push(loaded.problem(at('burst'), `applies to token-bucket and gcra; ${r.algorithm} allows limit per window`));
  const shapeOf = (limit: number, per: string, burst: number | undefined, path: At): LimitShape | null => {
    const windowMs = parseDuration(per) ?? 0;
    if (windowMs > 86_400_000) { problems.push(loaded.problem(path('per'), 'at most 1d; longer periods are quotas (calendar days and months, kept across restarts)')); return null; }
    const shape: LimitShape = algorithm.compile({ limit, windowMs, burst, baseLimit: r.limit });
    if (shape.limit * shape.windowMs * shape.burst > MAX_PRODUCT) {
      problems.push(loaded.problem(path('limit'), `limit × window (ms) × burst must stay below 2^52 (${shape.limit} × ${windowMs} × ${shape.burst}); use a coarser window`));
      return null;
    }
    return shape;
  };
  const shape = shapeOf(r.limit, r.per, r.burst, at);
  const tiers = new Map<string, LimitShape>();
  for (const [tier, t] of Object.entries(r.tiers ?? {})) {
    if (windowed && t.burst !== undefined) problems.push(loaded.problem(at('tiers', tier, 'burst'), `applies to token-bucket and gcra; ${r.algorithm} allows limit per window`));
    const tierShape = shapeOf(t.limit, t.per ?? r.per, t.burst ?? r.burst, (...p) => at('tiers', tier, ...p));
    if (tierShape !== null) tiers.set(tier, tierShape);
  }
  const by = parseDimensions(r.by, at, loaded, rules, problems);
  if (shape === null || problems.length > before) return null;
  return { name, shape, tiers, by };
}

/**
 * The `by` list as dimensions. Refused: a credential header (spellings of one credential would each
 * get a count) and a header the gateway asserts (the limit would read the client's forged copy).
 */
function parseDimensions(list: readonly string[], at: At, loaded: LoadedConfig, rules: HeaderRules, problems: ConfigProblem[]): Dimension[] {
  return list.map((text, i): Dimension => {
    if (text.startsWith('header:')) {
      const header = text.slice('header:'.length).toLowerCase();
      const normalised = normaliseHeaderName(header);
      const instead = rules.asserted.get(normalised) ?? [...rules.assertedPrefixes].find(([prefix]) => normalised.startsWith(prefix))?.[1];
      if (CREDENTIAL_HEADERS.has(header) || rules.credential.has(header)) {
        problems.push(loaded.problem(at('by', i), `${header} carries credentials: count by keyId or subject, so spellings of one credential share a count`));
      } else if (instead !== undefined) {
        problems.push(loaded.problem(at('by', i), `${header} is a header the gateway asserts itself; the client's copy a limit would read is forged by definition: count by ${instead}`));
      }
      return { kind: 'header', name: header };
    }
    if (text.startsWith('claim:')) {
      const path = compileClaimPath(text.slice('claim:'.length));
      if (typeof path !== 'string') return { kind: 'claim', path };
      problems.push(loaded.problem(at('by', i), path));
      return { kind: 'claim', path: { text, pointer: null, dotted: [] } };
    }
    return { kind: text as 'ip' | 'subject' | 'keyId' | 'tenant' | 'route' };
  });
}

/**
 * The limit stage of a path the gateway answers itself without authenticating (an oidc login's
 * callback, login, logout, back-channel logout): the global limits that need no identity, which
 * apply "on every route", these included. Null when there are none.
 */
export function publicEndpointLimits(rl: CompiledRateLimiting): Stage | null {
  const before = rl.global.filter((l) => !l.afterAuth);
  return before.length === 0 ? null : rateLimitStage(before, 'rate-limit');
}

/**
 * A route's limit stages: the global limits, then the route's own, split into those that run
 * before authentication (counting by address, route or header: they also slow credential
 * stuffing) and those that need the identity.
 */
export function compileRouteLimits(
  r: RawRoute, at: At, rl: CompiledRateLimiting, loaded: LoadedConfig, problems: ConfigProblem[],
): { readonly before: Stage | null; readonly after: Stage | null } {
  const authenticated = r.public !== true && r.authenticate !== undefined;
  const own: Limiter[] = [];
  const take = (option: 'rateLimit' | 'quota', known: ReadonlyMap<string, Limiter>, defined: Record<string, unknown> | undefined) => {
    const value = r[option];
    const names = value === undefined ? [] : typeof value === 'string' ? [value] : value;
    names.forEach((name, i) => {
      const path = typeof value === 'string' ? at(option) : at(option, i);
      const limiter = known.get(name);
      if (limiter === undefined) {
        if (defined?.[name] === undefined) {
          problems.push(loaded.problem(path, unknownName(option === 'quota' ? 'quota' : 'rate limit', name, Object.keys(defined ?? {}))));
        }
        return;
      }
      if (limiter.afterAuth && !authenticated) {
        problems.push(loaded.problem(path, `"${name}" counts by the caller's identity or tier, but the route is public: count by ip, route or a header`));
        return;
      }
      if (!rl.global.includes(limiter)) own.push(limiter);
    });
  };
  take('rateLimit', rl.limits, loaded.raw.rateLimits);
  take('quota', rl.quotas, loaded.raw.quotas);
  // Global limits that need an identity apply where there is one.
  const all = [...rl.global.filter((l) => authenticated || !l.afterAuth), ...own];
  const before = all.filter((l) => !l.afterAuth);
  const after = all.filter((l) => l.afterAuth);
  return {
    before: before.length === 0 ? null : rateLimitStage(before, 'rate-limit'),
    after: after.length === 0 ? null : rateLimitStage(after, 'rate-limit-identity'),
  };
}
