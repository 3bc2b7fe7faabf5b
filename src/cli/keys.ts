import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { compileConfig } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import { KeyRequestError, keyRequest, type IssuedKey, type KeyRequest, type KeyView } from '../authn/api-key/key-service.js';
import { isKeyId } from '../authn/api-key/key-format.js';
import { KeyConflictError, StoreUnavailableError } from '../authn/api-key/store.js';
import { parseDuration } from '../lib/duration.js';

export const KEYS_USAGE = `portcullis keys — manage API keys in the store named by the config's apiKeys section

  keys create -c gateway.yaml --name NAME [--tenant T] [--roles a,b] [--scopes x,y]
              [--cidrs 10.0.0.0/8,…] [--tier NAME] [--meta k=v]… [--expires 90d] [--json]
      issues a key and prints it once (the key alone on stdout, details on stderr)
  keys list -c gateway.yaml [--json]         every key: id, prefix, status, expiry, last use (never secrets)
  keys show ID -c gateway.yaml               one key, as JSON
  keys revoke ID -c gateway.yaml             stops the key on every gateway within a second
  keys rotate ID --grace 24h -c gateway.yaml [--expires 90d] [--json]
      issues a successor; the old key keeps working until the grace period ends

Durations: 45s, 30m, 24h, 90d. Exit codes: 0 done, 1 store or config failure, 2 bad arguments, 3 unknown key, 4 key state forbids it.`;

class UsageError extends Error {}

const list = (value: string | undefined): string[] | undefined => (value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter((s) => s !== ''));

function duration(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === null) throw new UsageError(`--${option}: a duration such as 90d, 24h, 30m (got "${value}")`);
  return ms;
}

function table(keys: readonly KeyView[]): string {
  const rows = [['ID', 'PREFIX', 'NAME', 'STATUS', 'TENANT', 'EXPIRES', 'LAST USED', 'USES']];
  for (const k of keys) {
    rows.push([k.id, k.prefix, k.name, k.status, k.tenant ?? '-', k.expiresAt ?? 'never', k.lastUsedAt ?? 'never', String(k.useCount)]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function printIssued(issued: IssuedKey, json: boolean, what: string): void {
  if (json) { process.stdout.write(JSON.stringify({ key: issued.key, ...issued.view }, null, 2) + '\n'); return; }
  const v = issued.view;
  process.stderr.write(`${what} ${v.id} (${v.name}); expires ${v.expiresAt ?? 'never'}.\nThe key is shown this once; store it now:\n`);
  process.stdout.write(issued.key + '\n');
}

async function backendFor(configFile: string): Promise<ApiKeyBackend> {
  const config = compileConfig(await loadConfigFile(configFile));
  if (config.apiKeys === null) throw new UsageError(`${configFile} has no apiKeys section and no apiKey authenticator`);
  await config.apiKeys.store.migrate();
  return config.apiKeys;
}

/** `portcullis keys …`; returns the exit code. Config errors propagate (main prints them). */
export async function keysCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' }, name: { type: 'string' }, tenant: { type: 'string' }, roles: { type: 'string' },
        scopes: { type: 'string' }, cidrs: { type: 'string' }, tier: { type: 'string' }, meta: { type: 'string', multiple: true },
        expires: { type: 'string' }, grace: { type: 'string' }, json: { type: 'boolean' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${KEYS_USAGE}\n`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const configFile = resolve(o.config ?? process.env.PORTCULLIS_CONFIG ?? 'gateway.yaml');
  let backend: ApiKeyBackend | null = null;
  try {
    const id = positionals[0];
    const needsId = sub === 'show' || sub === 'revoke' || sub === 'rotate';
    if (sub === undefined || !['create', 'list', 'show', 'revoke', 'rotate'].includes(sub)) throw new UsageError(`unknown keys command "${sub ?? ''}"`);
    if (needsId && (id === undefined || !isKeyId(id))) throw new UsageError(`keys ${sub} needs a key id (16 characters of 0-9a-z, as keys list shows)`);
    if (positionals.length > (needsId ? 1 : 0)) throw new UsageError(`unexpected argument "${positionals[needsId ? 1 : 0] ?? ''}"`);
    const request = sub === 'create' ? createRequest(o) : null;
    const grace = sub === 'rotate' ? duration(o.grace ?? '', 'grace') : undefined;
    backend = await backendFor(configFile);
    const service = backend.service;
    switch (sub) {
      case 'create':
        printIssued(await service.create(request as KeyRequest), o.json === true, 'Created key');
        return 0;
      case 'list': {
        const keys = await service.list();
        process.stdout.write((o.json === true ? JSON.stringify(keys, null, 2) : table(keys)) + '\n');
        return 0;
      }
      case 'show': {
        const view = await service.get(id as string);
        if (view === null) return unknown(id as string);
        process.stdout.write(JSON.stringify(view, null, 2) + '\n');
        return 0;
      }
      case 'revoke': {
        const view = await service.revoke(id as string);
        if (view === null) return unknown(id as string);
        process.stderr.write(`Revoked ${view.id} (${view.name}) at ${view.revokedAt ?? ''}.\n`);
        return 0;
      }
      default: {
        const rotated = await service.rotate(id as string, grace ?? 0, duration(o.expires, 'expires'));
        if (rotated === null) return unknown(id as string);
        printIssued(rotated, o.json === true, `Rotated ${id as string}: old key works until ${rotated.previous.graceUntil ?? ''}; new key`);
        return 0;
      }
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof KeyRequestError) { process.stderr.write(`portcullis keys: ${err.message}\n`); return 2; }
    if (err instanceof KeyConflictError) { process.stderr.write(`portcullis keys: ${err.message}\n`); return 4; }
    if (err instanceof StoreUnavailableError) { process.stderr.write(`portcullis keys: key store unavailable: ${err.message}\n`); return 1; }
    throw err;
  } finally {
    await backend?.store.close();
  }
}

function unknown(id: string): number {
  process.stderr.write(`portcullis keys: no key ${id}\n`);
  return 3;
}

function createRequest(o: Record<string, string | boolean | string[] | undefined>): KeyRequest {
  const name = o.name;
  if (typeof name !== 'string') throw new UsageError('keys create needs --name');
  const metadata: Record<string, string> = {};
  for (const pair of (o.meta as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--meta: key=value (got "${pair}")`);
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return keyRequest({
    name,
    tenant: o.tenant as string | undefined,
    roles: list(o.roles as string | undefined),
    scopes: list(o.scopes as string | undefined),
    allowedCidrs: list(o.cidrs as string | undefined),
    rateLimitTier: o.tier as string | undefined,
    metadata,
    expiresInMs: duration(o.expires as string | undefined, 'expires'),
  });
}
