import { createHash } from 'node:crypto';
import type { OAuthRedisSettings } from './oauth-redis-settings.js';
import { Type, type Static } from '@sinclair/typebox';
import { Duration, formatted, Millis, strict } from '../../config/schema-parts.js';
import type { ConfigProblem } from '../../config/errors.js';
import type { ConfigSource } from '../../config/config-source.js';
import type { Clock } from '../../lib/clock.js';
import { parseDuration } from '../../lib/duration.js';
import type { Resource, ResourceCatalog, UseResource } from '../../lifecycle/resources.js';
import { HostRevocations, type HostRevocationChannel } from './host-revocations.js';
import { LocalRevocations } from './local-revocations.js';
import { RedisRevocations } from './redis-revocations.js';
import type { RevocationList } from './revocations.js';
import { TokenDigester } from './token-digest.js';
import { TokenHashKeyFile, tokenHashKeyPath } from './token-hash-key-file.js';

/** `oauth.redis`: where gateways share introspection results and revocations. */
export const OAuthRedisSchema = strict({
  url: formatted('^rediss?://', 'a Redis URL like redis://redis:6379 or rediss://user:password@redis:6380/0', { description: 'redis://[user:password@]host:port[/db], or rediss:// for TLS. Put the password in the environment: ${REDIS_URL}.' }),
  keyPrefix: Type.Optional(formatted('^[A-Za-z0-9_.:-]{1,64}$', '1 to 64 letters, digits, `_`, `.`, `:` or `-`', { description: 'Prefix of every key and channel. Default portcullis:oauth.' })),
  timeoutMs: Type.Optional(Millis('Bound on one command\'s round trip. Default 100.')),
  connectTimeoutMs: Type.Optional(Millis('Bound on connecting. Default 1000.')),
}, 'The shared Redis of the OAuth features: introspection results (cache.shared) and revocations.');

/** `oauth.revocations`: how many revoked tokens are remembered, and for how long when the token's expiry is unknown. */
export const OAuthRevocationsSchema = strict({
  maxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'Revoked tokens remembered at most (in memory, and in Redis with oauth.redis); past it the revocations that end soonest leave first. Read at start. Default 100000.' })),
  defaultTtl: Type.Optional(Duration('How long a revocation lasts when its token\'s expiry is not given (no expiresAt, not a JWT with exp): at least as long as the longest-lived token. Default 1d.')),
  maxStalenessMs: Type.Optional(Millis('With oauth.redis: how long the list may be cut off from Redis before bearer tokens are refused with 503 authentication_unavailable (it may be missing revocations made elsewhere). Default 10000.', 1000)),
}, 'Revoked bearer tokens (POST /admin/revocations, the revocation webhook): refused by every bearer authenticator, on every gateway sharing oauth.redis.');

/** `oauth.webhook`: how the authorization server's revocation events are authenticated. */
export const OAuthWebhookSchema = strict({
  secret: Type.String({ minLength: 32, maxLength: 512, description: 'Shared secret of the HMAC-SHA256 signature in Portcullis-Signature, at least 32 characters: ${WEBHOOK_SECRET}.' }),
  toleranceMs: Type.Optional(Millis('How far the signature\'s timestamp may be from the gateway\'s clock, either way; a signature is accepted once within it. Default 300000.', 1000)),
}, 'The revocation webhook (a route with serve: revocation-webhook): signed revocation events from the authorization server.');

/** The `oauth` section: what every bearer-token authenticator shares. */
export const OAuthSchema = strict({
  tokenHashKey: Type.Optional(Type.String({ minLength: 32, maxLength: 512, description: 'Key of the keyed hash (HMAC-SHA256) under which tokens are cached and revoked, at least 32 characters. Required with oauth.redis, so every gateway digests alike: ${TOKEN_HASH_KEY}. Default: a key made at first start in dataDir (oauth/token-hash.key), shared by the host\'s workers and restarts.' })),
  redis: Type.Optional(OAuthRedisSchema),
  revocations: Type.Optional(OAuthRevocationsSchema),
  webhook: Type.Optional(OAuthWebhookSchema),
}, 'Shared by the bearer-token authenticators (jwt, introspection): token digests, the shared Redis, revocations (see docs/authentication.md, "Revoking tokens").');

export type RawOAuth = Static<typeof OAuthSchema>;

/** `oauth.webhook` compiled. */
export interface WebhookSettings {
  readonly secret: Buffer;
  readonly toleranceMs: number;
}

export const OAUTH_DEFAULTS = Object.freeze({
  'redis.keyPrefix': 'portcullis:oauth',
  'redis.timeoutMs': 100,
  'redis.connectTimeoutMs': 1000,
  'revocations.maxEntries': 100_000,
  'revocations.defaultTtl': '1d',
  'revocations.maxStalenessMs': 10_000,
  'webhook.toleranceMs': 300_000,
});

/** What every bearer-token authenticator of one config shares: how tokens are digested, which are revoked, and the shared Redis. */
export interface OAuthServices {
  readonly digester: TokenDigester;
  readonly revocations: RevocationList;
  /** Where introspection results and revocations are shared between gateways; null: this process only. */
  readonly redis: OAuthRedisSettings | null;
  /** How long a revocation lasts when the token's expiry is not known (ms). */
  readonly revocationTtlMs: number;
  /** The revocation webhook's settings; null without oauth.webhook. */
  readonly webhook: WebhookSettings | null;
}

/** The token hash key (its kind and fingerprint) each revocation list holds digests under, from the first config that used it. */
const digestKeys = new WeakMap<RevocationList, string>();

/** The revocation lists compiled against each running gateway's resources: the candidates a new list replaces. */
const compiledLists = new WeakMap<ResourceCatalog, Set<RevocationList & Resource>>();

/**
 * A reload that moves revocations to another list (oauth.redis added, removed or pointed
 * elsewhere, a worker's list): the running list's revocations in force are carried over into the
 * new one, which would otherwise not know them. Digests under another key cannot be carried
 * over: such a reload is refused. Returns the problem, or null.
 */
function carryOver(running: ResourceCatalog, next: RevocationList & Resource, digestKey: string): string | null {
  let lists = compiledLists.get(running);
  if (lists === undefined) compiledLists.set(running, lists = new Set());
  let problem: string | null = null;
  for (const list of lists) {
    if (list === next) continue;
    // Only the list the running config uses hands over; one compiled by a reload that failed never ran.
    if (running.find(list.key, list.constructor as abstract new (...args: never[]) => RevocationList & Resource) !== list) { lists.delete(list); continue; }
    const held = list.inForce();
    if (held.length === 0) continue;
    if (digestKeys.get(list) !== digestKey) {
      problem = `the running gateway holds ${held.length} revocations digested under another oauth.tokenHashKey, which this config's revocation list could not recognise: keep the running key, or change it with a restart once the revoked tokens have expired`;
      continue;
    }
    for (const [digest, until] of held) next.carryOver(digest, until);
  }
  lists.add(next);
  return problem;
}

/** What compiling the `oauth` section reads besides it. */
export interface OAuthCompileContext {
  readonly loaded: ConfigSource;
  readonly problems: ConfigProblem[];
  readonly clock: Clock;
  readonly dataDir: string;
  /** Running resources reused: the revocation list and the key file outlive reloads. */
  readonly use: UseResource;
  /** The running gateway's resources (absent: none run, as for check and explain): a list a reload replaces hands its revocations over. */
  readonly running?: ResourceCatalog;
  /** In a worker of `start --workers`: the primary, which keeps the host's revocations (absent in one process). */
  readonly hostState?: HostRevocationChannel | null;
}

/**
 * The `oauth` section compiled; problems are located under `oauth`. Opens nothing: the key file,
 * the Redis connections and the host's list are resources, started when the config goes live and
 * kept across reloads that leave their settings alone.
 */
export function compileOAuthServices(raw: RawOAuth | undefined, context: OAuthCompileContext): OAuthServices {
  const { loaded, problems, clock, use } = context;
  const redis = raw?.redis === undefined ? null : {
    url: raw.redis.url,
    keyPrefix: raw.redis.keyPrefix ?? OAUTH_DEFAULTS['redis.keyPrefix'],
    timeoutMs: raw.redis.timeoutMs ?? OAUTH_DEFAULTS['redis.timeoutMs'],
    connectTimeoutMs: raw.redis.connectTimeoutMs ?? OAUTH_DEFAULTS['redis.connectTimeoutMs'],
  };
  if (redis !== null && raw?.tokenHashKey === undefined) {
    problems.push(loaded.problem(['oauth', 'redis'], 'gateways sharing Redis must digest tokens with one key: set oauth.tokenHashKey (at least 32 characters, from the environment: ${TOKEN_HASH_KEY})'));
  }
  let digester: TokenDigester;
  if (raw?.tokenHashKey !== undefined) digester = new TokenDigester(Buffer.from(raw.tokenHashKey, 'utf8'));
  else {
    const path = tokenHashKeyPath(context.dataDir);
    digester = new TokenDigester(use(TokenHashKeyFile.keyOf(path), TokenHashKeyFile, () => new TokenHashKeyFile(path)));
  }
  const r = raw?.revocations;
  const ttl = r?.defaultTtl ?? OAUTH_DEFAULTS['revocations.defaultTtl'];
  const revocationTtlMs = parseDuration(ttl);
  if (revocationTtlMs === null) problems.push(loaded.problem(['oauth', 'revocations', 'defaultTtl'], `${ttl} is not a duration; give one like 1h or 1d`));
  const maxEntries = r?.maxEntries ?? OAUTH_DEFAULTS['revocations.maxEntries'];
  let revocations: RevocationList & Resource;
  if (redis !== null) {
    const settings = { redis, maxEntries, maxStalenessMs: r?.maxStalenessMs ?? OAUTH_DEFAULTS['revocations.maxStalenessMs'] };
    revocations = use(RedisRevocations.keyOf(settings), RedisRevocations, () => new RedisRevocations(settings, clock));
  } else if (context.hostState != null) {
    const host = context.hostState;
    revocations = use(HostRevocations.KEY, HostRevocations, () => new HostRevocations(host, maxEntries, clock));
  } else {
    revocations = use(LocalRevocations.KEY, LocalRevocations, () => new LocalRevocations(maxEntries, clock));
  }
  // The list is kept across reloads and knows tokens only by their digests under the key it
  // started with: a reload that changed the key would forget every revocation, silently.
  // (The key file is the one in the running dataDir: a changed dataDir applies on restart.)
  const digestKey = raw?.tokenHashKey === undefined ? 'key file' : `key ${createHash('sha256').update(raw.tokenHashKey, 'utf8').digest('hex')}`;
  const listKey = digestKeys.get(revocations);
  if (listKey === undefined) digestKeys.set(revocations, digestKey);
  else if (listKey !== digestKey) {
    problems.push(loaded.problem(raw?.tokenHashKey === undefined ? ['oauth'] : ['oauth', 'tokenHashKey'],
      'oauth.tokenHashKey differs from the key the running gateway digests tokens with: its revocations are known only under that key and would all be forgotten. Keep the running key; change it with a restart, once the revoked tokens have expired'));
  }
  if (context.running !== undefined && problems.length === 0) {
    const problem = carryOver(context.running, revocations, digestKey);
    if (problem !== null) problems.push(loaded.problem(raw?.tokenHashKey === undefined ? ['oauth'] : ['oauth', 'tokenHashKey'], problem));
  }
  const w = raw?.webhook;
  const webhook = w === undefined ? null : { secret: Buffer.from(w.secret, 'utf8'), toleranceMs: w.toleranceMs ?? OAUTH_DEFAULTS['webhook.toleranceMs'] };
  return { digester, revocations, redis, revocationTtlMs: revocationTtlMs ?? 86_400_000, webhook };
}
