import type { AuditSink, LinkedEntry, SinkFailureMode, SinkState } from './sink.js';

/**
 * The stdout sink (`audit.stdout: true`): the same lines on standard output, for a log pipe. Its
 * own bounded queue; it fails open (a stalled pipe drops records, counted, rather than refusing
 * requests). Writes wait for the stream's `drain`, so a slow reader never grows memory past the bound.
 */
export class StdoutSink implements AuditSink {
  readonly name = 'stdout';
  private queue: string[] = [];
  private queued = 0;
  private droppedCount = 0;
  private closed = false;
  private blocked = false;
  private scheduled = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly maxQueueBytes: number,
    readonly onFailure: SinkFailureMode = 'failOpen',
    private readonly out: NodeJS.WritableStream = process.stdout,
  ) {}

  get state(): SinkState {
    if (this.closed) return 'closed';
    if (this.blocked && this.queued * 4 >= this.maxQueueBytes * 3) return 'backlogged';
    return 'ok';
  }

  get dropped(): number {
    return this.droppedCount;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  accept(entry: LinkedEntry): boolean {
    if (this.closed || this.queued + entry.line.length > this.maxQueueBytes) { this.droppedCount++; return false; }
    this.queue.push(entry.line);
    this.queued += entry.line.length;
    if (!this.scheduled && !this.blocked) { this.scheduled = true; setImmediate(this.pump); }
    return true;
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    while (this.queue.length > 0 && !this.blocked) {
      const text = this.queue.join('');
      this.queue = [];
      this.queued = 0;
      if (!this.out.write(text)) {
        this.blocked = true;
        this.out.once('drain', () => { this.blocked = false; this.pump(); });
      }
    }
    // Handed to the stream, or waiting for its reader: either way nothing more can be done now.
    for (const done of this.idle.splice(0)) done();
  };

  /** Resolves once the queue is handed to the stream, or at once while the stream is full (the sink waits for its reader). */
  flushed(): Promise<void> {
    if ((this.queue.length === 0 && !this.blocked) || this.blocked) return Promise.resolve();
    return new Promise((done) => { this.idle.push(done); if (!this.scheduled && !this.blocked) { this.scheduled = true; setImmediate(this.pump); } });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.pump();
    this.closed = true;
    // A blocked pipe is not waited for: what it has not taken is lost with the process anyway.
    if (!this.blocked) await this.flushed();
    else { this.droppedCount += this.queue.length; this.queue = []; this.queued = 0; }
  }
}
