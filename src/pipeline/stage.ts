import type { Denial } from './denials.js';
import type { Exchange } from './exchange.js';

/**
 * One step of a route's pipeline. `run` returns nothing to continue, or a Denial to end the
 * request. It may be async (key fetches, shared stores); synchronous stages return directly so
 * the hot path awaits nothing it does not need to. A thrown error is a bug or an outage: the
 * request fails closed with 500.
 */
export interface Stage {
  readonly name: string;
  run(exchange: Exchange): Denial | undefined | Promise<Denial | undefined>;
}
