// The audit record serialiser writes each line field by field (the request path's hot end). It
// must write exactly what the reference — JSON.stringify of the bounded record — writes, for
// every input an attacker can put into a record: control and separator characters, quotes and
// backslashes, lone surrogates, bidirectional overrides, overlong text, empty text, absent fields.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { boundRecord, FIELD_MAX_CHARS, MAX_RECORD_BYTES, serialiseRecord, type AuditRecord } from '../src/audit/audit-record.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { expectedHash, linkObject, linkText, type ChainHead } from '../src/audit/chain.js';

const HEAD: ChainHead = { seq: 41, hash: 'ab'.repeat(32) };
/** The reference: the bounded record linked as a generic object (canonical JSON of the whole). */
const reference = (record: AuditRecord): string => linkObject(boundRecord(record) as unknown as Record<string, unknown>, HEAD).line;
const serialised = (record: AuditRecord): string => linkText(serialiseRecord(record), HEAD).line;

/** A deterministic generator (xorshift), so a failure reproduces from its seed. */
function random(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 0x1_0000_0000; };
}

/** Characters that matter to the serialiser's fast path and to boundText. */
const PICKS = [
  'a', 'Z', '0', ' ', '/', '-', '~', '"', '\\', '\n', '\r', '\t', '\u0000', '\u001b', '\u007f', '\u0085', '\u009b', '\u00e9',
  '\u061c', '\u200e', '\u2028', '\u2029', '\u202e', '\u2066', '\u2069', '\ud83d\ude00', '\ud800', '\udc00', '\uffff', '\u{10ffff}',
];

function text(next: () => number, maxChars: number): string {
  let out = '';
  const plain = next() < 0.5; // half the values are plain ASCII, the fast path's case
  const length = Math.floor(next() * 48);
  while (out.length < length) out += plain ? String.fromCharCode(0x20 + Math.floor(next() * 95)) : (PICKS[Math.floor(next() * PICKS.length)] ?? 'a');
  if (next() >= 0.2 || out === '') return out;
  // Around the cap (just under, at, just over), where boundText cuts and marks.
  const around = maxChars + Math.floor(next() * 40) - 20;
  return out.repeat(Math.ceil(around / out.length)).slice(0, around);
}

function maybe(next: () => number, maxChars: number): string | null {
  return next() < 0.2 ? null : text(next, maxChars);
}

function record(next: () => number): AuditRecord {
  const c = FIELD_MAX_CHARS;
  const numbers = [0, 1, 200, 499, 65535, 0.001, 12.345, 1e21, -0, Number.NaN, Number.POSITIVE_INFINITY];
  const number = (): number => numbers[Math.floor(next() * numbers.length)] ?? 0;
  const base: AuditRecord = {
    time: text(next, c.time), kind: next() < 0.5 ? 'request' : 'admin', requestId: text(next, c.requestId), method: text(next, c.method), path: text(next, c.path),
    route: maybe(next, c.route), stage: maybe(next, c.stage), status: number(), latencyMs: number(),
    decision: (['allow', 'deny', 'error', 'abort'] as const)[Math.floor(next() * 4)] ?? 'allow',
    reason: maybe(next, c.reason), detail: maybe(next, c.detail),
    identity: next() < 0.3 ? null : { subject: text(next, c.subject), authMethod: text(next, c.authMethod), keyId: maybe(next, c.keyId) },
    tenant: maybe(next, c.tenant), clientIp: text(next, c.clientIp), userAgent: maybe(next, c.userAgent), upstream: maybe(next, c.upstream),
    upstreamStatus: next() < 0.3 ? null : number(), bytesIn: number(), bytesOut: number(), configVersion: text(next, c.configVersion),
  };
  const roll = next();
  const limited = roll < 0.3 ? base : { ...base, limit: roll < 0.4 ? null : text(next, c.limit) };
  // `rule` sorts between `route` and the chain's `seq`: the canonical order the hash covers.
  const ruled = next();
  return ruled < 0.5 ? limited : { ...limited, rule: ruled < 0.6 ? null : text(next, c.rule) };
}

describe('audit record serialiser', () => {
  it('writes exactly the reference line for 5,000 generated hostile records', () => {
    for (let seed = 1; seed <= 5_000; seed++) {
      const r = record(random(seed));
      const line = serialised(r);
      assert.equal(line, reference(r), `seed ${seed}`);
    }
  });

  it('writes one line that parses, at most MAX_RECORD_BYTES, with every field at its cap and every character unsafe', () => {
    const c = FIELD_MAX_CHARS;
    const worst = (n: number): string => '\u202e'.repeat(n * 2);
    const r: AuditRecord = {
      time: worst(c.time), kind: 'request', requestId: worst(c.requestId), method: worst(c.method), path: worst(c.path), route: worst(c.route),
      stage: worst(c.stage), status: 200, latencyMs: 1.5, decision: 'deny', reason: worst(c.reason), detail: worst(c.detail),
      identity: { subject: worst(c.subject), authMethod: worst(c.authMethod), keyId: worst(c.keyId) }, tenant: worst(c.tenant),
      clientIp: worst(c.clientIp), userAgent: worst(c.userAgent), upstream: worst(c.upstream), upstreamStatus: 200,
      bytesIn: 1, bytesOut: 2, configVersion: worst(c.configVersion), limit: worst(c.limit),
    };
    const line = serialised(r);
    assert.equal(line, reference(r));
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.ok(Buffer.byteLength(line) <= MAX_RECORD_BYTES);
    assert.equal((JSON.parse(line) as { limit: string }).limit.length <= c.limit, true);
  });

  it('takes the fast path only for text JSON writes as itself', () => {
    // A quote, a backslash or DEL in otherwise plain text must go through escaping.
    for (const value of ['a"b', 'a\\b', 'a\u007fb', 'tab\there', '']) {
      const r = record(random(7));
      const withValue: AuditRecord = { ...r, path: value, userAgent: value };
      assert.equal(serialised(withValue), reference(withValue), JSON.stringify(value));
    }
  });

  it('writes canonical JSON whose hash is the hash of the record without it, linked to the head', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const line = serialised(record(random(seed)));
      const parsed = JSON.parse(line) as Record<string, unknown>;
      assert.equal(canonicalJson(parsed) + '\n', line, `seed ${seed}: not canonical`);
      assert.equal(parsed.hash, expectedHash(parsed), `seed ${seed}`);
      assert.equal(parsed.prev, HEAD.hash);
      assert.equal(parsed.seq, HEAD.seq + 1);
      for (const [name, value] of Object.entries(parsed)) assert.notEqual(value, null, `seed ${seed}: ${name} is null, not absent`);
    }
  });
});
