import { request } from 'undici';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import { shownText, type ComponentReadiness } from '../../lifecycle/readiness.js';
import type { Resource, ResourceContext } from '../../lifecycle/resources.js';
import type { JwsAlgorithm, VerifyKey } from './algorithms.js';
import { importJwks, KeysUnavailableError, selectKeys, type KeySource } from './key-source.js';

/** How a remote JWK Set is fetched and kept; every field has a documented default (see the jwt kind). */
export interface RemoteJwksOptions {
  readonly uri: string;
  readonly algorithms: readonly JwsAlgorithm[];
  /** Whole fetch, connection to last byte. */
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Keys are refetched in the background this often (sooner when the response's max-age says so). */
  readonly refreshMs: number;
  /** Refetches for unknown `kid`s start at most once per this period; failed fetches retry after it. */
  readonly cooldownMs: number;
}

/** Most kids remembered as "refetched for and not found" or removed, until the set changes. */
export const MAX_MISSED_KIDS = 1024;

/** Why a set is fetched: at start, on reload or on the refresh schedule (`load`), or for an unknown kid (`kid`, under the cooldown). */
export type JwksFetchReason = 'load' | 'kid';

/** A JWK Set as a fetcher hands it over. */
export interface FetchedJwks {
  /** The response body, at most `maxBytes` bytes. */
  readonly text: string;
  /** max-age of the response (Cache-Control), if it gave one. */
  readonly maxAgeMs: number | null;
  /** How long ago it was fetched (0: for this call). */
  readonly ageMs: number;
  /**
   * Null when the set was fetched (or is fresh) for this call. Otherwise an unknown-kid refetch
   * was not made because the host's cooldown runs this much longer; the set is the current one.
   */
  readonly deferredMs: number | null;
}

/**
 * Fetches JWK Sets for a RemoteJwks instead of the set itself: under `start --workers`, the
 * primary, which fetches each set once for the whole host. Rejects when the set cannot be had
 * (the caller keeps its last good keys, as after a failed fetch).
 */
export interface JwksFetcher {
  fetch(options: RemoteJwksOptions, reason: JwksFetchReason): Promise<FetchedJwks>;
}

/** What one fetch came to: the set's state after it, and whether the host deferred an unknown-kid refetch. */
interface Outcome {
  readonly ok: boolean;
  readonly deferredMs: number | null;
}

/**
 * A JWK Set fetched from the issuer (RFC 7517) and kept in memory. Requests never wait for a
 * scheduled refresh; only a token whose `kid` is unknown waits, for one fetch at most, and all
 * such requests share the same fetch (collapsed). The last good set is kept when the endpoint
 * fails, answers garbage or is slow; the URL is the configured one only, never one from a token.
 *
 * Unknown `kid` (perhaps a key rotated in a moment ago): only these refetches count against the
 * cooldown — fetches at start, on reload and on the refresh schedule do not, so a freshly rotated
 * key is fetched for on first sight. While the cooldown runs, a new unknown kid is answered with
 * KeysUnavailableError (503 with Retry-After: the token may be good, the gateway cannot tell yet).
 * A kid that a refetch looked for and did not find, or whose key was removed from the set, is
 * refused outright (401) during the cooldown. Either way a flood of random kids costs at most one
 * fetch per cooldown and learns nothing.
 *
 * Under `start --workers` the resource context carries a JwksFetcher (the primary): every fetch
 * goes through it, so the host fetches each set once per refresh and at most once per cooldown
 * for unknown kids, whatever the number of workers. The logic above is otherwise unchanged.
 */
export class RemoteJwks implements KeySource, Resource {
  readonly key: string;
  revision = 0;
  private keys: readonly VerifyKey[] | null = null;
  private inflight: Promise<Outcome> | null = null;
  private lastAttemptAt = -Infinity;
  /** When the last refetch for an unknown kid started: the cooldown runs from here. */
  private lastKidRefetchAt = -Infinity;
  /** Kids a refetch looked for and did not find, or whose key the last change removed (bounded; reset when the set changes). */
  private readonly missedKids = new Set<string>();
  private timer: Timer | null = null;
  private stopped = true;
  /** Fetch attempts, successful or not (tests and metrics read it). */
  fetches = 0;
  /** Why the last fetch failed; null after a success. */
  private lastError: string | null = null;

  /** Set by start: where fetches report, and the clock of refreshes and cooldowns. */
  private context: ResourceContext | null = null;
  private clock: Clock = systemClock;
  /** max-age of the last successful response (Cache-Control), if it gave one. */
  private maxAgeMs: number | null = null;
  /** Age of the set when the last fetch handed it over (a set the host's primary fetched earlier). */
  private ageMs = 0;
  /** Set by start in a worker: the primary fetches instead of this process. */
  private fetcher: JwksFetcher | null = null;

  /**
   * The URL as messages, logs, audit details and /readyz show it: without userinfo, query or
   * fragment, which may carry a token.
   */
  private readonly shownUri: string;

  /** Describes the set; opens nothing and fetches nothing until `start`. */
  constructor(readonly options: RemoteJwksOptions) {
    this.key = RemoteJwks.keyOf(options);
    this.shownUri = shownText(options.uri);
  }

  /** Equal options, equal key: a reload that keeps an issuer's JWKS settings keeps its fetched keys. */
  static keyOf(options: RemoteJwksOptions): string {
    return `jwks ${JSON.stringify(options)}`;
  }

  /** Starts background refreshes; resolves after the first fetch attempt (success or not). */
  async start(context: ResourceContext): Promise<void> {
    this.context = context;
    this.clock = context.clock;
    this.fetcher = context.host?.jwks ?? null;
    if (!this.stopped) {
      await this.inflight;
      return;
    }
    this.stopped = false;
    await this.refresh();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    return Promise.resolve();
  }

  /** Started and not yet stopped. */
  get isRunning(): boolean {
    return !this.stopped;
  }

  /** Resolves once no fetch is under way (a scheduled refresh that started has finished). */
  async idle(): Promise<void> {
    await this.inflight;
  }

  private now(): number {
    return this.clock.now();
  }

  get loaded(): boolean {
    return this.keys !== null;
  }

  /**
   * Ready while running with a key set: the keys fetched last (a failed refresh keeps them, so
   * tokens signed with them still verify). Never loaded, every token of this issuer gets 503.
   */
  readiness(): ComponentReadiness {
    const jwksUri = this.shownUri;
    if (this.stopped) return { ready: false, reason: `JWKS ${jwksUri} is not running`, jwksUri };
    if (this.keys === null) return { ready: false, reason: `JWKS ${jwksUri} has not been loaded${this.lastError === null ? '' : ` (last fetch: ${this.lastError})`}`, jwksUri };
    return { ready: true, jwksUri, keys: this.keys.length, ...(this.lastError === null ? {} : { lastFetchError: this.lastError }) };
  }

  keysFor(alg: JwsAlgorithm, kid: string | null): readonly VerifyKey[] | Promise<readonly VerifyKey[]> {
    // Not running (a compile that never went live, as in `explain`, or a retired set): nothing is fetched.
    if (this.stopped) throw new KeysUnavailableError(`JWKS ${this.shownUri} is not running, so it is not fetched`, null);
    const keys = this.keys;
    if (keys === null) {
      // Never loaded: retry no more than once per cooldown (the endpoint is down or was never reached).
      if (this.inflight === null && this.now() - this.lastAttemptAt < this.options.cooldownMs) throw this.unavailable('has not been loaded');
      return this.fetchSet('load').then((outcome) => this.afterRefetch(alg, kid, outcome));
    }
    const known = selectKeys(keys, alg, kid);
    if (known.length > 0 || kid === null) return known;
    // A fetch already under way (start, schedule, another kid) may have started before this key
    // was published: wait for it, then decide afresh (found, or refetch, or cooldown).
    if (this.inflight !== null) return this.inflight.then(() => this.keysFor(alg, kid));
    const sinceMs = this.now() - this.lastKidRefetchAt;
    if (sinceMs < this.options.cooldownMs) {
      // Looked for (or removed) already: the token is refused; anything else may be a new key.
      if (this.missedKids.has(kid)) return known;
      throw new KeysUnavailableError(`JWKS ${this.shownUri}: unknown kid, refetch allowed again in ${Math.ceil(this.options.cooldownMs - sinceMs)} ms`, this.options.cooldownMs - sinceMs);
    }
    this.lastKidRefetchAt = this.now();
    return this.fetchSet('kid').then((outcome) => this.afterRefetch(alg, kid, outcome));
  }

  /** After a fetch made for `kid`: its keys, or why not. */
  private afterRefetch(alg: JwsAlgorithm, kid: string | null, { ok, deferredMs }: Outcome): readonly VerifyKey[] {
    if (this.keys === null) throw this.unavailable('has not been loaded');
    const found = selectKeys(this.keys, alg, kid);
    if (found.length > 0 || kid === null) return found;
    // The endpoint failed: the kid may well exist, the gateway cannot tell.
    if (!ok) throw this.unavailable('could not be fetched to look for an unknown kid');
    // Another worker's refetch started the host's cooldown: as during this process's own cooldown.
    if (deferredMs !== null) throw new KeysUnavailableError(`JWKS ${this.shownUri}: unknown kid, refetch allowed again in ${Math.ceil(deferredMs)} ms`, deferredMs);
    if (this.missedKids.size < MAX_MISSED_KIDS) this.missedKids.add(kid);
    return found;
  }

  private unavailable(what: string): KeysUnavailableError {
    const retryMs = Math.max(0, this.options.cooldownMs - (this.now() - this.lastAttemptAt));
    return new KeysUnavailableError(`JWKS ${this.shownUri} ${what}`, retryMs > 0 ? retryMs : null);
  }

  /** One fetch at a time: callers arriving meanwhile share it. Resolves true when the fetch succeeded. */
  refresh(): Promise<boolean> {
    return this.fetchSet('load').then((outcome) => outcome.ok);
  }

  private fetchSet(reason: JwksFetchReason): Promise<Outcome> {
    this.inflight ??= this.fetchOnce(reason).finally(() => {
      this.inflight = null;
      this.schedule();
    });
    return this.inflight;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer?.cancel();
    const delay = this.keys === null ? this.options.cooldownMs : refreshDelayMs(this.options, this.maxAgeMs, this.ageMs);
    this.timer = this.clock.setTimer(() => { void this.refresh(); }, delay);
  }

  private async fetchOnce(reason: JwksFetchReason): Promise<Outcome> {
    this.lastAttemptAt = this.now();
    this.fetches++;
    const { uri, algorithms } = this.options;
    const fetcher = this.fetcher;
    let deferredMs: number | null = null;
    try {
      let fetched: FetchedJwks;
      if (fetcher === null) fetched = { ...await downloadJwks(this.options), ageMs: 0, deferredMs: null };
      else {
        fetched = await fetcher.fetch(this.options, reason);
        // The fetcher's answer is data from another process: held to this set's own size limit.
        if (Buffer.byteLength(fetched.text, 'utf8') > this.options.maxBytes) throw new Error(`more than ${this.options.maxBytes} bytes`);
      }
      deferredMs = fetched.deferredMs;
      const { maxAgeMs } = fetched;
      this.ageMs = fetched.ageMs;
      const imported = importJwks(JSON.parse(fetched.text) as unknown, algorithms);
      if (typeof imported === 'string') throw new Error(imported);
      this.maxAgeMs = maxAgeMs;
      if (imported.skipped.length > 0) this.context?.logger.warn({ jwksUri: this.shownUri, skipped: imported.skipped }, 'JWKS keys skipped');
      if (!sameKeys(this.keys, imported.keys)) {
        const removed = (this.keys ?? []).flatMap((k) => (k.kid === null || imported.keys.some((n) => n.kid === k.kid) ? [] : [k.kid]));
        this.keys = imported.keys;
        this.revision++;
        // A removed key's tokens are refused at once (401), like a kid a refetch did not find.
        this.missedKids.clear();
        for (const kid of removed.slice(0, MAX_MISSED_KIDS)) this.missedKids.add(kid);
        this.context?.logger.info({ jwksUri: this.shownUri, keys: imported.keys.map((k) => k.kid) }, 'JWKS loaded');
      }
      this.lastError = null;
    } catch (err) {
      this.ageMs = 0;
      this.lastError = (err as Error).message.slice(0, 200);
      if (this.keys === null) {
        this.context?.logger.warn({ jwksUri: this.shownUri, err: (err as Error).message, retryInMs: this.options.cooldownMs },
          'JWKS fetch failed; no keys yet: tokens of this issuer get 503 and /readyz is not ready until a fetch succeeds');
      } else this.context?.logger.warn({ jwksUri: this.shownUri, err: (err as Error).message, keptKeys: this.keys.length }, 'JWKS fetch failed; keeping the last good keys');
      // Under a host's primary, the primary counts the fetches it makes; a set a reload retired meanwhile counts no more.
      if (fetcher === null && !this.stopped) this.context?.metrics.jwksFetched(uri, false, this.keys?.length ?? 0);
      return { ok: false, deferredMs: null };
    }
    if (fetcher === null && !this.stopped) this.context?.metrics.jwksFetched(uri, true, this.keys?.length ?? 0);
    return { ok: true, deferredMs };
  }
}

/**
 * When the next scheduled refresh is due, for a set `ageMs` old: the refresh period, or sooner
 * when the issuer's Cache-Control max-age asks for it, never sooner than the cooldown. A set the
 * host's primary fetched a while ago is refreshed that much sooner, so every worker asks when the
 * primary's set falls due (and the first ask fetches for all).
 */
export function refreshDelayMs(options: Pick<RemoteJwksOptions, 'refreshMs' | 'cooldownMs'>, maxAgeMs: number | null, ageMs = 0): number {
  const refresh = maxAgeMs === null ? options.refreshMs : Math.max(options.cooldownMs, Math.min(options.refreshMs, maxAgeMs));
  return Math.max(Math.min(options.cooldownMs, refresh), refresh - ageMs);
}

/**
 * Downloads a JWK Set: GET with the whole fetch under `timeoutMs`, refused past `maxBytes`
 * (declared or read), anything but 200 an error. Returns the body and the response's max-age.
 */
export async function downloadJwks(options: Pick<RemoteJwksOptions, 'uri' | 'timeoutMs' | 'maxBytes'>): Promise<{ text: string; maxAgeMs: number | null }> {
  const { uri, timeoutMs, maxBytes } = options;
  const signal = AbortSignal.timeout(timeoutMs);
  const res = await request(uri, {
    method: 'GET', signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    headers: { accept: 'application/jwk-set+json, application/json' },
  });
  try {
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > maxBytes) throw new Error(`${declared} bytes, limit ${maxBytes}`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw new Error(`more than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
    return { text: Buffer.concat(chunks).toString('utf8'), maxAgeMs: maxAge(res.headers['cache-control']) };
  } finally {
    // Whatever was not read is discarded without surfacing as an unhandled error.
    if (!res.body.destroyed) res.body.dump({ limit: 0 }).catch(() => undefined);
  }
}

function sameKeys(a: readonly VerifyKey[] | null, b: readonly VerifyKey[]): boolean {
  if (a === null || a.length !== b.length) return false;
  return a.every((k, i) => {
    const other = b[i];
    return other !== undefined && k.kid === other.kid && k.key.equals(other.key) && [...k.algorithms].join() === [...other.algorithms].join();
  });
}

/** `max-age` of a Cache-Control header in milliseconds (RFC 9111 §5.2.2.1); null when absent or invalid. */
function maxAge(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header.join(',') : header;
  const match = value === undefined ? null : /(?:^|[,\s])max-age=(\d{1,9})(?:$|[,\s])/i.exec(value);
  return match?.[1] === undefined ? null : Number(match[1]) * 1000;
}
