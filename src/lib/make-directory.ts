import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** An fs-style error with an errno code, for a path that cannot be made a directory. */
function failure(code: string, message: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, mkdir '${path}'`), { code, path, syscall: 'mkdir' });
}

/** Whether `path` exists as a directory; throws ENOTDIR when it exists as something else. */
function isDirectory(path: string): boolean {
  try {
    if (statSync(path).isDirectory()) return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  throw failure('ENOTDIR', 'not a directory', path);
}

/**
 * Creates `path` and its missing parents, one level at a time, each with `mode`. Unlike
 * `mkdirSync(path, { recursive: true })`, which on Node 20 loops for ever where a file system
 * refuses to create a directory whose parent exists (ENOENT under /proc), every level is tried
 * once: a level that cannot be made throws that level's error.
 */
export function makeDirectory(path: string, mode: number): void {
  const missing: string[] = [];
  for (let dir = resolve(path); !isDirectory(dir); dir = dirname(dir)) {
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode });
    } catch (err) {
      // Made by another process meanwhile: fine, as long as it is a directory.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && isDirectory(dir)) continue;
      throw err;
    }
  }
}
