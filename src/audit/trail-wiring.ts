import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../config/compile.js';
import type { Clock } from '../lib/clock.js';
import type { Metrics } from '../observability/metrics.js';
import { Retention } from './retention.js';
import { loadSigningKey } from './signing-key.js';
import { createConfiguredSinks } from './sinks/configured.js';
import { FileSink } from './sinks/file-sink.js';
import type { AuditSink } from './sinks/sink.js';
import { StdoutSink } from './sinks/stdout-sink.js';
import { AuditTrail } from './trail.js';
import { chainFiles, resumeChain } from './trail-files.js';

/** The environment variable a worker of `start --workers` finds its slot in (see processName). */
export const AUDIT_SLOT_ENV = 'PORTCULLIS_AUDIT_SLOT';

/** A worker's slot from its environment (removed, so the config's `${VAR}`s never see it); null outside a primary. */
export function takeAuditSlot(env: NodeJS.ProcessEnv = process.env): number | null {
  const text = env[AUDIT_SLOT_ENV];
  Reflect.deleteProperty(env, AUDIT_SLOT_ENV);
  if (text === undefined || !/^[1-9][0-9]{0,3}$/.test(text)) return null;
  return Number(text);
}

export interface TrailDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** Sinks beyond those the config describes (an embedding program's own), added before the trail opens. */
  readonly extraSinks?: readonly AuditSink[];
}

/** A process's chain name within its instance: `main` for a single gateway or the primary, `wK` for worker slot K. */
export function processName(slot: number | null): string {
  return slot === null ? 'main' : `w${slot}`;
}

/** The sinks the config asks for besides the file: stdout when `audit.stdout` is on, then `audit.nats` and `audit.http`. */
export function configuredSinks(config: CompiledConfig, chain: string, deps: TrailDeps): AuditSink[] {
  const { logger, clock, metrics } = deps;
  const stdout = config.audit.stdout ? [new StdoutSink(config.audit.maxQueueBytes)] : [];
  return [...stdout, ...createConfiguredSinks(config.audit, {
    dataDir: config.dataDir, chain, logger, clock,
    metrics: {
      sinkRecords: (sink, outcome, count) => metrics.auditSinkRecords.inc({ sink, outcome }, count),
      spoolBytes: (sink, bytes) => metrics.auditSpoolBytes.set({ sink }, bytes),
    },
  })];
}

/**
 * The audit trail of one process (chain `<audit.instance>/<process>`): the file sink on the
 * chain's active file, the signing key, rotation, retention and archiving as the config says, the
 * stdout sink when asked for, and `extraSinks`. Opens nothing: `open()` does.
 */
export function createTrail(config: CompiledConfig, process: string, deps: TrailDeps): AuditTrail {
  const audit = config.audit;
  const files = chainFiles(resolve(config.dataDir, audit.file), process);
  const { logger, clock, metrics } = deps;
  const retention = new Retention({
    files, maxAgeMs: audit.retain.maxAgeMs, maxBytes: audit.retain.maxBytes, archiveCommand: audit.archiveCommand,
    archiveTimeoutMs: audit.archiveTimeoutMs, logger, clock,
    onArchive: (ok) => metrics.auditArchives.inc({ result: ok ? 'ok' : 'failed' }),
  });
  let torn = 0;
  const file = new FileSink({
    path: files.active, maxQueueBytes: audit.maxQueueBytes, retryIntervalMs: audit.retryIntervalMs, fsyncIntervalMs: audit.fsyncIntervalMs,
    onFailure: audit.onFailure, logger, clock, torn: () => torn, onSealed: () => { void retention.sweep(); },
  });
  const chain = `${audit.instance}/${process}`;
  const trail = new AuditTrail({
    chain,
    file, files,
    resume: async () => {
      const resumed = await resumeChain(files);
      torn = resumed.torn;
      return resumed;
    },
    signingKey: () => loadSigningKey(config.dataDir, audit.signingKeyFile),
    maxQueueBytes: audit.maxQueueBytes,
    checkpointEveryRecords: audit.checkpoint.everyRecords,
    checkpointIntervalMs: audit.checkpoint.intervalMs,
    rotateMaxBytes: audit.rotate.maxBytes,
    rotateIntervalMs: audit.rotate.intervalMs,
    logger, clock,
    counters: {
      record: (count) => metrics.auditRecords.inc(count),
      dropped: (sink, count) => metrics.auditDropped.inc({ sink }, count),
      checkpoint: () => metrics.auditCheckpoints.inc(),
    },
    retention,
  });
  for (const sink of [...configuredSinks(config, chain, deps), ...(deps.extraSinks ?? [])]) trail.addSink(sink);
  return trail;
}
