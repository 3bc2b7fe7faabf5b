import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledConfig, CompiledRoute } from '../config/compile.js';
import type { Target } from '../http/target.js';
import type { Denial } from './denials.js';

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
  /** Route `{param}` values, percent-encoded as in the path. */
  params: Readonly<Record<string, string>> = {};
  /** Flat `[name, value, …]` headers for the upstream, after hygiene. */
  forwardHeaders: string[] = [];
  host = '';
  denial: Denial | null = null;
  decision: Decision = 'allow';
  /** Private reason for the decision (audit only). */
  reason = '';
  upstreamStatus: number | null = null;
  /** Milliseconds from the start of the request until upstream response headers arrived. */
  upstreamLatencyMs: number | null = null;
  /** performance.now() when the request was handed to the upstream. */
  forwardedAt = 0;
  bytesIn = 0;
  /** Socket bytes written before this response started; the audit record reports the difference. */
  readonly bytesOutBase: number;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly config: CompiledConfig,
    readonly requestId: string,
    readonly peer: string,
    readonly clientIp: string,
    readonly peerTrusted: boolean,
  ) {
    this.bytesOutBase = req.socket.bytesWritten;
  }
}
