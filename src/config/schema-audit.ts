import { Type } from '@sinclair/typebox';
import { Duration, formatted, Millis, strict } from './schema-parts.js';
import { AnomaliesSchema } from './schema-anomalies.js';
import { HttpSinkSchema, NatsSinkSchema } from './schema-audit-sinks.js';

/** `audit.checkpoint`: when the writer appends a signed checkpoint. */
const CheckpointSchema = strict({
  everyRecords: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'A signed checkpoint after this many records. Default 1000.' })),
  intervalMs: Type.Optional(Millis('A signed checkpoint this often when records were written since the last one. Default 60000.', 1000)),
}, 'Signed checkpoints of the chain.');

/** `audit.rotate`: when the active file is sealed and a new one begins. */
const RotateSchema = strict({
  maxBytes: Type.Optional(Type.Integer({ minimum: 65536, maximum: 2 ** 40, description: 'Seal the active file once it holds this many bytes. Default 104857600 (100 MiB).' })),
  interval: Type.Optional(Duration('Seal the active file once it is this old (24h, 1d). Default 24h.')),
}, 'Rotation of the trail file.');

/** `audit.retain`: which sealed files are kept. */
const RetainSchema = strict({
  maxAge: Type.Optional(Duration('Delete sealed files older than this (90d). Default: keep all.')),
  maxBytes: Type.Optional(Type.Integer({ minimum: 65536, maximum: 2 ** 50, description: 'Delete the oldest sealed files while the chain\'s files hold more than this. Default: keep all.' })),
}, 'Retention of sealed trail files (the active file is never deleted).');

/** The `audit` section: the chained file trail and its other sinks, and the anomaly detectors. */
export const AuditSchema = strict({
  file: Type.Optional(Type.String({ minLength: 1, description: 'Audit log path, relative to dataDir. Default audit/audit.log.' })),
  instance: Type.Optional(formatted('^[A-Za-z0-9_-]{1,64}$', 'letters, digits, `_` and `-`, up to 64 characters', { description: 'Names this gateway\'s chains (<instance>/main, <instance>/w1, …): letters, digits, _ and -, up to 64. Default: the host name, sanitised.' })),
  maxQueueBytes: Type.Optional(Type.Integer({ minimum: 65536, maximum: 1 << 30, description: 'Most audit bytes waiting to be written (at least 65536, several records at their largest). From three quarters of it, and while writes fail, requests are refused with 503 (fail closed); past it, records are dropped and counted. Default 8388608.' })),
  retryIntervalMs: Type.Optional(Millis('After a failed write, how often the file is reopened and the queued records written again; the first success ends the 503s. Default 1000.')),
  onFailure: Type.Optional(Type.Union([Type.Literal('failClosed'), Type.Literal('failOpen')], { description: 'failClosed (default): 503 audit_unavailable while the file cannot take records. failOpen: serve; dropped records are counted and marked by a gap record.' })),
  fsyncIntervalMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, description: 'How often written records are forced to disk (fsync); 0: after every write. Default 1000.' })),
  stdout: Type.Optional(Type.Boolean({ description: 'Also write every record to standard output (its own queue, fail open). Default false.' })),
  signingKeyFile: Type.Optional(Type.String({ minLength: 1, description: 'The Ed25519 checkpoint signing key (PKCS #8 PEM), relative to dataDir. Default audit/keys/signing.pem, created at first start.' })),
  checkpoint: Type.Optional(CheckpointSchema),
  rotate: Type.Optional(RotateSchema),
  retain: Type.Optional(RetainSchema),
  archiveCommand: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 64, description: 'A program and its arguments run on each sealed file ({file} is replaced by its path); retention keeps a file until it succeeded.' })),
  archiveTimeoutMs: Type.Optional(Millis('Longest an archiveCommand may run before it is killed and counted as failed. Default 300000.')),
  nats: Type.Optional(NatsSinkSchema),
  http: Type.Optional(HttpSinkSchema),
  anomalies: Type.Optional(AnomaliesSchema),
}, 'Audit trail.');
