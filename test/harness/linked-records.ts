import { EMPTY_HEAD, linkObject, type ChainHead } from '../../src/audit/chain.js';
import type { LinkedEntry } from '../../src/audit/sinks/sink.js';

/** `count` request-like records of `chain`, linked from `head`, as the trail hands them to a sink. */
export function chainOf(chain: string, count: number, head: ChainHead = EMPTY_HEAD): LinkedEntry[] {
  const out: LinkedEntry[] = [];
  let h = head;
  for (let i = 0; i < count; i++) {
    // As a request record is: no `chain` member (the sink knows the chain from the entry, not the line).
    const l = linkObject({ kind: 'request', time: new Date(Date.UTC(2026, 10, 30, 0, 0, 0, i)).toISOString(), path: `/r/${h.seq + 1}`, requestId: `${chain} ${h.seq + 1}` }, h);
    out.push({ chain, line: l.line, hash: l.hash, seq: l.seq });
    h = l;
  }
  return out;
}
