import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawConfig } from './schema.js';

/** `audit.nats`, compiled. */
export type NatsSinkOptions = Readonly<Record<string, never>>;

/** `audit.http`, compiled. */
export type HttpSinkOptions = Readonly<Record<string, never>>;

// eslint-disable-next-line @typescript-eslint/no-unused-vars -- the section's checks report through them as it grows
export function compileAuditSinks(raw: RawConfig, loaded: LoadedConfig, problems: ConfigProblem[]): { nats: NatsSinkOptions | null; http: HttpSinkOptions | null } {
  return { nats: raw.audit?.nats === undefined ? null : {}, http: raw.audit?.http === undefined ? null : {} };
}
