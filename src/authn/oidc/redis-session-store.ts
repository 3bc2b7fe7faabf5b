import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../../lib/clock.js';
import { redactedUrl } from '../../lib/redacted-url.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import type { Logger } from '../../observability/logger.js';
import { oauthRedisClient, type OAuthRedisSettings } from '../oauth/oauth-redis-settings.js';
import { CREATE_SCRIPT, DELETE_SCRIPT, DELETE_WHERE_SCRIPT, GET_SCRIPT, LOCK_SCRIPT, ONCE_SCRIPT, UNLOCK_SCRIPT, UPDATE_SCRIPT } from './redis-session-scripts.js';
import { parsedRecord } from './session-record.js';
import { opened, sealed } from './session-seal.js';
import { SessionStoreUnavailableError, type SessionKey, type SessionLimits, type SessionRecord, type SessionStore } from './session-store.js';

interface Script {
  readonly lua: string;
  readonly sha: string;
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });
const GET = script(GET_SCRIPT);
const CREATE = script(CREATE_SCRIPT);
const UPDATE = script(UPDATE_SCRIPT);
const DELETE = script(DELETE_SCRIPT);
const DELETE_WHERE = script(DELETE_WHERE_SCRIPT);
const UNLOCK = script(UNLOCK_SCRIPT);
const LOCK = script(LOCK_SCRIPT);
const ONCE = script(ONCE_SCRIPT);

/** SHA-256, base64url: what goes into a key name in place of text an identity provider or a client chose. */
const digest = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64url');

/**
 * Kept in the clear beside the sealed record so an update is refused to a caller without the
 * cookie value; a digest of 256 random bits gives nothing back.
 */
const verifierOf = (secret: string): string => digest(`portcullis oidc session verifier\u0000${secret}`);

/**
 * Sessions in Redis, shared by every gateway on it. Under `<keyPrefix>:session` (every name part
 * taken from outside is a SHA-256 digest, `<h>` below):
 *
 * - `:s:<h(id)>` — hash: `r` the record sealed under the cookie value (AES-256-GCM, see
 *   session-seal.ts), and in the clear `v` version, `c` createdAt, `e` absolute end, `u` last use,
 *   `sk`/`dk` its index keys, `w` a verifier of the cookie value. Expires with the session.
 * - `:live` — sorted set of live sessions, score the time each ends unless used again: the global
 *   count. A create first drops the ended ones, then refuses past maxSessions, all in one script,
 *   so the bound holds across gateways. Scores are the gateways' clocks' deadlines, renewed on
 *   every use (a session the count lost is counted again at its next use): the count is exact
 *   while gateways agree on the time and the idle timeout, approximate across a reload that
 *   changes it.
 * - `:sub:<h(authenticator, subject)>` — sorted set of that subject's sessions by createdAt.
 * - `:sid:<h(authenticator, sid)>` — set of the sessions of one provider session.
 * - `:lock:<h(id)>` — the refresh lock, `<token>:<until>` on the gateways' clock like every other deadline here (LOCK_SCRIPT).
 * - `:names` — sorted set of one-time names, score when each may be forgotten: the bound and the
 *   first-time check in one script.
 *
 * Every index carries a TTL up to the latest absolute end it holds, so nothing outlives its
 * sessions for long. Each method is one round trip (an EVALSHA); any failure or timeout rejects
 * with SessionStoreUnavailableError (no offline queue: a disconnected store fails at once).
 * The scripts reach index keys named inside the session hash, so the store needs a single Redis
 * (or a replicated primary), not Redis Cluster.
 */
export class RedisSessionStore implements SessionStore, Resource {
  readonly key: string;
  private readonly prefix: string;
  private client: Redis | null = null;
  private clock: Clock = systemClock;
  private logger: Logger | null = null;
  private warned = false;

  constructor(private readonly settings: OAuthRedisSettings) {
    this.key = `oidc-sessions redis ${JSON.stringify(settings)}`;
    this.prefix = `${settings.keyPrefix}:session`;
  }

  async start(context: ResourceContext): Promise<void> {
    this.clock = context.clock;
    this.logger = context.logger;
    if (this.client !== null) return;
    const client = oauthRedisClient(this.settings);
    client.on('error', () => { /* reported through the calls that fail; ioredis reconnects */ });
    client.on('ready', () => {
      if (this.warned) this.logger?.info({ redis: redactedUrl(this.settings.url) }, 'session store (Redis) reachable again');
      this.warned = false;
    });
    this.client = client;
    try { await client.connect(); } catch (err) { this.warn(err); }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client === null) return;
    try { await client.quit(); } catch { client.disconnect(); }
  }

  async get(key: SessionKey, now: number, idleTimeoutMs: number): Promise<SessionRecord | null> {
    const h = digest(key.id);
    const blob = await this.run(GET, [this.sessionKey(h)], [this.prefix, h, now, idleTimeoutMs]);
    if (typeof blob !== 'string') return null;
    const json = opened(key, blob);
    return json === null ? null : parsedRecord(json);
  }

  async create(key: SessionKey, record: SessionRecord, now: number, limits: SessionLimits): Promise<'created' | 'full'> {
    const h = digest(key.id);
    const reply = await this.run(CREATE, [this.sessionKey(h)], [
      this.prefix, h, now, limits.idleTimeoutMs, sealed(key, JSON.stringify(record)), record.version, record.createdAt,
      record.expiresAt, this.subjectIndex(record.authenticator, record.subject), this.sidIndex(record.authenticator, record.sid),
      limits.maxSessions, limits.maxSessionsPerSubject, verifierOf(key.secret),
    ]);
    if (reply === 'created' || reply === 'full') return reply;
    throw new SessionStoreUnavailableError('redis: unexpected reply from the create script');
  }

  async update(key: SessionKey, record: SessionRecord, now: number, idleTimeoutMs: number): Promise<boolean> {
    const h = digest(key.id);
    const reply = await this.run(UPDATE, [this.sessionKey(h)], [
      this.prefix, h, now, idleTimeoutMs, sealed(key, JSON.stringify(record)), record.version, record.version - 1,
      record.createdAt, record.expiresAt, this.subjectIndex(record.authenticator, record.subject),
      this.sidIndex(record.authenticator, record.sid), verifierOf(key.secret),
    ]);
    return reply === 1;
  }

  async delete(key: SessionKey): Promise<void> {
    await this.run(DELETE, [], [this.prefix, digest(key.id)]);
  }

  async deleteWhere(authenticator: string, match: { readonly sid: string } | { readonly subject: string }): Promise<number> {
    const [index, kind] = 'sid' in match
      ? [this.sidIndex(authenticator, match.sid), 'sid']
      : [this.subjectIndex(authenticator, match.subject), 'sub'];
    const reply = await this.run(DELETE_WHERE, [index], [this.prefix, kind]);
    return typeof reply === 'number' ? reply : 0;
  }

  async lock(key: SessionKey, ttlMs: number): Promise<string | null> {
    const token = randomBytes(18).toString('base64url');
    return await this.run(LOCK, [this.lockKey(key)], [token, this.clock.now(), Math.max(1, Math.ceil(ttlMs))]) === 1 ? token : null;
  }

  async unlock(key: SessionKey, token: string): Promise<void> {
    await this.run(UNLOCK, [this.lockKey(key)], [token]);
  }

  async once(name: string, untilMs: number, now: number, maxNames: number): Promise<boolean> {
    return await this.run(ONCE, [`${this.prefix}:names`], [digest(name), untilMs, now, maxNames]) === 1;
  }

  async forget(name: string): Promise<void> {
    const client = this.ready();
    try {
      await client.zrem(`${this.prefix}:names`, digest(name));
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** Sessions whose deadline has not passed by this gateway's clock (the `:live` count). */
  async size(): Promise<number> {
    const client = this.ready();
    try {
      return await client.zcount(`${this.prefix}:live`, `(${this.clock.now()}`, '+inf');
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private sessionKey(h: string): string {
    return `${this.prefix}:s:${h}`;
  }

  private lockKey(key: SessionKey): string {
    return `${this.prefix}:lock:${digest(key.id)}`;
  }

  private subjectIndex(authenticator: string, subject: string): string {
    return `${this.prefix}:sub:${digest(JSON.stringify([authenticator, subject]))}`;
  }

  private sidIndex(authenticator: string, sid: string | null): string {
    return sid === null ? '' : `${this.prefix}:sid:${digest(JSON.stringify([authenticator, sid]))}`;
  }

  private ready(): Redis {
    const client = this.client;
    if (client?.status !== 'ready') {
      const err = new SessionStoreUnavailableError(`redis ${client?.status ?? 'not started'}`);
      this.warn(err);
      throw err;
    }
    return client;
  }

  /** One EVALSHA (EVAL when Redis lost the script, e.g. after a restart). */
  private async run(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const client = this.ready();
    try {
      try {
        return await client.evalsha(s.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await client.eval(s.lua, keys.length, ...keys, ...args);
      }
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private unavailable(err: unknown): SessionStoreUnavailableError {
    this.warn(err);
    return new SessionStoreUnavailableError(`redis: ${(err as Error).message}`);
  }

  private warn(err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.logger?.error({ redis: redactedUrl(this.settings.url), err: (err as Error).message }, 'session store (Redis) unavailable: session routes answer 503 meanwhile');
  }
}
