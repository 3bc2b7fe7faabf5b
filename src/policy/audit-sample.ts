// A bounded, deterministic sample of the requests an audit trail recorded, as requests `explain`
// can replay. Distinct requests (method, path, client address and the identity facts the record
// holds) are kept by the smallest hash of their key (bottom-k sampling): the same trail always gives
// the same sample, uniform over distinct requests, in memory bounded by the sample size.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { ExplainIdentity, ExplainRequest } from '../explain/explain.js';
import { recordTimeMs } from '../audit/read/filter.js';
import type { ReadOptions, RecordSource } from '../audit/read/source.js';

export const SAMPLE_DEFAULTS = Object.freeze({ sample: 1000, maxRead: 100_000 });

/** One distinct recorded request, and how many records had it. */
export interface SampledRequest {
  readonly request: ExplainRequest;
  readonly count: number;
  /** What the trail says happened to it (the last record seen). */
  readonly recorded: { readonly decision: string; readonly status: number; readonly route: string | null };
}

export interface AuditSample {
  readonly requests: readonly SampledRequest[];
  /** Records read (of every kind). */
  readonly read: number;
  /** Records of requests that could be replayed. */
  readonly replayable: number;
  /** Distinct requests among them (at least the sample's size). */
  readonly distinct: number;
  /** Request records that cannot be replayed: refused before a request line was read, or with an address that is not one. */
  readonly skipped: number;
  /** Reading stopped at the limit before the trail's end. */
  readonly truncated: boolean;
}

interface Entry {
  readonly hash: string;
  readonly request: ExplainRequest;
  count: number;
  recorded: SampledRequest['recorded'];
}

/**
 * Reads at most `maxRead` records of `source` (from `since`, when given) and keeps `sample` distinct
 * requests. A request is replayed as recorded: its method, path (the record holds no query) and
 * client address (as the TCP peer), and, when one authenticated, the subject, auth method, key id
 * and tenant as an assumed identity (the record holds no roles, scopes or claims).
 */
export async function sampleAudit(source: RecordSource, options: { sample: number; maxRead: number; since?: number }): Promise<AuditSample> {
  const kept = new Map<string, Entry>();
  let read = 0;
  let replayable = 0;
  let skipped = 0;
  let truncated = false;
  const distinct = new Set<string>();
  const read_: ReadOptions = { follow: false, ...(options.since === undefined ? {} : { since: options.since }) };
  for await (const { record } of source.records(read_)) {
    if (read >= options.maxRead) { truncated = true; break; }
    read += 1;
    // A source that cannot seek yields earlier records too.
    if (record.kind !== 'request' || (options.since !== undefined && !(recordTimeMs(record) >= options.since))) continue;
    const request = replayOf(record);
    if (request === null) { skipped += 1; continue; }
    replayable += 1;
    const key = JSON.stringify([request.method, request.target, request.from, request.identity ?? null]);
    const hash = createHash('sha256').update(key).digest('hex');
    // Distinct keys are counted by hash prefix in a bounded set: an estimate only past its size.
    if (distinct.size < DISTINCT_TRACKED) distinct.add(hash.slice(0, 16));
    const recorded = { decision: String(record.decision), status: typeof record.status === 'number' ? record.status : 0, route: typeof record.route === 'string' ? record.route : null };
    const entry = kept.get(key);
    if (entry !== undefined) { entry.count += 1; entry.recorded = recorded; continue; }
    if (kept.size < options.sample) { kept.set(key, { hash, request, count: 1, recorded }); continue; }
    const largest = largestOf(kept);
    if (largest !== null && hash < largest[1].hash) {
      kept.delete(largest[0]);
      kept.set(key, { hash, request, count: 1, recorded });
    }
  }
  const requests = [...kept.values()].sort((a, b) => (a.hash < b.hash ? -1 : 1)).map(({ request, count, recorded }) => ({ request, count, recorded }));
  return { requests, read, replayable, distinct: Math.max(distinct.size, requests.length), skipped, truncated };
}

const DISTINCT_TRACKED = 200_000;

function largestOf(kept: ReadonlyMap<string, Entry>): [string, Entry] | null {
  let largest: [string, Entry] | null = null;
  for (const e of kept) if (largest === null || e[1].hash > largest[1].hash) largest = e;
  return largest;
}

/** The request a record describes, or null when it cannot be replayed. */
export function replayOf(record: Readonly<Record<string, unknown>>): ExplainRequest | null {
  const { method, path, clientIp } = record;
  if (typeof method !== 'string' || method === '' || typeof path !== 'string' || path === '' || typeof clientIp !== 'string' || isIP(clientIp) === 0) return null;
  const identity = identityOf(record.identity, record.tenant);
  return { method, target: path, headers: [], from: clientIp, ...(identity === null ? {} : { identity }) };
}

function identityOf(value: unknown, tenant: unknown): ExplainIdentity | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.subject !== 'string' || v.subject === '') return null;
  return {
    sub: v.subject,
    ...(typeof v.authMethod === 'string' ? { method: v.authMethod } : {}),
    ...(typeof v.keyId === 'string' ? { keyId: v.keyId } : {}),
    ...(typeof tenant === 'string' ? { tenant } : {}),
  };
}
