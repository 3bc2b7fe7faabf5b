import { RE2JS } from '@bufbuild/re2';

/**
 * The regular-expression engine request schemas run on: RE2 semantics (linear time in the input,
 * no backtracking), so a schema's `pattern` cannot be turned against the gateway with input crafted
 * for catastrophic backtracking (ReDoS, CWE-1333). Patterns RE2 cannot express (lookaround,
 * backreferences) are refused when the schema is compiled, at load, never at request time.
 */
export interface LinearRegExp {
  test(input: string): boolean;
}

/** Ajv's `code.regExp` engine: `(pattern, flags) => { test }`, with `code` for standalone output. */
export interface RegExpEngine {
  (pattern: string, flags: string): LinearRegExp;
  code: string;
}

class Re2Pattern implements LinearRegExp {
  private readonly re: RE2JS;

  constructor(private readonly source: string, private readonly flags: string) {
    this.re = new RE2JS(source);
  }

  test(input: string): boolean {
    return this.re.test(input);
  }

  /** Ajv keys compiled patterns by this text: it must differ between patterns. */
  toString(): string {
    return `/${this.source}/${this.flags}`;
  }
}

/** Compiles `pattern` as RE2; throws an Error naming the pattern when RE2 cannot express it. */
export function linearRegExp(pattern: string, flags = ''): LinearRegExp {
  try {
    return new Re2Pattern(pattern, flags);
  } catch (err) {
    throw new Error(`pattern "${pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern}" is not supported (${(err as Error).message}); patterns run in linear time (RE2 syntax: no lookaround or backreferences)`);
  }
}

/** The engine to give Ajv (`new Ajv({ code: { regExp: LINEAR_REGEXP } })`). */
export const LINEAR_REGEXP: RegExpEngine = Object.assign((pattern: string, flags: string) => linearRegExp(pattern, flags), { code: 'linearRegExp' });
