import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { compileConfig } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import { explain, parseHeaderArg, renderExplanation, type ExplainIdentity } from '../explain/explain.js';

export const EXPLAIN_USAGE = `Usage: portcullis explain -c gateway.yaml METHOD TARGET [options]

Runs one request through the config's request path in process and prints the normalised target,
the route that matched (and why the others did not), each stage's decision in order, the final
status and problem code, and exactly the path and headers the upstream would receive. Nothing is
contacted and no store is used: limits show what they would count.

Options:
  -c, --config FILE        the config (default gateway.yaml, or PORTCULLIS_CONFIG)
  -H, --header 'N: V'      a request header (repeatable); Host defaults to localhost
      --identity JSON      assume this caller instead of authenticating:
                           {"sub":"alice","roles":["admin"],"scopes":["orders:read"],"tenant":"acme"}
      --from ADDRESS       the client address the request comes from (default 192.0.2.10)
      --json               print the explanation as JSON

Example:
  portcullis explain -c gateway.yaml GET /api/acme/orders/1 \\
    --identity '{"sub":"alice","scopes":["orders:read"],"tenant":"acme"}'`;

/** `portcullis explain`: exit 0 with the explanation, 1 on a config error, 2 on a usage error. */
export async function explainCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        header: { type: 'string', short: 'H', multiple: true },
        identity: { type: 'string' },
        from: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) { process.stdout.write(EXPLAIN_USAGE + '\n'); return 0; }
  const [method, target, ...extra] = positionals;
  if (method === undefined || target === undefined || extra.length > 0) return usage('expected METHOD and TARGET');
  let headers: [string, string][];
  let identity: ExplainIdentity | undefined;
  try {
    headers = (values.header ?? []).map(parseHeaderArg);
    identity = values.identity === undefined ? undefined : parseIdentity(values.identity);
  } catch (err) {
    return usage((err as Error).message);
  }
  const from = values.from ?? '192.0.2.10';
  if (isIP(from) === 0) return usage(`--from "${from}": expected an IP address`);
  const loaded = await loadConfigFile(resolve(values.config ?? process.env.PORTCULLIS_CONFIG ?? 'gateway.yaml'));
  const config = compileConfig(loaded);
  const explanation = await explain(config, { method, target, headers, from, ...(identity === undefined ? {} : { identity }) },
    (route) => loaded.problem(['routes', route.index], '').line);
  process.stdout.write(values.json === true ? JSON.stringify(explanation, null, 2) + '\n' : renderExplanation(explanation));
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`portcullis explain: ${message}\n\n${EXPLAIN_USAGE}\n`);
  return 2;
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
  const known = new Set(['sub', 'roles', 'scopes', 'tenant', 'method', 'keyId', 'tier']);
  const unknown = Object.keys(v).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new Error(`--identity: unknown field "${unknown[0] ?? ''}" (known: ${[...known].join(', ')})`);
  const sub = str('sub');
  if (sub === undefined || sub === '') throw new Error('--identity: "sub" is required');
  const identity: ExplainIdentity = { sub };
  const roles = list('roles'); const scopes = list('scopes');
  const tenant = str('tenant'); const method = str('method'); const keyId = str('keyId'); const tier = str('tier');
  return {
    ...identity,
    ...(roles === undefined ? {} : { roles }),
    ...(scopes === undefined ? {} : { scopes }),
    ...(tenant === undefined ? {} : { tenant }),
    ...(method === undefined ? {} : { method }),
    ...(keyId === undefined ? {} : { keyId }),
    ...(tier === undefined ? {} : { tier }),
  };
}
