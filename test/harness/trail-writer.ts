// A small audit trail writer for tests, built only on the chain primitives and following
// docs/audit.md, "Chain and checkpoint format": file records, start records (with `torn` after a
// crash), checkpoints signed with an Ed25519 key, rotation into sealed files. Synchronous: a test
// writes a trail, then tampers with it and verifies it.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPTY_HEAD, auditKeyId, checkpointRecord, linkObject, type ChainHead } from '../../src/audit/chain.js';

export interface AuditKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

/** A new Ed25519 audit key; its public half is written as `<keyId>.pub.pem` into `keysDir` when given. */
export function newAuditKey(keysDir?: string): AuditKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = auditKeyId(publicKey);
  if (keysDir !== undefined) {
    mkdirSync(keysDir, { recursive: true });
    writeFileSync(join(keysDir, `${keyId}.pub.pem`), publicKey.export({ format: 'pem', type: 'spki' }));
  }
  return { privateKey, publicKey, keyId };
}

export interface TrailWriterOptions {
  /** The directory of the trail files. */
  readonly dir: string;
  readonly instance?: string;
  /** `main`, or `wK` for worker slot K. */
  readonly process?: string;
  readonly key: AuditKey;
  /** A checkpoint after this many records (0: only at rotation and close). */
  readonly checkpointEvery?: number;
  /** Rotate after this many request records in a file (0: never). */
  readonly rotateEvery?: number;
  /** The first record's time, ms since the epoch; each record is one second later. */
  readonly startMs?: number;
}

/** Appends one chain's records as the gateway's writer would. */
export class TrailWriter {
  readonly chain: string;
  private head: ChainHead = EMPTY_HEAD;
  private fileNo = 0;
  private fileFirstSeq = 0;
  private inFile = 0;
  private sinceCheckpoint = 0;
  private key: AuditKey;
  private ms: number;
  private readonly base: string;

  /** Opens the chain as a starting process does: resumes the active file (ending a torn line), or begins a new file. */
  constructor(private readonly options: TrailWriterOptions) {
    this.chain = `${options.instance ?? 'gw-1'}/${options.process ?? 'main'}`;
    this.key = options.key;
    this.ms = options.startMs ?? Date.UTC(2026, 10, 30);
    this.base = (options.process ?? 'main') === 'main' ? 'audit' : `audit.${options.process ?? ''}`;
    mkdirSync(options.dir, { recursive: true });
    const resumed = this.recover();
    let torn: number | null = null;
    if (resumed !== null) {
      torn = resumed.torn;
      if (torn !== null) appendFileSync(this.activePath, '\n');
    } else {
      this.beginFile();
    }
    this.link({ chain: this.chain, kind: 'start', time: this.time(), resumed: this.head.seq > 1, ...(torn === null ? {} : { torn: { bytes: torn } }) });
  }

  get activePath(): string {
    return join(this.options.dir, `${this.base}.log`);
  }

  get seq(): number {
    return this.head.seq;
  }

  /** Signs later checkpoints with `key` (a key rotation). */
  useKey(key: AuditKey): void {
    this.key = key;
  }

  /** Appends a request record with `fields` over a plain allowed GET. */
  request(fields: Readonly<Record<string, unknown>> = {}): number {
    const n = this.head.seq + 1;
    this.link({ kind: 'request', time: this.time(), requestId: `req-${this.chain}-${n}`, method: 'GET', path: `/api/items/${n}`, route: 'items', stage: 'forward', status: 200, decision: 'allow', clientIp: '192.0.2.10', bytesIn: 0, bytesOut: 42, latencyMs: 3, configVersion: 'v1', ...fields });
    this.inFile += 1;
    this.sinceCheckpoint += 1;
    if ((this.options.checkpointEvery ?? 0) > 0 && this.sinceCheckpoint >= (this.options.checkpointEvery ?? 0)) this.checkpoint();
    if ((this.options.rotateEvery ?? 0) > 0 && this.inFile >= (this.options.rotateEvery ?? 0)) this.rotate();
    return this.head.seq;
  }

  /** Appends any other record as it is (it must not carry `seq`, `prev` or `hash`). */
  append(record: Readonly<Record<string, unknown>>): void {
    this.link(record);
  }

  /** Appends a signed checkpoint of the records so far. */
  checkpoint(): void {
    this.link(checkpointRecord({ chain: this.chain, count: this.head.seq, head: this.head.hash, keyId: this.key.keyId, time: this.time() }, this.key.privateKey));
    this.sinceCheckpoint = 0;
  }

  /** Checkpoints, seals the active file under the seq of its first record, and begins the next file. */
  rotate(): void {
    this.checkpoint();
    renameSync(this.activePath, join(this.options.dir, `${this.base}.${String(this.fileFirstSeq).padStart(12, '0')}.log`));
    this.beginFile();
  }

  /** Shuts down: a last checkpoint. */
  close(): void {
    this.checkpoint();
  }

  /** Writes `text` raw at the end of the active file, as a write cut short by a crash would. */
  writeRaw(text: string): void {
    appendFileSync(this.activePath, text);
  }

  /** The line a request record would be, linked after the current head, without writing it. */
  static lineAfter(head: ChainHead, record: Readonly<Record<string, unknown>>): string {
    return linkObject(record, head).line;
  }

  private beginFile(): void {
    this.fileNo += 1;
    this.fileFirstSeq = this.head.seq + 1;
    this.inFile = 0;
    writeFileSync(this.activePath, '');
    this.link({ chain: this.chain, kind: 'file', file: this.fileNo, time: this.time() });
  }

  private link(record: Readonly<Record<string, unknown>>): void {
    const linked = linkObject(record, this.head);
    appendFileSync(this.activePath, linked.line);
    this.head = { seq: linked.seq, hash: linked.hash };
  }

  private time(): string {
    const t = new Date(this.ms).toISOString();
    this.ms += 1000;
    return t;
  }

  /** Reads back where the chain stands from the files already there; null when there are none. */
  private recover(): { torn: number | null } | null {
    const sealed = readdirSync(this.options.dir).filter((n) => new RegExp(`^${this.base.replace('.', '\\.')}\\.\\d{12}\\.log$`).test(n)).sort();
    const active = existsSync(this.activePath);
    if (!active && sealed.length === 0) return null;
    const path = active ? this.activePath : join(this.options.dir, sealed[sealed.length - 1] ?? '');
    const text = readFileSync(path, 'utf8');
    const cut = text.lastIndexOf('\n') + 1;
    const torn = cut < text.length ? Buffer.byteLength(text.slice(cut)) : null;
    const lines = text.slice(0, cut).split('\n').filter((l) => l !== '');
    const first = JSON.parse(lines[0] ?? '{}') as { file: number; seq: number };
    const last = JSON.parse(lines[lines.length - 1] ?? '{}') as { seq: number; hash: string };
    this.head = { seq: last.seq, hash: last.hash };
    this.fileNo = first.file;
    this.fileFirstSeq = first.seq;
    if (!active) {
      this.beginFile();
      return { torn: null };
    }
    return { torn };
  }
}

/**
 * The sample trail of the verify tests. gw-1/main: 60 requests rotated every 25 (files 1 and 2
 * sealed, file 3 active), a checkpoint every 10, a clean shutdown, a restart that resumes file 3 and
 * 10 more requests. gw-1/w1: 20 requests rotated every 8, a checkpoint every 5. Each ends in a
 * shutdown checkpoint.
 */
export function writeSampleTrail(dir: string, key: AuditKey): void {
  let main = new TrailWriter({ dir, key, checkpointEvery: 10, rotateEvery: 25 });
  for (let i = 0; i < 60; i++) main.request();
  main.close();
  main = new TrailWriter({ dir, key, checkpointEvery: 10, rotateEvery: 25 });
  for (let i = 0; i < 10; i++) main.request({ status: 403, decision: 'deny', reason: 'forbidden', stage: 'authz' });
  main.close();
  const worker = new TrailWriter({ dir, key, process: 'w1', checkpointEvery: 5, rotateEvery: 8 });
  for (let i = 0; i < 20; i++) worker.request();
  worker.close();
}
