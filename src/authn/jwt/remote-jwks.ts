import { request } from 'undici';
import type { Logger } from '../../observability/logger.js';
import type { JwsAlgorithm, VerifyKey } from './algorithms.js';
import { importJwks, KeysUnavailableError, selectKeys, type KeySource } from './key-source.js';

/** Where a key set reports: operational logs, and an optional hook per fetch (metrics). */
export interface JwksReporting {
  readonly logger: Logger;
  /** Called after every fetch attempt with its outcome and the number of keys now in use. */
  readonly fetched?: (uri: string, ok: boolean, keys: number) => void;
}

/** How a remote JWK Set is fetched and kept; every field has a documented default in compile.ts. */
export interface RemoteJwksOptions {
  readonly uri: string;
  readonly algorithms: readonly JwsAlgorithm[];
  /** Whole fetch, connection to last byte. */
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Keys are refetched in the background this often (sooner when the response's max-age says so). */
  readonly refreshMs: number;
  /** An unknown `kid` triggers at most one refetch per this period; failed refreshes retry after it. */
  readonly cooldownMs: number;
}

/**
 * A JWK Set fetched from the issuer (RFC 7517) and kept in memory. Requests never wait for a
 * scheduled refresh; only a token whose `kid` is unknown waits, for one fetch at most, and all
 * such requests share the same fetch (collapsed). The last good set is kept when the endpoint
 * fails, answers garbage or is slow; the URL is the configured one only, never one from a token.
 */
export class RemoteJwks implements KeySource {
  revision = 0;
  private keys: readonly VerifyKey[] | null = null;
  private inflight: Promise<void> | null = null;
  private lastAttemptAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** Fetch attempts, successful or not (tests and metrics read it). */
  fetches = 0;

  private reporting: JwksReporting | null = null;
  /** max-age of the last successful response (Cache-Control), if it gave one. */
  private maxAgeMs: number | null = null;

  constructor(
    readonly options: RemoteJwksOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts background refreshes; resolves after the first fetch attempt (success or not). */
  async start(reporting: JwksReporting): Promise<void> {
    this.reporting = reporting;
    if (!this.stopped) return this.inflight ?? undefined;
    this.stopped = false;
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  get loaded(): boolean {
    return this.keys !== null;
  }

  keysFor(alg: JwsAlgorithm, kid: string | null): readonly VerifyKey[] | Promise<readonly VerifyKey[]> {
    const known = this.keys === null ? [] : selectKeys(this.keys, alg, kid);
    if (known.length > 0) return known;
    if (this.keys !== null && kid === null) return known;
    // Unknown kid (perhaps a rotation) or nothing loaded yet: refetch, once per cooldown.
    if (this.inflight === null && this.now() - this.lastAttemptAt < this.options.cooldownMs) return this.settled(alg, kid);
    return this.refresh().then(() => this.settled(alg, kid));
  }

  private settled(alg: JwsAlgorithm, kid: string | null): readonly VerifyKey[] {
    if (this.keys === null) throw new KeysUnavailableError(`JWKS ${this.options.uri} has not been loaded`);
    return selectKeys(this.keys, alg, kid);
  }

  /** One fetch at a time: callers arriving meanwhile share it. */
  refresh(): Promise<void> {
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = null;
      this.schedule();
    });
    return this.inflight;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    // The issuer's Cache-Control max-age may ask for an earlier refresh, never one sooner than the cooldown.
    const refresh = this.maxAgeMs === null ? this.options.refreshMs : Math.max(this.options.cooldownMs, Math.min(this.options.refreshMs, this.maxAgeMs));
    const delay = this.keys === null ? this.options.cooldownMs : refresh;
    this.timer = setTimeout(() => { void this.refresh(); }, delay);
    this.timer.unref();
  }

  private async fetchOnce(): Promise<void> {
    this.lastAttemptAt = this.now();
    this.fetches++;
    const { uri, algorithms } = this.options;
    try {
      const { doc, maxAgeMs } = await this.download();
      const imported = importJwks(doc, algorithms);
      if (typeof imported === 'string') throw new Error(imported);
      this.maxAgeMs = maxAgeMs;
      if (imported.skipped.length > 0) this.reporting?.logger.warn({ jwksUri: uri, skipped: imported.skipped }, 'JWKS keys skipped');
      if (!sameKeys(this.keys, imported.keys)) {
        this.keys = imported.keys;
        this.revision++;
        this.reporting?.logger.info({ jwksUri: uri, keys: imported.keys.map((k) => k.kid) }, 'JWKS loaded');
      }
    } catch (err) {
      this.reporting?.logger.warn({ jwksUri: uri, err: (err as Error).message, keptKeys: this.keys?.length ?? 0 }, 'JWKS fetch failed; keeping the last good keys');
      this.reporting?.fetched?.(uri, false, this.keys?.length ?? 0);
      return;
    }
    this.reporting?.fetched?.(uri, true, this.keys?.length ?? 0);
  }

  private async download(): Promise<{ doc: unknown; maxAgeMs: number | null }> {
    const { uri, timeoutMs, maxBytes } = this.options;
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
      const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      return { doc, maxAgeMs: maxAge(res.headers['cache-control']) };
    } finally {
      // Whatever was not read is discarded without surfacing as an unhandled error.
      if (!res.body.destroyed) res.body.dump({ limit: 0 }).catch(() => undefined);
    }
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
