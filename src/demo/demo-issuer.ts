import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';
import { systemClock, type Clock } from '../lib/clock.js';
import { freshKeyPair } from '../lib/key-pair.js';

/** The audience the demo's tokens are for; examples/quickstart/gateway.yaml accepts it. */
export const DEMO_AUDIENCE = 'portcullis-demo';

export interface DemoIssuer {
  /** The `iss` of the demo's tokens. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** Signs a token for the demo's audience, valid for `ttlSec` from `issuedAt` (seconds; default now on the issuer's clock). */
  token(claims: JWTPayload, ttlSec: number, issuedAt?: number): Promise<string>;
  close(): Promise<void>;
}

/**
 * A stand-in identity provider for `portcullis demo`: a fresh ES256 key pair per run, its JWK Set
 * served on a loopback port, and tokens signed with jose. The gateway fetches the JWKS like it
 * would a real IdP's. Token times come from `clock`, the one the gateway reads.
 */
export async function startDemoIssuer(clock: Clock = systemClock): Promise<DemoIssuer> {
  const { privateKey, publicKey } = freshKeyPair({ type: 'ec', namedCurve: 'P-256' });
  const kid = randomUUID().slice(0, 8);
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] });
  const server = createServer((req, res) => {
    if (req.url === '/jwks.json') res.setHeader('content-type', 'application/jwk-set+json').end(jwks);
    else { res.statusCode = 404; res.end(); }
  });
  server.listen(0, '127.0.0.1');
  await new Promise((done) => server.once('listening', done));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer: `${base}/`,
    jwksUri: `${base}/jwks.json`,
    token: (claims, ttlSec, issuedAt = Math.floor(clock.now() / 1000)) => new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
      .setIssuer(`${base}/`).setAudience(DEMO_AUDIENCE).setIssuedAt(issuedAt).setExpirationTime(issuedAt + ttlSec)
      .sign(privateKey),
    close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}
