import { cidrProblem } from '../../lib/ip.js';
import { isHeaderSafe, MAX_IDENTITY_LIST } from '../identity.js';
import { displayPrefix, hashKey, newKey, newKeyId } from './key-format.js';
import { keyStatus, type ApiKeyRecord, type ApiKeyStore, type KeyStatus, type NewApiKey } from './store.js';

/** The key-management policy from the `apiKeys` config section. */
export interface KeyPolicy {
  readonly environment: string;
  /** Longest lifetime a key may be given; also the default. */
  readonly maxLifetimeMs: number;
  /** Keys this close to expiry are reported as `expiring` and warned about on use. */
  readonly expiryWarningMs: number;
}

/** What a caller may set on a new key. */
export interface KeyRequest {
  readonly name: string;
  readonly tenant?: string | null;
  readonly roles?: readonly string[];
  readonly scopes?: readonly string[];
  readonly allowedCidrs?: readonly string[];
  readonly rateLimitTier?: string | null;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Lifetime from now; defaults to the policy's maximum. */
  readonly expiresInMs?: number;
}

/** What a listing shows as stored. */
type ListedFields = 'id' | 'name' | 'tenant' | 'roles' | 'scopes' | 'allowedCidrs' | 'rateLimitTier' | 'metadata' | 'replaces' | 'replacedBy' | 'useCount' | 'lastUsedIp';

/** A key as listed: everything but the hash, with its display prefix, its status and times as ISO 8601. */
export interface KeyView extends Pick<ApiKeyRecord, ListedFields> {
  readonly prefix: string;
  readonly status: KeyStatus;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly graceUntil: string | null;
  readonly lastUsedAt: string | null;
}

/** A key request from fields that may be absent (CLI options, JSON bodies): absent fields take their defaults. */
export function keyRequest(fields: { readonly [K in keyof KeyRequest]-?: KeyRequest[K] | undefined }): KeyRequest {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as unknown as KeyRequest;
}

/** A newly issued key: `key` is the secret, shown this once. */
export interface IssuedKey {
  readonly key: string;
  readonly view: KeyView;
}

/** A request that cannot be honoured as given (400 on the admin API, exit 2 on the CLI). */
export class KeyRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyRequestError';
  }
}

/** Printable ASCII without spaces, commas, quotes or backslashes: the same rule as roles and scopes in the config. */
const TOKEN = /^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]{1,256}$/;
const TIER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const META_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MAX_METADATA = 32;
const MAX_CIDRS = 64;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function viewOf(k: ApiKeyRecord, now: number, policy: KeyPolicy): KeyView {
  return {
    id: k.id, prefix: displayPrefix(k.environment, k.id), name: k.name, status: keyStatus(k, now, policy.expiryWarningMs),
    tenant: k.tenant, roles: k.roles, scopes: k.scopes, allowedCidrs: k.allowedCidrs, rateLimitTier: k.rateLimitTier, metadata: k.metadata,
    createdAt: new Date(k.createdAt).toISOString(), expiresAt: iso(k.expiresAt), revokedAt: iso(k.revokedAt),
    replaces: k.replaces, replacedBy: k.replacedBy, graceUntil: iso(k.graceUntil),
    useCount: k.useCount, lastUsedAt: iso(k.lastUsedAt), lastUsedIp: k.lastUsedIp,
  };
}

function list(what: string, values: readonly string[] | undefined): readonly string[] {
  const items = values ?? [];
  if (items.length > MAX_IDENTITY_LIST) throw new KeyRequestError(`at most ${MAX_IDENTITY_LIST} ${what}`);
  for (const v of items) {
    if (typeof v !== 'string' || !TOKEN.test(v)) throw new KeyRequestError(`${what}: "${v}" is not printable ASCII without spaces, commas, quotes or backslashes`);
  }
  return [...new Set(items)];
}

/** Checks a key request against the policy; the result is what gets stored (the store stamps the times). */
function validated(req: KeyRequest, policy: KeyPolicy): Omit<NewApiKey, 'id' | 'environment' | 'hash' | 'replaces'> {
  if (typeof req.name !== 'string' || !isHeaderSafe(req.name) || req.name.length > 128) throw new KeyRequestError('name: 1–128 printable ASCII characters, no leading or trailing space');
  const tenant = req.tenant ?? null;
  if (tenant !== null && (typeof tenant !== 'string' || !isHeaderSafe(tenant))) throw new KeyRequestError('tenant: printable ASCII, up to 1024 characters');
  const roles = list('roles', req.roles);
  const scopes = list('scopes', req.scopes);
  const cidrs = req.allowedCidrs ?? [];
  if (cidrs.length > MAX_CIDRS) throw new KeyRequestError(`allowedCidrs: at most ${MAX_CIDRS}`);
  for (const c of cidrs) {
    const problem = typeof c === 'string' ? cidrProblem(c) : 'each entry must be a CIDR string';
    if (problem !== null) throw new KeyRequestError(`allowedCidrs: ${problem}`);
  }
  const tier = req.rateLimitTier ?? null;
  if (tier !== null && (typeof tier !== 'string' || !TIER.test(tier))) throw new KeyRequestError('rateLimitTier: a name of letters, digits, _ . -');
  const metadata = req.metadata ?? {};
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA) throw new KeyRequestError(`metadata: at most ${MAX_METADATA} entries`);
  for (const [k, v] of entries) {
    if (!META_KEY.test(k) || typeof v !== 'string' || v.length > 1024) throw new KeyRequestError(`metadata: "${k}" needs a name of letters, digits, _ . - and a string value up to 1024 characters`);
  }
  const lifetime = req.expiresInMs ?? policy.maxLifetimeMs;
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) throw new KeyRequestError('expires: a positive duration such as 90d');
  if (lifetime > policy.maxLifetimeMs) throw new KeyRequestError(`expires: longer than the maximum key lifetime (apiKeys.maxLifetime, ${Math.floor(policy.maxLifetimeMs / 86_400_000)} days)`);
  return {
    name: req.name, tenant, roles, scopes, allowedCidrs: [...cidrs], rateLimitTier: tier, metadata: { ...metadata },
    lifetimeMs: lifetime,
  };
}

/**
 * Key lifecycle — create, list, revoke, rotate — over any store. The CLI and the admin API both
 * use it, so both enforce the same rules. The plaintext key leaves only in the return value of
 * create and rotate; it is never stored or logged.
 *
 * This process's clock plays no part: the store stamps every instant and statuses are computed
 * against the store's clock, so `keys list`, `keys show`, the admin API and every gateway agree.
 */
export class KeyService {
  constructor(readonly store: ApiKeyStore, readonly policy: KeyPolicy) {}

  async create(req: KeyRequest): Promise<IssuedKey> {
    const fields = validated(req, this.policy);
    const id = newKeyId();
    const key = newKey(this.policy.environment, id);
    await this.store.insert({ ...fields, id, environment: this.policy.environment, hash: hashKey(key), replaces: null });
    return { key, view: await this.view(id) };
  }

  async list(): Promise<KeyView[]> {
    const [keys, now] = await Promise.all([this.store.list(), this.store.clock()]);
    return keys.map((k) => viewOf(k, now, this.policy));
  }

  /** The key, or null when unknown. */
  async get(id: string): Promise<KeyView | null> {
    const [k, now] = await Promise.all([this.store.get(id), this.store.clock()]);
    return k === null ? null : viewOf(k, now, this.policy);
  }

  /** Revokes at once, by state (see ApiKeyStore.revoke); idempotent; null when the key is unknown. */
  async revoke(id: string): Promise<KeyView | null> {
    const k = await this.store.revoke(id);
    return k === null ? null : viewOf(k, await this.store.clock(), this.policy);
  }

  /**
   * Issues a successor with the same name, tenant, roles, scopes, CIDRs, tier and metadata. The
   * old key keeps working until `graceMs` after the store's clock (or its own expiry, if sooner).
   * Null when the key is unknown; KeyConflictError when it is revoked, expired or already rotated.
   */
  async rotate(id: string, graceMs: number, expiresInMs?: number): Promise<(IssuedKey & { readonly previous: KeyView }) | null> {
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new KeyRequestError('grace: a duration such as 24h (0 ends the old key now)');
    if (graceMs > this.policy.maxLifetimeMs) throw new KeyRequestError('grace: longer than the maximum key lifetime');
    const old = await this.store.get(id);
    if (old === null) return null;
    const fields = validated({
      name: old.name, tenant: old.tenant, roles: old.roles, scopes: old.scopes, allowedCidrs: old.allowedCidrs,
      rateLimitTier: old.rateLimitTier, metadata: old.metadata,
      // Both instants were stamped by the store, so their difference is the lifetime it was given.
      expiresInMs: expiresInMs ?? Math.min(this.policy.maxLifetimeMs, old.expiresAt === null ? this.policy.maxLifetimeMs : Math.max(1, old.expiresAt - old.createdAt)),
    }, this.policy);
    const successorId = newKeyId();
    const key = newKey(this.policy.environment, successorId);
    await this.store.rotate(id, { ...fields, id: successorId, environment: this.policy.environment, hash: hashKey(key), replaces: id }, graceMs);
    return { key, view: await this.view(successorId), previous: await this.view(id) };
  }

  private async view(id: string): Promise<KeyView> {
    const k = await this.get(id);
    if (k === null) throw new Error(`key ${id} vanished after it was written`);
    return k;
  }
}
