/** One limit's figures for the response headers. */
export interface LimitReport {
  readonly name: string;
  readonly limit: number;
  readonly windowSec: number;
  readonly remaining: number;
  /** Seconds until the limit resets (allowed) or until a retry can succeed (denied). */
  readonly resetSec: number;
}

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
export function limitHeaders(reports: readonly LimitReport[], mode: HeaderMode): [string, string][] {
  if (reports.length === 0) return [];
  const out: [string, string][] = [];
  if (mode.draft) {
    out.push(['ratelimit-policy', reports.map((r) => `"${r.name}";q=${r.limit};w=${r.windowSec}`).join(', ')]);
    out.push(['ratelimit', reports.map((r) => `"${r.name}";r=${r.remaining};t=${r.resetSec}`).join(', ')]);
  }
  if (mode.classic) {
    let tightest = reports[0] as LimitReport;
    for (const r of reports) if (r.remaining < tightest.remaining || (r.remaining === tightest.remaining && r.resetSec > tightest.resetSec)) tightest = r;
    out.push(['x-ratelimit-limit', String(tightest.limit)], ['x-ratelimit-remaining', String(tightest.remaining)], ['x-ratelimit-reset', String(tightest.resetSec)]);
  }
  return out;
}
