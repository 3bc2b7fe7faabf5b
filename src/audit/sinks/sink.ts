/**
 * One destination of the chained audit trail. The trail links each record once (chain.ts) and
 * hands the same linked line to every sink; each sink has its own bounded queue, so a slow or
 * failing one never holds up another. `accept` never blocks and never throws.
 */
export interface AuditSink {
  /** `file`, `stdout`, `nats`, `http`: names the sink in logs, metrics and readiness. */
  readonly name: string;
  /**
   * What a failing sink means for requests: `failClosed` (the gateway answers 503
   * `audit_unavailable` until the sink takes records again) or `failOpen` (requests are served;
   * records the sink cannot hold are dropped, counted, logged and alerted on).
   */
  readonly onFailure: SinkFailureMode;
  /** `ok`, `failing` (its destination refuses or cannot be reached), `backlogged` (its queue is three quarters full), `closed`. */
  readonly state: SinkState;
  /** Records this sink dropped since start (its queue was full, or it was closed). */
  readonly dropped: number;
  /** Opens the destination; throws an OperatorError when it cannot be used at all at start. */
  start(): Promise<void>;
  /** Queues one linked record; false when it was dropped. */
  accept(entry: LinkedEntry): boolean;
  /** Resolves once everything accepted before the call is delivered, or the sink waits for its next retry. */
  flushed(): Promise<void>;
  /** Delivers what it can within its own bound, then releases the destination. */
  close(): Promise<void>;
}

export type SinkFailureMode = 'failClosed' | 'failOpen';

export type SinkState = 'ok' | 'failing' | 'backlogged' | 'closed';

/** A record as the chain linked it. */
export interface LinkedEntry {
  /** The chain it belongs to (docs/audit.md, "Chains"): `<instance>/<process>`, e.g. `gw-1/main` or `gw-1/w2`. */
  readonly chain: string;
  /** Canonical JSON and a newline. */
  readonly line: string;
  /** Its `hash` (lowercase hex SHA-256), the de-duplication id downstream. */
  readonly hash: string;
  readonly seq: number;
}
