import { createHash, createPublicKey, hash as digest, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.js';

/**
 * The hash chain of the audit trail (docs/audit.md, "Chain"). Every line of a trail is one JSON
 * object in RFC 8785 canonical form, carrying `seq` (1 for the first record of a chain, then +1),
 * `prev` (the `hash` of the record before it; GENESIS for the first) and `hash`: the SHA-256, in
 * lowercase hex, of the canonical JSON of the record without its `hash` member. Changing, removing,
 * inserting or reordering any record breaks the link of the record after it.
 */
export const GENESIS = '0'.repeat(64);

/** Where a chain stands: the last record's `seq` (0 before the first) and `hash`. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export const EMPTY_HEAD: ChainHead = Object.freeze({ seq: 0, hash: GENESIS });

/** One record linked into a chain: its line (canonical JSON and a newline), its hash and its seq. */
export interface Linked {
  readonly line: string;
  readonly hash: string;
  readonly seq: number;
}

/** SHA-256 of the UTF-8 text, lowercase hex: the one-shot digest, about half the CPU of a Hash object per record. */
export function sha256Hex(text: string): string {
  return digest('sha256', text, 'hex');
}

/**
 * A request or admin record as the serialiser writes it: four pieces of canonical JSON between
 * which the chain's members fall in key order (`hash` after the first, `prev` after the second,
 * `seq` after the third). Each piece is non-empty and has no leading or trailing comma; the first
 * starts with `{` and the last ends with `}`.
 */
export type RecordText = readonly [string, string, string, string];

/** Links a serialised record after `head`: the chain's hot path, with no parsing and no sorting. */
export function linkText(text: RecordText, head: ChainHead): Linked {
  const seq = head.seq + 1;
  const [a, b, c, d] = text;
  const rest = `${b},"prev":"${head.hash}",${c},"seq":${seq},${d}`;
  const hash = sha256Hex(`${a},${rest}`);
  return { line: `${a},"hash":"${hash}",${rest}\n`, hash, seq };
}

/** Links any other record (checkpoint, alert, file, start, gap) after `head`. It must not carry `prev`, `seq` or `hash`. */
export function linkObject(record: Readonly<Record<string, unknown>>, head: ChainHead): Linked {
  const seq = head.seq + 1;
  const body = { ...record, prev: head.hash, seq };
  const hash = sha256Hex(canonicalJson(body));
  return { line: canonicalJson({ ...body, hash }) + '\n', hash, seq };
}

/** The hash a parsed record should carry: the SHA-256 of its canonical JSON without `hash`. */
export function expectedHash(record: Readonly<Record<string, unknown>>): string {
  return sha256Hex(canonicalJson({ ...record, hash: undefined }));
}

/**
 * What a checkpoint's signature covers: the chain it belongs to, how many records precede it
 * (`count`, equal to the `seq` of the last of them), that record's hash (`head`), the signing key's
 * id and the time, as canonical JSON of exactly these members with `kind: "checkpoint"`.
 */
export interface CheckpointClaim {
  readonly chain: string;
  readonly count: number;
  readonly head: string;
  readonly keyId: string;
  readonly time: string;
}

export function checkpointPayload(claim: CheckpointClaim): string {
  return canonicalJson({ chain: claim.chain, count: claim.count, head: claim.head, keyId: claim.keyId, kind: 'checkpoint', time: claim.time });
}

/** The checkpoint record (not yet linked) for `head`, signed with the Ed25519 `privateKey` whose id is `keyId`. */
export function checkpointRecord(claim: CheckpointClaim, privateKey: KeyObject): Record<string, unknown> {
  const signature = sign(null, Buffer.from(checkpointPayload(claim), 'utf8'), privateKey).toString('base64url');
  return { kind: 'checkpoint', chain: claim.chain, count: claim.count, head: claim.head, keyId: claim.keyId, time: claim.time, signature };
}

/** Whether `signature` (base64url) is the Ed25519 signature of the claim by `publicKey`. */
export function checkpointSignatureValid(claim: CheckpointClaim, signature: string, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(checkpointPayload(claim), 'utf8'), publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

/** An audit signing key's id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of its Ed25519 public key. */
export function auditKeyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('an audit signing key must be an Ed25519 key');
  return createHash('sha256').update(canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url');
}
