import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { canonicalJson } from '../audit/canonical.js';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { makeDirectory } from '../lib/make-directory.js';
import { OperatorError } from '../lib/operator-error.js';
import type { Resource } from '../lifecycle/resources.js';

/** The algorithms an identity assertion is signed with (RFC 8037 EdDSA over Ed25519; RFC 7518 ES256 over P-256). */
export type AssertionAlgorithm = 'EdDSA' | 'ES256';
export const ASSERTION_ALGORITHMS: readonly AssertionAlgorithm[] = ['EdDSA', 'ES256'];

/** A public JWK as the key set publishes it. */
export type PublishedJwk = Readonly<Record<string, string>>;

/** One key of the assertion key set: its id, its public JWK, and the private key when it may sign. */
export interface AssertionKey {
  readonly kid: string;
  /** Null for a key that is only published (a public key kept during a rotation's overlap). */
  readonly privateKey: KeyObject | null;
  readonly jwk: PublishedJwk;
}

/** Why `key` cannot be used with `algorithm`, or null. */
export function keyMismatch(key: KeyObject, algorithm: AssertionAlgorithm): string | null {
  const type = key.asymmetricKeyType ?? 'unknown';
  if (algorithm === 'EdDSA') return type === 'ed25519' ? null : `a ${describeKey(key)} key, and EdDSA signs with Ed25519 keys (openssl genpkey -algorithm ed25519)`;
  return type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? null
    : `a ${describeKey(key)} key, and ES256 signs with P-256 keys (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)`;
}

function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return type === 'ec' && curve !== undefined ? `${type} (${curve})` : type;
}

/** The public JWK of a key, with its kid, algorithm and use. */
export function publicJwk(key: KeyObject, kid: string, algorithm: AssertionAlgorithm): PublishedJwk {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = publicKey.export({ format: 'jwk' });
  const members: Record<string, string> = {};
  for (const name of ['kty', 'crv', 'x', 'y']) {
    const value = jwk[name as keyof typeof jwk];
    if (typeof value === 'string') members[name] = value;
  }
  return Object.freeze({ ...members, kid, alg: algorithm, use: 'sig' });
}

/** RFC 7638 thumbprint (SHA-256, base64url) of a public JWK's required members: the id of a generated key. */
export function thumbprint(jwk: PublishedJwk): string {
  const required = jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(canonicalJson(required)).digest('base64url');
}

/**
 * Parses a configured key file: a PKCS #8 private key (it can sign), or an SPKI public key (only
 * published). Returns the key or why it cannot be used.
 */
export function parseKeyFile(pem: string, algorithm: AssertionAlgorithm): { ok: true; key: KeyObject } | { ok: false; message: string } {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    try {
      key = createPublicKey(pem);
    } catch (err) {
      return { ok: false, message: `is not a PEM private (PKCS #8) or public (SPKI) key: ${(err as Error).message}` };
    }
  }
  const mismatch = keyMismatch(key, algorithm);
  return mismatch === null ? { ok: true, key } : { ok: false, message: `holds ${mismatch}` };
}

/** Where the generated key lives: `<dataDir>/identity-assertion/<algorithm>.pem`. */
export function generatedKeyPath(dataDir: string, algorithm: AssertionAlgorithm): string {
  return join(dataDir, 'identity-assertion', `${algorithm.toLowerCase()}.pem`);
}

/**
 * The signing key used when `identityAssertion.keys` is absent: made in the data directory at
 * first start (directory 0700, key 0600), read at every later start, so assertions verify across
 * restarts. Its id is its RFC 7638 thumbprint. Compiling a config opens nothing: the key is read or
 * made when the resource starts (or, in a process that starts no resources, when the key set is
 * first asked for).
 */
export class GeneratedAssertionKey implements Resource {
  readonly key: string;
  private loaded: AssertionKey | null = null;

  constructor(readonly path: string, readonly algorithm: AssertionAlgorithm) {
    this.key = GeneratedAssertionKey.keyOf(path, algorithm);
  }

  /** The resource key of the generated key at `path` for `algorithm`: one key file, one resource. */
  static keyOf(path: string, algorithm: AssertionAlgorithm): string {
    return `identity-assertion-key:${algorithm}:${path}`;
  }

  start(): Promise<void> {
    this.current();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** The key, read or made on first use; throws an OperatorError naming the file when that fails. */
  current(): AssertionKey {
    this.loaded ??= this.load();
    return this.loaded;
  }

  private load(): AssertionKey {
    const path = this.path;
    try {
      let pem: string;
      if (existsSync(path)) {
        pem = readFileSync(path, 'utf8');
      } else {
        makeDirectory(dirname(path), 0o700);
        pem = this.algorithm === 'EdDSA'
          ? generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey
          : generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
        try {
          // Workers of one host may race at first start: the first one's key is everyone's.
          writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          pem = readFileSync(path, 'utf8');
        }
      }
      const parsed = parseKeyFile(pem, this.algorithm);
      if (!parsed.ok || parsed.key.type !== 'private') {
        throw new OperatorError(`identityAssertion: the generated key ${shownPath(path)} ${parsed.ok ? 'holds no private key' : parsed.message}; remove it to have a new one made, or configure identityAssertion.keys`);
      }
      const jwk = publicJwk(parsed.key, '', this.algorithm);
      const kid = thumbprint(jwk);
      return { kid, privateKey: parsed.key, jwk: Object.freeze({ ...jwk, kid }) };
    } catch (err) {
      if (err instanceof OperatorError) throw err;
      throw new OperatorError(`identityAssertion: the generated signing key ${shownPath(path)} cannot be used ${fsFailure(err)}`, { cause: err });
    }
  }
}
