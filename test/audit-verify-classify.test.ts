// A broken link is classified from the seq and prev evidence around it: a deletion, an insertion, a
// reordering or a modification whose hash was recomputed. One row per shape, each written out as
// the records an attacker's edit leaves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, type Seen } from '../src/audit/verify-chain.js';

/** Record `seq` of an honest chain: its hash `h<seq>`, its prev `h<seq - 1>`. */
const honest = (seq: number, line = seq): Seen => ({ seq, prev: `h${seq - 1}`, hash: `h${seq}`, kind: 'request', file: 'audit.log', line });
const forged = (seq: number, prev: string, hash: string, line: number): Seen => ({ seq, prev, hash, kind: 'request', file: 'audit.log', line });
const anchorOf = (s: Seen): { seq: number; hash: string } => ({ seq: s.seq, hash: s.hash });

describe('classify: what a broken link means', () => {
  const rows: [string, Seen, Seen, Seen[], string, number][] = [
    // name, last good record, first record that does not link, the records after it, kind, line named
    ['one record deleted', honest(4), honest(6, 5), [honest(7, 6)], 'deleted', 5],
    ['several deleted at the end', honest(4), honest(9, 5), [], 'deleted', 5],
    ['two neighbours swapped', honest(4), honest(6, 5), [honest(5, 6), honest(7)], 'reordered', 5],
    ['a record moved far back', honest(4), honest(6, 5), [...[7, 8, 9, 10].map((s) => honest(s, s - 1)), honest(5, 10), honest(11)], 'reordered', 5],
    ['an earlier record replayed', honest(8), honest(3, 9), [honest(9, 10)], 'inserted', 9],
    ['an earlier record replayed at the very end', honest(8), honest(3, 9), [], 'inserted', 9],
    ['the line before duplicated', honest(8), honest(8, 9), [honest(9, 10)], 'inserted', 9],
    ['a forgery with the next seq and a wrong prev', honest(4), forged(5, 'hX', 'hF', 5), [honest(5, 6), honest(6, 7)], 'inserted', 5],
    ['a forgery with the next seq and the right prev (caught one record later)', forged(5, 'h4', 'hF', 5), honest(5, 6), [honest(6, 7)], 'inserted', 5],
    ['a record changed and re-hashed', forged(5, 'h4', 'h5x', 5), honest(6, 6), [honest(7, 7)], 'modified', 5],
    ['a record replaced by one with a wrong prev', honest(4), forged(5, 'hX', 'hY', 5), [honest(6, 6)], 'modified', 5],
    ['seq goes back and the chain does not carry on', honest(8), honest(3, 9), [honest(4, 10)], 'reordered', 9],
  ];
  for (const [name, last, first, next, kind, line] of rows) {
    it(`${name}: ${kind} at line ${line}`, () => {
      const result = classify(anchorOf(last), last, first, next);
      assert.equal(result.kind, kind, result.message);
      assert.equal(result.at.line, line, result.message);
    });
  }
});
