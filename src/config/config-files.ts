import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** Largest file a config may reference (key sets, PEM keys, CA bundles): bigger is a mistake, not a key. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** One file a compiled config read: where, and a hash of what it held (or why it could not be read). */
export interface ConfigFileRecord {
  readonly path: string;
  /** SHA-256 (hex) of the bytes read, or `unreadable:<errno code>`. */
  readonly digest: string;
}

/**
 * The one reader for every file a config references (JWKS files, PEM keys, and later CA bundles
 * and certificates). Each read is recorded with its content hash, and those records are part of
 * the config version: editing a referenced file and reloading is a new config, so a removed key
 * stops verifying at once instead of at the next restart. Paths are relative to the config file.
 * Reads are synchronous because compilation is; they happen at load and reload, never per request.
 */
export class ConfigFiles {
  private readonly records = new Map<string, ConfigFileRecord>();

  constructor(readonly baseDir: string, readonly maxBytes: number = MAX_CONFIG_FILE_BYTES) {}

  /**
   * The file's text (UTF-8), or a message saying why it cannot be used (missing, unreadable, too
   * large: above `maxBytes`, by default the reader's). Failed reads are recorded too, so a file that appears later changes the version.
   */
  readText(file: string, maxBytes: number = this.maxBytes): { readonly ok: true; readonly text: string } | { readonly ok: false; readonly message: string } {
    const read = this.readBytes(file, maxBytes);
    return read.ok ? { ok: true, text: read.bytes.toString('utf8') } : read;
  }

  /**
   * The file's bytes (DER OCSP responses and other binary files), recorded like `readText`.
   * `maxBytes` raises the bound for a file that is large by nature (a country database).
   */
  readBytes(file: string, maxBytes: number = this.maxBytes): { readonly ok: true; readonly bytes: Buffer } | { readonly ok: false; readonly message: string } {
    const path = isAbsolute(file) ? file : resolve(this.baseDir, file);
    let bytes: Buffer;
    try {
      bytes = readBounded(path, maxBytes);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.records.set(path, { path, digest: `unreadable:${code}` });
      return { ok: false, message: `cannot read ${file}: ${code}` };
    }
    this.records.set(path, { path, digest: createHash('sha256').update(bytes).digest('hex') });
    return { ok: true, bytes };
  }

  /** Every file read so far, sorted by path (stable input for the config version). */
  list(): readonly ConfigFileRecord[] {
    return [...this.records.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}

/** Reads at most `maxBytes`; a larger file is an error (EFBIG) rather than a silently truncated key. */
function readBounded(path: string, maxBytes: number): Buffer {
  // Checked before opening too: opening a FIFO for reading would block the reload until a writer came.
  if (!statSync(path).isFile()) throw notAFile();
  const fd = openSync(path, 'r');
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw notAFile();
    // Sized by the file (one byte more, to see it grow), never beyond the bound: a large bound costs nothing for a small file.
    let buf = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let size = 0;
    for (;;) {
      if (size === buf.length) {
        const grown = Buffer.alloc(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(grown, 0, 0, size);
        buf = grown;
      }
      const n = readSync(fd, buf, size, buf.length - size, null);
      if (n === 0) break;
      size += n;
      if (size > maxBytes) throw Object.assign(new Error(`larger than ${maxBytes} bytes`), { code: 'EFBIG' });
    }
    return buf.subarray(0, size);
  } finally {
    closeSync(fd);
  }
}

const notAFile = (): Error => Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
