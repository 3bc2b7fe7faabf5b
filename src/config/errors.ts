/** Where a config problem is: file, 1-based line and column, and the option's path (`routes[2].match.path`). */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly option: string;
  readonly message: string;
}

/** The most problems a ConfigError keeps: a config broken everywhere still gets an answer of bounded size. */
export const MAX_PROBLEMS = 100;

/**
 * Every problem found in a config, all at once, so a user fixes them in one pass; beyond
 * MAX_PROBLEMS, the first ones and a last line saying how many more there are (the CLI, reload
 * answers and logs all print `problems`, so none of them grows with the size of the mistake).
 */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  /** How many problems were found, shown or not. */
  readonly total: number;

  constructor(problems: readonly ConfigProblem[]) {
    const shown = problems.length > MAX_PROBLEMS ? [...problems.slice(0, MAX_PROBLEMS), more(problems)] : problems;
    super(shown.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = shown;
    this.total = problems.length;
  }
}

function more(problems: readonly ConfigProblem[]): ConfigProblem {
  const rest = problems.length - MAX_PROBLEMS;
  return { file: problems[MAX_PROBLEMS]?.file ?? '', line: 0, column: 0, option: '', message: `${rest} more problem${rest === 1 ? '' : 's'} not shown: fix the ones above and check again` };
}

/**
 * One problem on one line. A key, a path or a value the config spells with control characters
 * (`"\e[2J\nfake.yaml:1:1: ok": 1`) is shown with them escaped, so it can neither drive the
 * terminal nor forge a line of its own.
 */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  const line = p.option === '' ? `${where}: ${p.message}` : `${where}: ${p.option}: ${p.message}`;
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `['routes', 2, 'match', 'path']` → `routes[2].match.path`. */
export function optionPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? key : `.${key}`;
  }
  return out;
}
