import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Decision } from '../pipeline/exchange.js';

/** One audit record (a JSON line). Never holds a secret: no query string, no credentials, no cookies. */
export interface AuditRecord {
  readonly time: string;
  readonly requestId: string;
  readonly method: string;
  /** The canonical path (or the sanitised raw target when it was rejected); never the query. */
  readonly path: string;
  readonly route: string | null;
  readonly status: number;
  readonly latencyMs: number;
  readonly decision: Decision;
  /** Reason code from the denial catalogue, or null when allowed. */
  readonly reason: string | null;
  /** The precise private explanation. */
  readonly detail: string | null;
  readonly identity: { readonly subject: string; readonly authMethod: string; readonly keyId: string | null } | null;
  readonly tenant: string | null;
  readonly clientIp: string;
  readonly userAgent: string | null;
  readonly upstream: string | null;
  readonly upstreamStatus: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly configVersion: string;
  /** The rate limit, quota or guard that refused the request, by name; absent otherwise. */
  readonly limit?: string | null;
}

/**
 * The audit trail: JSON lines appended through a write stream. The request path only serialises
 * its record into a batch; the batch goes to the stream once per event-loop turn, as one write.
 * When the queue passes `maxQueueBytes` or the file fails, `healthy` turns false and the gateway
 * refuses new requests with 503 rather than serve unaudited (invariant 7, fail closed).
 */
export class AuditLog {
  private stream: WriteStream | null = null;
  private failed: Error | null = null;
  private dropped = 0;
  private batch = '';
  private scheduled = false;
  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.batch === '') return;
    const lines = this.batch;
    this.batch = '';
    if (this.stream === null || this.failed !== null) { this.dropped += countLines(lines); return; }
    this.stream.write(lines);
  };

  constructor(readonly path: string, private readonly maxQueueBytes: number, private readonly logger: Logger) {}

  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o750 });
    const stream = createWriteStream(this.path, { flags: 'a', mode: 0o640, highWaterMark: 64 * 1024 });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    stream.on('error', (err) => {
      this.failed = err;
      this.logger.error({ err, path: this.path }, 'audit log write failed; refusing requests until restart');
    });
    this.stream = stream;
  }

  /** False when the trail cannot take more records; requests are then refused. */
  get healthy(): boolean {
    return this.stream !== null && this.failed === null && this.stream.writableLength + this.batch.length < this.maxQueueBytes;
  }

  /** Records that could not be written (audit failure after the request was accepted). */
  get droppedRecords(): number {
    return this.dropped;
  }

  write(record: AuditRecord): void {
    if (this.stream === null || this.failed !== null) { this.dropped++; return; }
    this.batch += JSON.stringify(record) + '\n';
    if (!this.scheduled) { this.scheduled = true; setImmediate(this.flush); }
  }

  /** Flushes queued records and closes the file. */
  async close(): Promise<void> {
    this.flush();
    const stream = this.stream;
    if (stream === null) return;
    this.stream = null;
    await new Promise<void>((resolve) => stream.end(() => resolve()));
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/g;
/** User agents are attacker text: control characters removed, length bounded. */
export function sanitiseText(value: string | undefined, max = 256): string | null {
  if (value === undefined) return null;
  const clean = value.replace(CONTROL, '');
  return clean.length > max ? clean.slice(0, max) : clean;
}
