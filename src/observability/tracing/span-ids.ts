import { randomFillSync } from 'node:crypto';

/** Bytes of randomness drawn at once: one call to the CSPRNG serves a few hundred spans. */
const POOL_BYTES = 4096;

/**
 * Trace and span ids (W3C Trace Context §3.2.2.3, §3.2.2.4): random bytes as lower-case hex, from
 * the operating system's CSPRNG drawn into a pooled buffer, so an id costs a slice of it rather
 * than a system call. Ids are unpredictable: a client cannot guess the next one to correlate or
 * collide with another caller's trace. An all-zero id is invalid and never returned.
 */
export class SpanIds {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private offset = POOL_BYTES;

  /** 32 hex digits. */
  traceId(): string {
    return this.take(16);
  }

  /** 16 hex digits. */
  spanId(): string {
    return this.take(8);
  }

  private take(bytes: number): string {
    for (;;) {
      if (this.offset + bytes > POOL_BYTES) {
        randomFillSync(this.pool);
        this.offset = 0;
      }
      const start = this.offset;
      this.offset += bytes;
      for (let i = start; i < start + bytes; i++) if (this.pool[i] !== 0) return this.pool.toString('hex', start, start + bytes);
    }
  }
}
