/** Why a path could not be created or opened, by errno, in the words an operator acts on. */
const REASONS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied: give the user the gateway runs as write access to it',
  EPERM: 'not permitted: give the user the gateway runs as write access to it',
  ENOENT: 'the directory cannot be created there (its parent does not take new directories, as under /proc)',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'a part of the path is a file, not a directory',
  EISDIR: 'it is a directory, not a file',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'a symbolic link in the path loops',
  SQLITE_CANTOPEN: 'SQLite cannot open it (a directory, or in a directory the gateway cannot write)',
  SQLITE_NOTADB: 'it is not a SQLite database',
  SQLITE_READONLY: 'it is read-only for the gateway',
};

/** The errno (or SQLite code) of an error or of the first error in its `cause` chain that has one. */
function errorCode(err: unknown): { readonly code: string | null; readonly error: unknown } {
  let e = err as { code?: unknown; cause?: unknown } | null;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object' && typeof e.code !== 'string' && e.cause !== undefined; depth++) {
    e = e.cause;
  }
  const code = e !== null && typeof e === 'object' && typeof e.code === 'string' && /^[A-Z_0-9]{1,40}$/.test(e.code) ? e.code : null;
  return { code, error: code === null ? err : e };
}

/**
 * True when a file could not be created or opened for a reason that lasts until someone changes
 * the path or its permissions (not a lock another process holds for a moment).
 */
export function isLastingFsFailure(err: unknown): boolean {
  const { code } = errorCode(err);
  return code !== null && Object.hasOwn(REASONS, code);
}

/**
 * `(CODE): reason` for a file system error (or one whose `cause` is one), on one line: the errno
 * and what it means for the path, or the error's own message when the errno is not a known one.
 */
export function fsFailure(err: unknown): string {
  const { code, error } = errorCode(err);
  const message = String((error as Error | null)?.message ?? error);
  const reason = (code === null ? undefined : REASONS[code]) ?? message.replace(/\s+/g, ' ').slice(0, 300);
  return code === null ? reason : `(${code}): ${reason}`;
}

/** A path as it goes into a one-line message: as it is when plain, else quoted with escapes. */
export function shownPath(path: string): string {
  return /^[A-Za-z0-9/._+@~-]{1,1024}$/.test(path) ? path : JSON.stringify(path.slice(0, 1024));
}
