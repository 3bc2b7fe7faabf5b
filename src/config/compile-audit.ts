import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig } from './schema.js';
import { compileAuditSinks, type HttpSinkOptions, type NatsSinkOptions } from './compile-audit-sinks.js';
import { compileAnomalies, type AnomalyOptions } from './compile-anomalies.js';

/** The `audit` section, compiled. Every member is restart-only (the trail is opened once at start). */
export interface CompiledAudit {
  readonly file: string;
  readonly maxQueueBytes: number;
  readonly retryIntervalMs: number;
  readonly nats: NatsSinkOptions | null;
  readonly http: HttpSinkOptions | null;
  readonly anomalies: AnomalyOptions | null;
}

export const AUDIT_DEFAULTS = Object.freeze({
  file: 'audit/audit.log',
  maxQueueBytes: 8 * 1024 * 1024,
  retryIntervalMs: 1000,
});

export function compileAudit(raw: RawConfig, loaded: LoadedConfig, problems: ConfigProblem[]): CompiledAudit {
  const audit = raw.audit;
  const sinks = compileAuditSinks(raw, loaded, problems);
  return {
    file: audit?.file ?? AUDIT_DEFAULTS.file,
    maxQueueBytes: audit?.maxQueueBytes ?? AUDIT_DEFAULTS.maxQueueBytes,
    retryIntervalMs: audit?.retryIntervalMs ?? AUDIT_DEFAULTS.retryIntervalMs,
    nats: sinks.nats,
    http: sinks.http,
    anomalies: compileAnomalies(raw, loaded, problems),
  };
}
