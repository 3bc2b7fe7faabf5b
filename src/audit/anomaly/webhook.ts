import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { WebhookOptions } from '../../config/compile-anomalies.js';
import type { Clock, Timer } from '../../lib/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { Alert } from './types.js';

/** The header that carries the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'x-portcullis-signature';
/** The same for every attempt at one batch: a receiver that saw it already can ignore a retry. */
export const DELIVERY_HEADER = 'x-portcullis-delivery';

/** Most alerts in one POST. */
export const MAX_BATCH_ALERTS = 100;
/** First retry after 1 s, then 2 s, 4 s, … up to a minute. */
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 60_000;

/** `t=<seconds>,v1=<hex>`: the signature of `body` sent at `unixSeconds`. */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * What a receiver does (docs/audit.md shows the same steps): parse `t` and `v1`, refuse a `t`
 * more than `toleranceSeconds` from its own clock (a replayed request), recompute the HMAC over
 * `<t>.<raw body>` and compare in constant time.
 */
export function verifyWebhook(secret: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header);
  if (m === null) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, body, t).slice(-64), 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2] ?? '', 'hex'));
}

export interface WebhookDeps {
  /** Back-off timers and the signature's time. */
  readonly clock: Clock;
  readonly logger?: Logger | null;
}

/** What the notifier has done so far. */
export interface WebhookStats {
  readonly queued: number;
  readonly delivered: number;
  /** Alerts dropped: the queue was full, or their batch failed maxAttempts times or was refused. */
  readonly dropped: number;
}

type Outcome = { readonly ok: true } | { readonly ok: false; readonly retry: boolean; readonly why: string };

/**
 * Sends alerts to `audit.anomalies.webhook.url`: JSON `{"alerts":[…]}` batches of up to
 * MAX_BATCH_ALERTS, one POST at a time, each signed (SIGNATURE_HEADER). A network error, a
 * timeout, a 429 or a 5xx is retried with exponential back-off, up to maxAttempts attempts; any
 * other answer but 2xx drops the batch. The queue holds at most maxQueue alerts; beyond it, alerts
 * are dropped. Drops are counted and logged. The secret is never logged, nor the URL beyond its origin.
 */
export class WebhookNotifier {
  private readonly queue: Alert[] = [];
  private sending = false;
  private closed = false;
  private retryTimer: Timer | null = null;
  /** The batch being delivered (in flight or waiting for its retry). */
  private current: readonly Alert[] | null = null;
  private inflight: Promise<void> | null = null;
  private delivered = 0;
  private dropped = 0;
  private readonly origin: string;

  constructor(private readonly options: WebhookOptions, private readonly deps: WebhookDeps) {
    this.origin = safeOrigin(options.url);
  }

  stats(): WebhookStats {
    return { queued: this.queue.length, delivered: this.delivered, dropped: this.dropped };
  }

  /** Queues alerts for delivery; never blocks and never throws. */
  notify(alerts: readonly Alert[]): void {
    if (alerts.length === 0) return;
    let full = 0;
    for (const alert of alerts) {
      if (this.closed || this.queue.length >= this.options.maxQueue) full++;
      else this.queue.push(alert);
    }
    if (full > 0) {
      this.dropped += full;
      this.deps.logger?.warn({ event: 'anomaly_webhook_dropped', webhook: this.origin, dropped: full, reason: this.closed ? 'closed' : 'queue full' }, 'anomaly alerts dropped before the webhook');
    }
    this.next();
  }

  /** Stops: no new attempt starts; waits for the POST in flight. What is still queued is dropped and counted. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== null) {
      this.retryTimer.cancel();
      this.retryTimer = null;
      if (this.current !== null) this.finish(this.current, false);
    }
    await this.inflight;
    this.dropped += this.queue.length;
    this.queue.length = 0;
  }

  private next(): void {
    if (this.sending || this.closed || this.queue.length === 0) return;
    this.sending = true;
    const batch = this.queue.splice(0, MAX_BATCH_ALERTS);
    this.current = batch;
    this.attempt(batch, randomUUID(), 1);
  }

  private attempt(batch: readonly Alert[], delivery: string, attempt: number): void {
    this.retryTimer = null;
    if (this.closed) { this.finish(batch, false); return; }
    const run = this.post(batch, delivery).then((outcome) => {
      if (outcome.ok) { this.finish(batch, true); return; }
      const log = { event: 'anomaly_webhook_failed', webhook: this.origin, delivery, attempt, maxAttempts: this.options.maxAttempts, alerts: batch.length, error: outcome.why };
      if (outcome.retry && attempt < this.options.maxAttempts && !this.closed) {
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
        this.deps.logger?.warn({ ...log, retryInMs: delay }, 'anomaly webhook failed; retrying');
        this.retryTimer = this.deps.clock.setTimer(() => this.attempt(batch, delivery, attempt + 1), delay);
        return;
      }
      this.deps.logger?.error(log, 'anomaly webhook failed; alerts dropped');
      this.finish(batch, false);
    }).catch(() => {
      // Only a throwing logger gets here; the batch is dropped rather than left sending forever.
      if (this.current === batch && this.retryTimer === null) this.finish(batch, false);
    });
    const tracked: Promise<void> = run.finally(() => { if (this.inflight === tracked) this.inflight = null; });
    this.inflight = tracked;
  }

  private finish(batch: readonly Alert[], ok: boolean): void {
    if (ok) this.delivered += batch.length;
    else this.dropped += batch.length;
    this.current = null;
    this.sending = false;
    this.next();
  }

  private async post(batch: readonly Alert[], delivery: string): Promise<Outcome> {
    const body = JSON.stringify({ alerts: batch });
    const t = Math.floor(this.deps.clock.now() / 1000);
    try {
      const res = await fetch(this.options.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'portcullis-anomalies',
          [SIGNATURE_HEADER]: signWebhook(this.options.secret, body, t),
          [DELIVERY_HEADER]: delivery,
        },
        body,
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return { ok: false, retry: res.status === 429 || res.status >= 500, why: `HTTP ${res.status}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: unknown } };
      const code = typeof e.cause?.code === 'string' ? e.cause.code : e.name === 'TimeoutError' ? 'timeout' : e.name;
      return { ok: false, retry: true, why: code };
    }
  }
}

/** The URL's scheme, host and port: what a log may show (a path or query can hold a token). */
function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid url)';
  }
}
