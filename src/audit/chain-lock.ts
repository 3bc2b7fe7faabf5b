import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { makeDirectory } from '../lib/make-directory.js';
import { OperatorError } from '../lib/operator-error.js';

/** A chain's writer lock, held from open to close. */
export interface ChainLock {
  release(): void;
}

/** The lock file of the chain whose active file is `active`: `<active>.lock` (not a `*.log` file, so no reader takes it for a trail file). */
export function chainLockPath(active: string): string {
  return `${active}.lock`;
}

/**
 * Takes the one-writer lock of a chain: an exclusive lock on `<active>.lock`, held through an
 * open SQLite connection (a POSIX record lock), so the kernel releases it when the process dies,
 * however it dies, and no stale lock is ever left behind. A second process (or a second trail in
 * this process) that tries to write the same chain is refused: two writers would interleave two
 * runs of `seq` in one file and break the chain. Throws an OperatorError naming the files.
 */
export function lockChain(active: string, chain: string): ChainLock {
  const path = chainLockPath(active);
  let db: Database.Database;
  try {
    makeDirectory(dirname(path), 0o750);
  } catch (err) {
    throw new OperatorError(`dataDir, audit.file: the audit trail ${shownPath(active)} cannot be opened ${fsFailure(err)}; point dataDir (or audit.file) at a place the gateway can write`, { cause: err });
  }
  try {
    db = new Database(path, { timeout: 0 });
  } catch (err) {
    throw new OperatorError(`dataDir, audit.file: the audit trail's lock ${shownPath(path)} cannot be opened ${fsFailure(err)}; point dataDir (or audit.file) at a place the gateway can write`, { cause: err });
  }
  try {
    // No journal: the database holds nothing, and no `-journal` file is left beside the trail.
    db.pragma('journal_mode = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') {
      throw new OperatorError(`audit.file: another gateway process is writing audit chain ${chain} to ${shownPath(active)} (it holds ${shownPath(path)}); two writers of one chain would break it. Stop the other process, or give each gateway its own dataDir (or audit.file) and audit.instance`, { cause: err });
    }
    throw new OperatorError(`dataDir, audit.file: the audit trail's lock ${shownPath(path)} cannot be taken ${fsFailure(err)}`, { cause: err });
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      db.close();
    },
  };
}
