import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const FLAGS = {
  r: constants.O_RDONLY,
  a: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
  'a+': constants.O_RDWR | constants.O_APPEND | constants.O_CREAT,
} as const;

/**
 * Opens a trail file (active, sealed, spool), refusing a FIFO, a socket or a directory. The open never
 * waits: a FIFO at the path would otherwise block `open` until a writer (or reader) appeared, and
 * with it the start, the rotation or the shutdown of the gateway. Symbolic links are followed, as
 * the file's readers follow them. O_NONBLOCK has no effect on a regular file's reads and writes.
 */
export async function openRegular(path: string, flags: keyof typeof FLAGS, mode = 0o640): Promise<FileHandle> {
  const handle = await open(path, FLAGS[flags] | constants.O_NONBLOCK, mode);
  try {
    const s = await handle.stat();
    // A device is let through (a test's /dev/full stands for a full disk; reads and writes on it return at once).
    if (s.isFIFO() || s.isSocket() || s.isDirectory()) {
      // A directory keeps its errno, so the operator reads the usual "(EISDIR): it is a directory".
      throw Object.assign(new Error(`it is not a regular file (${kindOf(s)}); an audit file must be a plain file`), { path, code: s.isDirectory() ? 'EISDIR' : 'EFTYPE' });
    }
    return handle;
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

function kindOf(s: { isFIFO(): boolean; isSocket(): boolean }): string {
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  return 'a directory';
}
