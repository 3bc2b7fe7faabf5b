import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fsFailure, shownPath } from '../../lib/fs-failure.js';
import { makeDirectory } from '../../lib/make-directory.js';
import { OperatorError } from '../../lib/operator-error.js';
import type { Resource } from '../../lifecycle/resources.js';
import type { TokenHashKeySource } from './token-digest.js';

/** Where the key lives without oauth.tokenHashKey: `<dataDir>/oauth/token-hash.key`. */
export function tokenHashKeyPath(dataDir: string): string {
  return resolve(dataDir, join('oauth', 'token-hash.key'));
}

const KEY_TEXT = /^[A-Za-z0-9_-]{43,512}$/;

/**
 * The token hash key of a host without `oauth.tokenHashKey`: 32 random bytes made at first start
 * in the data directory (directory 0700, file 0600) and read at every later start, so the workers
 * of one host and its restarts digest tokens alike (a revocation made before a restart still
 * finds its token after it). Compiling opens nothing: until `start` the key is a random one of
 * this process, which only `check` and `explain` ever digest with.
 */
export class TokenHashKeyFile implements Resource, TokenHashKeySource {
  readonly key: string;
  private bytes: Buffer = randomBytes(32);

  constructor(private readonly path: string) {
    this.key = TokenHashKeyFile.keyOf(path);
  }

  static keyOf(path: string): string {
    return `token hash key file ${path}`;
  }

  get tokenHashKey(): Buffer {
    return this.bytes;
  }

  start(): Promise<void> {
    this.bytes = readOrCreate(this.path);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/** Reads the key file, or writes a new key there; throws an OperatorError naming the path. */
export function readOrCreate(path: string): Buffer {
  try {
    makeDirectory(dirname(path), 0o700);
    // First start: the workers of a host race here. The key is written whole to a file of this
    // process and linked into place (link fails when the name exists), so a reader never sees
    // half a key and the one that loses reads the winner's.
    const text = randomBytes(32).toString('base64url');
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${text}\n`, { mode: 0o600, flag: 'w' });
    try {
      linkSync(tmp, path);
      return Buffer.from(text, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
    const stored = readFileSync(path, 'utf8').trim();
    if (!KEY_TEXT.test(stored)) {
      throw new OperatorError(`oauth.tokenHashKey: the key file ${shownPath(path)} does not hold a key (43 to 512 base64url characters); remove it to have a new one made (revocations made with the old key are lost), or set oauth.tokenHashKey`);
    }
    return Buffer.from(stored, 'utf8');
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`oauth.tokenHashKey: the token hash key file ${shownPath(path)} cannot be used ${fsFailure(err)}; make dataDir writable or set oauth.tokenHashKey`, { cause: err });
  }
}
