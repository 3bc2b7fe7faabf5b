import type { Logger } from '../observability/logger.js';

/** What `serve` runs: a gateway, or a host's primary with its workers. */
export interface Served {
  readonly logger: Logger;
  start(): Promise<unknown>;
  stop(): Promise<void>;
  reload(): Promise<unknown>;
}

/** How `serve` runs. */
export interface ServeOptions {
  /** Runs after the gateway stopped, before the process exits. */
  readonly onStop?: () => Promise<void>;
  /** False for a worker, whose reloads the primary starts (a SIGHUP sent to the whole process group reaches it too). */
  readonly reloadOnHangup?: boolean;
  /** `start --wait-ready`: how long to wait for every authenticator to be able to decide before serving. */
  readonly waitReadyMs?: number;
}

/** Runs a gateway until SIGTERM/SIGINT; SIGHUP reloads. */
export async function serve(gateway: Served, options: ServeOptions = {}): Promise<void> {
  const { onStop, reloadOnHangup = true } = options;
  process.on('SIGHUP', () => { if (reloadOnHangup) void gateway.reload(); });
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
}

