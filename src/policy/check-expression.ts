import type { parse } from '@bufbuild/cel';
import {
  assignable, BOOL, BYTES, DOUBLE, DURATION, DYN, INT, isNumeric, join, listOf, mapOf, NULL, STRING, TIMESTAMP, TYPE, typeName, UINT, type RuleType,
} from './rule-types.js';

/** A parsed CEL expression (the tree @bufbuild/cel's parser builds, macros expanded). */
export type ParsedRule = ReturnType<typeof parse>;
type Expr = ParsedRule['expr'];

/**
 * What the checker needs to know beyond CEL: the declared variables, and the facts some of them
 * are checked against — the route's path parameters, the headers a rule may not read, and how to
 * validate the literals a function takes (a CIDR, a time zone).
 */
export interface CheckEnvironment {
  readonly variables: ReadonlyMap<string, RuleType>;
  /** The route pattern's named parameters (`request.params.<name>`); null: not known (the pattern is wrong), not checked. */
  readonly params: ReadonlySet<string> | null;
  /** Why a rule may not read a header (lower-case name): what it carries and what to read instead; null: it may. */
  readonly headerProblem: (name: string) => string | null;
  /** Checks a CIDR literal; a message when it is wrong. */
  readonly checkCidr: (cidr: string) => string | null;
  /** Checks a time zone literal; a message when it is wrong. */
  readonly checkZone: (zone: string) => string | null;
  /** Checks a regular expression literal (`matches`); a message when it is wrong. */
  readonly checkPattern: (pattern: string) => string | null;
}

/** The budgets an expression must fit at load. */
export interface CostBudget {
  /** Most nodes of the expanded expression tree. */
  readonly maxNodes: number;
  /** Deepest nesting of comprehensions (exists, all, exists_one, map, filter). */
  readonly maxComprehensionDepth: number;
  /** Most estimated node evaluations: nodes inside a comprehension count once per element of the longest list a rule can see. */
  readonly maxCost: number;
  /** The longest list or map bound to a rule (roles, scopes, a claim's array or object); evaluations refuse longer ones. */
  readonly maxListLength: number;
}

/** What the checker learned of a valid expression: its type, cost, and what it reads. */
export interface CheckedRule {
  readonly type: RuleType;
  readonly nodes: number;
  readonly cost: number;
  /** Top-level variables the expression names. */
  readonly variables: ReadonlySet<string>;
  /** Fields of the declared objects the expression reads (`request.time`, `identity.roles`): only these are bound. */
  readonly fields: ReadonlySet<string>;
  /** Lower-case header names the expression reads (`request.headers`). */
  readonly headers: ReadonlySet<string>;
  /** CIDR literals passed to inCidr. */
  readonly cidrs: ReadonlySet<string>;
  /** Time zone literals passed to the time methods. */
  readonly zones: ReadonlySet<string>;
  /** Regular expression literals passed to `matches`. */
  readonly patterns: ReadonlySet<string>;
  /** Dotted paths from a variable to a string the expression selects (`identity.tenant`, `request.params.id`). */
  readonly stringPaths: ReadonlySet<string>;
  /** Names the expression's comprehensions bind (`r` in `roles.exists(r, …)`), which hide a variable of that name inside them. */
  readonly bound: ReadonlySet<string>;
}

/** A check failure: where in the expression (0-based character offset, or -1) and what is wrong. */
export class RuleCheckError extends Error {
  constructor(readonly offset: number, message: string) {
    super(message);
  }
}

const TIME_METHODS = new Set(['getFullYear', 'getMonth', 'getDayOfYear', 'getDayOfMonth', 'getDate', 'getDayOfWeek', 'getHours', 'getMinutes', 'getSeconds', 'getMilliseconds']);
const STRING_PREDICATES = new Set(['contains', 'startsWith', 'endsWith', 'matches']);
const COMPARISONS = new Set(['_<_', '_<=_', '_>_', '_>=_']);
const ARITHMETIC = new Set(['_-_', '_*_', '_/_', '_%_']);
const ORDERED = new Set(['int', 'uint', 'double', 'string', 'bytes', 'bool', 'timestamp', 'duration']);

/**
 * Type-checks a parsed expression against the gateway's declarations, counts its cost and collects
 * what it reads. Throws RuleCheckError on the first problem. The language is CEL; what is refused
 * beyond CEL's own typing is refused for the gateway's sake: reading a header other than by a
 * literal name (a rule must say which headers it looks at), a credential header, a parameter the
 * route pattern does not have, a CIDR or time zone that is not a valid literal.
 */
export function checkExpression(parsed: ParsedRule, env: CheckEnvironment, budget: CostBudget): CheckedRule {
  const positions = parsed.sourceInfo?.positions ?? {};
  const at = (e: Expr): number => positions[String(e.id)] ?? -1;
  const fail = (e: Expr, message: string): never => { throw new RuleCheckError(at(e), message); };
  const variables = new Set<string>();
  const fields = new Set<string>();
  const headers = new Set<string>();
  const cidrs = new Set<string>();
  const zones = new Set<string>();
  const patterns = new Set<string>();
  const stringPaths = new Set<string>();
  const bound = new Set<string>();
  let nodes = 0;
  let cost = 0;
  const scopes: Map<string, RuleType>[] = [];

  const isPath = (e: Expr, path: readonly string[]): boolean => {
    let cur: Expr = e;
    for (let i = path.length - 1; i > 0; i--) {
      if (cur.exprKind.case !== 'selectExpr' || cur.exprKind.value.testOnly || cur.exprKind.value.field !== path[i]) return false;
      const operand = cur.exprKind.value.operand;
      if (operand === undefined) return false;
      cur = operand;
    }
    return cur.exprKind.case === 'identExpr' && cur.exprKind.value.name === path[0] && lookupLocal(path[0]) === undefined;
  };
  /** `a.b.c` for selections down to a declared variable (not a comprehension's name), else null. */
  const variablePath = (e: Expr): string | null => {
    const kind = e.exprKind;
    if (kind.case === 'identExpr') return lookupLocal(kind.value.name) === undefined && env.variables.has(kind.value.name) ? kind.value.name : null;
    if (kind.case !== 'selectExpr' || kind.value.testOnly || kind.value.operand === undefined) return null;
    const operand = variablePath(kind.value.operand);
    return operand === null ? null : `${operand}.${kind.value.field}`;
  };
  const lookupLocal = (name: string): RuleType | undefined => {
    for (let i = scopes.length - 1; i >= 0; i--) {
      const t = scopes[i]?.get(name);
      if (t !== undefined) return t;
    }
    return undefined;
  };
  const literal = (e: Expr | undefined): string | null =>
    e !== undefined && e.exprKind.case === 'constExpr' && e.exprKind.value.constantKind.case === 'stringValue' ? e.exprKind.value.constantKind.value : null;

  const header = (e: Expr, name: string): RuleType => {
    const lower = name.toLowerCase();
    if (lower !== name) fail(e, `header names are read in lower case: request.headers["${lower}"]`);
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(lower)) fail(e, `"${name}" is not a header name`);
    const problem = env.headerProblem(lower);
    if (problem !== null) fail(e, `request.headers["${lower}"]: ${problem}`);
    headers.add(lower);
    fields.add('request.headers');
    return STRING;
  };
  const param = (e: Expr, name: string): RuleType => {
    fields.add('request.params');
    const params = env.params;
    if (params !== null && !params.has(name)) {
      fail(e, params.size === 0
        ? `request.params.${name}: the route's path pattern has no named parameters (write one like /orders/{${name}})`
        : `request.params.${name}: the route's path pattern has no parameter {${name}}; it has ${[...params].map((p) => `{${p}}`).join(', ')}`);
    }
    return STRING;
  };

  const check = (e: Expr, depth: number, weight: number): RuleType => {
    nodes++;
    cost += weight;
    if (nodes > budget.maxNodes) fail(e, `the expression has more than ${budget.maxNodes} nodes: split it into several named rules, or simplify it`);
    const kind = e.exprKind;
    switch (kind.case) {
      case 'constExpr': {
        const c = kind.value.constantKind;
        switch (c.case) {
          case 'boolValue': return BOOL;
          case 'int64Value': return INT;
          case 'uint64Value': return UINT;
          case 'doubleValue': return DOUBLE;
          case 'stringValue': return STRING;
          case 'bytesValue': return BYTES;
          case 'nullValue': return NULL;
          default: return fail(e, 'unsupported literal');
        }
      }
      case 'identExpr': {
        const name = kind.value.name;
        const local = lookupLocal(name);
        if (local !== undefined) return local;
        const declared = env.variables.get(name);
        if (declared === undefined) fail(e, `unknown variable "${name}": the variables are ${[...env.variables.keys()].join(', ')}`);
        variables.add(name);
        return declared ?? DYN;
      }
      case 'selectExpr': {
        const { operand, field, testOnly } = kind.value;
        if (operand === undefined) return fail(e, 'a selection without an operand');
        if (isPath(e, ['request', 'headers'])) return fail(e, 'request.headers can be read only by a header\'s name: request.headers["x-tenant"], or "x-tenant" in request.headers');
        if (isPath(operand, ['request', 'headers'])) {
          check(operand.exprKind.case === 'selectExpr' && operand.exprKind.value.operand !== undefined ? operand.exprKind.value.operand : operand, depth, weight);
          const t = header(e, field);
          return testOnly ? BOOL : t;
        }
        if (isPath(operand, ['request', 'params'])) param(e, field);
        const t = check(operand, depth, weight);
        const result = select(e, t, field);
        if (testOnly) return BOOL;
        if (result.kind === 'string') {
          const path = variablePath(e);
          if (path !== null) stringPaths.add(path);
        }
        return result;
      }
      case 'callExpr': return call(e, kind.value.function, kind.value.target, kind.value.args, depth, weight);
      case 'listExpr': {
        let element: RuleType | null = null;
        for (const el of kind.value.elements) {
          const t = asValue(el, check(el, depth, weight));
          element = element === null ? t : join(element, t);
        }
        return listOf(element ?? DYN);
      }
      case 'structExpr': {
        if (kind.value.messageName !== '') return fail(e, `message types are not available in rules (${kind.value.messageName}); use a map literal like {"a": 1}`);
        let key: RuleType | null = null;
        let value: RuleType | null = null;
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case !== 'mapKey' || entry.value === undefined) return fail(e, 'a map entry needs a key and a value');
          const k = asValue(entry.keyKind.value, check(entry.keyKind.value, depth, weight));
          const v = asValue(entry.value, check(entry.value, depth, weight));
          key = key === null ? k : join(key, k);
          value = value === null ? v : join(value, v);
        }
        return mapOf(key ?? DYN, value ?? DYN);
      }
      case 'comprehensionExpr': {
        const c = kind.value;
        if (depth + 1 > budget.maxComprehensionDepth) {
          fail(e, `comprehensions (exists, all, exists_one, map, filter) nest at most ${budget.maxComprehensionDepth} deep here: each level multiplies the work by the length of a list; rewrite without the inner one`);
        }
        if (c.iterRange === undefined || c.accuInit === undefined || c.loopCondition === undefined || c.loopStep === undefined || c.result === undefined) {
          return fail(e, 'an incomplete comprehension');
        }
        if (isPath(c.iterRange, ['request', 'headers'])) fail(c.iterRange, 'request.headers can be read only by a header\'s name, not iterated');
        const range = check(c.iterRange, depth, weight);
        let iter: RuleType;
        if (range.kind === 'list') iter = range.element;
        else if (range.kind === 'map') iter = range.key;
        else if (range.kind === 'dyn') iter = DYN;
        else return fail(c.iterRange, `${typeName(range)} cannot be iterated: exists, all, map and filter take a list or a map`);
        const accu = check(c.accuInit, depth, weight);
        const inner = weight * budget.maxListLength;
        bound.add(c.iterVar).add(c.accuVar);
        scopes.push(new Map([[c.accuVar, accu], [c.iterVar, iter]]));
        const condition = check(c.loopCondition, depth + 1, inner);
        const step = check(c.loopStep, depth + 1, inner);
        scopes.pop();
        if (!assignable(condition, BOOL)) fail(c.loopCondition, 'the loop condition must be a bool');
        scopes.push(new Map([[c.accuVar, join(accu, step)]]));
        const result = check(c.result, depth, weight);
        scopes.pop();
        return result;
      }
      default: return fail(e, 'an empty expression');
    }
  };

  // `request`, `client` and `identity` are read by their fields only: passed on as a value
  // (`[request].exists(r, r.headers["authorization"] != "")`, `dyn(request).params.nope`) the
  // fields would escape the checks made on them by name (headers, path parameters).
  const asValue = (e: Expr, t: RuleType): RuleType => {
    if (t.kind === 'object') fail(e, `${t.name} is read by its fields (like ${t.name}.${[...t.fields.keys()][0] ?? 'field'}), not passed on as a value`);
    return t;
  };

  const select = (e: Expr, t: RuleType, field: string): RuleType => {
    if (t.kind === 'object') {
      const f = t.fields.get(field);
      if (f === undefined) fail(e, `${t.name} has no field "${field}": it has ${[...t.fields.keys()].join(', ')}`);
      fields.add(`${t.name}.${field}`);
      return f ?? DYN;
    }
    if (t.kind === 'map') {
      if (!assignable(t.key, STRING)) fail(e, `.${field} selects a string key, but the map's keys are ${typeName(t.key)}`);
      return t.value;
    }
    if (t.kind === 'dyn') return DYN;
    return fail(e, `${typeName(t)} has no fields (.${field})`);
  };

  const call = (e: Expr, fn: string, target: Expr | undefined, args: readonly Expr[], depth: number, weight: number): RuleType => {
    const arg = (i: number): Expr => args[i] ?? fail(e, `${fn} needs ${i + 1} arguments`);
    // Forms whose arguments are checked specially: a header read by name, literal CIDRs and zones.
    if (fn === '_[_]' && target === undefined && args.length === 2 && isPath(arg(0), ['request', 'headers'])) {
      const name = literal(arg(1));
      if (name === null) return fail(arg(1), 'request.headers can be read only by a literal header name, like request.headers["x-tenant"]');
      variables.add('request');
      nodes += 3;
      return header(e, name);
    }
    if (fn === '@in' && target === undefined && args.length === 2 && isPath(arg(1), ['request', 'headers'])) {
      const name = literal(arg(0));
      if (name === null) return fail(arg(0), 'whether a header is present is asked by its literal name, like "x-tenant" in request.headers');
      variables.add('request');
      nodes += 3;
      header(e, name);
      return BOOL;
    }
    if (fn === '_[_]' && target === undefined && args.length === 2 && isPath(arg(0), ['request', 'params'])) {
      const name = literal(arg(1));
      if (name !== null) param(arg(1), name);
    }
    if (fn === 'inCidr' && target === undefined && args.length === 2) {
      const cidr = literal(arg(1));
      if (cidr === null) return fail(arg(1), 'inCidr takes the range as a literal, like inCidr(client.ip, "10.0.0.0/8"), so it is checked and compiled at load');
      const problem = env.checkCidr(cidr);
      if (problem !== null) return fail(arg(1), problem);
      cidrs.add(cidr);
    }
    if (TIME_METHODS.has(fn) && target !== undefined && args.length === 1) {
      const zone = literal(arg(0));
      if (zone === null) return fail(arg(0), `${fn} takes the time zone as a literal, like ${fn}("Europe/Berlin"), so it is checked at load`);
      const problem = env.checkZone(zone);
      if (problem !== null) return fail(arg(0), problem);
      zones.add(zone);
    }
    // A pattern from a header or claim would be compiled on every evaluation (inside a comprehension,
    // once per element), and a wrong one would refuse every request: patterns are literals, compiled once.
    if (fn === 'matches' && target !== undefined && args.length === 1) {
      const pattern = literal(arg(0));
      if (pattern === null) return fail(arg(0), 'matches takes the regular expression as a literal, like request.path.matches("^/v[0-9]+/"), so it is checked and compiled at load');
      const problem = env.checkPattern(pattern);
      if (problem !== null) return fail(arg(0), problem);
      patterns.add(pattern);
    }
    const t = target === undefined ? undefined : check(target, depth, weight);
    const a = args.map((x) => check(x, depth, weight));
    const result = overload(fn, t, a);
    if (typeof result === 'string') return fail(e, result);
    if (target !== undefined && t !== undefined) asValue(target, t);
    args.forEach((x, i) => asValue(x, a[i] ?? DYN));
    // `in` a list, equality between two lists (or maps, or claim values that may be either) and
    // joining lists walk their operands: a node whose work grows with a list's length counts once
    // per element, so `roles.exists(r, r in claims.allowed)` is priced as the 1000 x 1000 steps it
    // can take. A literal operand is exempt: its length is in the node count already.
    if (growsWithList(fn, args, a)) cost += weight * budget.maxListLength;
    return result;
  };

  const type = check(parsed.expr, 0, 1);
  if (cost > budget.maxCost) {
    throw new RuleCheckError(-1, `the expression's worst case is ${cost} steps (a comprehension's body counts once per element, up to ${budget.maxListLength}, and so does \`in\` a list, == between lists and joining lists), above the budget of ${budget.maxCost}: simplify what the comprehensions do, or split the rule`);
  }
  return { type, nodes, cost, variables, fields, headers, cidrs, zones, patterns, stringPaths, bound };
}

/** The result type of a call, or a message saying why no overload takes these operands. */
function overload(fn: string, target: RuleType | undefined, a: readonly RuleType[]): RuleType | string {
  const names = (): string => a.map(typeName).join(', ');
  const [x, y, z] = a;
  const noMatch = (): string => `no ${display(fn)} takes (${names()})`;
  if (target === undefined) {
    if (a.length === 1 && x !== undefined) {
      switch (fn) {
        case '!_': case '@not_strictly_false': return assignable(x, BOOL) ? BOOL : noMatch();
        case '-_': return isNumeric(x) && x.kind !== 'uint' ? x : x.kind === 'dyn' ? DYN : noMatch();
        case 'size': return sized(x) ? INT : noMatch();
        case 'int': return castable(x, ['int', 'uint', 'double', 'string', 'timestamp']) ? INT : noMatch();
        case 'uint': return castable(x, ['int', 'uint', 'double', 'string']) ? UINT : noMatch();
        case 'double': return castable(x, ['int', 'uint', 'double', 'string']) ? DOUBLE : noMatch();
        case 'string': return castable(x, ['int', 'uint', 'double', 'string', 'bytes', 'bool', 'timestamp', 'duration']) ? STRING : noMatch();
        case 'bool': return castable(x, ['bool', 'string']) ? BOOL : noMatch();
        case 'bytes': return castable(x, ['bytes', 'string']) ? BYTES : noMatch();
        case 'timestamp': return castable(x, ['timestamp', 'string', 'int']) ? TIMESTAMP : noMatch();
        case 'duration': return castable(x, ['duration', 'string']) ? DURATION : noMatch();
        case 'type': return TYPE;
        case 'dyn': return DYN;
        default: break;
      }
    }
    if (a.length === 2 && x !== undefined && y !== undefined) {
      if (fn === '_&&_' || fn === '_||_') return assignable(x, BOOL) && assignable(y, BOOL) ? BOOL : noMatch();
      if (fn === '_==_' || fn === '_!=_') return comparable(x, y) ? BOOL : `${typeName(x)} and ${typeName(y)} are never equal: compare values of one type (a claim is dyn; convert with int(), string())`;
      if (COMPARISONS.has(fn)) return ordered(x, y) ? BOOL : noMatch();
      if (fn === '_+_') return plus(x, y) ?? noMatch();
      if (ARITHMETIC.has(fn)) {
        if (fn === '_-_' && x.kind === 'timestamp' && y.kind === 'timestamp') return DURATION;
        if (fn === '_-_' && x.kind === 'timestamp' && y.kind === 'duration') return TIMESTAMP;
        if (fn === '_-_' && x.kind === 'duration' && y.kind === 'duration') return DURATION;
        if (fn === '_%_' && (x.kind === 'double' || y.kind === 'double')) return noMatch();
        return (isNumeric(x) || x.kind === 'dyn') && assignable(x, y) && (isNumeric(y) || y.kind === 'dyn') ? (x.kind === 'dyn' ? y : x) : noMatch();
      }
      if (fn === '_[_]') {
        if (x.kind === 'list') return assignable(y, INT) ? x.element : `a list is indexed by an int, not ${typeName(y)}`;
        if (x.kind === 'map') return assignable(y, x.key) ? x.value : `this map's keys are ${typeName(x.key)}, not ${typeName(y)}`;
        if (x.kind === 'dyn') return DYN;
        return `${typeName(x)} cannot be indexed`;
      }
      if (fn === '@in') {
        if (y.kind === 'list') return comparable(x, y.element) ? BOOL : `${typeName(x)} is never in a ${typeName(y)}`;
        if (y.kind === 'map') return comparable(x, y.key) ? BOOL : `${typeName(x)} is never a key of a ${typeName(y)}`;
        if (y.kind === 'dyn') return BOOL;
        return `"in" takes a list or a map on its right, not ${typeName(y)}`;
      }
      if (fn === 'inCidr') return assignable(x, STRING) && assignable(y, STRING) ? BOOL : noMatch();
    }
    if (fn === '_?_:_' && a.length === 3 && x !== undefined && y !== undefined && z !== undefined) {
      if (!assignable(x, BOOL)) return 'the condition of ?: must be a bool';
      return join(y, z);
    }
    return `unknown ${display(fn)} with ${a.length} argument${a.length === 1 ? '' : 's'} (${names()}); see the functions rules may call in the policy docs`;
  }
  // Methods.
  if (STRING_PREDICATES.has(fn) && a.length === 1 && x !== undefined) {
    return assignable(target, STRING) && assignable(x, STRING) ? BOOL : `no ${fn} on ${typeName(target)} taking (${names()})`;
  }
  if (fn === 'size' && a.length === 0) return sized(target) ? INT : `${typeName(target)} has no size`;
  if (TIME_METHODS.has(fn) && a.length <= 1) {
    if (target.kind === 'duration' && a.length === 0 && ['getHours', 'getMinutes', 'getSeconds', 'getMilliseconds'].includes(fn)) return INT;
    return (target.kind === 'timestamp' || target.kind === 'dyn') && (x === undefined || assignable(x, STRING)) ? INT : `no ${fn} on ${typeName(target)} taking (${names()})`;
  }
  return `unknown method ${fn} on ${typeName(target)} with ${a.length} argument${a.length === 1 ? '' : 's'}; see the functions rules may call in the policy docs`;
}

const COLLECTION_KINDS = new Set(['list', 'map', 'dyn']);

/** Whether an operator's work grows with the length of a list it is given (not one written as a literal). */
function growsWithList(fn: string, args: readonly Expr[], types: readonly RuleType[]): boolean {
  const literal = (i: number): boolean => {
    const kind = args[i]?.exprKind.case;
    return kind === 'listExpr' || kind === 'structExpr' || kind === 'constExpr';
  };
  const kind = (i: number): string => types[i]?.kind ?? '';
  switch (fn) {
    case '@in': return !literal(1) && (kind(1) === 'list' || kind(1) === 'dyn');
    case '_==_': case '_!=_': return !literal(0) && !literal(1) && COLLECTION_KINDS.has(kind(0)) && COLLECTION_KINDS.has(kind(1));
    case '_+_': return !(literal(0) && literal(1)) && (kind(0) === 'list' || kind(1) === 'list' || (kind(0) === 'dyn' && kind(1) === 'dyn'));
    default: return false;
  }
}

/** `_==_` as a reader wrote it: `==`. */
function display(fn: string): string {
  const operator = /^_(.+)_$/.exec(fn);
  if (operator !== null) return `operator ${(operator[1] ?? fn).replace(/_/g, '')}`;
  return fn === '@in' ? 'operator in' : fn === '!_' ? 'operator !' : fn === '-_' ? 'operator -' : `function ${fn}`;
}

function sized(t: RuleType): boolean {
  return ['string', 'bytes', 'list', 'map', 'dyn'].includes(t.kind);
}

function castable(t: RuleType, from: readonly string[]): boolean {
  return t.kind === 'dyn' || from.includes(t.kind);
}

/** CEL compares numbers across int, uint and double; every other pair must be of one type. */
function comparable(a: RuleType, b: RuleType): boolean {
  if (isNumeric(a) && isNumeric(b)) return true;
  if (a.kind === 'null' || b.kind === 'null') return true;
  return assignable(a, b);
}

function ordered(a: RuleType, b: RuleType): boolean {
  if (a.kind === 'dyn' || b.kind === 'dyn') return a.kind === 'dyn' ? b.kind === 'dyn' || ORDERED.has(b.kind) : ORDERED.has(a.kind);
  if (isNumeric(a) && isNumeric(b)) return true;
  return a.kind === b.kind && ORDERED.has(a.kind);
}

function plus(a: RuleType, b: RuleType): RuleType | null {
  if (a.kind === 'dyn') return b.kind === 'dyn' || ['int', 'uint', 'double', 'string', 'bytes', 'list'].includes(b.kind) ? (b.kind === 'dyn' ? DYN : b) : null;
  if (b.kind === 'dyn') return plus(b, a);
  if (a.kind === 'list' && b.kind === 'list') return listOf(join(a.element, b.element));
  if (a.kind === 'timestamp' && b.kind === 'duration') return TIMESTAMP;
  if (a.kind === 'duration' && b.kind === 'timestamp') return TIMESTAMP;
  if (a.kind === 'duration' && b.kind === 'duration') return DURATION;
  if (a.kind === b.kind && ['int', 'uint', 'double', 'string', 'bytes'].includes(a.kind)) return a;
  return null;
}
