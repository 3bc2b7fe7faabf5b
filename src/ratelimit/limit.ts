import { createHash } from 'node:crypto';
import { readClaim, type ClaimPath } from '../authn/claims/claim-path.js';
import { ipKey } from '../lib/ip.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { LimitShape } from './algorithms.js';
import type { LimitDecision, Limiter } from './limiter.js';
import type { LimitStore, StoreVerdict } from './store.js';

/** One part of the caller a limit counts by. */
export type Dimension =
  | { readonly kind: 'ip' | 'subject' | 'keyId' | 'tenant' | 'route' }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'claim'; readonly path: ClaimPath };

/** Dimensions that exist only after authentication. */
export const IDENTITY_DIMENSIONS: ReadonlySet<Dimension['kind']> = new Set(['subject', 'keyId', 'tenant', 'claim']);

/** A rate limit's settings, compiled: its shape (per tier), what it counts by, where its state lives. */
export interface RateLimitSpec {
  readonly name: string;
  readonly shape: LimitShape;
  /** Shapes for caller tiers; a tier not listed (or no tier) uses `shape`. */
  readonly tiers: ReadonlyMap<string, LimitShape>;
  readonly by: readonly Dimension[];
  readonly store: LimitStore;
  /**
   * With `failOpen`, the in-process table that decides while the store is down (in a worker, the
   * host's table in the primary); null: fail closed.
   */
  readonly fallback: LimitStore | null;
  /** IPv6 client addresses are keyed by this many leading bits. */
  readonly ipv6PrefixBits: number;
}

/** A named rate limit on the request path. */
export class RateLimiter implements Limiter {
  readonly refusal = 'rate_limited';
  readonly afterAuth: boolean;

  constructor(readonly spec: RateLimitSpec) {
    this.afterAuth = spec.tiers.size > 0 || spec.by.some((d) => IDENTITY_DIMENSIONS.has(d.kind));
  }

  get name(): string {
    return this.spec.name;
  }

  decide(ex: Exchange): LimitDecision | Promise<LimitDecision> {
    const shape = this.shapeFor(ex);
    const verdict = this.spec.store.hit(shape, callerKey(this.spec.name, shape.algorithm, this.spec.by, this.spec.ipv6PrefixBits, ex));
    return verdict instanceof Promise ? verdict.then((v) => decision(this.spec.name, shape, v)) : decision(this.spec.name, shape, verdict);
  }

  fallback(ex: Exchange): LimitDecision | Promise<LimitDecision> | null {
    if (this.spec.fallback === null) return null;
    const shape = this.shapeFor(ex);
    const verdict = this.spec.fallback.hit(shape, callerKey(this.spec.name, shape.algorithm, this.spec.by, this.spec.ipv6PrefixBits, ex));
    return verdict instanceof Promise ? verdict.then((v) => decision(this.spec.name, shape, v)) : decision(this.spec.name, shape, verdict);
  }

  /** The shape that applies to this caller: their tier's, or the base one. */
  private shapeFor(ex: Exchange): LimitShape {
    const tier = ex.identity?.tier;
    const tiers = this.spec.tiers;
    return tier === null || tier === undefined || tiers.size === 0 ? this.spec.shape : tiers.get(tier) ?? this.spec.shape;
  }
}

/** What a shape says in headers and audit details, made once per shape rather than per request. */
interface ShapeText { readonly policy: string; readonly describe: string; readonly windowSec: number }
const shapeTexts = new WeakMap<LimitShape, ShapeText>();

function decision(name: string, shape: LimitShape, v: StoreVerdict): LimitDecision {
  let text = shapeTexts.get(shape);
  if (text === undefined) {
    const windowSec = Math.ceil(shape.windowMs / 1000);
    const burst = shape.algorithm === 'token-bucket' || shape.algorithm === 'gcra' ? ` (burst ${shape.burst})` : '';
    text = { policy: `"${name}";q=${shape.limit};w=${windowSec}`, describe: `${shape.algorithm} ${shape.limit} per ${shape.windowMs} ms${burst}`, windowSec };
    shapeTexts.set(shape, text);
  }
  return {
    name, policy: text.policy, allowed: v.allowed, limit: shape.limit, windowSec: text.windowSec, remaining: v.remaining,
    resetMs: v.resetMs, retryAfterMs: v.retryAfterMs, describe: v.overflow === true ? `${text.describe}, shared overflow count (store full)` : text.describe,
  };
}

/**
 * The key of this request's caller for a limiter: its name, a discriminator (the algorithm, or the
 * quota period) and one part per dimension. Absent parts (no tenant, no such header) are keyed as
 * absent, so every caller without one shares one count rather than escaping the limit. Parts are
 * separated by NUL, which no header value or identity field can contain.
 */
export function callerKey(name: string, kind: string, by: readonly Dimension[], ipv6PrefixBits: number, ex: Exchange): string {
  let key = `${name}\0${kind}`;
  const identity = ex.identity;
  for (const d of by) {
    let part: string | null;
    switch (d.kind) {
      case 'ip': part = ipKey(ex.clientIp, ipv6PrefixBits); break;
      case 'subject': part = identity === null ? null : `${identity.authenticator}:${identity.subject}`; break;
      case 'keyId': part = identity?.keyId ?? null; break;
      case 'tenant': part = identity?.tenant ?? null; break;
      case 'route': part = ex.route?.name ?? null; break;
      case 'header': {
        // Node's parsed headers: repeated values joined with ", " (first value only for fields that may not repeat).
        const value = ex.req.headers[d.name];
        part = value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        break;
      }
      case 'claim': {
        const value = identity === null || identity.claims === null ? undefined : readClaim(identity.claims, d.path);
        part = value === undefined || value === null ? null : typeof value === 'string' ? value : JSON.stringify(value);
        break;
      }
    }
    key += part === null ? '\0\x01' : `\0${part.length > MAX_PART ? `sha256:${createHash('sha256').update(part).digest('base64url')}` : part}`;
  }
  return key;
}

/** Longer caller values (a 10 kB header) are keyed by their digest, so a key's size is bounded whatever the client sends. */
const MAX_PART = 128;
