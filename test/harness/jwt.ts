import { sign, constants, createHmac, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freshKeyPair } from '../../src/lib/key-pair.js';
import { exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';

export type TestAlg = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';

/** A signing key pair for tests, with its public JWK (kid, alg and use set). */
export interface TestKey {
  readonly kid: string;
  readonly alg: TestAlg;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JWK;
  readonly pem: string;
}

const rsaCache = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();

/** Generates a key pair (RSA keys are reused per kid: generation is slow). */
export async function testKey(alg: TestAlg, kid: string): Promise<TestKey> {
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (alg === 'RS256' || alg === 'PS256') {
    pair = rsaCache.get(kid) ?? freshKeyPair({ type: 'rsa', modulusLength: 2048 });
    rsaCache.set(kid, pair);
  } else if (alg === 'EdDSA') pair = freshKeyPair({ type: 'ed25519' });
  else pair = freshKeyPair({ type: 'ec', namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, ...pair, jwk, pem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** A valid token from `key` with jose: iss/aud/exp defaults for the tests' authenticator, overridable. */
export async function mint(key: TestKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const merged: JWTPayload = { iss: 'https://issuer.test/', aud: 'orders-api', sub: 'user-1', iat: nowSec(), exp: nowSec() + 300, ...claims };
  const payload = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as JWTPayload;
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

export const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/**
 * A hand-built token: header and payload given as raw JSON text (so duplicate keys and odd
 * encodings can be expressed), signed with `key` using `alg`'s primitive, or an HMAC secret.
 */
export function craft(header: string, payload: string, signer: { key: TestKey } | { hmac: string | Buffer } | { signature: string }): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signatureFor(input, signer)}`;
}

export function signatureFor(input: string, signer: { key: TestKey } | { hmac: string | Buffer } | { signature: string }): string {
  if ('signature' in signer) return signer.signature;
  if ('hmac' in signer) return createHmac('sha256', signer.hmac).update(input).digest('base64url');
  const { alg, privateKey } = signer.key;
  if (alg === 'EdDSA') return sign(null, Buffer.from(input), privateKey).toString('base64url');
  if (alg === 'ES256' || alg === 'ES384') return sign(alg === 'ES256' ? 'sha256' : 'sha384', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  if (alg === 'PS256') return sign('sha256', Buffer.from(input), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }).toString('base64url');
  return sign('sha256', Buffer.from(input), privateKey).toString('base64url');
}

export type JwksMode = 'ok' | 'error' | 'garbage' | 'slow' | 'huge' | 'refuse';

/** A JWKS endpoint on loopback whose keys and behaviour the test controls; it counts requests. */
export class JwksServer {
  mode: JwksMode = 'ok';
  /** Every request, whatever its URL. */
  requests = 0;
  /** Requests by path and query, so a client that fetches its own URL can count only its own. */
  private readonly byTarget = new Map<string, number>();
  slowMs = 2000;
  /** Sent as Cache-Control when set. */
  cacheControl: string | null = null;
  private keys: JWK[] = [];
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(keys: readonly TestKey[] = []): Promise<JwksServer> {
    let self: JwksServer | null = null;
    const server = createServer((req, res) => { self?.handle(req.url ?? '', res); });
    server.listen(0, '127.0.0.1');
    await new Promise((done) => server.once('listening', done));
    self = new JwksServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`);
    self.setKeys(keys);
    return self;
  }

  setKeys(keys: readonly TestKey[]): void {
    this.keys = keys.map((k) => k.jwk);
  }

  /** How many requests arrived for `url` (this server's URL with a path or query of the caller's own). */
  requestsTo(url: string): number {
    const { pathname, search } = new URL(url);
    return this.byTarget.get(pathname + search) ?? 0;
  }

  private handle(target: string, res: import('node:http').ServerResponse): void {
    this.requests++;
    this.byTarget.set(target, (this.byTarget.get(target) ?? 0) + 1);
    const body = JSON.stringify({ keys: this.keys });
    switch (this.mode) {
      case 'ok':
        if (this.cacheControl !== null) res.setHeader('cache-control', this.cacheControl);
        res.setHeader('content-type', 'application/json').end(body);
        return;
      case 'error': res.statusCode = 500; res.end('down'); return;
      case 'garbage': res.setHeader('content-type', 'application/json').end('{"keys": [ not json'); return;
      case 'huge': res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: this.keys, pad: 'x'.repeat(1 << 20) })); return;
      case 'slow': setTimeout(() => { if (!res.destroyed) res.end(body); }, this.slowMs).unref(); return;
      case 'refuse': res.socket?.destroy(); return;
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((done) => this.server.close(done));
  }
}
