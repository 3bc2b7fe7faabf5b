// `portcullis policy test`: every case of the test files through the real stages of one compiled
// config, each compared with what it expects; the table, the summary and the coverage report.
import type { CompiledConfig } from '../config/compile.js';
import { Coverage, type CoverageReport, type RuleLocator } from './coverage.js';
import { mismatches, outcomeOf, phrase, type Outcome } from './outcome.js';
import type { Expectation, PolicyCase } from './test-file.js';

export interface CaseResult {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly expected: Expectation;
  readonly actual: Outcome;
  readonly passed: boolean;
  /** What differs from the expectation; empty when the case passes. */
  readonly problems: readonly string[];
}

export interface PolicyTestReport {
  readonly cases: readonly CaseResult[];
  readonly summary: { readonly total: number; readonly passed: number; readonly failed: number };
  readonly coverage: CoverageReport;
}

/** Runs every case, in order. Nothing is contacted and nothing is counted (see `explain`). */
export async function runPolicyTests(config: CompiledConfig, cases: readonly PolicyCase[], locate: RuleLocator): Promise<PolicyTestReport> {
  const coverage = new Coverage(config, locate);
  const results: CaseResult[] = [];
  for (const c of cases) {
    const { outcome } = await outcomeOf(config, c.request, (route) => locate(route));
    coverage.add(outcome);
    const problems = mismatches(c.expect, outcome);
    results.push({ name: c.name, file: c.file, line: c.line, expected: c.expect, actual: outcome, passed: problems.length === 0, problems });
  }
  const passed = results.filter((r) => r.passed).length;
  return { cases: results, summary: { total: results.length, passed, failed: results.length - passed }, coverage: coverage.report() };
}

/** Text from a test file or a config, shown with its control characters escaped (it cannot drive the terminal). */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns of text, each as wide as its widest cell (up to `max`, longer cells cut with …). */
export function table(rows: readonly (readonly string[])[], max = 48): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.min(max, Math.max(widths[i] ?? 0, cell.length)); });
  return rows.map((row) => row.map((cell, i) => {
    const w = widths[i] ?? 0;
    const fitted = cell.length > w ? `${cell.slice(0, w - 1)}…` : cell;
    return i === row.length - 1 ? fitted : fitted.padEnd(w);
  }).join('  ').trimEnd());
}

/** The report as `policy test` prints it: the table, each failure's differences and place, the summary, the coverage when asked. */
export function renderPolicyTest(report: PolicyTestReport, withCoverage: boolean): string {
  const rows: string[][] = [['RESULT', 'CASE', 'EXPECTED', 'ACTUAL', 'ROUTE', 'STAGE', 'RULE']];
  for (const r of report.cases) {
    rows.push([r.passed ? 'pass' : 'FAIL', printable(r.name), phrase(r.expected), phrase(r.actual), printable(r.actual.route ?? '-'), r.actual.stage ?? '-', printable(r.actual.rule ?? '-')]);
  }
  const out = table(rows, 64);
  const failures = report.cases.filter((r) => !r.passed);
  if (failures.length > 0) {
    out.push('', 'Failures:');
    for (const f of failures) {
      out.push(`  ${printable(f.name)} (${printable(f.file)}:${f.line})`);
      for (const p of f.problems) out.push(`    ${printable(p)}`);
    }
  }
  const s = report.summary;
  out.push('', `${s.total} case${s.total === 1 ? '' : 's'}: ${s.passed} passed, ${s.failed} failed`);
  if (withCoverage) out.push('', ...renderCoverage(report.coverage));
  return out.join('\n') + '\n';
}

function renderCoverage(c: CoverageReport): string[] {
  const at = (line: number | null): string => (line === null ? '' : ` (line ${line})`);
  const out = [`Coverage: ${c.routes.reached} of ${c.routes.total} routes reached; ${c.rules.total - c.rules.unevaluated.length} of ${c.rules.total} rules evaluated`];
  const section = (title: string, items: readonly string[]): void => {
    if (items.length === 0) return;
    out.push(title, ...items.map((i) => `  ${i}`));
  };
  section('Routes no case reaches:', c.routes.unreached.map((r) => `${printable(r.route)}${at(r.line)}`));
  section('Rules no case evaluates:', c.rules.unevaluated.map((r) => `${printable(r.route)}: ${printable(r.rule)}${at(r.line)}`));
  section('Rules no case sees refuse (only seen holding: half-tested):', c.rules.neverFalse.map((r) => `${printable(r.route)}: ${printable(r.rule)}${at(r.line)}`));
  section('Rules no case sees hold (only seen refusing: half-tested):', c.rules.neverTrue.map((r) => `${printable(r.route)}: ${printable(r.rule)}${at(r.line)}`));
  return out;
}
