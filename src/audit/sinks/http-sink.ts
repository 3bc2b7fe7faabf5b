import type { HttpSinkOptions } from '../../config/compile-audit-sinks.js';
import type { Clock, Timer } from '../../lib/clock.js';
import { shownText } from '../../lifecycle/readiness.js';
import type { Logger } from '../../observability/logger.js';
import type { AuditSink, LinkedEntry, SinkFailureMode, SinkState } from './sink.js';
import type { SinkMetrics } from './sink-metrics.js';

export interface HttpSinkDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: SinkMetrics;
  /** The jitter source, in [0, 1): Math.random unless a test fixes it. */
  readonly random?: () => number;
}

interface Item {
  readonly entry: LinkedEntry;
  readonly ordinal: number;
}

/** What one POST came to. */
type Outcome = { kind: 'delivered' } | { kind: 'retry'; reason: string; retryAfterMs: number | null } | { kind: 'rejected'; reason: string };

/**
 * The wait before attempt `failures + 1`: `initialMs` doubled per failure up to `maxMs`, the upper
 * half of it at random ("equal jitter"), so instances that failed together do not retry together.
 * A `Retry-After` the collector sent wins, within `maxMs`.
 */
export function retryDelayMs(failures: number, initialMs: number, maxMs: number, random: number, retryAfterMs: number | null = null): number {
  if (retryAfterMs !== null) return Math.min(maxMs, Math.max(0, retryAfterMs));
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
  return Math.round(base / 2 + (base / 2) * random);
}

/** A chain name as header text: anything but visible ASCII (and `%`) as `%XX` of its UTF-8, so no name can break the header or the request. */
export function headerText(text: string): string {
  return text.replace(/[^\x21-\x24\x26-\x7e]/gu, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/** `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; null when absent or not either. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) || !/[A-Za-z]/.test(text) ? null : Math.max(0, at - now);
}

/**
 * POSTs records in JSON batches to a collector (a SIEM): the body is a JSON array of the records,
 * `Content-Type: application/json`, and `X-Portcullis-Batch: <chain>:<first seq>-<last seq>`, so
 * a collector can de-duplicate a batch it receives twice. A batch holds records of one chain, up to
 * `batchRecords`, and waits at most `batchIntervalMs` to fill.
 *
 * 2xx: delivered. 408, 429, 5xx, a timeout or a network error: the same batch is sent again after
 * an exponential back-off with jitter (or the collector's Retry-After), for as long as it takes;
 * records wait in a queue of `maxQueueBytes`. Any other status (400, 401, 403, 413, a redirect…)
 * is permanent: the batch is dropped, counted and logged, and the sink reports `failing` until a
 * batch is delivered again (a rejected batch would be rejected again, and would hold up every
 * record behind it).
 */
export class HttpSink implements AuditSink {
  readonly name = 'http';
  readonly onFailure: SinkFailureMode;
  private queue: Item[] = [];
  private queueBytes = 0;
  private ordinal = 0;
  private handledThrough = 0;
  private flushThrough = 0;
  private failures = 0;
  private failingNow = false;
  private retryTimer: Timer | null = null;
  private batchTimer: Timer | null = null;
  private intervalDue = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private closing = false;
  private closed = false;
  private droppedCount = 0;
  private waiters: { target: number; resolve: () => void }[] = [];

  constructor(private readonly options: HttpSinkOptions, private readonly deps: HttpSinkDeps) {
    this.onFailure = options.onFailure;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  get state(): SinkState {
    if (this.closed) return 'closed';
    if (this.failingNow) return 'failing';
    if (this.queueBytes >= this.options.maxQueueBytes * 0.75) return 'backlogged';
    return 'ok';
  }

  /** Bytes of records waiting. */
  get queuedBytes(): number {
    return this.queueBytes;
  }

  /** For /readyz: the URL without userinfo or query, never the headers. */
  details(): Record<string, unknown> {
    return { url: this.options.shownUrl, queuedBytes: this.queueBytes, dropped: this.droppedCount, failures: this.failures };
  }

  start(): Promise<void> {
    this.loop = this.run();
    return Promise.resolve();
  }

  accept(entry: LinkedEntry): boolean {
    const bytes = entry.line.length;
    if (this.closing || this.queueBytes + bytes > this.options.maxQueueBytes) {
      this.droppedCount++;
      this.deps.metrics?.sinkRecords(this.name, 'dropped', 1);
      return false;
    }
    this.queue.push({ entry, ordinal: ++this.ordinal });
    this.queueBytes += bytes;
    if (this.queue.length === 1 || this.queue.length >= this.options.batchRecords) this.poke();
    return true;
  }

  flushed(): Promise<void> {
    const target = this.ordinal;
    this.flushThrough = Math.max(this.flushThrough, target);
    if (this.settled(target)) return Promise.resolve();
    this.poke();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }

  private settled(target: number): boolean {
    return this.closed || this.loop === null || this.handledThrough >= target || this.retryTimer !== null;
  }

  private settle(): void {
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.settled(w.target)) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private sleep(): Promise<void> {
    this.settle();
    return new Promise<void>((resolve) => { this.wake = resolve; });
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        if (this.closing) return;
        await this.sleep();
        continue;
      }
      if (this.retryTimer !== null && !this.closing) {
        await this.sleep();
        continue;
      }
      const first = this.queue[0] as Item;
      const full = this.queue.length >= this.options.batchRecords;
      if (!full && !this.intervalDue && !this.closing && this.flushThrough < first.ordinal) {
        this.batchTimer ??= this.deps.clock.setTimer(() => {
          this.batchTimer = null;
          this.intervalDue = true;
          this.poke();
        }, this.options.batchIntervalMs);
        await this.sleep();
        continue;
      }
      const sent = await this.sendBatch();
      if (!sent && this.closing) {
        this.dropQueue('the collector could not take them at shutdown');
        return;
      }
    }
  }

  /** One batch from the head of the queue; true when it left the queue (delivered or rejected). */
  private async sendBatch(): Promise<boolean> {
    const chain = (this.queue[0] as Item).entry.chain;
    let count = 0;
    while (count < this.queue.length && count < this.options.batchRecords && (this.queue[count] as Item).entry.chain === chain) count++;
    const batch = this.queue.slice(0, count);
    const outcome = await this.post(batch);
    if (outcome.kind === 'retry') {
      this.failures++;
      this.failingNow = true;
      const delay = retryDelayMs(this.failures - 1, this.options.retryInitialMs, this.options.retryMaxMs, (this.deps.random ?? Math.random)(), outcome.retryAfterMs);
      this.deps.logger.warn({ sink: 'http', url: this.options.shownUrl, err: shownText(outcome.reason), retryInMs: delay, records: batch.length }, 'audit collector did not take a batch; retrying');
      if (!this.closing) {
        this.retryTimer = this.deps.clock.setTimer(() => {
          this.retryTimer = null;
          this.poke();
        }, delay);
      }
      return false;
    }
    this.queue = this.queue.slice(count);
    for (const it of batch) this.queueBytes -= it.entry.line.length;
    this.handledThrough = Math.max(this.handledThrough, (batch[batch.length - 1] as Item).ordinal);
    if (this.queue.length === 0 || (this.queue[0] as Item).ordinal > this.flushThrough) this.intervalDue = false;
    if (outcome.kind === 'delivered') {
      if (this.failures > 0) this.deps.logger.info({ sink: 'http', url: this.options.shownUrl, records: batch.length }, 'audit collector takes batches again');
      if (this.failures > 0) this.deps.metrics?.sinkRecords(this.name, 'retried', batch.length);
      this.failures = 0;
      this.failingNow = false;
      this.deps.metrics?.sinkRecords(this.name, 'delivered', batch.length);
    } else {
      this.failingNow = true;
      this.droppedCount += batch.length;
      this.deps.metrics?.sinkRecords(this.name, 'rejected', batch.length);
      this.deps.logger.error({ sink: 'http', url: this.options.shownUrl, err: outcome.reason, dropped: batch.length }, 'audit collector rejected a batch; it is dropped');
    }
    this.settle();
    return true;
  }

  private async post(batch: readonly Item[]): Promise<Outcome> {
    const first = batch[0] as Item;
    const last = batch[batch.length - 1] as Item;
    const body = `[${batch.map((it) => (it.entry.line.endsWith('\n') ? it.entry.line.slice(0, -1) : it.entry.line)).join(',')}]`;
    const controller = new AbortController();
    // An I/O deadline on Node's own timer: it measures the network, not policy time.
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const res = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...this.options.headers, 'content-type': 'application/json', 'x-portcullis-batch': `${headerText(first.entry.chain)}:${first.entry.seq}-${last.entry.seq}` },
        body,
        redirect: 'manual',
        signal: controller.signal,
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { kind: 'delivered' };
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        return { kind: 'retry', reason: `HTTP ${res.status}`, retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), this.deps.clock.now()) };
      }
      return { kind: 'rejected', reason: `HTTP ${res.status}` };
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      const reason = controller.signal.aborted ? `no answer within ${this.options.timeoutMs} ms` : this.withoutUrl(`${(err as Error).message}${cause instanceof Error ? `: ${cause.message}` : ''}`);
      return { kind: 'retry', reason, retryAfterMs: null };
    } finally {
      clearTimeout(timer);
    }
  }

  /** An error's text with the configured URL (its query or userinfo may hold a secret) replaced by the URL logs show. */
  private withoutUrl(text: string): string {
    let out = text;
    for (const form of new Set([this.options.url, safeHref(this.options.url)])) {
      if (form !== '') out = out.split(form).join(this.options.shownUrl);
    }
    return out;
  }

  private dropQueue(why: string): void {
    if (this.queue.length === 0) return;
    this.droppedCount += this.queue.length;
    this.deps.metrics?.sinkRecords(this.name, 'dropped', this.queue.length);
    this.deps.logger.error({ sink: 'http', url: this.options.shownUrl, dropped: this.queue.length }, `audit records dropped: ${why}`);
    this.handledThrough = this.ordinal;
    this.queue = [];
    this.queueBytes = 0;
  }

  /** Stops taking records; sends what is queued, each batch once, within `timeoutMs` each; drops (and counts) what is left. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.batchTimer?.cancel();
    this.batchTimer = null;
    this.poke();
    await this.loop;
    this.closed = true;
    this.settle();
  }
}

/** A URL as the URL parser writes it (what an error quoting it shows), or '' when it does not parse. */
function safeHref(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return '';
  }
}
