import type { LimitDecision } from './limiter.js';

/** Which rate-limit headers responses carry. */
export interface HeaderMode {
  /** `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers). */
  readonly draft: boolean;
  /** `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds from now). */
  readonly classic: boolean;
}

/**
 * The rate-limit headers for the limits a request went through, as `[name, value]` pairs. The
 * draft fields list every limit (`"name";q=limit;w=window` and `"name";r=remaining;t=reset`); the
 * classic fields describe the tightest one, the limit with the fewest requests left.
 */
export function limitHeaders(reports: readonly LimitDecision[], mode: HeaderMode): [string, string][] {
  const out: [string, string][] = [];
  const first = reports[0];
  if (first === undefined) return out;
  if (mode.draft) {
    if (reports.length === 1) {
      out.push(['ratelimit-policy', first.policy], ['ratelimit', `"${first.name}";r=${first.remaining};t=${resetSec(first)}`]);
    } else {
      out.push(['ratelimit-policy', reports.map((r) => r.policy).join(', ')]);
      out.push(['ratelimit', reports.map((r) => `"${r.name}";r=${r.remaining};t=${resetSec(r)}`).join(', ')]);
    }
  }
  if (mode.classic) {
    let tightest = first;
    for (const r of reports) if (r.remaining < tightest.remaining || (r.remaining === tightest.remaining && resetSec(r) > resetSec(tightest))) tightest = r;
    out.push(['x-ratelimit-limit', String(tightest.limit)], ['x-ratelimit-remaining', String(tightest.remaining)], ['x-ratelimit-reset', String(resetSec(tightest))]);
  }
  return out;
}

/** Seconds until the limit resets (allowed) or until a retry can succeed (refused). */
export function resetSec(d: LimitDecision): number {
  return Math.ceil((d.allowed ? d.resetMs : d.retryAfterMs) / 1000);
}
