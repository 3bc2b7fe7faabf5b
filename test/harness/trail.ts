import { createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { checkpointSignatureValid, expectedHash, GENESIS } from '../../src/audit/chain.js';
import { loadSigningKey } from '../../src/audit/signing-key.js';
import { FileSink } from '../../src/audit/sinks/file-sink.js';
import type { AuditSink } from '../../src/audit/sinks/sink.js';
import { AuditTrail, type TrailOptions } from '../../src/audit/trail.js';
import { chainFiles, resumeChain, type ChainFiles } from '../../src/audit/trail-files.js';
import { auditRecord } from '../../src/audit/record-builder.js';
import type { AuditRecord } from '../../src/audit/audit-record.js';
import type { Clock } from '../../src/lib/clock.js';

export interface TestTrailOptions {
  readonly process?: string;
  readonly maxQueueBytes?: number;
  readonly retryIntervalMs?: number;
  readonly fsyncIntervalMs?: number;
  readonly onFailure?: 'failClosed' | 'failOpen';
  readonly checkpointEveryRecords?: number;
  readonly checkpointIntervalMs?: number;
  readonly rotateMaxBytes?: number;
  readonly rotateIntervalMs?: number;
  readonly logger?: Logger;
  readonly sinks?: readonly AuditSink[];
  readonly retention?: TrailOptions['retention'];
  /** The audit file; default `<dir>/audit/audit.log`. */
  readonly path?: string;
}

/** A trail on real files under `dir` (keys in `<dir>/audit/keys`), as the gateway builds it, with the test's clock. */
export function testTrail(dir: string, clock: Clock, o: TestTrailOptions = {}): { trail: AuditTrail; file: FileSink; files: ChainFiles } {
  const files = chainFiles(o.path ?? join(dir, 'audit', 'audit.log'), o.process ?? 'main');
  const logger = o.logger ?? pino({ level: 'silent' });
  let torn = 0;
  const file = new FileSink({
    path: files.active, maxQueueBytes: o.maxQueueBytes ?? 1 << 20, retryIntervalMs: o.retryIntervalMs ?? 1000,
    fsyncIntervalMs: o.fsyncIntervalMs ?? 1000, onFailure: o.onFailure ?? 'failClosed', logger, clock, torn: () => torn,
  });
  const trail = new AuditTrail({
    chain: `test/${o.process ?? 'main'}`, file, files,
    resume: async () => { const r = await resumeChain(files); torn = r.torn; return r; },
    signingKey: () => loadSigningKey(dir, null),
    maxQueueBytes: o.maxQueueBytes ?? 1 << 20,
    checkpointEveryRecords: o.checkpointEveryRecords ?? 1000,
    checkpointIntervalMs: o.checkpointIntervalMs ?? 60_000,
    rotateMaxBytes: o.rotateMaxBytes ?? 100 * 1024 * 1024,
    rotateIntervalMs: o.rotateIntervalMs ?? 86_400_000,
    logger, clock,
    ...(o.retention === undefined ? {} : { retention: o.retention }),
  });
  for (const sink of o.sinks ?? []) trail.addSink(sink);
  return { trail, file, files };
}

/** A request record with id `id`, at the clock's time. */
export function requestRecord(id: string, now: number, extra: Partial<Parameters<typeof auditRecord>[0]> = {}): AuditRecord {
  return auditRecord({ requestId: id, path: '/a', stage: 'forward', status: 200, decision: 'allow', reason: null, clientIp: '192.0.2.1', configVersion: 'v', ...extra }, now);
}

/** Every public key in a keys directory, by key id (`<keyId>.pub.pem`). */
export function publicKeys(keysDir: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const name of readdirSync(keysDir)) {
    const m = /^(.+)\.pub\.pem$/.exec(name);
    if (m?.[1] !== undefined) keys.set(m[1], createPublicKey(readFileSync(join(keysDir, name), 'utf8')));
  }
  return keys;
}

export interface ChainCheck {
  /** Every record, in order across the files. */
  readonly records: Record<string, unknown>[];
  /** Problems found, in order: empty for an intact chain. */
  readonly problems: string[];
  /** The files' `file` numbers, in order. */
  readonly fileNumbers: number[];
  readonly checkpoints: Record<string, unknown>[];
}

/**
 * A small independent checker of one chain across its files (oldest first): every line whole JSON
 * with the hash it should have, `seq` one more and `prev` the previous `hash`, every checkpoint's
 * count/head the record before it and its signature valid under the named public key. A line that
 * is not JSON is reported (a torn line) and the chain continues after it.
 */
export function checkChain(paths: readonly string[], keys: ReadonlyMap<string, KeyObject>): ChainCheck {
  const records: Record<string, unknown>[] = [];
  const problems: string[] = [];
  const fileNumbers: number[] = [];
  const checkpoints: Record<string, unknown>[] = [];
  let prev = { seq: 0, hash: GENESIS };
  for (const path of paths) {
    const text = readFileSync(path, 'utf8');
    if (text !== '' && !text.endsWith('\n')) problems.push(`${path}: ends in an incomplete line`);
    const lines = text.split('\n');
    lines.pop();
    lines.forEach((line, i) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        problems.push(`${path}:${i + 1}: not JSON (${line.length} bytes)`);
        return;
      }
      if (i === 0) {
        if (record.kind === 'file') fileNumbers.push(record.file as number);
        else problems.push(`${path}: does not begin with a file record`);
      }
      if (record.hash !== expectedHash(record)) problems.push(`${path}:${i + 1}: hash`);
      if (record.seq !== prev.seq + 1) problems.push(`${path}:${i + 1}: seq ${String(record.seq)} after ${prev.seq}`);
      if (record.prev !== prev.hash) problems.push(`${path}:${i + 1}: prev`);
      if (record.kind === 'checkpoint') {
        checkpoints.push(record);
        const key = keys.get(record.keyId as string);
        if (record.count !== prev.seq || record.head !== prev.hash) problems.push(`${path}:${i + 1}: checkpoint count/head`);
        if (key === undefined) problems.push(`${path}:${i + 1}: unknown key ${String(record.keyId)}`);
        else if (!checkpointSignatureValid({ chain: record.chain as string, count: record.count as number, head: record.head as string, keyId: record.keyId as string, time: record.time as string }, record.signature as string, key)) {
          problems.push(`${path}:${i + 1}: signature`);
        }
      }
      records.push(record);
      prev = { seq: record.seq as number, hash: record.hash as string };
    });
  }
  return { records, problems, fileNumbers, checkpoints };
}

/** The files of a chain in order: the sealed ones by their first seq, then the active one. */
export function chainPaths(files: ChainFiles): string[] {
  const sealed = readdirSync(files.dir).flatMap((name) => {
    const seq = files.sealedSeq(name);
    return seq === null ? [] : [{ path: join(files.dir, name), seq }];
  }).sort((a, b) => a.seq - b.seq).map((f) => f.path);
  return [...sealed, files.active];
}
