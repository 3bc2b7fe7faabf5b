import type { Gateway } from '../server/gateway.js';

/** Runs a gateway until SIGTERM/SIGINT; SIGHUP reloads. */
export async function serve(gateway: Gateway, onStop?: () => Promise<void>): Promise<void> {
  process.on('SIGHUP', () => void gateway.reload());
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

