import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Readiness } from '../lifecycle/readiness.js';

/** Every message between the primary and its workers about their lifecycle carries this tag; others on the channel are not ours. */
export const LIFECYCLE = 'portcullis:worker';

/**
 * The environment variable through which the primary hands its restart-only settings (JSON) to
 * each worker it forks: the environment, unlike the arguments, is not readable by other users.
 */
export const RESTART_ONLY_ENV = 'PORTCULLIS_WORKER_RESTART_ONLY';

/** Exit code of a worker whose config does not compile. */
export const CONFIG_INVALID_EXIT = 78;

/** Exit code of a worker that could not start (a port it cannot bind, a data directory it cannot write), after sending `failed`. */
export const START_FAILED_EXIT = 79;

/** What a staged reload came to in one worker. */
export type StageOutcome =
  | { readonly ok: false; readonly errors: string[] }
  | { readonly ok: true; readonly version: string; readonly changed: boolean };

/** Primary → worker. `id` pairs a request with its answer. */
export type ToWorker =
  /** Compile and start the config file, without swapping it in. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'stage'; readonly id: number }
  /** Swap the config staged by request `staged` in (`commit: true`), or abandon it. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'settle'; readonly id: number; readonly staged: number; readonly commit: boolean }
  /** Send this worker's metrics. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'metrics'; readonly id: number }
  /** Send this worker's readiness (every component it needs, and whether it can do its part). */
  | { readonly t: typeof LIFECYCLE; readonly op: 'readiness'; readonly id: number }
  /** A key was revoked or rotated through the admin API: drop it from the caches. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'forget-key'; readonly keyId: string }
  /** Revoke the token with this tokenHash until `untilMs` (the admin API): the worker digests it with the host's key and revokes it in its list. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'revoke'; readonly id: number; readonly tokenHash: string; readonly untilMs: number };

/** Worker → primary. */
export type FromWorker =
  | { readonly t: typeof LIFECYCLE; readonly op: 'listening'; readonly version: string; readonly port: number }
  /** The worker could not start, for a reason the operator must fix (an OperatorError's one line); it exits next. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'failed'; readonly message: string }
  | { readonly t: typeof LIFECYCLE; readonly op: 'staged'; readonly id: number; readonly outcome: StageOutcome }
  | { readonly t: typeof LIFECYCLE; readonly op: 'settled'; readonly id: number; readonly version: string }
  | { readonly t: typeof LIFECYCLE; readonly op: 'metrics'; readonly id: number; readonly metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { readonly t: typeof LIFECYCLE; readonly op: 'readiness'; readonly id: number; readonly readiness: Readiness }
  /** A revocation done (`error` null), or why it could not be shared. */
  | { readonly t: typeof LIFECYCLE; readonly op: 'revoked'; readonly id: number; readonly error: string | null };

/** True for a lifecycle message to a worker (the channel also carries other subsystems' messages). */
export function toWorker(message: unknown): message is ToWorker {
  return tagged(message);
}

/** True for a lifecycle message from a worker. */
export function fromWorker(message: unknown): message is FromWorker {
  return tagged(message);
}

function tagged(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { t?: unknown }).t === LIFECYCLE;
}
