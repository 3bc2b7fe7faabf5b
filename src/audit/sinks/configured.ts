import { join } from 'node:path';
import type { CompiledAudit } from '../../config/compile-audit.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../observability/logger.js';
import { HttpSink } from './http-sink.js';
import { NatsSink } from './nats-sink.js';
import type { AuditSink } from './sink.js';
import type { SinkMetrics } from './sink-metrics.js';

export interface ConfiguredSinkDeps {
  readonly dataDir: string;
  /** The chain the writer links (`<instance>/<process>`); names the NATS spool file. */
  readonly chain: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: SinkMetrics;
}

/** A chain name part as a file name: no separators, no `.`/`..`, nothing a shell or a path would read twice. */
function fileName(part: string): string {
  const safe = part.replace(/[^A-Za-z0-9_.-]/g, '_');
  return safe === '' || /^\.+$/.test(safe) ? '_' : safe;
}

/** The NATS spool of `chain`: `<dataDir>/audit/spool/<instance>/<process>.log`. */
export function spoolPathFor(dataDir: string, chain: string): string {
  const parts = chain.split('/').map(fileName);
  const last = parts.pop() ?? '_';
  return join(dataDir, 'audit', 'spool', ...parts, `${last}.log`);
}

/**
 * The sinks `audit.nats` and `audit.http` configure, for one writer's chain, not yet started (the
 * writer starts them, hands each linked record to every one, and closes them). Empty when neither
 * is configured. The file sink is the writer's own.
 */
export function createConfiguredSinks(audit: CompiledAudit, deps: ConfiguredSinkDeps): AuditSink[] {
  const sinks: AuditSink[] = [];
  const common = { logger: deps.logger, clock: deps.clock, ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }) };
  if (audit.nats !== null) sinks.push(new NatsSink(audit.nats, { ...common, spoolPath: spoolPathFor(deps.dataDir, deps.chain) }));
  if (audit.http !== null) sinks.push(new HttpSink(audit.http, common));
  return sinks;
}
