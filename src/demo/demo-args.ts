import { isIP } from 'node:net';
import { parseArgs } from 'node:util';

/** What `portcullis demo` was asked for, validated. Ports are decimal strings (0: any free port). */
export interface DemoOptions {
  /** The gateway's public port: --port, else $PORT, else 8080. */
  readonly port: string;
  /** The gateway's HTTPS port, on the same address: --https-port, else $HTTPS_PORT, else 8443. */
  readonly httpsPort: string;
  /** The admin listener's port (always on 127.0.0.1): --admin-port, else $ADMIN_PORT, else 9901. */
  readonly adminPort: string;
  /** The address the public listener binds: --host, else 127.0.0.1. */
  readonly host: string;
}

export type ParsedDemoArgs = { readonly ok: true; readonly options: DemoOptions } | { readonly ok: false; readonly error: string };

export const DEMO_DEFAULTS: DemoOptions = Object.freeze({ port: '8080', httpsPort: '8443', adminPort: '9901', host: '127.0.0.1' });

const OPTIONS_LINE = 'options: --port N, --https-port N, --admin-port N, --host ADDRESS (portcullis demo --help)';

/** A value as it goes into a one-line message. */
function quoted(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function portProblem(value: string, source: string): string | null {
  if (/^(0|[1-9][0-9]{0,4})$/.test(value) && Number(value) <= 65535) return null;
  return `${source} ${quoted(value)} is not a port: give a number from 1 to 65535`;
}

/** Why parseArgs refused, in one line without its stack. */
function usageProblem(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const named = /'([^']*)'/.exec(message)?.[1];
  const what = named === undefined ? '' : ` ${quoted(named)}`;
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option${what}; ${OPTIONS_LINE}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument${what}; ${OPTIONS_LINE}`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${message.split('\n')[0]?.replace(/\.$/, '') ?? 'an option needs a value'}; ${OPTIONS_LINE}`;
  throw err;
}

/**
 * Parses the demo's arguments (and PORT / HTTPS_PORT / ADMIN_PORT from `env`): an option given twice, an
 * unknown one, a positional argument, a port or address that cannot be one are refused with one
 * line. The address has no variable: shells set HOST to the machine's name, which would quietly
 * put the demo on the network.
 */
export function parseDemoArgs(args: readonly string[], env: NodeJS.ProcessEnv): ParsedDemoArgs {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    return { ok: false, error: usageProblem(err) };
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) return { ok: false, error: `--${token.name} is given twice; give it once` };
    seen.add(token.name);
  }
  const { values } = parsed;
  const fromEnv = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const port = values.port ?? fromEnv('PORT');
  const httpsPort = values['https-port'] ?? fromEnv('HTTPS_PORT');
  const adminPort = values['admin-port'] ?? fromEnv('ADMIN_PORT');
  const problem = (port === undefined ? null : portProblem(port, values.port === undefined ? 'PORT' : '--port'))
    ?? (httpsPort === undefined ? null : portProblem(httpsPort, values['https-port'] === undefined ? 'HTTPS_PORT' : '--https-port'))
    ?? (adminPort === undefined ? null : portProblem(adminPort, values['admin-port'] === undefined ? 'ADMIN_PORT' : '--admin-port'));
  if (problem !== null) return { ok: false, error: problem };
  const host = values.host ?? DEMO_DEFAULTS.host;
  if (isIP(host) === 0 && !HOST_NAME.test(host)) {
    return { ok: false, error: `--host ${quoted(host)} is not an address: give an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name` };
  }
  const options = { port: port ?? DEMO_DEFAULTS.port, httpsPort: httpsPort ?? DEMO_DEFAULTS.httpsPort, adminPort: adminPort ?? DEMO_DEFAULTS.adminPort, host };
  const ports: [string, string][] = [['public port', options.port], ['HTTPS port', options.httpsPort], ['admin port', options.adminPort]];
  for (const [i, [what, value]] of ports.entries()) {
    const same = ports.slice(i + 1).find(([, other]) => other === value && value !== '0');
    if (same !== undefined) return { ok: false, error: `the ${what} and the ${same[0]} are both ${value}: give them different ports` };
  }
  return { ok: true, options };
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    options: { port: { type: 'string' }, 'https-port': { type: 'string' }, 'admin-port': { type: 'string' }, host: { type: 'string' } },
    allowPositionals: false,
    strict: true,
    tokens: true,
  });
}
