import { isIP } from 'node:net';
import { compileConfig } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import { explain, parseHeaderArg, renderExplanation, type ExplainIdentity } from '../explain/explain.js';
import { UsageError, shown, type Invocation } from './command.js';
import { configFile } from './config-file.js';

/** `portcullis explain`: exit 0 with the explanation; config errors propagate (exit 1), usage errors are `UsageError` (exit 2). */
export async function explainCommand({ values, positionals }: Invocation): Promise<number> {
  const [method = '', target = ''] = positionals;
  const given = values.header;
  let headers: [string, string][];
  let identity: ExplainIdentity | undefined;
  try {
    headers = (Array.isArray(given) ? given : []).map(parseHeaderArg);
    identity = typeof values.identity === 'string' ? parseIdentity(values.identity) : undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const from = typeof values.from === 'string' ? values.from : '192.0.2.10';
  if (isIP(from) === 0) throw new UsageError(`--from "${shown(from)}": expected an IP address`);
  const at = typeof values.at === 'string' ? parseTime(values.at) : undefined;
  const body = typeof values.body === 'string' ? values.body : undefined;
  framed(headers, body);
  const loaded = await loadConfigFile(configFile(values.config));
  const config = compileConfig(loaded);
  const explanation = await explain(config, { method, target, headers, from, ...(identity === undefined ? {} : { identity }), ...(at === undefined ? {} : { at }), ...(body === undefined ? {} : { body }) },
    (route) => loaded.problem(['routes', route.index], '').line);
  process.stdout.write(values.json === true ? JSON.stringify(explanation, null, 2) + '\n' : renderExplanation(explanation));
  return 0;
}

/**
 * `--body` and the framing headers agree, as a served request's do: a body without Content-Length
 * or Transfer-Encoding is given its length (as curl does), and a Content-Length that is not the
 * body's byte length is refused. The gateway would wait for the missing bytes (408) or read the
 * surplus as the next request, where explain would judge a body that is not the one declared.
 */
function framed(headers: [string, string][], body: string | undefined): void {
  const size = body === undefined ? 0 : Buffer.byteLength(body);
  const lengths = headers.filter(([n]) => n.toLowerCase() === 'content-length');
  const chunked = headers.some(([n]) => n.toLowerCase() === 'transfer-encoding');
  if (lengths.length === 0 && !chunked) {
    if (body !== undefined) headers.push(['Content-Length', String(size)]);
    return;
  }
  for (const [, value] of lengths) {
    if (value !== String(size)) throw new UsageError(`--header "Content-Length: ${shown(value)}": the body given${body === undefined ? ' (none; give it with --body)' : ' with --body'} is ${size} bytes`);
  }
}

/**
 * `--at`: an ISO 8601 date and time with an offset (`Z` or `+02:00`), so the instant is never the
 * local zone's guess. Every field is in its range (`Date.parse` rolls 30 February over into March,
 * and takes hour 24): the instant judged is the one written.
 */
function parseTime(text: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d{1,3})?)?(?:Z|([+-])(\d\d):(\d\d))$/.exec(text);
  const n = (i: number): number => Number(m?.[i] ?? 0);
  const valid = m !== null && n(1) >= 1 && n(2) >= 1 && n(2) <= 12 && n(3) >= 1 && n(3) <= new Date(Date.UTC(2000, n(2), 0)).getUTCDate() &&
    (n(2) !== 2 || n(3) !== 29 || new Date(Date.UTC(n(1), 1, 29)).getUTCDate() === 29) &&
    n(4) <= 23 && n(5) <= 59 && n(6) <= 59 && n(8) <= 23 && n(9) <= 59;
  const ms = valid ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) throw new UsageError(`--at "${shown(text)}": expected a date and time with its offset, like 2026-06-03T09:30:00+02:00 or 2026-06-03T07:30:00Z (each field in its range)`);
  return ms;
}

function parseIdentity(text: string): ExplainIdentity {
  let value: unknown;
  try { value = JSON.parse(text); } catch { throw new Error('--identity: not JSON'); }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('--identity: expected a JSON object');
  const v = value as Record<string, unknown>;
  const list = (name: string): string[] | undefined => {
    const x = v[name];
    if (x === undefined) return undefined;
    if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) throw new Error(`--identity: "${name}" must be an array of strings`);
    return x;
  };
  const str = (name: string): string | undefined => {
    const x = v[name];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string') throw new Error(`--identity: "${name}" must be a string`);
    return x;
  };
  const known = new Set(['sub', 'roles', 'scopes', 'tenant', 'method', 'keyId', 'tier', 'claims']);
  const unknown = Object.keys(v).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new Error(`--identity: unknown field "${unknown[0] ?? ''}" (known: ${[...known].join(', ')})`);
  const sub = str('sub');
  if (sub === undefined || sub === '') throw new Error('--identity: "sub" is required');
  const identity: ExplainIdentity = { sub };
  const roles = list('roles'); const scopes = list('scopes');
  const tenant = str('tenant'); const method = str('method'); const keyId = str('keyId'); const tier = str('tier');
  const claims = v['claims'];
  if (claims !== undefined && (typeof claims !== 'object' || claims === null || Array.isArray(claims))) throw new Error('--identity: "claims" must be a JSON object');
  return {
    ...identity,
    ...(roles === undefined ? {} : { roles }),
    ...(scopes === undefined ? {} : { scopes }),
    ...(tenant === undefined ? {} : { tenant }),
    ...(method === undefined ? {} : { method }),
    ...(keyId === undefined ? {} : { keyId }),
    ...(tier === undefined ? {} : { tier }),
    ...(claims === undefined ? {} : { claims: claims as Record<string, unknown> }),
  };
}
