// One worker of `portcullis start --workers N`: a whole gateway on the host's shared port, without
// the admin listener (the primary serves it), reloaded and stopped by the primary.
import cluster from 'node:cluster';
import { serve } from '../cli/serve.js';
import { ConfigError } from '../config/errors.js';
import type { RestartOnlyValues } from '../lifecycle/restart-only.js';
import { Gateway, type StagedReload } from '../server/gateway.js';
import { HostStateClient } from './host-state-client.js';
import { HostSyncClient } from './host-sync-client.js';
import { OperatorError } from '../lib/operator-error.js';
import { takeAuditSlot } from '../audit/trail-wiring.js';
import { CONFIG_INVALID_EXIT, LIFECYCLE, RESTART_ONLY_ENV, START_FAILED_EXIT, toWorker, type FromWorker } from './protocol.js';

function send(message: FromWorker): void {
  process.send?.(message);
}

/** Answers the primary's requests for this gateway: staged reloads, metrics, forgotten keys. */
function follow(gateway: Gateway): void {
  const staged = new Map<number, StagedReload>();
  process.on('message', (message: unknown) => {
    if (!toWorker(message)) return;
    switch (message.op) {
      case 'stage':
        void gateway.stageReload().then((s) => {
          if ('commit' in s) staged.set(message.id, s);
          const outcome = s.ok ? { ok: true as const, version: s.version, changed: s.changed } : { ok: false as const, errors: s.errors };
          send({ t: LIFECYCLE, op: 'staged', id: message.id, outcome });
        });
        return;
      case 'settle': {
        const s = staged.get(message.staged);
        staged.delete(message.staged);
        if (s !== undefined && 'commit' in s) {
          if (message.commit) s.commit();
          else s.abort();
        }
        send({ t: LIFECYCLE, op: 'settled', id: message.id, version: gateway.config.version });
        return;
      }
      case 'metrics':
        void gateway.metrics.registry.getMetricsAsJSON().then((metrics) => send({ t: LIFECYCLE, op: 'metrics', id: message.id, metrics }));
        return;
      case 'readiness':
        send({ t: LIFECYCLE, op: 'readiness', id: message.id, readiness: gateway.readiness() });
        return;
      case 'forget-key':
        gateway.keyAdmin()?.forget(message.keyId);
        return;
      case 'revoke':
        void gateway.revokeToken(message.tokenHash, message.untilMs).then(
          (error) => send({ t: LIFECYCLE, op: 'revoked', id: message.id, error }),
          (err: unknown) => send({ t: LIFECYCLE, op: 'revoked', id: message.id, error: `revoking failed: ${(err as Error).message}` }),
        );
        return;
    }
  });
}

/** The primary's restart-only settings, taken out of the environment (the config's `${VAR}`s never see them). */
function takeRestartOnly(): RestartOnlyValues | null {
  const text = process.env[RESTART_ONLY_ENV];
  Reflect.deleteProperty(process.env, RESTART_ONLY_ENV);
  if (text === undefined) return null;
  const value = JSON.parse(text) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${RESTART_ONLY_ENV} is not a JSON object`);
  return value as RestartOnlyValues;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  // The primary's restart-only settings, which every worker of the host runs.
  const restartOnly = takeRestartOnly();
  const id = cluster.worker?.id;
  if (file === undefined || id === undefined) {
    process.stderr.write('portcullis worker: started outside a primary\n');
    process.exit(2);
  }
  // The slot names this worker's audit chain; a replacement resumes the chain of the worker it replaces.
  const auditSlot = takeAuditSlot() ?? id;
  const hostState = HostStateClient.connect(process);
  // The primary reads the key store's change log and fetches JWKS for every worker.
  const host = HostSyncClient.connect(process);
  let gateway: Gateway;
  try {
    gateway = await Gateway.fromFile(file, { worker: id, hostState, host, restartOnly, auditSlot });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(CONFIG_INVALID_EXIT);
  }
  follow(gateway);
  // The primary gone: no connections come any more; finish what is in flight and leave.
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  try {
    await serve(gateway, { onStop: () => { hostState?.close(); host?.close(); return Promise.resolve(); }, reloadOnHangup: false });
  } catch (err) {
    if (!(err instanceof OperatorError)) throw err;
    // The primary prints it, once for the host, and does not replace a worker that could not start.
    if (process.send === undefined) process.exit(START_FAILED_EXIT);
    process.send({ t: LIFECYCLE, op: 'failed', message: err.message } satisfies FromWorker, undefined, {}, () => process.exit(START_FAILED_EXIT));
    return;
  }
  // The host's proxy port: the plain listener's, or the HTTPS one's when there is no plain listener (mode off).
  const addresses = gateway.addresses();
  send({ t: LIFECYCLE, op: 'listening', version: gateway.config.version, port: addresses.http?.port ?? addresses.https?.port ?? 0 });
}

main().catch((err: unknown) => {
  process.stderr.write(`portcullis worker: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
