// Writes audit trails for the reader tests the way docs/audit.md lays them out: per chain a `file`
// record opening each file, a `start` record, request records linked with the chain's own
// functions, signed checkpoints, and rotation by renaming the active file to its sealed name.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { appendFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from '../../src/audit/audit-record.js';
import { serialiseRecord } from '../../src/audit/audit-record.js';
import { EMPTY_HEAD, auditKeyId, checkpointRecord, linkObject, linkText, type ChainHead } from '../../src/audit/chain.js';

/** A request record with ordinary values; `overrides` replace members. */
export function requestRecord(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: '2026-11-30T00:00:00.000Z',
    kind: 'request',
    requestId: 'req-1',
    method: 'GET',
    path: '/orders/1',
    route: 'orders',
    stage: 'forward',
    status: 200,
    latencyMs: 3.2,
    decision: 'allow',
    reason: null,
    detail: null,
    identity: { subject: 'alice', authMethod: 'jwt', keyId: null },
    tenant: 'acme',
    clientIp: '192.0.2.10',
    userAgent: 'curl/8.5',
    upstream: 'orders',
    upstreamStatus: 200,
    bytesIn: 0,
    bytesOut: 42,
    configVersion: 'abc123',
    ...overrides,
  };
}

const signingKey: KeyObject = generateKeyPairSync('ed25519').privateKey;
const keyId = auditKeyId(signingKey);

/** One chain being written into `dir`: `<base>.log`, or `<base>.<worker>.log` for a worker slot. */
export class ChainWriter {
  head: ChainHead = EMPTY_HEAD;
  private fileNo = 0;
  private fileFirstSeq = 1;
  readonly chain: string;

  constructor(readonly dir: string, readonly worker: string | null = null, instance = 'gw-1', readonly base = 'audit') {
    this.chain = `${instance}/${worker ?? 'main'}`;
  }

  get activePath(): string {
    return join(this.dir, `${this.base}${this.worker === null ? '' : `.${this.worker}`}.log`);
  }

  sealedPath(firstSeq: number): string {
    return join(this.dir, `${this.base}${this.worker === null ? '' : `.${this.worker}`}.${String(firstSeq).padStart(12, '0')}.log`);
  }

  /** Opens a new file: its `file` record, then a `start` record. */
  begin(time: string): this {
    this.fileNo++;
    this.fileFirstSeq = this.head.seq + 1;
    this.object({ kind: 'file', chain: this.chain, file: this.fileNo, time });
    this.object({ kind: 'start', chain: this.chain, time, resumed: this.head.seq > 1 });
    return this;
  }

  request(overrides: Partial<AuditRecord>): string {
    const linked = linkText(serialiseRecord(requestRecord(overrides)), this.head);
    this.head = { seq: linked.seq, hash: linked.hash };
    appendFileSync(this.activePath, linked.line);
    return linked.line.slice(0, -1);
  }

  object(record: Readonly<Record<string, unknown>>): string {
    const linked = linkObject(record, this.head);
    this.head = { seq: linked.seq, hash: linked.hash };
    appendFileSync(this.activePath, linked.line);
    return linked.line.slice(0, -1);
  }

  checkpoint(time: string): string {
    return this.object(checkpointRecord({ chain: this.chain, count: this.head.seq, head: this.head.hash, keyId, time }, signingKey));
  }

  /** Seals the active file (a checkpoint, then the rename) and begins the next one. */
  rotate(time: string): string {
    this.checkpoint(time);
    const sealed = this.sealedPath(this.fileFirstSeq);
    renameSync(this.activePath, sealed);
    this.begin(time);
    return sealed;
  }
}

/** `2026-11-30T00:MM:SS.000Z` for a second count from midnight: times that sort as they read. */
export function at(second: number): string {
  return new Date(Date.UTC(2026, 10, 30, 0, 0, second)).toISOString();
}
