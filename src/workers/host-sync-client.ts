import type { ApiKeySettings } from '../authn/api-key/backend.js';
import type { KeyChangeSink } from '../authn/api-key/change-log-follower.js';
import type { KeyChangeFeed, KeyChangeSource } from '../authn/api-key/key-directory.js';
import type { FetchedJwks, JwksFetcher, JwksFetchReason, RemoteJwksOptions } from '../authn/jwt/remote-jwks.js';
import type { HostServices } from '../lifecycle/host-services.js';
import { parseSyncPush, SYNC_TAG, type FollowSettings, type SyncPush, type SyncRequest } from './host-sync-protocol.js';

/**
 * How long a worker starting to follow a key store waits for the primary's state (the ids known
 * to exist, the age of its last good read). The primary answers at once when it follows the
 * store already, else after its first read, which the store's own timeouts bound. Past this the
 * worker starts anyway: with no read reported its keys go stale after maxStalenessMs and are
 * refused (fail closed) until the primary's reads arrive.
 */
export const FOLLOW_TIMEOUT_MS = 10_000;

/**
 * Beyond a set's fetch timeout, how long a worker waits for the primary's JWKS answer: the
 * primary's fetch is bounded by that timeout, so this covers the two IPC hops. Past it the ask is
 * a failed fetch (the worker keeps its last good keys).
 */
export const JWKS_ANSWER_MARGIN_MS = 1000;

/** Most JWKS asks of this worker waiting for the primary; more fail at once. One set has at most one in flight. */
export const MAX_PENDING_JWKS_ASKS = 256;

/** The worker's end of the IPC channel: `process` in a cluster worker or a forked child. */
export interface SyncPrimaryChannel {
  send?: ((message: SyncRequest, sendHandle: undefined, options: undefined, callback: (error: Error | null) => void) => boolean) | undefined;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

interface Ask {
  readonly resolve: (fetched: FetchedJwks) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Following {
  readonly sink: KeyChangeSink;
  /** Resolves the follow once the primary's state arrived. */
  readonly ready: () => void;
}

/**
 * A worker's side of what its primary does for the whole host (HostSync): a KeyChangeSource per
 * API key store, fed by the primary's reads of its change log, and a JwksFetcher that asks the
 * primary for each set. Given to the worker's resources through their context (HostServices).
 */
export class HostSyncClient implements HostServices {
  private nextHandle = 1;
  private nextAsk = 1;
  private readonly following = new Map<number, Following>();
  private readonly asks = new Map<number, Ask>();
  private gone: string | null = null;

  private constructor(private readonly channel: SyncPrimaryChannel) {
    channel.on('message', this.onMessage);
    channel.on('disconnect', this.onDisconnect);
  }

  /** The client of this worker's primary; null when the process has no IPC channel (not a worker). */
  static connect(channel: SyncPrimaryChannel = process): HostSyncClient | null {
    return typeof channel.send === 'function' ? new HostSyncClient(channel) : null;
  }

  apiKeyChanges(settings: ApiKeySettings): KeyChangeSource {
    const follow: FollowSettings = {
      store: settings.store,
      pollIntervalMs: settings.pollIntervalMs,
      maxEntries: settings.cacheMaxEntries,
      maxStalenessMs: settings.maxStalenessMs,
    };
    return (sink) => this.follow(follow, sink);
  }

  readonly jwks: JwksFetcher = {
    fetch: (options, reason) => this.ask(options, reason),
  };

  private follow(settings: FollowSettings, sink: KeyChangeSink): Promise<KeyChangeFeed> {
    const handle = this.nextHandle++;
    const feed: KeyChangeFeed = {
      stop: () => {
        if (this.following.delete(handle)) this.send({ t: SYNC_TAG, op: 'unfollow', handle });
        return Promise.resolve();
      },
    };
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(feed), FOLLOW_TIMEOUT_MS);
      timer.unref();
      this.following.set(handle, { sink, ready: () => { clearTimeout(timer); resolve(feed); } });
      this.send({ t: SYNC_TAG, op: 'follow', handle, settings });
    });
  }

  private ask(options: RemoteJwksOptions, reason: JwksFetchReason): Promise<FetchedJwks> {
    if (this.gone !== null) return Promise.reject(new Error(this.gone));
    if (this.asks.size >= MAX_PENDING_JWKS_ASKS) return Promise.reject(new Error(`${this.asks.size} JWKS asks wait for the primary`));
    const id = this.nextAsk++;
    const waitMs = options.timeoutMs + JWKS_ANSWER_MARGIN_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, new Error(`the primary did not answer within ${waitMs} ms`)), waitMs);
      timer.unref();
      this.asks.set(id, { resolve, reject, timer });
      this.send({ t: SYNC_TAG, op: 'jwks', id, options, reason }, (err) => this.settle(id, new Error(`cannot reach the primary: ${err.message}`)));
    });
  }

  private settle(id: number, outcome: FetchedJwks | Error): void {
    const ask = this.asks.get(id);
    if (ask === undefined) return; // answered already, or timed out: a late answer is dropped
    this.asks.delete(id);
    clearTimeout(ask.timer);
    if (outcome instanceof Error) ask.reject(outcome);
    else ask.resolve(outcome);
  }

  private send(message: SyncRequest, failed: (err: Error) => void = () => undefined): void {
    if (this.gone !== null || this.channel.connected === false) { failed(new Error(this.gone ?? 'channel closed')); return; }
    this.channel.send?.(message, undefined, undefined, (err) => { if (err !== null) failed(err); });
  }

  private readonly onMessage = (message: unknown): void => {
    const m = parseSyncPush(message);
    if (m !== null) this.received(m);
  };

  private received(m: SyncPush): void {
    if (m.op === 'jwks') {
      this.settle(m.id, m.ok ? { text: m.text, maxAgeMs: m.maxAgeMs, ageMs: m.ageMs, deferredMs: m.deferredMs } : new Error(m.error));
      return;
    }
    const following = this.following.get(m.handle);
    if (following === undefined) return;
    const { sink } = following;
    switch (m.op) {
      case 'state':
        if (m.existing !== null) sink.primed(m.existing);
        if (m.ageMs !== null) sink.synced(m.clockOffsetMs, m.ageMs);
        if (!m.healthy) sink.failed(new Error('the primary cannot read the api key store'));
        following.ready();
        return;
      case 'primed':
        sink.primed(m.existing);
        return;
      case 'changed':
        sink.changed(m.ids);
        return;
      case 'synced':
        sink.synced(m.clockOffsetMs);
        return;
      case 'failed':
        sink.failed(new Error('the primary cannot read the api key store'));
        return;
    }
  }

  private readonly onDisconnect = (): void => {
    this.close('the primary is gone (IPC channel closed)');
  };

  /** Stops listening on the channel: asks waiting fail, and no change arrives any more (keys go stale, then fail closed). */
  close(why = 'the worker closed its sync client'): void {
    if (this.gone !== null) return;
    this.gone = why;
    this.channel.off('message', this.onMessage);
    this.channel.off('disconnect', this.onDisconnect);
    for (const id of [...this.asks.keys()]) this.settle(id, new Error(why));
    this.following.clear();
  }
}
