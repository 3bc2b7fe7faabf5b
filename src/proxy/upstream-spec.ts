import type { UpstreamTls } from './upstream-tls.js';

/** An upstream's settings with every default applied. `key` identifies identical definitions across reloads. */
export interface UpstreamSpec {
  readonly name: string;
  readonly key: string;
  readonly targets: readonly string[];
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly connections: number;
  /** Longest wait for a free connection (503 upstream_busy after); 0: no waiting. */
  readonly queueTimeoutMs: number;
  /** Most requests waiting for a free connection. */
  readonly maxQueued: number;
  readonly preserveHost: boolean;
  /** TLS settings and material for https:// targets; null for http:// targets. */
  readonly tls: UpstreamTls | null;
}
