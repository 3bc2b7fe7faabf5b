import type { ConfigSource } from './config-source.js';
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Severity } from '../audit/anomaly/types.js';
import { parseDuration } from '../lib/duration.js';
import type { ConfigProblem } from './errors.js';
import type { RawConfig } from './schema.js';

interface DetectorBase {
  readonly enabled: boolean;
  readonly severity: Severity;
}

export interface AuthFailureSpikeOptions extends DetectorBase {
  readonly windowMs: number;
  readonly multiplier: number;
  readonly smoothing: number;
  readonly warmupWindows: number;
  readonly globalMinCount: number;
  readonly networkMinCount: number;
  readonly credentialMinCount: number;
}

export interface TenantFanOutOptions extends DetectorBase {
  readonly windowMs: number;
  readonly maxTenants: number;
}

export interface CredentialNetworksOptions extends DetectorBase {
  readonly windowMs: number;
  readonly maxNetworks: number;
}

export interface ImpossibleTravelOptions extends DetectorBase {
  readonly minTravelMs: number;
}

export interface LimitStormOptions extends DetectorBase {
  readonly windowMs: number;
  readonly globalThreshold: number;
  readonly networkThreshold: number;
}

export interface DeadCredentialOptions extends DetectorBase {
  readonly windowMs: number;
  readonly maxAttempts: number;
}

export type AdminFirstUseOptions = DetectorBase;

/** `audit.anomalies.webhook`, compiled. `secret` is never logged. */
export interface WebhookOptions {
  readonly url: string;
  readonly secret: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly maxQueue: number;
}

/** `audit.anomalies`, compiled: every default applied, durations in ms, frozen. */
export interface AnomalyOptions {
  readonly enabled: boolean;
  readonly maxTrackedKeys: number;
  /** Absolute path of the MaxMind-format country database (`geoDatabase`, or this section's older option), or null (impossibleTravel does not run). */
  readonly geoDatabase: string | null;
  readonly authFailureSpike: AuthFailureSpikeOptions;
  readonly tenantFanOut: TenantFanOutOptions;
  readonly credentialNetworks: CredentialNetworksOptions;
  readonly impossibleTravel: ImpossibleTravelOptions;
  readonly limitStorm: LimitStormOptions;
  readonly deadCredential: DeadCredentialOptions;
  readonly adminFirstUse: AdminFirstUseOptions;
  readonly webhook: WebhookOptions | null;
}

/** The defaults docs/configuration.md and docs/audit.md state. */
export const ANOMALY_DEFAULTS = Object.freeze({
  maxTrackedKeys: 10_000,
  authFailureSpike: { enabled: true, severity: 'medium', window: '60s', multiplier: 3, smoothing: 0.2, warmupWindows: 5, globalMinCount: 100, networkMinCount: 20, credentialMinCount: 10 },
  tenantFanOut: { enabled: true, severity: 'high', window: '10m', maxTenants: 3 },
  credentialNetworks: { enabled: true, severity: 'medium', window: '1h', maxNetworks: 5 },
  impossibleTravel: { enabled: true, severity: 'high', minTravelTime: '1h' },
  limitStorm: { enabled: true, severity: 'medium', window: '60s', globalThreshold: 500, networkThreshold: 100 },
  deadCredential: { enabled: true, severity: 'low', window: '10m', maxAttempts: 5 },
  adminFirstUse: { enabled: false, severity: 'medium' },
  webhook: { timeoutMs: 5000, maxAttempts: 5, maxQueue: 1000 },
} as const);

/** The longest window a detector counts over: a day (its counts are in memory, and restarts forget them). */
const MAX_WINDOW_MS = 86_400_000;

/**
 * Compiles `audit.anomalies` (null when the section is absent), reporting located problems for
 * values the schema cannot judge: a window longer than a day, a webhook URL that is not http(s)
 * or carries credentials, a geo database that is not a file. Opens nothing but a stat.
 */
export function compileAnomalies(raw: Pick<RawConfig, 'audit' | 'geoDatabase'>, loaded: ConfigSource, problems: ConfigProblem[]): AnomalyOptions | null {
  const a = raw.audit?.anomalies;
  if (a === undefined) return null;
  const D = ANOMALY_DEFAULTS;
  const at = (...path: (string | number)[]) => ['audit', 'anomalies', ...path];
  const duration = (text: string | undefined, fallback: string, path: (string | number)[]): number => {
    const ms = parseDuration(text ?? fallback) ?? 0;
    if (ms <= 0) { problems.push(loaded.problem(at(...path), 'must be longer than 0s')); return 1000; }
    if (ms > MAX_WINDOW_MS) { problems.push(loaded.problem(at(...path), 'at most 1d')); return MAX_WINDOW_MS; }
    return ms;
  };

  const s = a.authFailureSpike ?? {};
  const t = a.tenantFanOut ?? {};
  const c = a.credentialNetworks ?? {};
  const i = a.impossibleTravel ?? {};
  const l = a.limitStorm ?? {};
  const d = a.deadCredential ?? {};
  const f = a.adminFirstUse ?? {};

  // The gateway's one country database: its own option (the older spelling) or the top-level geoDatabase (judged in compile-geo.ts).
  let geoDatabase: string | null = null;
  const geoFile = a.geoDatabase ?? raw.geoDatabase;
  if (geoFile !== undefined) {
    geoDatabase = isAbsolute(geoFile) ? geoFile : resolve(loaded.files.baseDir, geoFile);
    let isFile = false;
    try { isFile = statSync(geoDatabase).isFile(); } catch { isFile = false; }
    if (!isFile && a.geoDatabase !== undefined) problems.push(loaded.problem(at('geoDatabase'), `${a.geoDatabase} is not a readable file (a MaxMind-format .mmdb database)`));
  }

  let webhook: WebhookOptions | null = null;
  if (a.webhook !== undefined) {
    const w = a.webhook;
    let url: URL | null = null;
    try { url = new URL(w.url); } catch { url = null; }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.push(loaded.problem(at('webhook', 'url'), 'must be an http:// or https:// URL'));
    } else if (url.username !== '' || url.password !== '') {
      problems.push(loaded.problem(at('webhook', 'url'), 'must not carry a user name or password: alerts are authenticated by the signature header'));
    }
    webhook = Object.freeze({
      url: w.url,
      secret: w.secret,
      timeoutMs: w.timeoutMs ?? D.webhook.timeoutMs,
      maxAttempts: w.maxAttempts ?? D.webhook.maxAttempts,
      maxQueue: w.maxQueue ?? D.webhook.maxQueue,
    });
  }

  return Object.freeze({
    enabled: a.enabled ?? true,
    maxTrackedKeys: a.maxTrackedKeys ?? D.maxTrackedKeys,
    geoDatabase,
    authFailureSpike: Object.freeze({
      enabled: s.enabled ?? D.authFailureSpike.enabled,
      severity: s.severity ?? D.authFailureSpike.severity,
      windowMs: duration(s.window, D.authFailureSpike.window, ['authFailureSpike', 'window']),
      multiplier: s.multiplier ?? D.authFailureSpike.multiplier,
      smoothing: s.smoothing ?? D.authFailureSpike.smoothing,
      warmupWindows: s.warmupWindows ?? D.authFailureSpike.warmupWindows,
      globalMinCount: s.globalMinCount ?? D.authFailureSpike.globalMinCount,
      networkMinCount: s.networkMinCount ?? D.authFailureSpike.networkMinCount,
      credentialMinCount: s.credentialMinCount ?? D.authFailureSpike.credentialMinCount,
    }),
    tenantFanOut: Object.freeze({
      enabled: t.enabled ?? D.tenantFanOut.enabled,
      severity: t.severity ?? D.tenantFanOut.severity,
      windowMs: duration(t.window, D.tenantFanOut.window, ['tenantFanOut', 'window']),
      maxTenants: t.maxTenants ?? D.tenantFanOut.maxTenants,
    }),
    credentialNetworks: Object.freeze({
      enabled: c.enabled ?? D.credentialNetworks.enabled,
      severity: c.severity ?? D.credentialNetworks.severity,
      windowMs: duration(c.window, D.credentialNetworks.window, ['credentialNetworks', 'window']),
      maxNetworks: c.maxNetworks ?? D.credentialNetworks.maxNetworks,
    }),
    impossibleTravel: Object.freeze({
      enabled: (i.enabled ?? D.impossibleTravel.enabled) && geoDatabase !== null,
      severity: i.severity ?? D.impossibleTravel.severity,
      minTravelMs: duration(i.minTravelTime, D.impossibleTravel.minTravelTime, ['impossibleTravel', 'minTravelTime']),
    }),
    limitStorm: Object.freeze({
      enabled: l.enabled ?? D.limitStorm.enabled,
      severity: l.severity ?? D.limitStorm.severity,
      windowMs: duration(l.window, D.limitStorm.window, ['limitStorm', 'window']),
      globalThreshold: l.globalThreshold ?? D.limitStorm.globalThreshold,
      networkThreshold: l.networkThreshold ?? D.limitStorm.networkThreshold,
    }),
    deadCredential: Object.freeze({
      enabled: d.enabled ?? D.deadCredential.enabled,
      severity: d.severity ?? D.deadCredential.severity,
      windowMs: duration(d.window, D.deadCredential.window, ['deadCredential', 'window']),
      maxAttempts: d.maxAttempts ?? D.deadCredential.maxAttempts,
    }),
    adminFirstUse: Object.freeze({
      enabled: f.enabled ?? D.adminFirstUse.enabled,
      severity: f.severity ?? D.adminFirstUse.severity,
    }),
    webhook,
  });
}
