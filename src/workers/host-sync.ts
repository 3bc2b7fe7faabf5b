import { openStore } from '../authn/api-key/backend.js';
import { ChangeLogFollower, type KeyChangeSink } from '../authn/api-key/change-log-follower.js';
import type { ApiKeyStore } from '../authn/api-key/store.js';
import { importJwks } from '../authn/jwt/key-source.js';
import { downloadJwks, refreshDelayMs, type JwksFetchReason, type RemoteJwksOptions } from '../authn/jwt/remote-jwks.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { shownText } from '../lifecycle/readiness.js';
import { redacted } from '../lifecycle/resources.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { isSyncMessage, parseSyncRequest, SYNC_TAG, type FollowSettings, type JwksAnswer, type SyncPush, type SyncRequest } from './host-sync-protocol.js';

/** The primary's end of one worker's IPC channel: a cluster Worker or a forked ChildProcess. */
export interface SyncChannel {
  send(message: SyncPush, sendHandle: undefined, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface HostSyncOptions {
  readonly logger: Logger;
  /** The clock of polls, cooldowns and refresh ages (default: the machine's). */
  readonly clock?: Clock;
  /** Where the reads of the change logs and the JWKS fetches are counted (default: a registry of its own). */
  readonly metrics?: Metrics;
  /** Fetches a JWK Set (default: over the network); tests inject failures. */
  readonly download?: (options: RemoteJwksOptions) => Promise<{ text: string; maxAgeMs: number | null }>;
}

/** Most key stores followed at once: one per distinct apiKeys section the workers run (normally one; two during a reload that changes it). */
export const MAX_FOLLOWED_STORES = 8;
/** Most followed stores one worker may hold handles on. */
export const MAX_HANDLES_PER_WORKER = 16;
/** Most remote JWK Sets held: one per distinct jwksUri and fetch settings in the configs the workers run. */
export const MAX_JWKS_SETS = 64;
/** Most JWKS asks of one worker waiting for an answer; more are answered at once as failed. */
export const MAX_JWKS_ASKS_PER_WORKER = 256;
/** A set this close to its refresh is refreshed when a worker asks (timers may fire slightly early). */
const REFRESH_SLACK_MS = 100;

interface Follower {
  readonly key: string;
  readonly settings: FollowSettings;
  readonly store: ApiKeyStore;
  readonly follower: ChangeLogFollower;
  /** The newest ids the log named (existing keys), oldest first, at most settings.maxEntries; null until the first read. */
  existing: Set<string> | null;
  syncedAt: number | null;
  clockOffsetMs: number;
  healthy: boolean;
  /** False until the first read attempt ended: subscribers hear the state once it has. */
  started: boolean;
  readonly subscribers: Set<Subscriber>;
}

interface Subscriber {
  readonly worker: SyncChannel;
  readonly handle: number;
}

interface Attached {
  readonly listener: (message: unknown) => void;
  /** The followed stores, by the handle the worker named them with. */
  readonly handles: Map<number, Follower>;
  asks: number;
}

/**
 * What a host's primary does once for all its workers: reads each API key store's change log
 * (poll and LISTEN, with the same ChangeLogFollower one process uses) and pushes every change and
 * every successful read to the workers that follow it, and fetches each remote JWK Set for every
 * worker that asks (see HostJwks). A worker restarted later hears the current state when it
 * starts following: the ids known to exist and the age of the last good read.
 */
export class HostSync {
  private readonly followers = new Map<string, Follower>();
  private readonly workers = new Map<SyncChannel, Attached>();
  private readonly stopping = new Set<Promise<void>>();
  private readonly jwks: HostJwks;
  private readonly clock: Clock;
  private readonly metrics: Metrics;
  private closed = false;

  constructor(private readonly options: HostSyncOptions) {
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? new Metrics(false);
    this.jwks = new HostJwks({ ...options, clock: this.clock, metrics: this.metrics });
  }

  /** Serves the worker's messages of this protocol (others on the channel are left alone). */
  attach(worker: SyncChannel): void {
    if (this.closed || this.workers.has(worker)) return;
    const attached: Attached = {
      handles: new Map(),
      asks: 0,
      listener: (message) => { if (isSyncMessage(message)) this.receiveSafely(worker, attached, message); },
    };
    this.workers.set(worker, attached);
    worker.on('message', attached.listener);
  }

  /** Forgets the worker (it exited): the stores only it followed stop being read. */
  detach(worker: SyncChannel): void {
    const attached = this.workers.get(worker);
    if (attached === undefined) return;
    this.workers.delete(worker);
    worker.off('message', attached.listener);
    for (const [handle, f] of attached.handles) this.unfollow(f, { worker, handle });
    attached.handles.clear();
  }

  /** The keys of the stores followed now (tests). */
  get followedStores(): readonly string[] {
    return [...this.followers.keys()];
  }

  /** Detaches every worker and stops reading every change log. */
  async close(): Promise<void> {
    this.closed = true;
    for (const worker of [...this.workers.keys()]) this.detach(worker);
    for (const f of [...this.followers.values()]) this.stop(f);
    await Promise.all(this.stopping);
  }

  /** A message the primary cannot handle is logged and dropped: the primary must outlive any one worker's mistake. */
  private receiveSafely(worker: SyncChannel, attached: Attached, message: unknown): void {
    let request: SyncRequest | null = null;
    try {
      request = parseSyncRequest(message);
      if (request === null) {
        const op = (message as { op?: unknown }).op;
        this.options.logger.warn({ op: typeof op === 'string' ? op.slice(0, 32) : typeof op }, 'host sync: a malformed worker message was dropped');
        return;
      }
      this.receive(worker, attached, request);
    } catch (err) {
      this.options.logger.error({ err, op: request?.op }, 'host sync: a worker message could not be handled');
    }
  }

  private receive(worker: SyncChannel, attached: Attached, m: SyncRequest): void {
    switch (m.op) {
      case 'follow':
        if (this.closed || attached.handles.has(m.handle)) return;
        if (attached.handles.size >= MAX_HANDLES_PER_WORKER) {
          this.options.logger.warn({ handles: attached.handles.size }, 'host sync: a worker follows too many key stores; refused');
          return;
        }
        this.follow(worker, attached, m.handle, m.settings);
        return;
      case 'unfollow': {
        const f = attached.handles.get(m.handle);
        attached.handles.delete(m.handle);
        if (f !== undefined) this.unfollow(f, { worker, handle: m.handle });
        return;
      }
      case 'jwks': {
        const id = m.id;
        if (attached.asks >= MAX_JWKS_ASKS_PER_WORKER) {
          this.send(worker, { t: SYNC_TAG, op: 'jwks', id, ok: false, error: `${attached.asks} JWKS asks of this worker unanswered` });
          return;
        }
        attached.asks++;
        void this.jwks.ask(m.options, m.reason)
          .catch((err: unknown): JwksAnswer => ({ ok: false, error: (err as Error).message }))
          .then((answer) => {
            attached.asks--;
            this.send(worker, { t: SYNC_TAG, op: 'jwks', id, ...answer });
          });
        return;
      }
    }
  }

  private follow(worker: SyncChannel, attached: Attached, handle: number, settings: FollowSettings): void {
    const key = JSON.stringify(settings);
    let f = this.followers.get(key);
    if (f === undefined) {
      if (this.followers.size >= MAX_FOLLOWED_STORES) {
        this.options.logger.error({ stores: this.followers.size }, 'host sync: too many key stores followed at once; refused (the worker\'s keys go stale and fail closed)');
        return;
      }
      f = this.startFollower(key, settings);
    }
    const subscriber: Subscriber = { worker, handle };
    attached.handles.set(handle, f);
    f.subscribers.add(subscriber);
    if (f.started) this.sendState(f, subscriber);
  }

  private startFollower(key: string, settings: FollowSettings): Follower {
    // SQLite stamps with its own clock, as in a worker that runs on the machine's clock.
    const store = openStore(settings.store, () => null);
    const sink: KeyChangeSink = {
      primed: (existing) => {
        f.existing = new Set(existing);
        this.push(f, (handle) => ({ t: SYNC_TAG, op: 'primed', handle, existing }));
      },
      changed: (ids) => {
        if (f.existing === null) return;
        for (const id of ids) remember(f.existing, id, settings.maxEntries);
        this.push(f, (handle) => ({ t: SYNC_TAG, op: 'changed', handle, ids }));
      },
      synced: (clockOffsetMs) => {
        f.syncedAt = this.clock.now();
        if (Number.isFinite(clockOffsetMs)) f.clockOffsetMs = clockOffsetMs;
        f.healthy = true;
        this.push(f, (handle) => ({ t: SYNC_TAG, op: 'synced', handle, clockOffsetMs: f.clockOffsetMs }));
      },
      failed: () => {
        f.healthy = false;
        this.push(f, (handle) => ({ t: SYNC_TAG, op: 'failed', handle }));
      },
    };
    const follower = new ChangeLogFollower(store, {
      pollIntervalMs: settings.pollIntervalMs,
      listen: settings.store.type === 'postgres' && settings.store.listen,
      maxEntries: settings.maxEntries,
      maxStalenessMs: settings.maxStalenessMs,
    }, sink, this.clock);
    const f: Follower = { key, settings, store, follower, existing: null, syncedAt: null, clockOffsetMs: 0, healthy: true, started: false, subscribers: new Set() };
    this.followers.set(key, f);
    const { metrics } = this;
    void follower.start({
      logger: this.options.logger,
      synced: (ok) => {
        metrics.apiKeyStoreUp.set(ok ? 1 : 0);
        metrics.apiKeyStorePolls.inc({ result: ok ? 'ok' : 'error' });
      },
    }).then(() => {
      f.started = true;
      for (const s of f.subscribers) this.sendState(f, s);
    }, (err: unknown) => this.options.logger.error({ err, store: redacted(key) }, 'host sync: following a key store failed to start'));
    return f;
  }

  private sendState(f: Follower, s: Subscriber): void {
    this.send(s.worker, {
      t: SYNC_TAG, op: 'state', handle: s.handle,
      existing: f.existing === null ? null : [...f.existing],
      ageMs: f.syncedAt === null ? null : Math.max(0, this.clock.now() - f.syncedAt),
      clockOffsetMs: f.clockOffsetMs,
      healthy: f.healthy,
    });
  }

  /** Sends to every subscriber that has heard the state (the others hear it, up to date, when the first read ends). */
  private push(f: Follower, build: (handle: number) => SyncPush): void {
    if (!f.started) return;
    for (const s of f.subscribers) this.send(s.worker, build(s.handle));
  }

  private unfollow(f: Follower, subscriber: Subscriber): void {
    for (const s of f.subscribers) if (s.worker === subscriber.worker && s.handle === subscriber.handle) f.subscribers.delete(s);
    if (f.subscribers.size === 0) this.stop(f);
  }

  private stop(f: Follower): void {
    if (this.followers.get(f.key) === f) this.followers.delete(f.key);
    const stop = f.follower.stop().then(() => f.store.close())
      .catch((err: unknown) => this.options.logger.warn({ err, store: redacted(f.key) }, 'host sync: closing a key store failed'));
    this.stopping.add(stop);
    void stop.finally(() => this.stopping.delete(stop));
  }

  private send(worker: SyncChannel, message: SyncPush): void {
    // A worker that exited cannot be told; the supervisor detaches it.
    try {
      worker.send(message, undefined, () => undefined);
    } catch { /* the channel closed under us: same */ }
  }
}

/** Adds `id` as the newest of a bounded insertion-ordered set. */
function remember(set: Set<string>, id: string, max: number): void {
  set.delete(id);
  if (max <= 0) return;
  if (set.size >= max) {
    const oldest = set.values().next();
    if (oldest.done !== true) set.delete(oldest.value);
  }
  set.add(id);
}

/** One remote JWK Set as the primary holds it for the host. */
interface HeldSet {
  readonly options: RemoteJwksOptions;
  text: string | null;
  /** Keys in the last good set, for the metric. */
  keys: number;
  maxAgeMs: number | null;
  fetchedAt: number;
  lastAttemptAt: number;
  lastKidFetchAt: number;
  lastError: string;
  lastAskedAt: number;
  inflight: Promise<boolean> | null;
}

/**
 * The host's JWK Sets, fetched by the primary for every worker. Asks for one set collapse into
 * one fetch; a set fetched less than its refresh period ago is answered from memory, so N workers
 * refreshing cost one fetch; an unknown-kid refetch starts at most once per cooldown for the
 * whole host (during the cooldown the answer is the current set, marked deferred); a set that
 * cannot be fetched is retried at most once per cooldown, and the last good set is kept.
 */
export class HostJwks {
  private readonly sets = new Map<string, HeldSet>();
  private readonly clock: Clock;
  private readonly download: (options: RemoteJwksOptions) => Promise<{ text: string; maxAgeMs: number | null }>;

  constructor(private readonly options: HostSyncOptions & { readonly clock: Clock; readonly metrics: Metrics }) {
    this.clock = options.clock;
    this.download = options.download ?? downloadJwks;
  }

  /** Sets held now (tests). */
  get size(): number {
    return this.sets.size;
  }

  /** The set for a worker; never rejects. */
  async ask(options: RemoteJwksOptions, reason: JwksFetchReason): Promise<JwksAnswer> {
    const set = this.setFor(options);
    if (set === null) return { ok: false, error: `more than ${MAX_JWKS_SETS} JWK Sets in use on this host` };
    set.lastAskedAt = this.clock.now();
    if (set.inflight !== null) {
      const ok = await set.inflight;
      // A fetch under way may have started before an unknown kid was published: an unknown-kid
      // ask then decides afresh (fetch again, or the cooldown), as one process does.
      if (reason === 'load') return this.answer(set, ok, null);
    }
    const now = this.clock.now();
    const { cooldownMs } = options;
    if (reason === 'kid') {
      const sinceMs = now - set.lastKidFetchAt;
      if (sinceMs < cooldownMs) return this.answer(set, set.text !== null, cooldownMs - sinceMs);
      set.lastKidFetchAt = now;
      return this.answer(set, await this.fetch(set), null);
    }
    // A worker's refresh timer may fire a hair before the set falls due here: that ask refreshes it.
    if (set.text !== null && now - set.fetchedAt < refreshDelayMs(options, set.maxAgeMs) - REFRESH_SLACK_MS) return this.answer(set, true, null);
    // The endpoint failed lately: retried at most once per cooldown for the host; meanwhile the last good set.
    if (now - set.lastAttemptAt < cooldownMs) return this.answer(set, set.text !== null, null);
    // A set asked for at start or on schedule: a failed fetch still hands over the last good set.
    await this.fetch(set);
    return this.answer(set, set.text !== null, null);
  }

  private setFor(options: RemoteJwksOptions): HeldSet | null {
    const key = JSON.stringify(options);
    let set = this.sets.get(key);
    if (set !== undefined) return set;
    if (this.sets.size >= MAX_JWKS_SETS) {
      // The set asked for least recently goes, unless it is being fetched.
      let oldest: [string, HeldSet] | null = null;
      for (const entry of this.sets) if (entry[1].inflight === null && (oldest === null || entry[1].lastAskedAt < oldest[1].lastAskedAt)) oldest = entry;
      if (oldest === null) return null;
      this.sets.delete(oldest[0]);
    }
    set = { options, text: null, keys: 0, maxAgeMs: null, fetchedAt: -Infinity, lastAttemptAt: -Infinity, lastKidFetchAt: -Infinity, lastError: 'not fetched yet', lastAskedAt: 0, inflight: null };
    this.sets.set(key, set);
    return set;
  }

  private answer(set: HeldSet, ok: boolean, deferredMs: number | null): JwksAnswer {
    if (!ok || set.text === null) return { ok: false, error: set.lastError };
    return { ok: true, text: set.text, maxAgeMs: set.maxAgeMs, ageMs: Math.max(0, this.clock.now() - set.fetchedAt), deferredMs };
  }

  /** One fetch of the set (callers arriving meanwhile share it); true when it succeeded. */
  private fetch(set: HeldSet): Promise<boolean> {
    set.inflight ??= this.fetchOnce(set).finally(() => { set.inflight = null; });
    return set.inflight;
  }

  private async fetchOnce(set: HeldSet): Promise<boolean> {
    const { uri, algorithms } = set.options;
    set.lastAttemptAt = this.clock.now();
    try {
      const { text, maxAgeMs } = await this.download(set.options);
      // Checked here as a worker will check it: a set no worker could use does not replace a good one.
      const imported = importJwks(JSON.parse(text) as unknown, algorithms);
      if (typeof imported === 'string') throw new Error(imported);
      set.text = text;
      set.maxAgeMs = maxAgeMs;
      set.fetchedAt = this.clock.now();
      set.keys = imported.keys.length;
      this.options.metrics.jwksFetched(uri, true, set.keys);
      return true;
    } catch (err) {
      set.lastError = `JWKS ${shownText(uri)} could not be fetched: ${(err as Error).message}`;
      this.options.logger.warn({ jwksUri: shownText(uri), err: (err as Error).message, kept: set.text !== null },
        set.text === null ? 'JWKS fetch failed; no keys yet: tokens of this issuer get 503 and /readyz is not ready until a fetch succeeds' : 'JWKS fetch failed; keeping the last good keys');
      this.options.metrics.jwksFetched(uri, false, set.keys);
      return false;
    }
  }
}
