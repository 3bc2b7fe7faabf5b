import { createReadStream } from 'node:fs';

/** One line of a trail file as read: its bytes without the newline, or null when it was longer than the cap. */
export interface RawLine {
  /** The line's bytes without its `\n`; null when the line was longer than `maxLineBytes` (its bytes were skipped). */
  readonly bytes: Buffer | null;
  /** The line's length in bytes, without its `\n`, even when it was skipped. */
  readonly length: number;
  /** Whether the line ended with `\n`; only the last line of a file can lack it. */
  readonly terminated: boolean;
}

/**
 * The lines of a file, read in chunks: memory stays bounded by `maxLineBytes` plus one chunk however
 * large the file and however long a line (a line over the cap is yielded with `bytes: null`, not
 * held). `onBytes` hears how many bytes each chunk held, for a progress bar.
 */
export async function* readLines(path: string, maxLineBytes: number, onBytes?: (bytes: number) => void): AsyncGenerator<RawLine> {
  const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
  let parts: Buffer[] = [];
  let held = 0;
  let length = 0;
  let oversize = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      onBytes?.(chunk.length);
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        const end = nl < 0 ? chunk.length : nl;
        length += end - start;
        if (!oversize) {
          if (length > maxLineBytes) {
            oversize = true;
            parts = [];
            held = 0;
          } else if (end > start) {
            parts.push(chunk.subarray(start, end));
            held += end - start;
          }
        }
        if (nl < 0) break;
        yield { bytes: oversize ? null : Buffer.concat(parts, held), length, terminated: true };
        parts = [];
        held = 0;
        length = 0;
        oversize = false;
        start = nl + 1;
      }
    }
    if (length > 0) yield { bytes: oversize ? null : Buffer.concat(parts, held), length, terminated: false };
  } finally {
    stream.destroy();
  }
}
