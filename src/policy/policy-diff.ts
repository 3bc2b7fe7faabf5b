// `portcullis policy diff OLD NEW`: the same requests — the test cases and a sample of recorded
// traffic — through two compiled configs, and those whose decision, status, code or route changes.
import type { CompiledConfig } from '../config/compile.js';
import type { ExplainRequest, RouteLocator } from '../explain/explain.js';
import type { AuditSample } from './audit-sample.js';
import { outcomeOf, phrase, type Outcome } from './outcome.js';
import { printable, table } from './policy-test.js';
import type { PolicyCase } from './test-file.js';

/** One side of a comparison: a compiled config and where its routes are written. */
export interface DiffSide {
  readonly file: string;
  readonly config: CompiledConfig;
  readonly locate: RouteLocator;
}

/** A request that decides differently under the two configs. */
export interface Change {
  /** `case` (a test case, by name) or `audit` (a recorded request, with how many records had it). */
  readonly source: 'case' | 'audit';
  readonly label: string;
  readonly count: number;
  readonly request: { readonly method: string; readonly target: string; readonly from: string; readonly subject: string | null };
  readonly old: Outcome;
  readonly new: Outcome;
  /** The members that differ: decision, status, code, route. */
  readonly changed: readonly ('decision' | 'status' | 'code' | 'route')[];
}

export interface DiffReport {
  readonly old: string;
  readonly new: string;
  readonly cases: { readonly total: number; readonly changed: number };
  readonly audit: (Omit<AuditSample, 'requests'> & {
    readonly sampled: number;
    readonly changed: number;
    /** Sampled requests whose replay under OLD decides as the trail recorded (a measure of the replay's fidelity when the trail was written under OLD). */
    readonly agreeingWithRecord: number;
  }) | null;
  readonly changes: readonly Change[];
}

/** What a replay of recorded traffic cannot see, printed with every diff that uses a trail. */
export const REPLAY_LIMITS = 'Replayed from the audit trail: method, path and client address, and for authenticated requests the subject, '
  + 'auth method, key id and tenant as an assumed identity. The trail holds no query, headers, body, roles, scopes or claims: '
  + 'changes that depend on them show only in test cases. Rate limits are not counted.';

/** Runs every case and sampled request under both configs; changes sorted cases first, then recorded requests by how often they were seen. */
export async function diffPolicies(oldSide: DiffSide, newSide: DiffSide, cases: readonly PolicyCase[], sample: AuditSample | null): Promise<DiffReport> {
  const changes: Change[] = [];
  let caseChanges = 0;
  for (const c of cases) {
    const { change } = await compare(oldSide, newSide, c.request, 'case', c.name, 1);
    if (change !== null) { changes.push(change); caseChanges += 1; }
  }
  let audit: DiffReport['audit'] = null;
  if (sample !== null) {
    let changed = 0;
    let agreeing = 0;
    const found: Change[] = [];
    for (const s of sample.requests) {
      const r = s.request;
      const label = `${r.method} ${r.target} from ${r.from}${r.identity === undefined ? '' : ` as ${r.identity.sub}`}`;
      const { change, old } = await compare(oldSide, newSide, r, 'audit', label, s.count);
      if (old.decision === (s.recorded.decision === 'allow' ? 'allow' : 'deny') && (old.forwarded || old.status === s.recorded.status)) agreeing += 1;
      if (change !== null) { found.push(change); changed += 1; }
    }
    found.sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1));
    changes.push(...found);
    const { requests, ...counts } = sample;
    audit = { ...counts, sampled: requests.length, changed, agreeingWithRecord: agreeing };
  }
  return { old: oldSide.file, new: newSide.file, cases: { total: cases.length, changed: caseChanges }, audit, changes };
}

/** The outcome under OLD, and the change when NEW decides otherwise. */
async function compare(a: DiffSide, b: DiffSide, request: ExplainRequest, source: Change['source'], label: string, count: number): Promise<{ change: Change | null; old: Outcome }> {
  const old = (await outcomeOf(a.config, request, a.locate)).outcome;
  const now = (await outcomeOf(b.config, request, b.locate)).outcome;
  const changed = (['decision', 'status', 'code', 'route'] as const).filter((k) => old[k] !== now[k]);
  if (changed.length === 0) return { change: null, old };
  return {
    old,
    change: { source, label, count, request: { method: request.method, target: request.target, from: request.from, subject: request.identity?.sub ?? null }, old, new: now, changed },
  };
}

/** The report as `policy diff` prints it. */
export function renderDiff(report: DiffReport): string {
  const out: string[] = [`OLD ${printable(report.old)}`, `NEW ${printable(report.new)}`, ''];
  const described = (o: Outcome): string => `${o.forwarded ? 'allow (forwarded)' : phrase(o)}${o.rule === null ? '' : ` (rule ${printable(o.rule)})`} ${o.route === null ? '(no route)' : `→ ${printable(o.route)}`}`;
  if (report.changes.length > 0) {
    const rows = [['SOURCE', 'REQUEST', 'SEEN', 'OLD', 'NEW']];
    for (const c of report.changes) {
      rows.push([c.source, printable(c.label), c.source === 'audit' ? `×${c.count}` : '', described(c.old), described(c.new)]);
    }
    out.push(...table(rows, 60), '');
  }
  out.push(`Test cases: ${report.cases.changed} of ${report.cases.total} change`);
  const a = report.audit;
  if (a !== null) {
    out.push(`Recorded requests: ${a.changed} of ${a.sampled} sampled change (${a.read} records read, ${a.replayable} replayable, ${a.distinct}${a.distinct >= 200_000 ? '+' : ''} distinct requests${a.skipped > 0 ? `, ${a.skipped} not replayable` : ''}${a.truncated ? '; stopped at the read limit: --since or --max-read choose another window' : ''})`);
    out.push(`Under OLD, ${a.agreeingWithRecord} of ${a.sampled} sampled requests decide as the trail recorded.`);
    out.push('', REPLAY_LIMITS);
  }
  out.push('', report.changes.length === 0 ? 'No request decides differently.' : `${report.changes.length} request${report.changes.length === 1 ? ' decides' : 's decide'} differently.`);
  return out.join('\n') + '\n';
}
