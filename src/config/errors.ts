/** Where a config problem is: file, 1-based line and column, and the option's path (`routes[2].match.path`). */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly option: string;
  readonly message: string;
}

/** Every problem found in a config, all at once, so a user fixes them in one pass. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return p.option === '' ? `${where}: ${p.message}` : `${where}: ${p.option}: ${p.message}`;
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
