// `portcullis start` and `portcullis check`: the gateway from a config file, or only its validation.
import { availableParallelism } from 'node:os';
import { compileConfig } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import { parseDuration } from '../lib/duration.js';
import { Gateway } from '../server/gateway.js';
import { Supervisor, workerCount } from '../workers/supervisor.js';
import { UsageError, shown, type Invocation } from './command.js';
import { configFile } from './config-file.js';
import { serve, type Served } from './serve.js';

/** Validates the config and prints its version; config errors propagate (the CLI prints them, exit 1). */
export async function checkCommand({ values }: Invocation): Promise<number> {
  const file = configFile(values.config);
  const config = compileConfig(await loadConfigFile(file));
  process.stdout.write(`${file}: OK (version ${config.version}, ${config.routes.length} routes, ${config.upstreams.size} upstreams)\n`);
  return 0;
}

/** Runs the gateway (or a primary and its workers) until a signal stops it. */
export async function startCommand({ values }: Invocation): Promise<number> {
  const file = configFile(values.config);
  const given = values.workers;
  const workers = typeof given === 'string' ? workerCount(given, availableParallelism()) : null;
  if (typeof given === 'string' && workers === null) {
    throw new UsageError(`--workers: expected a number of workers from 1 to 999, or auto (one per core); got "${shown(given)}"`);
  }
  const wait = values['wait-ready'];
  const waitReadyMs = typeof wait === 'string' ? parseDuration(wait) : undefined;
  if (waitReadyMs === null) throw new UsageError(`--wait-ready: expected a duration such as 30s, 2m or 0s (got "${shown(String(wait))}")`);
  const served: Served = workers === null ? await Gateway.fromFile(file) : await Supervisor.fromFile(file, { workers });
  await serve(served, waitReadyMs === undefined ? {} : { waitReadyMs });
  return -1;
}
