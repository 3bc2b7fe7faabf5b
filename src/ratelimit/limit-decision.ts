/** One limiter's decision on one request, with the figures the response headers report. */
export interface LimitDecision {
  /** The limiter's name. */
  readonly name: string;
  /** Its `RateLimit-Policy` item: `"name";q=<limit>;w=<window s>`. */
  readonly policy: string;
  readonly allowed: boolean;
  readonly limit: number;
  readonly windowSec: number;
  readonly remaining: number;
  /** Milliseconds until the limit is fully available again. */
  readonly resetMs: number;
  /** Milliseconds until a request would be allowed; 0 when this one was. */
  readonly retryAfterMs: number;
  /** For the audit detail: what was exceeded. */
  readonly describe: string;
  /** True when the figures are unknown (a fail-open decision without a count): no headers for it. */
  readonly unreported?: boolean;
}
