import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { CompiledConfig, CompiledRoute } from '../config/compile.js';
import type { Target } from '../http/target.js';
import type { Identity } from '../authn/identity.js';
import type { Denial } from './denials.js';
import type { LimitDecision } from '../ratelimit/limiter.js';

/** How a request ended, for the audit record and metrics. */
export type Decision = 'allow' | 'deny' | 'error' | 'abort';

/**
 * Everything known about one request as it moves through the pipeline. Stages read and fill it;
 * the audit record and `explain` are rendered from it. `config` is the config the request started
 * with: a reload never changes it mid-request.
 */
export class Exchange {
  readonly startedAt = performance.now();
  target: Target | null = null;
  route: CompiledRoute | null = null;
  /** Set by the authenticate stage; frozen. */
  identity: Identity | null = null;
  /** Flat `[name, value, …]` headers for the upstream, after hygiene. */
  forwardHeaders: string[] = [];
  /** The query sent upstream when a stage removed something from it (a query-string API key); null: as received. */
  forwardQuery: string | null = null;
  host = '';
  /** Limits applied to this request so far, for the rate-limit response headers. */
  limits: LimitDecision[] | null = null;
  /** The API key id the request presented (well-formed, not necessarily valid), for the brute-force guard. */
  presentedKeyId: string | null = null;
  /** Set when an authenticator rejected a credential: true if it could be a guess (counted by the brute-force guard), false for an honest mistake. */
  credentialGuess: boolean | null = null;
  /** The limit or quota that refused the request (audited by name). */
  limitName: string | null = null;
  denial: Denial | null = null;
  decision: Decision = 'allow';
  /** Private reason for the decision (audit only). */
  reason = '';
  /** Set when the response has closed (finished, failed or aborted). */
  responseClosed = false;
  /** A pipelined request never processed because an earlier denial closed its connection. */
  discarded = false;
  upstreamStatus: number | null = null;
  /** Milliseconds from the start of the request until upstream response headers arrived. */
  upstreamLatencyMs: number | null = null;
  /** performance.now() when the request was handed to the upstream. */
  forwardedAt = 0;
  bytesIn = 0;
  /** Socket bytes written before this response started; the audit record reports the difference. */
  readonly bytesOutBase: number;
  /**
   * The client connection, kept here because a destroyed request stream drops its `socket`
   * reference, and the audit record still needs the byte count.
   */
  readonly socket: Socket;
  /** The record is written once both the response has closed and the pipeline has returned. */
  private unsettled = 2;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly config: CompiledConfig,
    readonly requestId: string,
    readonly peer: string,
    readonly clientIp: string,
    readonly peerTrusted: boolean,
  ) {
    this.socket = req.socket;
    this.bytesOutBase = req.socket.bytesWritten;
  }

  /**
   * Counts down the two ends of an exchange (response closed, pipeline returned); true on the
   * last one. Waiting for both lets the pipeline classify a failure (upstream fault vs client
   * abort) before the audit record is written.
   */
  settle(): boolean {
    this.unsettled--;
    return this.unsettled === 0;
  }
}
