import { Type } from '@sinclair/typebox';
import { Millis, strict } from './schema-parts.js';
import { AnomaliesSchema } from './schema-anomalies.js';
import { HttpSinkSchema, NatsSinkSchema } from './schema-audit-sinks.js';

/** The `audit` section: the chained file trail and its other sinks, and the anomaly detectors. */
export const AuditSchema = strict({
  file: Type.Optional(Type.String({ minLength: 1, description: 'Audit log path, relative to dataDir. Default audit/audit.log.' })),
  maxQueueBytes: Type.Optional(Type.Integer({ minimum: 65536, maximum: 1 << 30, description: 'Most audit bytes waiting to be written (at least 65536, several records at their largest). From three quarters of it, and while writes fail, requests are refused with 503 (fail closed); past it, records are dropped and counted. Default 8388608.' })),
  retryIntervalMs: Type.Optional(Millis('After a failed write, how often the file is reopened and the queued records written again; the first success ends the 503s. Default 1000.')),
  nats: Type.Optional(NatsSinkSchema),
  http: Type.Optional(HttpSinkSchema),
  anomalies: Type.Optional(AnomaliesSchema),
}, 'Audit trail.');
