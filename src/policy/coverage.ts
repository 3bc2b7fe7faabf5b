// What a set of policy tests leaves untested: routes no case reached, attribute rules no case
// evaluated, and rules seen only one way (always holding, or never holding): half-tested.
import type { CompiledConfig } from '../config/compile.js';
import type { Route } from '../pipeline/exchange.js';
import type { Outcome } from './outcome.js';

export interface RouteRef {
  readonly route: string;
  readonly line: number | null;
}

export interface RuleRef extends RouteRef {
  readonly rule: string;
}

export interface CoverageReport {
  readonly routes: { readonly total: number; readonly reached: number; readonly unreached: readonly RouteRef[] };
  readonly rules: {
    readonly total: number;
    /** Rules no case evaluated. */
    readonly unevaluated: readonly RuleRef[];
    /** Rules every case that evaluated them saw hold: no case shows them refusing. */
    readonly neverFalse: readonly RuleRef[];
    /** Rules no case saw hold: no case shows them admitting. */
    readonly neverTrue: readonly RuleRef[];
  };
}

/** Where a route (or, given its index, one of its rules) is written: a line of the config, or null. */
export type RuleLocator = (route: Route, rule?: number) => number | null;

/** Collects the outcomes of a run; the config's own routes (not those the gateway adds) are what is covered. */
export class Coverage {
  private readonly routes: readonly Route[];
  private readonly reached = new Set<string>();
  private readonly held = new Set<string>();
  private readonly failed = new Set<string>();

  constructor(config: CompiledConfig, private readonly locate: RuleLocator) {
    this.routes = config.routes.filter((r) => r.index >= 0);
  }

  add(outcome: Outcome): void {
    if (outcome.route === null) return;
    this.reached.add(outcome.route);
    for (const r of outcome.rules) (r.held ? this.held : this.failed).add(key(outcome.route, r.rule));
  }

  report(): CoverageReport {
    const unreached: RouteRef[] = [];
    const unevaluated: RuleRef[] = [];
    const neverFalse: RuleRef[] = [];
    const neverTrue: RuleRef[] = [];
    let rules = 0;
    for (const route of this.routes) {
      const line = this.locate(route);
      if (!this.reached.has(route.name)) unreached.push({ route: route.name, line });
      for (const [i, rule] of (route.ruleNames ?? []).entries()) {
        rules += 1;
        const k = key(route.name, rule);
        const ref = { route: route.name, rule, line: this.locate(route, i) };
        const held = this.held.has(k);
        const failed = this.failed.has(k);
        if (!held && !failed) unevaluated.push(ref);
        else if (!failed) neverFalse.push(ref);
        else if (!held) neverTrue.push(ref);
      }
    }
    return {
      routes: { total: this.routes.length, reached: this.routes.length - unreached.length, unreached },
      rules: { total: rules, unevaluated, neverFalse, neverTrue },
    };
  }
}

const key = (route: string, rule: string): string => `${route}\0${rule}`;
