import { compileConfig } from '../../src/config/compile.js';
import { ConfigError, formatProblem } from '../../src/config/errors.js';
import { loadConfigText } from '../../src/config/load.js';

/** Every problem a config text produces, formatted as the CLI prints them (empty when valid). */
export function configProblems(text: string, env: NodeJS.ProcessEnv = {}, file = 'gateway.yaml'): string[] {
  try {
    compileConfig(loadConfigText(text, file, env));
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(formatProblem);
    throw err;
  }
  return [];
}
