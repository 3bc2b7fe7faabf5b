#!/usr/bin/env node
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { compileConfig } from '../config/compile.js';
import { ConfigError } from '../config/errors.js';
import { OperatorError } from '../lib/operator-error.js';
import { loadConfigFile } from '../config/load.js';
import { jsonSchema } from '../config/schema.js';
import { Gateway } from '../server/gateway.js';
import { runDemo } from '../demo/demo.js';
import { serve, type Served } from './serve.js';
import { Supervisor, workerCount } from '../workers/supervisor.js';
import { KEYS_USAGE, keysCommand } from './keys.js';
import { explainCommand } from './explain.js';

const USAGE = `portcullis — a security gateway for HTTP APIs

Usage:
  portcullis start -c gateway.yaml [--workers N|auto]
                                       run the gateway (--workers: N processes sharing the port, auto: one per core)
  portcullis check -c gateway.yaml     validate a config; every error with file:line and option
  portcullis explain -c gateway.yaml GET /path [--header 'N: V'] [--identity JSON] [--from IP] [--json]
                                       how the gateway would handle one request, stage by stage
  portcullis keys create|list|show|revoke|rotate …   manage API keys (portcullis keys help)
  portcullis demo                      the gateway on :8080 with the quickstart config and an echo upstream
  portcullis schema                    print the JSON Schema of gateway.yaml
  portcullis help

Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain in-flight requests, then exit.`;

function configPath(args: string[]): string {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, allowPositionals: false });
  return configFile(values.config);
}

/** `-c FILE`, else $PORTCULLIS_CONFIG, else gateway.yaml in the working directory. */
function configFile(given: string | undefined): string {
  return resolve(given ?? process.env.PORTCULLIS_CONFIG ?? 'gateway.yaml');
}

function printConfigError(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in config\n`);
    return 1;
  }
  throw err;
}

async function check(args: string[]): Promise<number> {
  const file = configPath(args);
  try {
    const config = compileConfig(await loadConfigFile(file));
    process.stdout.write(`${file}: OK (version ${config.version}, ${config.routes.length} routes, ${config.upstreams.size} upstreams)\n`);
    return 0;
  } catch (err) {
    return printConfigError(err);
  }
}

async function start(args: string[]): Promise<number> {
  let values: { config?: string; workers?: string };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, workers: { type: 'string', short: 'w' } }, allowPositionals: false }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const file = configFile(values.config);
  const workers = values.workers === undefined ? null : workerCount(values.workers, availableParallelism());
  if (workers === null && values.workers !== undefined) {
    process.stderr.write(`--workers: expected a number of workers from 1 to 999, or auto (one per core); got "${values.workers}"\n`);
    return 2;
  }
  let served: Served;
  try {
    served = workers === null ? await Gateway.fromFile(file) : await Supervisor.fromFile(file, { workers });
  } catch (err) {
    return printConfigError(err);
  }
  await serve(served);
  return -1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': return start(rest);
    case 'check': return check(rest);
    case 'explain': try { return await explainCommand(rest); } catch (err) { return printConfigError(err); }
    case 'keys':
      if (rest[0] === undefined || rest[0] === 'help' || rest[0] === '--help') { process.stdout.write(KEYS_USAGE + '\n'); return rest[0] === undefined ? 2 : 0; }
      try { return await keysCommand(rest); } catch (err) { return printConfigError(err); }
    case 'demo': await runDemo(rest); return -1;
    case 'schema': process.stdout.write(JSON.stringify(jsonSchema(), null, 2) + '\n'); return 0;
    case undefined: case 'help': case '--help': case '-h': process.stdout.write(USAGE + '\n'); return 0;
    default: process.stderr.write(`unknown command "${command}"\n\n${USAGE}\n`); return 2;
  }
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (err: unknown) => {
  if (err instanceof OperatorError) {
    process.stderr.write(`portcullis: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`portcullis: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
