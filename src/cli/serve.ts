import type { Readiness } from '../lifecycle/readiness.js';
import { notReady } from '../lifecycle/readiness.js';
import { OperatorError } from '../lib/operator-error.js';
import type { Logger } from '../observability/logger.js';

/** What `serve` runs: a gateway, or a host's primary with its workers. */
export interface Served {
  readonly logger: Logger;
  start(): Promise<unknown>;
  stop(): Promise<void>;
  reload(): Promise<unknown>;
  /** Resolves with the first ready report, or the last one once `timeoutMs` passed without one. */
  whenReady(timeoutMs: number): Promise<Readiness>;
}

/** How `serve` runs. */
export interface ServeOptions {
  /** Runs after the gateway stopped, before the process exits. */
  readonly onStop?: () => Promise<void>;
  /** False for a worker, whose reloads the primary starts (a SIGHUP sent to the whole process group reaches it too). */
  readonly reloadOnHangup?: boolean;
  /**
   * `start --wait-ready`: after starting, wait up to this long for readiness; not ready by then,
   * the gateway stops and `serve` throws an OperatorError naming each component not ready and why.
   * Absent: the gateway serves at once, and /readyz says what it still waits for.
   */
  readonly waitReadyMs?: number;
}

/** Runs a gateway until SIGTERM/SIGINT; SIGHUP reloads (its outcome is logged by the reload itself). */
export async function serve(gateway: Served, options: ServeOptions = {}): Promise<void> {
  const { onStop, reloadOnHangup = true, waitReadyMs } = options;
  process.on('SIGHUP', () => {
    if (!reloadOnHangup) return;
    gateway.logger.info({ signal: 'SIGHUP' }, 'reloading the config file');
    gateway.reload().catch((err: unknown) => gateway.logger.error({ err }, 'reload failed'));
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    gateway.stop().then(() => onStop?.()).then(() => process.exit(0), (err: unknown) => {
      gateway.logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await gateway.start();
  if (waitReadyMs === undefined) return;
  const readiness = await gateway.whenReady(waitReadyMs);
  if (readiness.ready || stopping) return;
  stopping = true;
  await gateway.stop();
  await onStop?.();
  throw new OperatorError(`not ready within ${waitReadyMs} ms (--wait-ready), so the gateway stopped: ${notReady(readiness).join('; ')}`);
}
