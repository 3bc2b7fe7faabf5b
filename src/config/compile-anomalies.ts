import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig } from './schema.js';

/** `audit.anomalies`, compiled. */
export type AnomalyOptions = Readonly<Record<string, never>>;

// eslint-disable-next-line @typescript-eslint/no-unused-vars -- the section's checks report through them as it grows
export function compileAnomalies(raw: RawConfig, loaded: LoadedConfig, problems: ConfigProblem[]): AnomalyOptions | null {
  return raw.audit?.anomalies === undefined ? null : {};
}
