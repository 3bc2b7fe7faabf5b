// Assertions shared by the tests that talk to the gateway on a raw socket.
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { AuditRecord } from '../../src/audit/audit-log.js';
import { PROBLEM_TYPE_BASE } from '../../src/pipeline/problem.js';
import type { TestGateway } from './gateway.js';
import type { WireResponse } from './raw-client.js';

export interface ProblemDoc { type: string; title: string; status: number; detail: string; requestId: string }

/**
 * Asserts a complete problem+json response with the given status and code, whose `requestId` is
 * set and equals the X-Request-Id header; returns the document.
 */
export function assertProblem(res: (WireResponse & { readonly raw?: string }) | undefined, status: number, code: string): ProblemDoc {
  assert.ok(res !== undefined, 'no response');
  assert.equal(res.status, status, res.raw === undefined ? `status (body: ${res.body})` : `status (raw: ${JSON.stringify(res.raw)})`);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  assert.ok(res.complete, 'problem body incomplete');
  const doc = JSON.parse(res.body) as ProblemDoc;
  assert.equal(doc.type, PROBLEM_TYPE_BASE + code);
  assert.equal(doc.status, status);
  assert.equal(typeof doc.title, 'string');
  assert.equal(typeof doc.detail, 'string');
  assert.ok(typeof doc.requestId === 'string' && doc.requestId !== '', 'problem has a requestId');
  assert.equal(res.headers['x-request-id'], doc.requestId, 'X-Request-Id header equals the problem requestId');
  return doc;
}

/** Waits (bounded) until an audit record for `path` is on disk; returns every record for that path. */
export function auditRecordsFor(gw: Pick<TestGateway, 'auditWhere'>, path: string, timeoutMs = 3000): Promise<AuditRecord[]> {
  return gw.auditWhere((r) => r.path === path, timeoutMs);
}

/** Resolves the audit record for `path` once it exists, and checks it is the only one for that path. */
export async function oneAuditRecordFor(gw: Pick<TestGateway, 'audit' | 'auditWhere' | 'auditBarrier'>, path: string): Promise<AuditRecord> {
  await auditRecordsFor(gw, path);
  // A duplicate (e.g. an abort after an error) would be written before the barrier's record.
  await gw.auditBarrier();
  const records = (await gw.audit()).filter((r) => r.path === path);
  assert.equal(records.length, 1, `expected one audit record for ${path}, got ${JSON.stringify(records)}`);
  return records[0] as AuditRecord;
}

/** Polls (bounded) until `read` returns `want`; returns the last value read. */
export async function eventually<T>(read: () => T, want: T, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (value !== want && Date.now() < deadline) {
    await delay(20);
    value = read();
  }
  return value;
}

/**
 * Polls `check` (bounded) until it holds; fails the test with `what` otherwise. For state that
 * signals no event (admission counters, a store coming back); a wait for time to pass moves the
 * injected clock instead.
 */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await delay(10);
  }
}
