import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { Stage } from '../pipeline/stage.js';
import { resetSec } from './headers.js';
import type { LimitDecision, Limiter } from './limiter.js';
import { LimitStoreUnavailableError } from './store.js';

type StageResult = Denial | undefined | Promise<Denial | undefined>;

/**
 * Applies a route's limiters of one phase (before or after authentication) in order. The first
 * that refuses ends the request with 429 and Retry-After; limiters before it have counted the
 * request. A store that cannot decide applies the limiter's policy: decide in-process (fail open)
 * or answer 503 (fail closed). In-process decisions stay synchronous.
 */
export function rateLimitStage(limiters: readonly Limiter[], name: string): Stage {
  const from = (ex: Exchange, start: number): StageResult => {
    for (let i = start; i < limiters.length; i++) {
      const limiter = limiters[i] as Limiter;
      let decision: LimitDecision | Denial | Promise<LimitDecision | Denial>;
      try {
        decision = limiter.decide(ex);
      } catch (err) {
        decision = unavailable(limiter, ex, err);
      }
      if (decision instanceof Promise) {
        return decision.catch((err: unknown) => unavailable(limiter, ex, err)).then((d) => conclude(ex, limiter, d) ?? from(ex, i + 1));
      }
      const denial = conclude(ex, limiter, decision);
      if (denial !== undefined) return denial;
    }
    return undefined;
  };
  return {
    name,
    run: (ex) => from(ex, 0),
    explain: () => ({ result: undefined, note: `would count: ${limiters.map((l) => l.name).join(', ')}` }),
  };
}

/**
 * The fallback decision, or a 503 denial when the limiter fails closed (or its stand-in cannot
 * decide either). Errors other than an unavailable store are bugs: rethrown.
 */
function unavailable(limiter: Limiter, ex: Exchange, err: unknown): LimitDecision | Denial | Promise<LimitDecision | Denial> {
  if (!(err instanceof LimitStoreUnavailableError)) throw err;
  const failClosed = (): Denial => deny('rate_limit_unavailable', `${limiter.name}: ${err.message} (fail closed)`, { 'retry-after': '1' });
  const standIn = (fallbackErr: unknown): Denial => {
    if (!(fallbackErr instanceof LimitStoreUnavailableError)) throw fallbackErr;
    return failClosed();
  };
  const fallback = limiter.fallback(ex);
  return fallback instanceof Promise ? fallback.catch(standIn) : fallback ?? failClosed();
}

function conclude(ex: Exchange, limiter: Limiter, d: LimitDecision | Denial): Denial | undefined {
  if ('code' in d) { ex.tally?.limit(limiter.name, 'unavailable'); ex.limitName = limiter.name; return d; }
  if (d.unreported !== true) (ex.limits ??= []).push(d);
  ex.tally?.limit(limiter.name, d.allowed ? 'allowed' : 'limited');
  if (d.allowed) return undefined;
  ex.limitName = limiter.name;
  return deny(limiter.refusal, `${limiter.name}: ${d.describe} exhausted; retry in ${d.retryAfterMs} ms`, { 'retry-after': String(Math.max(1, resetSec(d))) });
}
