import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export type KeyPairSpec =
  | { readonly type: 'rsa'; readonly modulusLength: number }
  | { readonly type: 'ec'; readonly namedCurve: string }
  | { readonly type: 'ed25519' };

/**
 * A new key pair whose KeyObjects belong to no key-generation job. On Node 20, exporting a key
 * that a generation job returned (as JWK, say) can deadlock the process: the export holds the
 * key's lock while it allocates, the allocation runs the garbage collector, and the collector
 * finalises the job, whose destructor takes the same lock. The job here hands out PEM text only,
 * and the KeyObjects are built from that text, so the job's key is never shared.
 */
export function freshKeyPair(spec: KeyPairSpec): { readonly privateKey: KeyObject; readonly publicKey: KeyObject } {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const pair = spec.type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: spec.modulusLength, publicKeyEncoding, privateKeyEncoding })
    : spec.type === 'ec' ? generateKeyPairSync('ec', { namedCurve: spec.namedCurve, publicKeyEncoding, privateKeyEncoding })
    : generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
  return { privateKey: createPrivateKey(pair.privateKey), publicKey: createPublicKey(pair.publicKey) };
}
