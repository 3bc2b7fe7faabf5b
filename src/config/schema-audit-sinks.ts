import { strict } from './schema-parts.js';

/** `audit.nats`: the NATS JetStream sink. */
export const NatsSinkSchema = strict({}, 'Publish every audit record to a NATS JetStream stream.');

/** `audit.http`: the HTTP batch sink (a SIEM's collector). */
export const HttpSinkSchema = strict({}, 'POST audit records in JSON batches to an HTTP collector.');
