// What the gateway decides on one request, in the terms a policy test states it: a request run
// through the real stages by `explain`, reduced to decision, status, code, route, the deciding
// stage and the attribute rules evaluated.
import type { CompiledConfig } from '../config/compile.js';
import { explain, type ExplainRequest, type Explanation, type RouteLocator } from '../explain/explain.js';
import type { RuleOutcome } from '../pipeline/exchange.js';
import type { Expectation } from './test-file.js';

export interface Outcome {
  /** allow: forwarded, or answered by the gateway with an allowing response; deny: ended with a denial (of any status). */
  readonly decision: 'allow' | 'deny';
  /** The gateway's own status; null when the request is forwarded (the upstream answers). */
  readonly status: number | null;
  readonly code: string | null;
  readonly route: string | null;
  /** The stage that decided: the one that ended the request, or `forward` when it is forwarded. */
  readonly stage: string | null;
  readonly forwarded: boolean;
  /** Every attribute rule evaluated, in order, and whether it held. */
  readonly rules: readonly RuleOutcome[];
  /** On a denial, the first rule of the deciding stage that did not hold; else null. */
  readonly rule: string | null;
}

/** Runs one request through the config's request path (nothing is contacted) and reduces the explanation. */
export async function outcomeOf(config: CompiledConfig, request: ExplainRequest, locate?: RouteLocator): Promise<{ outcome: Outcome; explanation: Explanation }> {
  const explanation = await explain(config, request, locate);
  return { outcome: reduce(explanation), explanation };
}

export function reduce(e: Explanation): Outcome {
  const last = e.stages.at(-1);
  const forwarded = e.result.forwarded;
  const decision = e.decision === 'allow' ? 'allow' : 'deny';
  const deciding = forwarded ? null : last;
  return {
    decision,
    status: forwarded ? null : e.result.status,
    code: forwarded ? null : e.result.code,
    route: e.route?.name ?? null,
    stage: forwarded ? 'forward' : last?.stage ?? null,
    forwarded,
    rules: e.stages.flatMap((s) => s.rules ?? []),
    rule: decision === 'deny' ? deciding?.rules?.find((r) => !r.held)?.rule ?? null : null,
  };
}

/** What differs from the expectation, one phrase each; empty: the case passes. */
export function mismatches(expect: Expectation, actual: Outcome): string[] {
  const out: string[] = [];
  if (actual.decision !== expect.decision) out.push(`decision ${actual.decision}, expected ${expect.decision}`);
  if (expect.status !== undefined && actual.status !== expect.status) {
    out.push(`${actual.status === null ? 'forwarded (the upstream answers)' : `status ${actual.status}`}, expected status ${expect.status}`);
  }
  if (expect.code !== undefined && actual.code !== expect.code) out.push(`code ${actual.code ?? '(none)'}, expected ${expect.code}`);
  if (expect.route !== undefined && actual.route !== expect.route) out.push(`route ${actual.route ?? '(none)'}, expected ${expect.route}`);
  if (expect.rule !== undefined && expect.decision === 'deny' && actual.rule !== expect.rule) {
    out.push(`${actual.decision === 'deny' ? 'denied' : 'allowed'} ${actual.rule === null ? 'by no rule' : `by rule ${actual.rule}`}, expected denied by rule ${expect.rule}`);
  }
  if (expect.rule !== undefined && expect.decision === 'allow') {
    const seen = actual.rules.filter((r) => r.rule === expect.rule);
    if (seen.length === 0) out.push(`rule ${expect.rule} was not evaluated`);
    else if (!seen.every((r) => r.held)) out.push(`rule ${expect.rule} did not hold, expected it to`);
  }
  return out;
}

/** `allow`, `deny 403 policy_denied`: an outcome or expectation as one short phrase. */
export function phrase(o: { readonly decision: string; readonly status?: number | null; readonly code?: string | null }): string {
  return [o.decision, o.status ?? '', o.code ?? ''].filter((p) => p !== '').join(' ');
}
