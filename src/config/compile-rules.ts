import { isCelError, parse, plan } from '@bufbuild/cel';
import { basename } from 'node:path';
import type { ConfigProblem } from './errors.js';
import type { ConfigSource } from './config-source.js';
import type { RawRoute } from './schema.js';
import type { PathPattern } from '../routing/pattern.js';
import { checkExpression, RuleCheckError, type CheckedRule, type ParsedRule } from '../policy/check-expression.js';
import {
  cidrProblem, IDENTITY_VARIABLES, MAX_EXPRESSION_CHARS, MAX_RULES_PER_ROUTE, patternProblem, RULE_BUDGET, RULE_VARIABLES, ruleEnvironment, zoneProblem,
} from '../policy/rule-environment.js';
import { rulesStage, type CompiledRule } from '../policy/rules-stage.js';
import type { Stage } from '../pipeline/exchange.js';
import { typeName } from '../policy/rule-types.js';
import type { Clock } from '../lib/clock.js';

/** A route's compiled rules: the stage, the rule names, and the headers they read (decision headers: refused when repeated). */
export interface RouteRules {
  readonly stage: Stage;
  readonly names: readonly string[];
  readonly headers: readonly string[];
}

/** What every route's rules are checked against besides the route itself. */
export interface RuleContext {
  /** Why a rule may not read a header (lower-case name), or null: it may. */
  readonly headerProblem: (name: string) => string | null;
  /** The gateway's clock: `request.time` is its time (or explain's fixed time). */
  readonly clock: Clock;
}

/**
 * Compiles a route's `when`: a string (one rule named `when`) or a list of `{name, expr}`. Each
 * expression is parsed, type-checked against the declared variables and budgets, and planned once;
 * a problem is reported at the expression's line with what would be right. Null when the route
 * has no rules or any rule has a problem. `pattern` is null when the route's path pattern is wrong
 * (reported elsewhere): its parameters are then not checked.
 */
export function compileRouteRules(
  r: RawRoute, index: number, pattern: PathPattern | null, context: RuleContext, loaded: ConfigSource, problems: ConfigProblem[],
): RouteRules | null {
  const when = r.when;
  if (when === undefined) return null;
  const at = (...path: (string | number)[]) => ['routes', index, 'when', ...path];
  const entries = typeof when === 'string' ? [{ name: 'when', expr: when, path: at() }] : when.map((w, i) => ({ name: w.name, expr: w.expr, path: at(i, 'expr') }));
  const before = problems.length;
  if (entries.length > MAX_RULES_PER_ROUTE) problems.push(loaded.problem(at(), `a route has at most ${MAX_RULES_PER_ROUTE} rules: combine some, or split the route`));
  const seen = new Map<string, number>();
  const params = new Set<string>();
  for (const s of pattern?.segments ?? []) if (s.kind === 'param' && s.name !== null) params.add(s.name);
  const checked: { name: string; parsed: ParsedRule; rule: CheckedRule; path: (string | number)[] }[] = [];
  entries.forEach((entry, i) => {
    const earlier = seen.get(entry.name);
    if (earlier !== undefined) {
      problems.push(loaded.problem(at(i, 'name'), `rule "${entry.name}" is named twice on this route (first as when[${earlier}]): the audit record and denials name rules, so each needs its own name`));
      return;
    }
    seen.set(entry.name, i);
    const problem = (message: string) => problems.push(loaded.problem(entry.path, `rule ${entry.name}: ${message}`));
    if (entry.expr.length > MAX_EXPRESSION_CHARS) {
      problem(`the expression is ${entry.expr.length} characters, above ${MAX_EXPRESSION_CHARS}: split it into several named rules (all must hold)`);
      return;
    }
    if (entry.expr.trim() === '') { problem('the expression is empty: write a condition that must hold, like identity.tenant == request.params.tenant'); return; }
    let parsed: ParsedRule;
    try {
      parsed = parse(entry.expr);
    } catch (err) {
      problem(`syntax error: ${syntaxMessage(err)}`);
      return;
    }
    let rule: CheckedRule;
    try {
      rule = checkExpression(parsed, {
        variables: RULE_VARIABLES,
        params: pattern === null ? null : params,
        headerProblem: context.headerProblem,
        checkCidr: cidrProblem,
        checkZone: zoneProblem,
        checkPattern: patternProblem,
      }, RULE_BUDGET);
    } catch (err) {
      if (!(err instanceof RuleCheckError)) throw err;
      problem(`${err.offset >= 0 ? `at ${excerpt(entry.expr, err.offset)}: ` : ''}${err.message}`);
      return;
    }
    const literalError = constantError(parsed, () => ruleEnvironment(rule.cidrs, rule.zones, rule.patterns));
    if (literalError !== null) {
      problem(`${literalError.offset >= 0 ? `at ${excerpt(entry.expr, literalError.offset)}: ` : ''}this part is made of literals only, and cannot be evaluated (${literalError.message}): every request would be refused; correct the literal`);
      return;
    }
    if (rule.type.kind !== 'bool' && rule.type.kind !== 'dyn') {
      problem(`the expression gives ${typeName(rule.type)}, and a rule must give a bool (true: the request may pass): compare it, like ... == "value"`);
      return;
    }
    if (r.public === true) {
      const named = [...rule.variables].filter((v) => IDENTITY_VARIABLES.has(v));
      if (named.length > 0) {
        problem(`a public route has no identity, and the rule reads ${named.join(' and ')}: authenticate the route (an anonymous authenticator makes optional login explicit), or rule on request and client only`);
        return;
      }
    }
    checked.push({ name: entry.name, parsed, rule, path: entry.path });
  });
  if (problems.length > before || pattern === null) return null;
  const cidrs = new Set(checked.flatMap((c) => [...c.rule.cidrs]));
  const zones = new Set(checked.flatMap((c) => [...c.rule.zones]));
  const patterns = new Set(checked.flatMap((c) => [...c.rule.patterns]));
  const env = ruleEnvironment(cidrs, zones, patterns);
  const rules: CompiledRule[] = checked.map((c) => {
    const where = loaded.problem(c.path, '');
    return { name: c.name, where: `${basename(where.file)}:${where.line}`, evaluate: plan(env, c.parsed) as CompiledRule['evaluate'] };
  });
  const headers = [...new Set(checked.flatMap((c) => [...c.rule.headers]))];
  // A path is bound by its dotted name only where no comprehension of the route's rules hides its variable.
  const bound = new Set(checked.flatMap((c) => [...c.rule.bound]));
  const stringPaths = [...new Set(checked.flatMap((c) => [...c.rule.stringPaths]))].filter((p) => !bound.has(p.slice(0, p.indexOf('.'))));
  return {
    stage: rulesStage({
      route: r.name,
      rules,
      pattern,
      fields: new Set(checked.flatMap((c) => [...c.rule.fields])),
      headers,
      stringPaths,
      maxListLength: RULE_BUDGET.maxListLength,
    }, context.clock),
    names: rules.map((x) => x.name),
    headers,
  };
}

type Expr = ParsedRule['expr'];

/** Whether an expression reads nothing of the request: literals, and operators and functions over them. */
function isConstant(e: Expr | undefined): boolean {
  if (e === undefined) return false;
  const kind = e.exprKind;
  switch (kind.case) {
    case 'constExpr': return true;
    case 'selectExpr': return isConstant(kind.value.operand);
    case 'callExpr': return (kind.value.target === undefined || isConstant(kind.value.target)) && kind.value.args.every(isConstant);
    case 'listExpr': return kind.value.elements.every(isConstant);
    case 'structExpr': return kind.value.entries.every((entry) => entry.keyKind.case === 'mapKey' && isConstant(entry.keyKind.value) && isConstant(entry.value));
    default: return false;
  }
}

/** The direct sub-expressions of an expression. */
function children(e: Expr): (Expr | undefined)[] {
  const kind = e.exprKind;
  switch (kind.case) {
    case 'selectExpr': return [kind.value.operand];
    case 'callExpr': return [kind.value.target, ...kind.value.args];
    case 'listExpr': return kind.value.elements;
    case 'structExpr': return kind.value.entries.flatMap((entry) => [entry.keyKind.case === 'mapKey' ? entry.keyKind.value : undefined, entry.value]);
    case 'comprehensionExpr': return [kind.value.iterRange, kind.value.accuInit, kind.value.loopCondition, kind.value.loopStep, kind.value.result];
    default: return [];
  }
}

/**
 * The first part of an expression made of literals alone that cannot be evaluated
 * (`timestamp("2026-13-01T00:00:00Z")`, `int("ten")`, `1 / 0`), with its offset; null when there
 * is none. Such a part fails on every request, whatever it carries: it is a config error, found
 * at load by evaluating the part once.
 */
function constantError(parsed: ParsedRule, environment: () => ReturnType<typeof ruleEnvironment>): { offset: number; message: string } | null {
  const positions = parsed.sourceInfo?.positions ?? {};
  let env: ReturnType<typeof ruleEnvironment> | null = null;
  const visit = (e: Expr | undefined): { offset: number; message: string } | null => {
    if (e === undefined) return null;
    if (e.exprKind.case !== 'constExpr' && isConstant(e)) {
      const result: unknown = plan(env ??= environment(), e)();
      return isCelError(result) ? { offset: positions[String(e.id)] ?? -1, message: result.message } : null;
    }
    for (const child of children(e)) {
      const found = visit(child);
      if (found !== null) return found;
    }
    return null;
  };
  return visit(parsed.expr);
}

/** The parser's message without its `<input>:1:3:` prefix (the location is given as an excerpt). */
function syntaxMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const location = (err as { location?: { start?: { offset?: number } } }).location?.start?.offset;
  return message.replace(/^<input>:\d+:\d+: /, '') + (typeof location === 'number' ? ` (at character ${location + 1})` : '');
}

/** Where in an expression: `character 12 («…claims.lvl > …»)`. */
function excerpt(expr: string, offset: number): string {
  const start = Math.max(0, offset - 10);
  const text = expr.slice(start, offset + 20).replace(/\s+/g, ' ');
  return `character ${offset + 1} («${start > 0 ? '…' : ''}${text}${offset + 20 < expr.length ? '…' : ''}»)`;
}
