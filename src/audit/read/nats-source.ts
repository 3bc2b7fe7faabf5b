import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, type OrderedConsumerOptions } from '@nats-io/jetstream';
import { NATS_SINK_DEFAULTS, parseNatsUrl } from '../../config/compile-audit-sinks.js';
import { OperatorError } from '../../lib/operator-error.js';
import { chainFromSubject } from '../sinks/nats-subject.js';
import type { ReadOptions, RecordSource, SourceRecord } from './source.js';

export interface NatsSourceOptions {
  /** Default PORTCULLIS_AUDIT. */
  readonly stream?: string;
  /** The sinks' subject prefix; records are read from `<subject>.>`. Default portcullis.audit. */
  readonly subject?: string;
  /** `all` (default): from the first record the stream holds (or `since`); `new`: only records published after the read starts. */
  readonly deliver?: 'all' | 'new';
  /** Only records stored at or after this time (ms since the epoch), unless a read says otherwise. */
  readonly since?: number;
  /** How long connecting may take. Default 5000. */
  readonly timeoutMs?: number;
}

/**
 * The trail as the NATS sinks of every gateway publish it: one ordered (ephemeral, flow-controlled)
 * consumer over `<subject>.>`, in stream order. Each record's chain is the one its subject names.
 * A message that is not a JSON object, or whose subject does not name a chain, is not yielded
 * (`skipped` counts it). Without `follow` the read ends at the last record present when it began.
 */
export class NatsSource implements RecordSource {
  readonly name: string;
  /** Messages not yielded: not JSON objects, or on a subject that names no chain. */
  skipped = 0;
  private readonly server: Exclude<ReturnType<typeof parseNatsUrl>, string>;
  private readonly connections = new Set<NatsConnection>();

  constructor(url: string, private readonly options: NatsSourceOptions = {}) {
    const parsed = parseNatsUrl(url);
    if (typeof parsed === 'string') throw new OperatorError(`--from: the NATS URL ${parsed}`);
    this.server = parsed;
    this.name = `${parsed.servers} stream ${options.stream ?? NATS_SINK_DEFAULTS.stream}`;
  }

  async *records(read: ReadOptions): AsyncIterable<SourceRecord> {
    const { servers, user, pass, token } = this.server;
    const stream = this.options.stream ?? NATS_SINK_DEFAULTS.stream;
    const prefix = this.options.subject ?? NATS_SINK_DEFAULTS.subject;
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers, name: 'portcullis-audit-reader', timeout: this.options.timeoutMs ?? 5000, maxReconnectAttempts: -1,
        ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }), ...(token === undefined ? {} : { token }),
      });
    } catch (err) {
      throw new OperatorError(`cannot connect to ${this.name}: ${(err as Error).message}`);
    }
    this.connections.add(nc);
    try {
      const ordered: Partial<OrderedConsumerOptions> = { filter_subjects: `${prefix}.>` };
      const since = read.since ?? this.options.since;
      if (since !== undefined) {
        ordered.deliver_policy = DeliverPolicy.StartTime;
        ordered.opt_start_time = new Date(since).toISOString();
      } else ordered.deliver_policy = this.options.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All;
      let consumer;
      try {
        consumer = await jetstream(nc).consumers.get(stream, ordered);
      } catch (err) {
        throw new OperatorError(`cannot read ${this.name}: ${(err as Error).message}`);
      }
      if (!read.follow && (await consumer.info(true)).num_pending === 0) return;
      const messages = await consumer.consume({ max_messages: 256 });
      const stop = (): void => { void messages.close(); };
      if (read.signal?.aborted === true) return;
      read.signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const m of messages) {
          const chain = chainFromSubject(prefix, m.subject);
          // A message holds one or more consecutive records of its chain, one per line.
          for (const line of m.string().split('\n')) {
            if (line === '') continue;
            const record = chain === null ? null : parsedObject(line);
            if (chain === null || record === null) this.skipped++;
            else yield { chain, line, record };
          }
          if (!read.follow && m.info.pending === 0) break;
        }
      } finally {
        read.signal?.removeEventListener('abort', stop);
        await messages.close();
      }
    } finally {
      this.connections.delete(nc);
      await nc.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.connections].map((nc) => nc.close().catch(() => undefined)));
  }
}

/** A source over the NATS stream at `url` (`nats://[user:password@]host:port`; the credentials never appear in `name`). */
export function natsSource(url: string, options: NatsSourceOptions = {}): NatsSource {
  return new NatsSource(url, options);
}

function parsedObject(line: string): Readonly<Record<string, unknown>> | null {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : null;
  } catch {
    return null;
  }
}
