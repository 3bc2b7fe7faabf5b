import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsSinkOptions } from '../../config/compile-audit-sinks.js';
import type { Clock, Timer } from '../../lib/clock.js';
import { OperatorError } from '../../lib/operator-error.js';
import { shownText } from '../../lifecycle/readiness.js';
import type { Logger } from '../../observability/logger.js';
import { subjectFor } from './nats-subject.js';
import type { AuditSink, LinkedEntry, SinkFailureMode, SinkState } from './sink.js';
import type { SinkMetrics } from './sink-metrics.js';
import { Spool } from './spool.js';

export interface NatsSinkDeps {
  /** The spool file (`<dataDir>/audit/spool/<chain>.log`). */
  readonly spoolPath: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: SinkMetrics;
}

/**
 * One message to the stream: consecutive records of one chain, published together under
 * `Nats-Msg-Id: <hash of its first record>`. A message is formed once and travels whole from then on
 * (published, spooled, published again from the spool), so a message whose acknowledgement was lost
 * is the same message when it is sent again, and the stream's de-duplication drops it.
 */
interface Item {
  readonly chain: string;
  /** The hash of its first record: the message's Nats-Msg-Id. */
  readonly id: string;
  /** The records' lines, without their newlines. */
  readonly lines: string[];
  /** The ordinal of its last record (see flushed()). */
  ordinal: number;
  /** UTF-8 bytes of its lines: what it takes in the spool. */
  bytes: number;
}

/** Most records, and bytes, in one message (the server's default max_payload is 1 MiB). */
const MESSAGE_MAX_RECORDS = 256;
const MESSAGE_MAX_BYTES = 256 * 1024;

/** A message as one spool line: chain, id and lines separated by tabs (canonical JSON holds no raw tab or newline). */
function spoolLine(item: Item): string {
  return `${item.chain}\t${item.id}\t${item.lines.join('\t')}\n`;
}

/** The bytes of a spooled message besides its lines (each counted with its separator): the chain, the id and two tabs. */
function messageOverhead(chain: string): number {
  return Buffer.byteLength(chain, 'utf8') + 64 + 2;
}

/** A message as the stream stores it: its records' lines, each ending with a newline. */
function payloadOf(item: Item): string {
  return `${item.lines.join('\n')}\n`;
}

/** The first wait before the spool is published again after a failure; it doubles up to RETRY_MAX_MS. */
const RETRY_INITIAL_MS = 250;
const RETRY_MAX_MS = 10_000;
/** Records held in memory while the stream acknowledges quickly; past it they go to the spool. */
const MEMORY_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Publishes each record to JetStream with `Nats-Msg-Id: <hash>`, at least once: a record counts as
 * delivered only when the stream acknowledged it. Up to `maxInFlight` publishes wait for their
 * acknowledgements at once. When a publish fails (server unreachable, ack timeout, no stream) the
 * record, and every record after it, go to a bounded on-disk spool in chain order, and are
 * published again from there once the stream answers; a record whose acknowledgement was lost is
 * stored once, by the stream's de-duplication window. The sink reconnects by itself.
 *
 * State: `ok` while records are published or spooled; `backlogged` from three quarters of the
 * spool; `failing` once the spool is full (or cannot be written) and records are dropped.
 */
export class NatsSink implements AuditSink {
  readonly name = 'nats';
  readonly onFailure: SinkFailureMode;
  private readonly spool: Spool;
  private readonly memoryMaxBytes: number;
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private streamReady = false;
  private up = false;
  private memory: Item[] = [];
  /** The message records are being added to (this turn's records of the chain); closed when the loop runs. */
  private forming: Item | null = null;
  private memoryBytes = 0;
  private buffer: Item[] = [];
  private bufferBytes = 0;
  private spooling = false;
  private retryTimer: Timer | null = null;
  private retryDelayMs = RETRY_INITIAL_MS;
  private connectTimer: Timer | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private closing = false;
  private closed = false;
  private refusing = false;
  private writeError: string | null = null;
  private droppedCount = 0;
  private ordinal = 0;
  private handledThrough = 0;
  /** The newest record dropped on its way from memory to the spool: handled, as far as flushed() is concerned. */
  private droppedThrough = 0;
  private waiters: { target: number; resolve: () => void }[] = [];
  private lastError: string | null = null;

  constructor(private readonly options: NatsSinkOptions, private readonly deps: NatsSinkDeps) {
    this.onFailure = options.onFailure;
    this.spool = new Spool(deps.spoolPath, options.spoolMaxBytes);
    // What memory holds must fit the spool when the stream fails.
    this.memoryMaxBytes = Math.min(MEMORY_MAX_BYTES, Math.floor(options.spoolMaxBytes / 4));
  }

  get dropped(): number {
    return this.droppedCount;
  }

  get state(): SinkState {
    if (this.closed) return 'closed';
    if (this.writeError !== null || this.refusing) return 'failing';
    if (this.spooledBytes >= this.options.spoolMaxBytes * 0.75) return 'backlogged';
    return 'ok';
  }

  /** Bytes in the spool, written or about to be. */
  get spooledBytes(): number {
    return this.spool.pendingBytes + this.bufferBytes;
  }

  /** Whether the connection to the server is up. */
  get connected(): boolean {
    return this.up;
  }

  /** For /readyz: never carries credentials (the servers URL has none, errors pass shownText). */
  details(): Record<string, unknown> {
    return { servers: this.options.servers, stream: this.options.stream, connected: this.connected, spooledBytes: this.spooledBytes, dropped: this.droppedCount, ...(this.lastError === null ? {} : { lastError: this.lastError }) };
  }

  async start(): Promise<void> {
    try {
      await this.spool.open();
    } catch (err) {
      throw new OperatorError(`audit.nats: cannot open the spool ${this.spool.path}: ${(err as Error).message}`);
    }
    if (this.spool.pendingBytes > 0) {
      this.spooling = true;
      this.deps.logger.info({ sink: 'nats', spooledBytes: this.spool.pendingBytes }, 'audit spool holds records from an earlier run; publishing them first');
    }
    this.metricSpool();
    this.loop = this.run();
    void this.tryConnect();
  }

  accept(entry: LinkedEntry): boolean {
    if (this.closing) return this.drop();
    const bytes = Buffer.byteLength(entry.line, 'utf8');
    const queued = this.bufferBytes + this.memoryBytes + (this.forming?.bytes ?? 0);
    // Counted as if it began a message of its own, header included: the spool's bound holds either way.
    const cost = bytes + messageOverhead(entry.chain);
    if ((this.spooling || this.memoryBytes + (this.forming?.bytes ?? 0) + cost > this.memoryMaxBytes)
      && (this.writeError !== null || !this.spool.hasRoom(queued + cost))) return this.drop();
    const line = entry.line.endsWith('\n') ? entry.line.slice(0, -1) : entry.line;
    let forming = this.forming;
    if (forming !== null && (forming.chain !== entry.chain || forming.lines.length >= MESSAGE_MAX_RECORDS || forming.bytes + bytes > MESSAGE_MAX_BYTES)) {
      this.closeForming();
      forming = null;
    }
    if (forming === null) {
      forming = { chain: entry.chain, id: entry.hash, lines: [], ordinal: 0, bytes: messageOverhead(entry.chain) };
      this.forming = forming;
    }
    forming.lines.push(line);
    forming.bytes += bytes;
    forming.ordinal = ++this.ordinal;
    this.poke();
    return true;
  }

  /** Sends the message being formed on its way: to memory while the stream keeps up, else to the spool. */
  private closeForming(): void {
    const item = this.forming;
    if (item === null) return;
    this.forming = null;
    if (!this.spooling && this.memoryBytes + item.bytes <= this.memoryMaxBytes) {
      this.memory.push(item);
      this.memoryBytes += item.bytes;
      return;
    }
    if (this.writeError !== null || !this.spool.hasRoom(this.bufferBytes + this.memoryBytes + item.bytes)) {
      this.dropItem(item);
      return;
    }
    this.spooling = true;
    this.buffer.push(item);
    this.bufferBytes += item.bytes;
  }

  /** A whole message lost (no room anywhere): each of its records counts. */
  private dropItem(item: Item): void {
    this.droppedCount += item.lines.length;
    if (!this.closed) this.refusing = true;
    this.deps.metrics?.sinkRecords(this.name, 'dropped', item.lines.length);
    this.droppedThrough = Math.max(this.droppedThrough, item.ordinal);
  }

  private drop(): boolean {
    this.droppedCount++;
    if (!this.closed) this.refusing = true;
    this.deps.metrics?.sinkRecords(this.name, 'dropped', 1);
    return false;
  }

  flushed(): Promise<void> {
    const target = this.ordinal;
    if (this.settled(target)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }

  private settled(target: number): boolean {
    if (this.closed || this.loop === null) return true;
    if (this.handledThrough < target) return false;
    return this.retryTimer !== null || this.writeError !== null || (this.spool.pendingBytes === 0 && this.buffer.length === 0);
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.settled(w.target)) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async tryConnect(): Promise<void> {
    this.connectTimer = null;
    if (this.closing) return;
    const { servers, user, pass, token } = this.options;
    try {
      const nc = await connect({
        servers, name: 'portcullis-audit', timeout: this.options.ackTimeoutMs,
        maxReconnectAttempts: -1, reconnectTimeWait: 1000,
        ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }), ...(token === undefined ? {} : { token }),
      });
      if (this.closing) {
        await nc.close();
        return;
      }
      this.nc = nc;
      this.js = jetstream(nc, { timeout: this.options.ackTimeoutMs });
      this.up = true;
      this.deps.logger.info({ sink: 'nats', servers }, 'audit stream connected');
      void this.watch(nc);
      this.resumeSoon();
    } catch (err) {
      this.failed(err);
      this.connectTimer = this.deps.clock.setTimer(() => void this.tryConnect(), 1000);
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.up = false;
      if (s.type === 'disconnect') this.deps.logger.warn({ sink: 'nats', servers: this.options.servers }, 'audit stream disconnected; records go to the spool until it is back');
      else if (s.type === 'reconnect') {
        this.deps.logger.info({ sink: 'nats', servers: this.options.servers }, 'audit stream reconnected');
        this.streamReady = false;
        this.up = true;
        this.resumeSoon();
      }
    }
  }

  /** Ends a retry wait: the connection is (back) up. */
  private resumeSoon(): void {
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.retryDelayMs = RETRY_INITIAL_MS;
    this.poke();
  }

  private failed(err: unknown): void {
    const message = shownText(err instanceof Error ? err.message : String(err));
    if (message !== this.lastError) this.deps.logger.warn({ sink: 'nats', servers: this.options.servers, err: message }, 'audit stream publish failed; records go to the spool');
    this.lastError = message;
  }

  private async ensureStream(): Promise<void> {
    if (this.streamReady || this.nc === null) return;
    const jsm = await jetstreamManager(this.nc, { timeout: this.options.ackTimeoutMs });
    const { stream, subject, createStream, duplicateWindowMs } = this.options;
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!createStream || !/not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], storage: 'file', duplicate_window: duplicateWindowMs * 1_000_000 });
      this.deps.logger.info({ sink: 'nats', stream }, 'audit stream created');
    }
    this.streamReady = true;
  }

  /** Publishes items at once; the indexes of those that failed, in order. */
  private async publish(items: readonly Item[]): Promise<number[]> {
    const js = this.js;
    if (js === null) {
      this.failed(new Error('not connected'));
      return items.map((_, i) => i);
    }
    try {
      await this.ensureStream();
    } catch (err) {
      this.failed(err);
      return items.map((_, i) => i);
    }
    const results = await Promise.allSettled(items.map((it) => js.publish(
      subjectFor(this.options.subject, it.chain),
      payloadOf(it),
      { msgID: it.id, timeout: this.options.ackTimeoutMs },
    )));
    const failedAt: number[] = [];
    let delivered = 0;
    let duplicates = 0;
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        failedAt.push(i);
        this.failed(r.reason);
      } else if (r.value.duplicate) duplicates += items[i]?.lines.length ?? 0;
      else delivered += items[i]?.lines.length ?? 0;
    });
    if (failedAt.length > 0) this.streamReady = false;
    else this.lastError = null;
    if (delivered > 0) this.deps.metrics?.sinkRecords(this.name, 'delivered', delivered);
    if (duplicates > 0) this.deps.metrics?.sinkRecords(this.name, 'duplicate', duplicates);
    return failedAt;
  }

  private async run(): Promise<void> {
    for (;;) {
      this.closeForming();
      if (this.memory.length > 0) await this.publishMemory();
      else if (this.buffer.length > 0 && (this.writeError === null || (this.retryTimer === null && !this.closing))) await this.writeBuffer();
      else if (this.spool.pendingBytes > 0 && this.retryTimer === null && this.writeError === null && !this.closing) await this.publishSpool();
      else {
        if (this.spool.pendingBytes === 0 && this.buffer.length === 0) this.spooling = false;
        this.settle();
        if (this.closing) return;
        await new Promise<void>((resolve) => { this.wake = resolve; });
      }
    }
  }

  private async publishMemory(): Promise<void> {
    const batch = this.memory.splice(0, this.options.maxInFlight);
    for (const it of batch) this.memoryBytes -= it.bytes;
    const failedAt = await this.publish(batch);
    if (failedAt.length > 0) {
      // The failed records and all still waiting go to the spool ahead of any already bound for it, keeping chain order.
      const moved: Item[] = [];
      let bytes = 0;
      for (const it of [...failedAt.map((i) => batch[i] as Item), ...this.memory]) {
        if (this.spool.hasRoom(this.bufferBytes + bytes + it.bytes)) {
          moved.push(it);
          bytes += it.bytes;
        } else this.dropItem(it);
      }
      this.buffer.unshift(...moved);
      this.bufferBytes += bytes;
      this.memory = [];
      this.memoryBytes = 0;
      this.spooling = true;
    } else this.handledThrough = Math.max(this.handledThrough, batch[batch.length - 1]?.ordinal ?? 0);
  }

  private async writeBuffer(): Promise<void> {
    // A snapshot: accept() appends to the buffer while the write is under way.
    const items = this.buffer.slice();
    const bytes = items.reduce((n, it) => n + it.bytes, 0);
    try {
      await this.spool.append(items.map(spoolLine));
      this.buffer = this.buffer.slice(items.length);
      this.bufferBytes -= bytes;
      this.handledThrough = Math.max(this.handledThrough, items[items.length - 1]?.ordinal ?? 0, this.droppedThrough);
      this.deps.metrics?.sinkRecords(this.name, 'spooled', items.reduce((n, it) => n + it.lines.length, 0));
      if (this.writeError !== null) this.deps.logger.info({ sink: 'nats' }, 'audit spool writable again');
      this.writeError = null;
    } catch (err) {
      // Kept in memory, within the spool's bound, and written again on the next retry.
      this.writeError = (err as Error).message;
      this.deps.logger.error({ sink: 'nats', err: this.writeError }, 'audit spool cannot be written; records are dropped until it can');
      this.waitRetry();
    }
    this.metricSpool();
  }

  private async publishSpool(): Promise<void> {
    const { lines, end } = await this.spool.read(this.options.maxInFlight);
    const items: Item[] = [];
    for (const line of lines) {
      const item = spooledItem(line);
      if (item === null) this.spool.skipped++;
      else items.push(item);
    }
    const failedAt = items.length === 0 ? [] : await this.publish(items);
    if (failedAt.length > 0) {
      this.waitRetry();
      return;
    }
    if (items.length > 0) this.deps.metrics?.sinkRecords(this.name, 'retried', items.reduce((n, it) => n + it.lines.length, 0));
    await this.spool.commit(end);
    if (this.refusing && this.spooledBytes < this.options.spoolMaxBytes * 0.75) this.refusing = false;
    this.metricSpool();
  }

  private cancelRetry(): void {
    this.retryTimer?.cancel();
    this.retryTimer = null;
  }

  private waitRetry(): void {
    this.retryTimer?.cancel();
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(RETRY_MAX_MS, this.retryDelayMs * 2);
    this.retryTimer = this.deps.clock.setTimer(() => {
      this.retryTimer = null;
      this.poke();
    }, delay);
    this.settle();
  }

  private metricSpool(): void {
    this.deps.metrics?.spoolBytes(this.name, this.spooledBytes);
  }

  /**
   * Stops taking records, publishes what it holds within `ackTimeoutMs`, writes the rest to the
   * spool (published at the next start), then closes the connection.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.connectTimer?.cancel();
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.poke();
    await this.loop;
    this.cancelRetry();
    this.closeForming();
    if (this.memory.length > 0) {
      this.buffer.unshift(...this.memory);
      this.memory = [];
      this.memoryBytes = 0;
    }
    if (this.buffer.length > 0) {
      const records = this.buffer.reduce((n, it) => n + it.lines.length, 0);
      try {
        await this.spool.append(this.buffer.map(spoolLine));
      } catch (err) {
        this.droppedCount += records;
        this.deps.logger.error({ sink: 'nats', err: (err as Error).message, dropped: records }, 'audit spool cannot be written at shutdown');
      }
      this.buffer = [];
      this.bufferBytes = 0;
    }
    await this.spool.close();
    const nc = this.nc;
    this.nc = null;
    this.js = null;
    this.up = false;
    if (nc !== null) await nc.close().catch(() => undefined);
    this.closed = true;
    this.settle();
  }
}

/** A spooled message back as what publish needs; null for a line that is not one (a torn or foreign line). */
function spooledItem(text: string): Item | null {
  const parts = text.split('\t');
  const [chain, id, ...lines] = parts;
  if (chain === undefined || chain === '' || id === undefined || !/^[0-9a-f]{64}$/.test(id) || lines.length === 0) return null;
  for (const line of lines) if (!line.startsWith('{') || !line.endsWith('}')) return null;
  return { chain, id, lines, ordinal: 0, bytes: 0 };
}
