import { createHash } from 'node:crypto';
import type { CompiledConfig, Limits } from '../config/compile.js';

/** How a compiled setting takes effect when the config is reloaded. */
type Applies = 'live' | 'restart' | 'identity';

/**
 * How every top-level setting of a compiled config takes effect on reload: `live` (swapped in
 * with the next request), `restart` (bound once at start: listeners, the audit trail, the
 * logger), or `identity` (what the config is, not a setting). The type is exhaustive, so a setting
 * added to CompiledConfig does not compile until it is classified here; `limits` is classified
 * option by option.
 */
const APPLIES: { readonly [K in Exclude<keyof CompiledConfig, 'limits'>]: Applies } & { readonly limits: { readonly [L in keyof Limits]: Applies } } = {
  file: 'identity',
  version: 'identity',
  // The audit trail and the embedded stores' files; a reload keeps the running directory for all of them.
  dataDir: 'restart',
  listen: 'restart',
  // Certificates and TLS settings are swapped into the running HTTPS listener; its address is `listen`.
  tls: 'live',
  certificates: 'live',
  expiryWarningDays: 'live',
  // The watch follows the config in effect; the files it polls are those the new config read.
  reload: 'live',
  files: 'live',
  admin: 'restart',
  audit: 'restart',
  logLevel: 'restart',
  limits: {
    // node:http fixes it when the listener is created; the other limits are re-applied to running listeners.
    maxHeaderBytes: 'restart',
    maxHeaderCount: 'live',
    maxUrlBytes: 'live',
    maxBodyBytes: 'live',
    headersTimeoutMs: 'live',
    requestTimeoutMs: 'live',
    keepAliveTimeoutMs: 'live',
    maxConnections: 'live',
    bodyIdleTimeoutMs: 'live',
    writeIdleTimeoutMs: 'live',
    minBodyBytesPerSecond: 'live',
    bufferBodyBytes: 'live',
  },
  // A reload that rotates the assertion keys signs with the new first key and publishes the new set at once.
  identityAssertion: 'live',
  // A resource: a reload with other tracing settings starts a new tracer and retires the old one (its queue flushed).
  tracer: 'live',
  target: 'live',
  trustedProxies: 'live',
  ipRules: 'live',
  // A changed database file is a new config version: the reload looks addresses up in the new data.
  geo: 'live',
  requestIdHeader: 'live',
  headerPolicy: 'live',
  credentialQueryParams: 'live',
  removedQueryParams: 'live',
  upstreams: 'live',
  upstreamPools: 'live',
  resources: 'live',
  authenticators: 'live',
  identityHeaders: 'live',
  apiKeys: 'live',
  // The revocation list and the token hash key are resources kept across reloads; the webhook's secret and the default TTL apply at once.
  oauth: 'live',
  rateLimiting: 'live',
  routes: 'live',
  router: 'live',
  securityHeaders: 'live',
  drainTimeoutMs: 'live',
};

/** Compiled names whose option in gateway.yaml is spelled otherwise. */
const OPTION_NAMES: Readonly<Record<string, string>> = { logLevel: 'log.level' };

/** The restart-only settings of a config, as plain data: what a running gateway keeps until it restarts. */
export type RestartOnlyValues = Readonly<Record<string, unknown>>;

/** Compiled paths (`listen`, `limits.maxHeaderBytes`) of every restart-only setting, from the one table above. */
const RESTART_PATHS: readonly (readonly string[])[] = Object.entries(APPLIES).flatMap(([key, how]) => {
  if (typeof how === 'string') return how === 'restart' ? [[key]] : [];
  return Object.entries(how).flatMap(([sub, h]) => (h === 'restart' ? [[key, sub]] : []));
});

/** The option paths (as gateway.yaml spells them) under which every restart-only option lives. */
export const RESTART_ONLY_OPTIONS: readonly string[] = Object.freeze(RESTART_PATHS.map((p) => optionPath(p)));

function optionPath(path: readonly string[]): string {
  const [first = '', ...rest] = path;
  return [OPTION_NAMES[first] ?? first, ...rest].join('.');
}

function get(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[key] : undefined;
  return current;
}

/** The restart-only settings of a config, as plain JSON-safe data (so a host's primary can hand its own to the workers it forks). */
export function restartOnlyValues(config: CompiledConfig): RestartOnlyValues {
  const values: Record<string, unknown> = {};
  for (const path of RESTART_PATHS) values[path.join('.')] = structuredClone(get(config, path));
  return Object.freeze(values);
}

/** The option paths whose value in `next` differs from the running value, leaf by leaf (`listen.http.port`), sorted. */
export function restartRequired(running: RestartOnlyValues, next: CompiledConfig): string[] {
  const changed: string[] = [];
  for (const path of RESTART_PATHS) diff(running[path.join('.')], get(next, path), [...path], changed);
  return changed.map((p) => optionPath(p.split('.'))).sort();
}

function diff(a: unknown, b: unknown, path: string[], out: string[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) diff(a[key], b[key], [...path, key], out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path.join('.'));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** What a reload (or a worker's start) puts in effect, and what waits for a restart. */
export interface InEffect {
  /** The config as it runs: the file's settings, with each restart-only one at its running value. */
  readonly config: CompiledConfig;
  /** Option paths the file changes that apply on restart only (empty: the file is wholly in effect). */
  readonly restartRequired: readonly string[];
  /** The version of the file itself. */
  readonly fileVersion: string;
}

/**
 * The config a running gateway has in effect after taking `next` from the file: every live setting
 * from `next`, every restart-only setting as it runs (`running`). Its version is the file's when
 * the two agree, else one of its own (derived from the file's and the running values), so no
 * answer, record or metric reports a version whose settings are not all in effect.
 */
export function inEffect(next: CompiledConfig, running: RestartOnlyValues | null, pending: readonly string[] = running === null ? [] : restartRequired(running, next)): InEffect {
  if (running === null || pending.length === 0) return { config: next, restartRequired: Object.freeze([]), fileVersion: next.version };
  const kept: Record<string, unknown> = { ...next };
  const limits: Record<string, unknown> = { ...next.limits };
  for (const path of RESTART_PATHS) {
    const value = running[path.join('.')];
    if (path.length === 1) kept[path[0] ?? ''] = value;
    else if (path[0] === 'limits') limits[path[1] ?? ''] = value;
  }
  kept.limits = Object.freeze(limits);
  const version = createHash('sha256').update(`${next.version}\0${JSON.stringify(running)}`).digest('hex').slice(0, 16);
  kept.version = version;
  return { config: Object.freeze(kept) as unknown as CompiledConfig, restartRequired: Object.freeze(pending), fileVersion: next.version };
}
