import { mkdir, open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openRegular } from '../regular-file.js';

/** The most one read of the spool takes; a longer line is not a record this gateway wrote, and is skipped. */
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * A bounded, append-only file of record lines a sink could not deliver yet, read back in order.
 * `<file>` holds the lines; `<file>.pos` the byte offset of the first line not yet delivered
 * (written by rename, so it is either the old or the new offset). Lines are fsync'd before append
 * resolves. A crash between a delivery and its commit re-delivers a few lines, which the
 * destination de-duplicates. The file is truncated once everything in it is delivered, and
 * compacted (the delivered head cut off) when an append would pass `maxBytes`.
 *
 * One caller at a time: the owning sink's loop serialises every call.
 */
export class Spool {
  private handle: FileHandle | null = null;
  private size = 0;
  private readOffset = 0;
  /** Lines skipped because they were torn or too long. */
  skipped = 0;

  constructor(readonly path: string, readonly maxBytes: number) {}

  /** Bytes not yet delivered. */
  get pendingBytes(): number {
    return this.size - this.readOffset;
  }

  /** Opens (creating the directory and file); drops a torn last line left by a crash. */
  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    this.handle = await openRegular(this.path, 'a+', 0o600);
    this.size = (await this.handle.stat()).size;
    if (this.size > 0) {
      const tail = Buffer.alloc(1);
      await this.handle.read(tail, 0, 1, this.size - 1);
      if (tail[0] !== 0x0a) await this.cutTornTail();
    }
    let pos = 0;
    try {
      const text = (await readFile(`${this.path}.pos`, 'utf8')).trim();
      pos = /^\d{1,15}$/.test(text) ? Number(text) : 0;
    } catch {
      pos = 0;
    }
    // An offset past the end, or one that is not at a line start, is not trusted: re-deliver from 0 (de-duplicated downstream).
    this.readOffset = pos <= this.size && (pos === 0 || await this.byteAt(pos - 1) === 0x0a) ? pos : 0;
    if (this.readOffset === this.size && this.size > 0) await this.reset();
  }

  private async byteAt(offset: number): Promise<number | undefined> {
    const b = Buffer.alloc(1);
    await this.file().read(b, 0, 1, offset);
    return b[0];
  }

  private async cutTornTail(): Promise<void> {
    let end = this.size;
    const chunk = Buffer.alloc(64 * 1024);
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const { bytesRead } = await this.file().read(chunk, 0, end - start, start);
      const at = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (at >= 0) {
        end = start + at + 1;
        break;
      }
      end = start;
    }
    await this.file().truncate(end);
    this.size = end;
    this.skipped++;
  }

  private file(): FileHandle {
    if (this.handle === null) throw new Error('the spool is not open');
    return this.handle;
  }

  /** Whether `bytes` more fit, counting what compaction would free. */
  hasRoom(bytes: number): boolean {
    return this.pendingBytes + bytes <= this.maxBytes;
  }

  /** Appends lines (each ending in `\n`) and fsyncs; the caller checked hasRoom. */
  async append(lines: readonly string[]): Promise<void> {
    const data = Buffer.from(lines.join(''), 'utf8');
    if (this.size + data.length > this.maxBytes && this.readOffset > 0) await this.compact();
    const handle = this.file();
    let written = 0;
    try {
      while (written < data.length) {
        const { bytesWritten } = await handle.write(data, written, data.length - written);
        written += bytesWritten;
      }
      await handle.sync();
    } catch (err) {
      // A partial write (disk full) is cut off, so the next append starts on a line boundary.
      if (written > 0) await handle.truncate(this.size).catch(() => undefined);
      throw err;
    }
    this.size += data.length;
  }

  /** Up to `maxLines` lines from the first not delivered, without their newlines, and the offset just past them. */
  async read(maxLines: number): Promise<{ lines: string[]; end: number }> {
    const lines: string[] = [];
    let offset = this.readOffset;
    const buf = Buffer.alloc(Math.min(READ_CHUNK_BYTES, Math.max(1, this.size - offset)));
    while (lines.length < maxLines && offset < this.size) {
      const { bytesRead } = await this.file().read(buf, 0, Math.min(buf.length, this.size - offset), offset);
      const chunk = buf.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0 || lines.length >= maxLines) break;
        lines.push(chunk.subarray(start, nl).toString('utf8'));
        start = nl + 1;
      }
      if (start === 0) {
        // No whole line in a full chunk: skip it, it was not written by a sink.
        this.skipped++;
        offset += bytesRead;
      } else offset += start;
    }
    return { lines, end: offset };
  }

  /** Marks everything before `end` delivered; empties the file once all of it is. */
  async commit(end: number): Promise<void> {
    this.readOffset = Math.min(end, this.size);
    if (this.readOffset === this.size) await this.reset();
    else await this.writePos();
  }

  private async writePos(): Promise<void> {
    await writeFile(`${this.path}.pos.tmp`, String(this.readOffset), { mode: 0o600 });
    await rename(`${this.path}.pos.tmp`, `${this.path}.pos`);
  }

  private async reset(): Promise<void> {
    await this.file().truncate(0);
    this.size = 0;
    this.readOffset = 0;
    await this.writePos();
  }

  /** Cuts off the delivered head: the rest is copied to a new file that replaces this one. */
  private async compact(): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const out = await open(tmp, 'w', 0o600);
    try {
      const buf = Buffer.alloc(READ_CHUNK_BYTES);
      let offset = this.readOffset;
      while (offset < this.size) {
        const { bytesRead } = await this.file().read(buf, 0, Math.min(buf.length, this.size - offset), offset);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead);
        offset += bytesRead;
      }
      await out.sync();
    } finally {
      await out.close();
    }
    // Offset 0 first: a crash before the rename re-delivers the old head (de-duplicated), never skips a line.
    const delivered = this.readOffset;
    this.readOffset = 0;
    await this.writePos();
    await rename(tmp, this.path);
    await this.file().close();
    this.handle = await openRegular(this.path, 'a+', 0o600);
    this.size -= delivered;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
