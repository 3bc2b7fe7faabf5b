import { isCelError, type CelResult } from '@bufbuild/cel';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Explained, RuleOutcome, Stage } from '../pipeline/exchange.js';
import type { Identity } from '../authn/identity.js';
import { extractParams, type PathPattern } from '../routing/pattern.js';
import { MAX_CLAIM_DEPTH } from './rule-environment.js';
import type { Clock } from '../lib/clock.js';

/** One attribute rule, compiled: its name, where the config defines it, and its planned expression. */
export interface CompiledRule {
  readonly name: string;
  /** `gateway.yaml:42`: where the rule is written (the config file's name and line), for the audit record and messages. */
  readonly where: string;
  /** Evaluates the rule over a request's variables (read as properties of `bindings`). */
  readonly evaluate: (bindings: object) => CelResult;
}

/** A route's rules and what they read, so a request builds only the values its rules read. */
export interface RuleSet {
  /** The route's name, for the metrics. */
  readonly route: string;
  readonly rules: readonly CompiledRule[];
  readonly pattern: PathPattern;
  /** Fields of `request`, `client` and `identity` the rules read (`request.time`): only these are bound. */
  readonly fields: ReadonlySet<string>;
  /** Lower-case header names the rules read; no other header is given to them. */
  readonly headers: readonly string[];
  /** Dotted paths to strings the rules select (`identity.tenant`), none under a name a comprehension binds: bound by their dotted names (see bindingsFor). */
  readonly stringPaths: readonly string[];
  /** The longest list or map given to a rule (RULE_BUDGET.maxListLength). */
  readonly maxListLength: number;
}

/** Why the variables for a request could not be built: the rule cannot be evaluated, and the request is refused. */
class BindingError extends Error {}

/**
 * Evaluates a route's attribute rules, in order; all must hold. A rule that is false ends the
 * request with 403 `policy_denied` naming it; a rule that cannot be evaluated (a missing claim, a
 * value of the wrong type, an input over the bounds) ends it the same way: rules fail closed. The
 * audit record names the rule (`rule`), the metrics count the denial by route and rule.
 */
export function rulesStage(set: RuleSet, clock: Clock): Stage {
  const Bindings = bindingsFor(set);
  const evaluateRules = (ex: Exchange, outcomes: RuleOutcome[] | null): { rule: string; denial: Denial } | undefined =>
    evaluateInOrder(set.rules, new Bindings(set, ex, clock), outcomes);
  return {
    name: 'rules',
    run(ex): Denial | undefined {
      const outcome = evaluateRules(ex, null);
      if (outcome === undefined) return undefined;
      ex.rule = outcome.rule;
      ex.tally?.rule?.(set.route, outcome.rule);
      return outcome.denial;
    },
    explain(ex): Explained {
      const outcomes: RuleOutcome[] = [];
      const outcome = evaluateRules(ex, outcomes);
      if (outcome !== undefined) ex.rule = outcome.rule;
      return {
        result: outcome?.denial,
        note: outcome === undefined ? `all ${set.rules.length} rule${set.rules.length === 1 ? '' : 's'} hold` : outcome.denial.reason,
        rules: outcomes,
      };
    },
  };
}

function evaluateInOrder(rules: readonly CompiledRule[], bindings: RuleBindings, outcomes: RuleOutcome[] | null): { rule: string; denial: Denial } | undefined {
  for (const rule of rules) {
    const result = rule.evaluate(bindings);
    const held = result === true;
    outcomes?.push({ rule: rule.name, held });
    if (held) continue;
    if (result === false) return { rule: rule.name, denial: deny('policy_denied', `rule ${rule.name} (${rule.where}) does not hold`) };
    const why = isCelError(result) ? result.message : `it gave ${typeof result === 'object' ? 'a value' : typeof result}, not a bool`;
    return { rule: rule.name, denial: deny('policy_denied', `rule ${rule.name} (${rule.where}) could not be evaluated: ${why.slice(0, 200)}`) };
  }
  return undefined;
}

/**
 * The variables of one request, each built when a rule first reads it (CEL's activation reads a
 * variable by property). A variable that cannot be built throws, inside the evaluation of the rule
 * that read it: that rule fails, and is named. `request.method` is the method the upstream acts on
 * (a forwarded method override's), `request.path` the canonical path that was matched and is
 * forwarded, `request.params` the route pattern's parameters decoded, `request.headers` only the
 * headers the rules name (each arrived at most once: the header pass refuses a repeated one),
 * `request.time` the fixed time of `explain` or the gateway clock's now. Only the fields the rules
 * read are built.
 */
class RuleBindings {
  private requestValue: ReadonlyMap<string, unknown> | null = null;
  private clientValue: ReadonlyMap<string, unknown> | null = null;

  constructor(private readonly set: RuleSet, private readonly ex: Exchange, private readonly clock: Clock) {}

  get request(): ReadonlyMap<string, unknown> {
    return this.requestValue ??= requestValue(this.set, this.ex, this.clock);
  }

  get client(): ReadonlyMap<string, unknown> {
    return this.clientValue ??= new Map([['ip', this.ex.clientIp]]);
  }

  get identity(): ReadonlyMap<string, unknown> {
    return identityValues(this.authenticated(), this.set.maxListLength).identity();
  }

  get claims(): ReadonlyMap<string, unknown> {
    return identityValues(this.authenticated(), this.set.maxListLength).claims();
  }

  private authenticated(): Identity {
    const identity = this.ex.identity;
    if (identity === null) throw new BindingError('the request has no identity');
    return identity;
  }

  /** The value at `path` (a variable, then map entries), or undefined where it is not simply there. */
  valueAt(path: readonly string[]): unknown {
    let value: unknown;
    try {
      value = this.variable(path[0]);
    } catch {
      return undefined;
    }
    for (let i = 1; i < path.length && value !== undefined; i++) value = value instanceof Map ? value.get(path[i]) : undefined;
    return value;
  }

  private variable(name: string | undefined): unknown {
    switch (name) {
      case 'request': return this.request;
      case 'client': return this.client;
      case 'identity': return this.identity;
      case 'claims': return this.claims;
      default: return undefined;
    }
  }
}

/**
 * The bindings of a rule set. CEL reads `identity.tenant` by first asking for a variable named
 * `identity.tenant`, then for a type of that name, and only then for `identity` and its field: two
 * failed lookups for every such read, on every request. So each dotted path to a string the rules
 * select is also bound under its dotted name, and the first lookup answers with the same value.
 * Where that value is not simply there (an absent claim or tenant, a variable that cannot be
 * built), the dotted name answers nothing and CEL reads the path the long way, with its own error.
 * Paths under a name a comprehension binds are left out (compile-rules): inside the comprehension
 * CEL would ask the bindings for the dotted name of its own variable.
 */
function bindingsFor(set: RuleSet): new (set: RuleSet, ex: Exchange, clock: Clock) => RuleBindings {
  const Bindings = class extends RuleBindings {};
  for (const dotted of set.stringPaths) {
    const path = dotted.split('.');
    Object.defineProperty(Bindings.prototype, dotted, {
      get(this: RuleBindings): unknown { return this.valueAt(path); },
    });
  }
  return Bindings;
}

function requestValue(set: RuleSet, ex: Exchange, clock: Clock): ReadonlyMap<string, unknown> {
  const target = ex.target;
  if (target === null) throw new BindingError('the request has no target');
  const f = set.fields;
  const request = new Map<string, unknown>();
  if (f.has('request.method')) request.set('method', ex.methodOverride ?? ex.req.method ?? '');
  if (f.has('request.path')) request.set('path', target.path);
  if (f.has('request.params')) {
    const params = new Map<string, string>();
    for (const [name, value] of Object.entries(extractParams(set.pattern, target.segments))) {
      // Segments are canonical: what remains percent-encoded decodes to valid UTF-8.
      params.set(name, decodeURIComponent(value));
    }
    request.set('params', params);
  }
  if (f.has('request.headers')) {
    const headers = new Map<string, string>();
    for (const name of set.headers) {
      const value = ex.req.headers[name];
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value)) throw new BindingError(`header ${name} is repeated`);
    }
    request.set('headers', headers);
  }
  if (f.has('request.time')) request.set('time', timestampFromMs(ex.fixedTime ?? clock.now()));
  return request;
}

/** An identity's values as rules see them, built on first use and kept with the (frozen) identity. */
interface IdentityValues {
  identity(): ReadonlyMap<string, unknown>;
  claims(): ReadonlyMap<string, unknown>;
}

/**
 * Identities outlive requests when an authenticator caches them (a verified token, an API key), so
 * their CEL values are built once per identity, not per request; a value that cannot be built
 * (over the bounds) is remembered as the error it is.
 */
const IDENTITY_VALUES = new WeakMap<Identity, IdentityValues>();

function identityValues(identity: Identity, maxListLength: number): IdentityValues {
  const known = IDENTITY_VALUES.get(identity);
  if (known !== undefined) return known;
  const lazily = <T>(build: () => T): (() => T) => {
    let result: { value: T } | { error: unknown } | null = null;
    return () => {
      if (result === null) {
        try { result = { value: build() }; } catch (error) { result = { error }; }
      }
      if ('error' in result) throw result.error;
      return result.value;
    };
  };
  const values: IdentityValues = {
    identity: lazily(() => {
      const m = new Map<string, unknown>([
        ['sub', identity.subject],
        ['roles', boundedList(identity.roles, 'identity.roles', maxListLength)],
        ['scopes', boundedList(identity.scopes, 'identity.scopes', maxListLength)],
        ['method', identity.method],
      ]);
      // Absent facts are absent keys: reading one is an evaluation error (the rule fails); has() asks first.
      if (identity.tenant !== null) m.set('tenant', identity.tenant);
      if (identity.keyId !== null) m.set('keyId', identity.keyId);
      if (identity.tier !== null) m.set('tier', identity.tier);
      return m;
    }),
    claims: lazily(() => claimValue(identity.claims ?? {}, 'claims', 0, maxListLength) as ReadonlyMap<string, unknown>),
  };
  IDENTITY_VALUES.set(identity, values);
  return values;
}

function boundedList(list: readonly string[], what: string, max: number): readonly string[] {
  if (list.length > max) throw new BindingError(`${what} has more than ${max} elements`);
  return list;
}

/**
 * A verified claim as a CEL value: objects as maps, arrays as lists, whole numbers as int (so
 * `claims.level >= 3` compares integers), other numbers as double. Bounded: a list or map longer
 * than `max`, or nesting deeper than MAX_CLAIM_DEPTH, is refused (the rule fails closed rather
 * than judging part of a value).
 */
function claimValue(value: unknown, path: string, depth: number, max: number): unknown {
  if (depth > MAX_CLAIM_DEPTH) throw new BindingError(`${path} nests deeper than ${MAX_CLAIM_DEPTH}`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) {
    if (value.length > max) throw new BindingError(`${path} has more than ${max} elements`);
    return value.map((v: unknown, i) => claimValue(v, `${path}[${i}]`, depth + 1, max));
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length > max) throw new BindingError(`${path} has more than ${max} members`);
    return new Map(entries.map(([k, v]) => [k, claimValue(v, `${path}.${k.slice(0, 64)}`, depth + 1, max)]));
  }
  throw new BindingError(`${path} is not a JSON value`);
}
