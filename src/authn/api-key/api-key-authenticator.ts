import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ComponentReadiness } from '../../lifecycle/readiness.js';
import { deny } from '../../pipeline/denials.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { ABSENT, type Authenticator, type AuthOutcome } from '../authenticator.js';
import type { Identity } from '../identity.js';
import type { ApiKeyBackend, CompiledKey } from './backend.js';
import { hashKey, MAX_KEY_LENGTH, parseKey } from './key-format.js';
import { StoreUnavailableError } from './store.js';

export interface ApiKeyAuthenticatorSpec {
  readonly name: string;
  readonly realm: string;
  /** Lower-case header carrying the key. */
  readonly header: string;
  /** Also accept `Authorization: ApiKey <key>`. */
  readonly authorizationScheme: boolean;
  /** Query parameter read on routes that enable query keys. */
  readonly queryParam: string;
}

/** Where the key was found, or why the request's key cannot be used. */
type Extracted = { readonly key: string; readonly query: string | null } | { readonly malformed: string } | undefined;

/** Compared against when the key id is unknown, so both answers cost the same hash and comparison. */
const UNKNOWN_KEY_HASH = randomBytes(32);
/** Most presented keys remembered as verified per authenticator. */
const MAX_VERIFIED = 10_000;
/** Sent with 503 authentication_unavailable: look-up slots and sync come back within about a second. */
const RETRY_SOON: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });

/**
 * API keys (see docs/api-keys.md). The key's shape, checksum and environment are checked before
 * any lookup; the lookup by key id is served from the in-process directory; the SHA-256 of the
 * presented key is compared in constant time with the stored hash (or a dummy when the id is
 * unknown). Every failure is the same 401 for the client; the audit record names the reason.
 */
export class ApiKeyAuthenticator implements Authenticator {
  readonly type = 'apiKey';
  readonly challenge: string;
  readonly assertedHeaders: ReadonlyMap<string, string> = new Map();
  readonly credentialHeaders: readonly string[];
  readonly authorizationScheme: string | null;
  readonly alwaysAdmits = false;
  private readonly invalid: Readonly<Record<string, string>>;
  /** Identities per loaded key: the directory entry is replaced on every reload of the key, so this never goes stale. */
  private readonly identities = new WeakMap<CompiledKey, Identity>();
  /**
   * Presented keys whose hash matched, with the directory entry they matched. A hit skips the
   * format check and the hash, but only while that entry is still the directory's current one:
   * any change to the key (revocation, rotation) or the end of its cache TTL ends the shortcut.
   */
  private readonly verified = new Map<string, CompiledKey>();

  constructor(
    private readonly spec: ApiKeyAuthenticatorSpec,
    private readonly backend: ApiKeyBackend,
    /** True on routes that accept the key in the query string (discouraged: URLs end up in logs). */
    private readonly fromQuery = false,
  ) {
    this.challenge = `ApiKey realm="${spec.realm}"`;
    this.invalid = { 'www-authenticate': `ApiKey realm="${spec.realm}", error="invalid_key"` };
    this.credentialHeaders = spec.authorizationScheme ? [spec.header, 'authorization'] : [spec.header];
    this.authorizationScheme = spec.authorizationScheme ? 'apikey' : null;
  }

  get name(): string {
    return this.spec.name;
  }

  get queryParam(): string {
    return this.spec.queryParam;
  }

  readiness(): ComponentReadiness {
    return { ...this.backend.readiness(), type: this.type };
  }

  /** The same authenticator, also reading the key from the query string (for routes that opt in). */
  withQuery(): ApiKeyAuthenticator {
    return new ApiKeyAuthenticator(this.spec, this.backend, true);
  }

  authenticate(ex: Exchange): AuthOutcome | Promise<AuthOutcome> {
    const found = this.extract(ex);
    if (found === undefined) return ABSENT;
    if ('malformed' in found) return this.reject('api_key_malformed', true, found.malformed);
    if (found.query !== null) ex.forwardQuery = found.query;
    const known = this.verified.get(found.key);
    if (known !== undefined) {
      if (this.backend.directory.peek(known.record.id) === known) return this.accept(ex, known);
      this.verified.delete(found.key);
    }
    const parsed = parseKey(found.key, this.backend.settings.environment);
    if (!parsed.ok) return this.reject(parsed.reason, true, parsed.id === null ? parsed.detail : `key ${parsed.id}: ${parsed.detail}`);
    ex.presentedKeyId = parsed.id;
    const presented = hashKey(found.key);
    let key: CompiledKey | null | Promise<CompiledKey | null>;
    try {
      key = this.backend.directory.lookup(parsed.id);
    } catch (err) {
      return this.failure(err);
    }
    if (key instanceof Promise) return key.then((k) => this.decide(ex, found.key, parsed.id, presented, k), (err: unknown) => this.failure(err));
    return this.decide(ex, found.key, parsed.id, presented, key);
  }

  private decide(ex: Exchange, text: string, id: string, presented: Buffer, key: CompiledKey | null): AuthOutcome {
    const matches = timingSafeEqual(presented, key?.record.hash ?? UNKNOWN_KEY_HASH);
    if (key === null) return this.reject('api_key_unknown', true, `key ${id}`);
    if (!matches) return this.reject('api_key_secret_mismatch', true, `key ${id}`);
    if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
    this.verified.set(text, key);
    return this.accept(ex, key);
  }

  /**
   * The checks that follow a matching secret, on every request: revocation, expiry, rotation
   * grace, CIDRs. Revocation is a state; expiry and grace are judged by the store's clock (which
   * stamped them), not this machine's. The secret matched, so a refusal names the key's identity
   * for the audit record (`owner`).
   */
  private accept(ex: Exchange, key: CompiledKey): AuthOutcome {
    const k = key.record;
    const id = k.id;
    ex.presentedKeyId = id;
    const identity = this.identityOf(key);
    if (k.revokedAt !== null) return this.reject('api_key_revoked', false, `key ${id}`, identity);
    const storeNow = this.backend.directory.storeNow();
    if (k.graceUntil !== null && k.graceUntil <= storeNow) return this.reject('api_key_superseded', false, `key ${id}, replaced by ${k.replacedBy ?? '?'}`, identity);
    if (k.expiresAt !== null && k.expiresAt <= storeNow) return this.reject('api_key_expired', false, `key ${id}`, identity);
    if (key.cidrs !== null && !key.cidrs.has(ex.clientIp)) {
      return { kind: 'rejected', denial: deny('ip_not_allowed', `${this.spec.name}: key ${id} is not allowed from ${ex.clientIp}`), guess: false, owner: identity };
    }
    this.backend.usage.record(id, ex.clientIp, this.backend.now());
    this.backend.warnIfExpiring(k, storeNow);
    return { kind: 'authenticated', identity };
  }

  /** The identity of a loaded key, built once per directory entry. */
  private identityOf(key: CompiledKey): Identity {
    let identity = this.identities.get(key);
    if (identity === undefined) {
      const k = key.record;
      identity = Object.freeze({
        subject: k.name, method: 'apiKey', authenticator: this.spec.name, keyId: k.id,
        roles: k.roles, scopes: k.scopes, tenant: k.tenant, tier: k.rateLimitTier, claims: null, claimHeaders: [], bearerRealm: null,
      });
      this.identities.set(key, identity);
    }
    return identity;
  }

  /** The store cannot answer (down, out of date, or too many look-ups in flight): 503, retry shortly (RFC 9110 §10.2.3). */
  private failure(err: unknown): AuthOutcome {
    if (err instanceof StoreUnavailableError) return { kind: 'rejected', denial: deny('authentication_unavailable', `${this.spec.name}: ${err.message}`, RETRY_SOON), guess: false };
    throw err;
  }

  /** `guess`: false only once the secret matched (revoked, superseded, expired): an honest mistake, not counted by the brute-force guard. */
  private reject(reason: string, guess: boolean, detail: string, owner?: Identity): AuthOutcome {
    const denial = deny('invalid_credential', `${this.spec.name}: ${reason}: ${detail}`, this.invalid);
    return owner === undefined ? { kind: 'rejected', denial, guess } : { kind: 'rejected', denial, guess, owner };
  }

  /**
   * The key from the configured header, `Authorization: ApiKey <key>` or (where enabled) the query
   * string. A key in two places, a repeated header or parameter, or an empty value is malformed:
   * two hops could each read a different one.
   */
  private extract(ex: Exchange): Extracted {
    const raw = ex.req.rawHeaders;
    const header = this.spec.header;
    let key: string | undefined;
    let places = 0;
    let authorizations = 0;
    let fromAuthorization: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (name.length === header.length && name.toLowerCase() === header) {
        if (key !== undefined) return { malformed: `several ${header} headers` };
        key = raw[i + 1];
        places++;
      } else if (name.length === 13 && name.toLowerCase() === 'authorization') {
        authorizations++;
        const value = raw[i + 1] as string;
        if (this.spec.authorizationScheme && value.length >= 7 && value.slice(0, 7).toLowerCase() === 'apikey ') fromAuthorization = value.slice(7);
      }
    }
    if (fromAuthorization !== undefined) {
      if (authorizations > 1) return { malformed: 'several Authorization headers' };
      key ??= fromAuthorization;
      places++;
    }
    let query: string | null = null;
    if (this.fromQuery) {
      const q = queryKey(ex.target?.query ?? '', this.spec.queryParam);
      if (q === 'several') return { malformed: `several ${this.spec.queryParam} query parameters` };
      if (q !== null) { key = q.key; query = q.rest; places++; }
    }
    if (key === undefined) return undefined;
    if (places > 1) return { malformed: 'key in more than one place' };
    if (key === '') return { malformed: 'empty key' };
    return key.length > MAX_KEY_LENGTH ? { malformed: `longer than ${MAX_KEY_LENGTH} characters` } : { key, query };
  }
}

/** The named parameter of a `?…` query and the query without it; `'several'` if it appears twice. */
function queryKey(query: string, param: string): { key: string; rest: string } | 'several' | null {
  if (query.length < 2) return null;
  const parts = query.slice(1).split('&');
  let key: string | null = null;
  const rest: string[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    if (name !== param) { rest.push(part); continue; }
    if (key !== null) return 'several';
    key = eq === -1 ? '' : part.slice(eq + 1);
  }
  if (key === null) return null;
  return { key, rest: rest.length === 0 ? '' : `?${rest.join('&')}` };
}
