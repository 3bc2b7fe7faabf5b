import { sign as signBytes } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { Clock } from '../lib/clock.js';
import type { AssertionAlgorithm, AssertionKey, GeneratedAssertionKey } from './assertion-keys.js';

/**
 * The `typ` header of every identity assertion (RFC 8725 §3.11 explicit typing): a backend that
 * requires it cannot be handed an access token or an ID token of the same issuer as an assertion,
 * nor an assertion as something else.
 */
export const ASSERTION_TYP = 'portcullis-identity+jwt';

/** The key set in effect: configured keys (the first signs), or the one generated in the data directory. */
export type AssertionKeySource =
  | { readonly kind: 'configured'; readonly keys: readonly AssertionKey[] }
  | { readonly kind: 'generated'; readonly key: GeneratedAssertionKey };

/**
 * Signs identity assertions for one config: the issuer, the algorithm, the lifetime and the keys,
 * all fixed when the config is compiled. Keys are imported once (jose keeps its imported form per
 * key); a reload builds a new signer, so a rotated key set takes effect with the config.
 */
export class AssertionSigner {
  private jwksText: string | null = null;
  private readonly headers = new Map<string, string>();

  constructor(
    readonly issuer: string,
    readonly algorithm: AssertionAlgorithm,
    readonly ttlSeconds: number,
    private readonly source: AssertionKeySource,
    private readonly clock: Clock,
  ) {}

  /** The key that signs: the first configured one, or the generated one (read or made on first use). */
  signingKey(): AssertionKey {
    return this.source.kind === 'configured' ? this.source.keys[0] as AssertionKey : this.source.key.current();
  }

  /** Every published key (RFC 7517 JWK Set) as the text served: the signing key and the ones kept for overlap. */
  jwks(): string {
    this.jwksText ??= JSON.stringify({ keys: this.source.kind === 'configured' ? this.source.keys.map((k) => k.jwk) : [this.source.key.current().jwk] });
    return this.jwksText;
  }

  /** The generated key's file, when the keys are generated (for explain and the docs' runbook). */
  get generatedKeyPath(): string | null {
    return this.source.kind === 'generated' ? this.source.key.path : null;
  }

  /**
   * A signed assertion of `claims` (registered claims added here: iss, iat, exp). `iat` is this
   * config's clock, in whole seconds; `exp` is `iat + ttlSeconds`. Signed synchronously with
   * node:crypto (the key is a KeyObject already, and the header per key is encoded once): it is
   * on the path of every request of a route with assertIdentity.
   */
  sign(claims: JWTPayload): { readonly jwt: string; readonly kid: string } {
    const key = this.signingKey();
    const iat = Math.floor(this.clock.now() / 1000);
    const header = this.headerOf(key);
    const payload = Buffer.from(JSON.stringify({ ...claims, iss: this.issuer, iat, exp: iat + this.ttlSeconds }), 'utf8').toString('base64url');
    const input = `${header}.${payload}`;
    const privateKey = key.privateKey as NonNullable<AssertionKey['privateKey']>;
    // EdDSA signs the input itself (RFC 8037); ES256 is ECDSA over SHA-256 with r||s, not DER (RFC 7518 §3.4).
    const signature = this.algorithm === 'EdDSA'
      ? signBytes(null, Buffer.from(input, 'ascii'), privateKey)
      : signBytes('sha256', Buffer.from(input, 'ascii'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return { jwt: `${input}.${signature.toString('base64url')}`, kid: key.kid };
  }

  /** The protected header of `key`'s assertions, base64url, encoded once per key. */
  private headerOf(key: AssertionKey): string {
    let header = this.headers.get(key.kid);
    if (header === undefined) {
      header = Buffer.from(JSON.stringify({ alg: this.algorithm, kid: key.kid, typ: ASSERTION_TYP }), 'utf8').toString('base64url');
      this.headers.set(key.kid, header);
    }
    return header;
  }
}
