import { Type } from '@sinclair/typebox';
import { Duration, strict } from './schema-parts.js';

/** The severities an alert can carry, least serious first. */
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;

const Severity = (fallback: (typeof SEVERITIES)[number]) => Type.Unsafe<(typeof SEVERITIES)[number]>({
  type: 'string', enum: [...SEVERITIES], description: `How serious the detector's alerts are: info, low, medium, high or critical. Default ${fallback}.`,
});
const Enabled = (fallback: boolean) => Type.Optional(Type.Boolean({ description: `Whether the detector runs. Default ${fallback}.` }));
const Window = (fallback: string) => Type.Optional(Duration(`The detector's counting window (counts start again at each window; one alert per subject per window). Default ${fallback}.`));
const Count = (description: string, minimum = 1, maximum = 1_000_000_000) => Type.Optional(Type.Integer({ minimum, maximum, description }));

/** `audit.anomalies.authFailureSpike`. */
const AuthFailureSpikeSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('medium')),
  window: Window('60s'),
  multiplier: Type.Optional(Type.Number({ minimum: 1, maximum: 1000, description: 'An alert needs at least this many times the learned baseline (the moving average of past windows). Default 3.' })),
  smoothing: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Weight of the newest window in the baseline (exponentially weighted moving average). Default 0.2.' })),
  warmupWindows: Count('Windows the global baseline learns before the global count may alert. Default 5.', 0),
  globalMinCount: Count('Fewest 401/403 answers in a window, over all clients, that can alert. Default 100.'),
  networkMinCount: Count('Fewest 401/403 answers in a window to one client network (IPv4 /24, IPv6 /48) that can alert. Default 20.'),
  credentialMinCount: Count('Fewest 401/403 answers in a window to one credential (API key id, or authentication method and subject) that can alert. Default 10.'),
}, 'A spike of 401 and 403 answers against a learned baseline: globally, per client network and per credential.');

/** `audit.anomalies.tenantFanOut`. */
const TenantFanOutSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('high')),
  window: Window('10m'),
  maxTenants: Count('Most distinct tenants one identity may touch in a window (at most 1000); one more alerts. Default 3.', 1, 1000),
}, 'One identity touching more distinct tenants in a window than it should.');

/** `audit.anomalies.credentialNetworks`. */
const CredentialNetworksSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('medium')),
  window: Window('1h'),
  maxNetworks: Count('Most distinct client networks (IPv4 /24, IPv6 /48) one credential may come from in a window (at most 1000); one more alerts. Default 5.', 1, 1000),
}, 'One credential used from more client networks in a window than it should.');

/** `audit.anomalies.impossibleTravel`. */
const ImpossibleTravelSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('high')),
  minTravelTime: Type.Optional(Duration('A credential seen in two countries less than this far apart alerts. Default 1h.')),
}, 'One credential used from two countries too close together in time; runs only with geoDatabase.');

/** `audit.anomalies.limitStorm`. */
const LimitStormSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('medium')),
  window: Window('60s'),
  globalThreshold: Count('Rate-limit, quota and brute-force refusals in a window, over all clients, that alert. Default 500.'),
  networkThreshold: Count('Rate-limit, quota and brute-force refusals in a window to one client network that alert. Default 100.'),
}, 'A storm of rate_limited, quota_exceeded and too_many_failures refusals.');

/** `audit.anomalies.deadCredential`. */
const DeadCredentialSchema = strict({
  enabled: Enabled(true),
  severity: Type.Optional(Severity('low')),
  window: Window('10m'),
  maxAttempts: Count('Most attempts with one revoked, expired or superseded credential in a window; one more alerts. Default 5.', 0),
}, 'A revoked, expired or superseded API key, or an expired token, still being tried.');

/** `audit.anomalies.adminFirstUse`. */
const AdminFirstUseSchema = strict({
  enabled: Enabled(false),
  severity: Type.Optional(Severity('medium')),
}, 'The first admin operation from a client network not seen before (since the process started).');

/** `audit.anomalies.webhook`. */
const WebhookSchema = strict({
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'Where alerts are POSTed as JSON (http or https).' }),
  secret: Type.String({ minLength: 16, maxLength: 1024, description: 'The HMAC-SHA256 key of the X-Portcullis-Signature header, at least 16 characters; write ${NAME} to take it from the environment. Never logged.' }),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 120_000, description: 'How long one POST may take. Default 5000.' })),
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'Attempts per batch of alerts, the first included, before it is dropped and counted. Default 5.' })),
  maxQueue: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Most alerts waiting to be sent; more are dropped and counted. Default 1000.' })),
}, 'POST each alert to a webhook, signed with HMAC-SHA256, retried with back-off.');

/** `audit.anomalies`: the detectors run over the gateway's own records, and where alerts go. */
export const AnomaliesSchema = strict({
  enabled: Type.Optional(Type.Boolean({ description: 'Whether the detectors run. Default true once the section is present.' })),
  maxTrackedKeys: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most keys (networks, credentials, identities) each table of each detector tracks; new keys beyond it are not tracked, and a detectorSaturated alert says so. Default 10000.' })),
  geoDatabase: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A MaxMind-format country database (.mmdb), relative to the config file; enables impossibleTravel.' })),
  authFailureSpike: Type.Optional(AuthFailureSpikeSchema),
  tenantFanOut: Type.Optional(TenantFanOutSchema),
  credentialNetworks: Type.Optional(CredentialNetworksSchema),
  impossibleTravel: Type.Optional(ImpossibleTravelSchema),
  limitStorm: Type.Optional(LimitStormSchema),
  deadCredential: Type.Optional(DeadCredentialSchema),
  adminFirstUse: Type.Optional(AdminFirstUseSchema),
  webhook: Type.Optional(WebhookSchema),
}, 'Anomaly detectors over the audit records.');
