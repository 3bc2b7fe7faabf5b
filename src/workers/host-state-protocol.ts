import type { Algorithm, LimitShape } from '../ratelimit/algorithms.js';
import type { Period } from '../ratelimit/calendar.js';
import type { QuotaUse, SqliteQuotaSettings } from '../ratelimit/quota-store.js';
import type { StoreVerdict } from '../ratelimit/store.js';
import type { WireRevocation } from '../authn/oauth/host-revocations.js';

/**
 * The messages between a host's workers and its primary about in-process state: the primary holds
 * the memory limit stores, the embedded quota stores and the brute-force guard's counts, and the
 * workers decide through it. Every message carries `t: STATE_TAG`; the channel is shared with the
 * supervisor's own messages, which each side ignores here.
 *
 * Decisions travel in batches (every hit of one event-loop turn in one message, one reply per
 * batch), so calls and results are tuples: a batch of a thousand hits is a few tens of kilobytes
 * of JSON rather than a hundred.
 */
export const STATE_TAG = 'portcullis:state';

/** A store the primary holds for its workers, described by what its constructor takes. */
export type StoreDescriptor =
  | { readonly kind: 'limit'; readonly id: string; readonly maxEntries: number }
  | { readonly kind: 'quota'; readonly name: string; readonly settings: SqliteQuotaSettings };

/** One rate-limit hit on the store the worker knows as `handle`. */
export type HitCall = readonly [handle: number, key: string, algorithm: Algorithm, limit: number, windowMs: number, burst: number];
/** One quota use on the store the worker knows as `handle`. */
export type ConsumeCall = readonly [handle: number, key: string, periodId: string, periodStartMs: number, periodEndMs: number, limit: number];
/** Which one a call is follows from the store its handle names. */
export type Call = HitCall | ConsumeCall;

/** A verdict on the wire: flags as 0/1, then the numbers, then the state. */
export type WireVerdict = readonly [allowed: 0 | 1, remaining: number, resetMs: number, retryAfterMs: number, ttlMs: number, overflow: 0 | 1, seen: number, s1: number, s2: number];
export type WireUse = readonly [allowed: 0 | 1, used: number];
/** A call's result: its value, or why the store could not decide (the worker fails it as unavailable). */
export type CallResult = WireVerdict | WireUse | string;

/** A block a brute-force guard started, on the blocks' channel `guard`; `source` null is the kind's overflow block. */
export interface BlockNotice {
  readonly guard: string;
  readonly kind: 'ip' | 'credential';
  readonly source: string | null;
  readonly untilMs: number;
}

/** A block in force on the wire: kind, source (null: the overflow block), end (ms). */
export type WireBlock = readonly [kind: 'ip' | 'credential', source: string | null, untilMs: number];

type Tagged<T> = T & { readonly t: typeof STATE_TAG };

/**
 * Worker → primary. `use` and `release` bracket a store's life in the worker (its Resource start
 * and stop); `block` and `blocks-in-force` (a worker's first guard starting asks for the blocks
 * in force on a channel) say how much room the guard's tables have (`maxEntries` per kind).
 */
export type WorkerMessage = Tagged<
  | { readonly op: 'use'; readonly handle: number; readonly store: StoreDescriptor }
  | { readonly op: 'release'; readonly handle: number }
  | { readonly op: 'batch'; readonly id: number; readonly calls: readonly Call[] }
  | ({ readonly op: 'block'; readonly maxEntries: number } & BlockNotice)
  | { readonly op: 'blocks-in-force'; readonly id: number; readonly guard: string; readonly maxEntries: number }
  | { readonly op: 'revoke'; readonly digest: string; readonly untilMs: number; readonly maxEntries: number }
  | { readonly op: 'revocations-in-force'; readonly id: number; readonly maxEntries: number }
>;

/** Primary → worker: one reply per batch (results in call order), blocks other workers started, and the blocks in force asked for. */
export type PrimaryMessage = Tagged<
  | { readonly op: 'reply'; readonly id: number; readonly results: readonly CallResult[] }
  | ({ readonly op: 'block' } & BlockNotice)
  | { readonly op: 'blocks-in-force'; readonly id: number; readonly guard: string; readonly blocks: readonly WireBlock[] }
  | { readonly op: 'revoked'; readonly digest: string; readonly untilMs: number }
  | { readonly op: 'revocations-in-force'; readonly id: number; readonly revocations: readonly WireRevocation[] }
>;

/** Longest block source (an address key or a credential id) the primary keeps; a longer one is not a source the guard names. */
export const MAX_BLOCK_SOURCE_LENGTH = 1024;
/** Longest channel name the primary keeps blocks under. */
export const MAX_BLOCK_CHANNEL_LENGTH = 256;
/** The most room per kind of blocks a worker may ask the primary for (the schema's maximum `maxEntries`). */
export const MAX_BLOCK_ROOM = 100_000_000;

const isKind = (v: unknown): v is 'ip' | 'credential' => v === 'ip' || v === 'credential';

/** The room a worker asked for per kind of blocks, or null when it is not a count the schema allows. */
export function blockRoomOf(maxEntries: unknown): number | null {
  return Number.isSafeInteger(maxEntries) && (maxEntries as number) >= 1 && (maxEntries as number) <= MAX_BLOCK_ROOM ? maxEntries as number : null;
}

/** The block notice in `m`, or null when any field is not what a guard sends (the primary keeps only well-formed blocks). */
export function blockNoticeOf(m: Record<string, unknown>): BlockNotice | null {
  const { guard, kind, source, untilMs } = m;
  if (typeof guard !== 'string' || guard.length === 0 || guard.length > MAX_BLOCK_CHANNEL_LENGTH || !isKind(kind)) return null;
  if (source !== null && (typeof source !== 'string' || source.length === 0 || source.length > MAX_BLOCK_SOURCE_LENGTH)) return null;
  if (typeof untilMs !== 'number' || !Number.isFinite(untilMs)) return null;
  return { guard, kind, source, untilMs };
}

/** The blocks of a `blocks-in-force` answer that are well formed. */
export function wireBlocksOf(blocks: unknown): WireBlock[] {
  if (!Array.isArray(blocks)) return [];
  return blocks.filter((b): b is WireBlock => Array.isArray(b) && b.length === 3 && isKind(b[0])
    && (b[1] === null || typeof b[1] === 'string') && typeof b[2] === 'number' && Number.isFinite(b[2]));
}

/** The most revocations the primary keeps for its workers (the schema's maximum oauth.revocations.maxEntries). */
export const MAX_REVOCATION_ROOM = 10_000_000;
const DIGEST = /^[A-Za-z0-9_-]{43}$/;

/** A revocation as the primary and workers accept it: a digest (43 base64url characters) and a finite end; else null. */
export function revocationOf(digest: unknown, untilMs: unknown): WireRevocation | null {
  return typeof digest === 'string' && DIGEST.test(digest) && Number.isSafeInteger(untilMs) ? [digest, untilMs as number] : null;
}

/** The revocations of a `revocations-in-force` answer that are well formed. */
export function wireRevocationsOf(revocations: unknown): WireRevocation[] {
  if (!Array.isArray(revocations)) return [];
  return revocations.flatMap((r) => {
    const valid = Array.isArray(r) && r.length === 2 ? revocationOf(r[0], r[1]) : null;
    return valid === null ? [] : [valid];
  });
}

/** True for a message of this protocol (of either direction); anything else on the channel is someone else's. */
export function isStateMessage(message: unknown): message is { readonly t: typeof STATE_TAG; readonly op: string } {
  return typeof message === 'object' && message !== null && (message as { t?: unknown }).t === STATE_TAG;
}

export function hitCall(handle: number, shape: LimitShape, key: string): HitCall {
  return [handle, key, shape.algorithm, shape.limit, shape.windowMs, shape.burst];
}

export function shapeOf(call: HitCall): LimitShape {
  return { algorithm: call[2], limit: call[3], windowMs: call[4], burst: call[5] };
}

export function consumeCall(handle: number, key: string, period: Period, limit: number): ConsumeCall {
  return [handle, key, period.id, period.startMs, period.endMs, limit];
}

export function periodOf(call: ConsumeCall): Period {
  return { id: call[2], startMs: call[3], endMs: call[4] };
}

export function wireVerdict(v: StoreVerdict): WireVerdict {
  return [v.allowed ? 1 : 0, v.remaining, v.resetMs, v.retryAfterMs, v.ttlMs, v.overflow === true ? 1 : 0, v.state[0], v.state[1], v.state[2]];
}

export function verdictOf(w: WireVerdict): StoreVerdict {
  const verdict = { allowed: w[0] === 1, state: [w[6], w[7], w[8]] as const, remaining: w[1], resetMs: w[2], retryAfterMs: w[3], ttlMs: w[4] };
  return w[5] === 1 ? { ...verdict, overflow: true } : verdict;
}

export function wireUse(u: QuotaUse): WireUse {
  return [u.allowed ? 1 : 0, u.used];
}

export function useOf(w: WireUse): QuotaUse {
  return { allowed: w[0] === 1, used: w[1] };
}
