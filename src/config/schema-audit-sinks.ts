import { Type } from '@sinclair/typebox';
import { Bytes, Duration, formatted, HEADER_NAME_PATTERN, Millis, strict } from './schema-parts.js';

const OnFailure = (what: string) => Type.Union([Type.Literal('failClosed'), Type.Literal('failOpen')], {
  description: `What a failing ${what} means for requests: failClosed (503 audit_unavailable until it takes records again) or failOpen (serve; drop, count and log). Default: audit.onFailure, else failClosed.`,
});

/** A JetStream stream name: no spaces, dots, wildcards or path separators (they are not allowed by the server, or name files). */
export const STREAM_NAME_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/** A subject prefix: dot-separated tokens of letters, digits, `_` and `-` (no wildcards, no spaces, no empty token). */
export const SUBJECT_PREFIX_PATTERN = '^[A-Za-z0-9_-]{1,64}(\\.[A-Za-z0-9_-]{1,64}){0,7}$';

/** `audit.nats`: the NATS JetStream sink. */
export const NatsSinkSchema = strict({
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'The NATS server: nats://host:port or tls://host:port, optionally with user:password@ or token@. The credentials are never logged or shown in /readyz.' }),
  stream: Type.Optional(formatted(STREAM_NAME_PATTERN, 'a stream name of letters, digits, `_` and `-`, up to 64 characters', { description: 'The JetStream stream. Default PORTCULLIS_AUDIT.' })),
  subject: Type.Optional(formatted(SUBJECT_PREFIX_PATTERN, 'dot-separated tokens of letters, digits, `_` and `-` (no `*`, `>`, spaces or empty tokens)', { description: 'Subject prefix; each record goes to <subject>.<chain, with / as .>. Default portcullis.audit.' })),
  createStream: Type.Optional(Type.Boolean({ description: 'Create the stream when it does not exist (subjects <subject>.>, file storage). Default true.' })),
  duplicateWindow: Type.Optional(Duration('The de-duplication window of a stream the gateway creates: a record published again within it (same Nats-Msg-Id, its hash) is stored once. Default 2m.')),
  spool: Type.Optional(strict({
    maxBytes: Type.Optional(Bytes('Most bytes of records kept on disk while the stream cannot be reached. Default 67108864.')),
  }, 'The on-disk spool for records the stream has not acknowledged.')),
  ackTimeoutMs: Type.Optional(Millis('How long a publish waits for the stream\'s acknowledgement before the record goes to the spool. Default 5000.')),
  maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Most publishes waiting for their acknowledgement at once. Default 256.' })),
  onFailure: Type.Optional(OnFailure('stream')),
}, 'Publish every audit record to a NATS JetStream stream.');

/** `audit.http`: the HTTP batch sink (a SIEM's collector). */
export const HttpSinkSchema = strict({
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'The collector: an http:// or https:// URL that takes POSTed JSON arrays of records.' }),
  headers: Type.Optional(Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), Type.String({ maxLength: 8192 }), { additionalProperties: false, description: 'Headers sent with every batch (e.g. Authorization: Bearer ${SIEM_TOKEN}); never logged.' })),
  batchRecords: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'Most records in one POST. Default 500.' })),
  batchIntervalMs: Type.Optional(Millis('How long a batch that is not full waits for more records before it is sent. Default 1000.')),
  timeoutMs: Type.Optional(Millis('How long one POST may take, connection to response. Default 10000.')),
  maxQueueBytes: Type.Optional(Type.Integer({ minimum: 65536, maximum: 1 << 30, description: 'Most bytes of records waiting to be delivered. Default 16777216.' })),
  retry: Type.Optional(strict({
    initialMs: Type.Optional(Millis('The first wait before a failed batch is sent again; it doubles on each failure, with jitter. Default 500.')),
    maxMs: Type.Optional(Millis('The longest wait between two attempts. Default 60000.')),
  }, 'Retry with exponential back-off and jitter.')),
  onFailure: Type.Optional(OnFailure('collector')),
}, 'POST audit records in JSON batches to an HTTP collector.');
