import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { makeDirectory } from '../lib/make-directory.js';
import { OperatorError } from '../lib/operator-error.js';
import { auditKeyId } from './chain.js';

/** The Ed25519 key checkpoints are signed with, and its id (RFC 7638 thumbprint, docs/audit.md "Checkpoints"). */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly keyId: string;
}

/** Where the signing key lives: `audit.signingKeyFile` (relative to dataDir) or `<dataDir>/audit/keys/signing.pem`. */
export function signingKeyPath(dataDir: string, signingKeyFile: string | null): string {
  return resolve(dataDir, signingKeyFile ?? join('audit', 'keys', 'signing.pem'));
}

/** The public key file of `keyId` beside the signing key: `<keyId>.pub.pem` (SPKI). */
export function publicKeyPath(keyFile: string, keyId: string): string {
  return join(dirname(keyFile), `${keyId}.pub.pem`);
}

function parseKey(path: string, pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new OperatorError(`audit.signingKeyFile: ${shownPath(path)} is not a PEM private key (${(err as Error).message}); give a PKCS #8 Ed25519 key or remove the setting to use a generated one`, { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new OperatorError(`audit.signingKeyFile: ${shownPath(path)} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519 (openssl genpkey -algorithm ed25519)`);
  }
  return { privateKey, keyId: auditKeyId(privateKey) };
}

/** Writes the public key of `key` beside `keyFile` unless it is there. */
function keepPublicKey(keyFile: string, key: SigningKey): void {
  const path = publicKeyPath(keyFile, key.keyId);
  if (existsSync(path)) return;
  const pem = createPublicKey(key.privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o644 });
  renameSync(tmp, path);
}

/** A new Ed25519 key written to `path` (0600) through a temporary file and a rename, so a reader never sees half a key. */
function writeNewKey(path: string, exclusive: boolean): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (exclusive) {
    // First start: two processes of one host may race here; the second reads the first's key.
    writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
  } else {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, pem, { mode: 0o600, flag: 'w' });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  }
  return { privateKey, keyId: auditKeyId(privateKey) };
}

/**
 * The signing key in effect. The default one is created at first start (directory 0700, key
 * 0600); a key named by `audit.signingKeyFile` must exist. Its public key is kept beside it as
 * `<keyId>.pub.pem`. Throws an OperatorError naming the path when it cannot be read or made.
 */
export function loadSigningKey(dataDir: string, signingKeyFile: string | null): SigningKey {
  const path = signingKeyPath(dataDir, signingKeyFile);
  try {
    let key: SigningKey;
    if (!existsSync(path)) {
      if (signingKeyFile !== null) throw new OperatorError(`audit.signingKeyFile: ${shownPath(path)} does not exist; create an Ed25519 key there (portcullis audit rotate-key) or remove the setting`);
      makeDirectory(dirname(path), 0o700);
      try {
        key = writeNewKey(path, true);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        key = parseKey(path, readFileSync(path, 'utf8'));
      }
    } else {
      key = parseKey(path, readFileSync(path, 'utf8'));
    }
    keepPublicKey(path, key);
    return key;
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`audit.signingKeyFile: the audit signing key ${shownPath(path)} cannot be used ${fsFailure(err)}`, { cause: err });
  }
}

/**
 * Replaces the signing key by a new one; every public key signed with so far stays beside it. The
 * gateway signs with the new key from its next reload (or change of the key file, when `reload.watchFiles`). Returns the old key's id (null: there was none) and the new one's.
 */
export function rotateSigningKey(dataDir: string, signingKeyFile: string | null): { readonly previous: string | null; readonly current: string; readonly path: string } {
  const path = signingKeyPath(dataDir, signingKeyFile);
  try {
    makeDirectory(dirname(path), 0o700);
    let previous: string | null = null;
    if (existsSync(path)) {
      const old = parseKey(path, readFileSync(path, 'utf8'));
      keepPublicKey(path, old);
      previous = old.keyId;
    }
    const next = writeNewKey(path, false);
    keepPublicKey(path, next);
    return { previous, current: next.keyId, path };
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`audit rotate-key: the audit signing key ${shownPath(path)} cannot be written ${fsFailure(err)}`, { cause: err });
  }
}
