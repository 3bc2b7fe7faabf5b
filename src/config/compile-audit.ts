import { hostname } from 'node:os';
import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig } from './schema.js';
import { compileAuditSinks, type HttpSinkOptions, type NatsSinkOptions } from './compile-audit-sinks.js';
import { compileAnomalies, type AnomalyOptions } from './compile-anomalies.js';
import { parseDuration } from '../lib/duration.js';

/** The `audit` section, compiled. Every member is restart-only (the trail is opened once at start). */
export interface CompiledAudit {
  readonly file: string;
  /** Names the chains: `<instance>/main`, `<instance>/w1`, …. */
  readonly instance: string;
  readonly maxQueueBytes: number;
  readonly retryIntervalMs: number;
  readonly onFailure: 'failClosed' | 'failOpen';
  readonly fsyncIntervalMs: number;
  readonly stdout: boolean;
  /** Relative to dataDir; null: `audit/keys/signing.pem`, created at first start. */
  readonly signingKeyFile: string | null;
  readonly checkpoint: { readonly everyRecords: number; readonly intervalMs: number };
  readonly rotate: { readonly maxBytes: number; readonly intervalMs: number };
  /** null members: keep every sealed file. */
  readonly retain: { readonly maxAgeMs: number | null; readonly maxBytes: number | null };
  readonly archiveCommand: readonly string[] | null;
  readonly archiveTimeoutMs: number;
  readonly nats: NatsSinkOptions | null;
  readonly http: HttpSinkOptions | null;
  readonly anomalies: AnomalyOptions | null;
}

/** Each default by its option path under `audit` (docs/configuration.md shows the same). */
export const AUDIT_DEFAULTS = Object.freeze({
  'file': 'audit/audit.log',
  'maxQueueBytes': 8 * 1024 * 1024,
  'retryIntervalMs': 1000,
  'onFailure': 'failClosed' as const,
  'fsyncIntervalMs': 1000,
  'stdout': false,
  'checkpoint.everyRecords': 1000,
  'checkpoint.intervalMs': 60_000,
  'rotate.maxBytes': 100 * 1024 * 1024,
  'rotate.interval': '24h',
  'archiveTimeoutMs': 300_000,
});

/** The host name as a chain's instance: letters, digits, `_` and `-` only, at most 64, never empty. */
export function instanceName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return clean === '' ? 'gateway' : clean;
}

export function compileAudit(raw: RawConfig, loaded: LoadedConfig, problems: ConfigProblem[]): CompiledAudit {
  const audit = raw.audit;
  const sinks = compileAuditSinks(raw, loaded, problems);
  // The schema admits only durations parseDuration reads.
  const duration = (text: string | undefined): number | null => (text === undefined ? null : parseDuration(text));
  return {
    file: audit?.file ?? AUDIT_DEFAULTS['file'],
    instance: audit?.instance ?? instanceName(hostname()),
    maxQueueBytes: audit?.maxQueueBytes ?? AUDIT_DEFAULTS['maxQueueBytes'],
    retryIntervalMs: audit?.retryIntervalMs ?? AUDIT_DEFAULTS['retryIntervalMs'],
    onFailure: audit?.onFailure ?? AUDIT_DEFAULTS['onFailure'],
    fsyncIntervalMs: audit?.fsyncIntervalMs ?? AUDIT_DEFAULTS['fsyncIntervalMs'],
    stdout: audit?.stdout ?? AUDIT_DEFAULTS['stdout'],
    signingKeyFile: audit?.signingKeyFile ?? null,
    checkpoint: {
      everyRecords: audit?.checkpoint?.everyRecords ?? AUDIT_DEFAULTS['checkpoint.everyRecords'],
      intervalMs: audit?.checkpoint?.intervalMs ?? AUDIT_DEFAULTS['checkpoint.intervalMs'],
    },
    rotate: {
      maxBytes: audit?.rotate?.maxBytes ?? AUDIT_DEFAULTS['rotate.maxBytes'],
      intervalMs: duration(audit?.rotate?.interval ?? AUDIT_DEFAULTS['rotate.interval']) ?? 86_400_000,
    },
    retain: { maxAgeMs: duration(audit?.retain?.maxAge), maxBytes: audit?.retain?.maxBytes ?? null },
    archiveCommand: audit?.archiveCommand ?? null,
    archiveTimeoutMs: audit?.archiveTimeoutMs ?? AUDIT_DEFAULTS['archiveTimeoutMs'],
    nats: sinks.nats,
    http: sinks.http,
    anomalies: compileAnomalies(raw, loaded, problems),
  };
}
