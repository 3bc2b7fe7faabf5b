import { loadKeyStoreBackend } from '../config/key-store-config.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import { KeyRequestError, keyRequest, type IssuedKey, type KeyRequest, type KeyView } from '../authn/api-key/key-service.js';
import { isKeyId } from '../authn/api-key/key-format.js';
import { KeyConflictError, StoreUnavailableError } from '../authn/api-key/store.js';
import { parseDuration } from '../lib/duration.js';
import { UsageError, shown, type Invocation } from './command.js';
import { configFile } from './config-file.js';

const list = (value: string | undefined): string[] | undefined => (value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter((s) => s !== ''));

function duration(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === null) throw new UsageError(`--${option}: a duration such as 90d, 24h, 30m (got "${shown(value)}")`);
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

/** The key store alone: the keys commands read only its sections of the config (see KEY_STORE_SECTIONS). */
async function backendFor(configFile: string): Promise<ApiKeyBackend> {
  const backend = await loadKeyStoreBackend(configFile);
  if (backend === null) throw new UsageError(`${configFile} has no apiKeys section and no apiKey authenticator`);
  await backend.store.migrate();
  return backend;
}

/** The verbs of `portcullis keys`. */
export type KeysVerb = 'create' | 'list' | 'show' | 'revoke' | 'rotate';

/**
 * `portcullis keys <verb>`, its options already parsed; returns the exit code. Config errors and
 * usage errors propagate (the CLI prints them).
 */
export async function keysCommand(sub: KeysVerb, { values: o, positionals }: Invocation): Promise<number> {
  const file = configFile(o.config);
  let backend: ApiKeyBackend | null = null;
  try {
    const id = positionals[0];
    if (id !== undefined && !isKeyId(id)) throw new UsageError(`"${shown(id)}" is not a key id: 16 characters of 0-9a-z, as keys list shows`);
    const request = sub === 'create' ? createRequest(o) : null;
    if (sub === 'rotate' && typeof o.grace !== 'string') throw new UsageError('needs --grace DURATION: how long the old key keeps working (0s ends it now)');
    const grace = sub === 'rotate' ? duration(o.grace as string, 'grace') : undefined;
    backend = await backendFor(file);
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
        if (o.json === true) process.stdout.write(JSON.stringify(view, null, 2) + '\n');
        else process.stderr.write(`Revoked ${view.id} (${view.name}) at ${view.revokedAt ?? ''}.\n`);
        return 0;
      }
      default: {
        const rotated = await service.rotate(id as string, grace ?? 0, duration(o.expires as string | undefined, 'expires'));
        if (rotated === null) return unknown(id as string);
        printIssued(rotated, o.json === true, `Rotated ${id as string}: old key works until ${rotated.previous.graceUntil ?? ''}; new key`);
        return 0;
      }
    }
  } catch (err) {
    if (err instanceof KeyRequestError) { process.stderr.write(`portcullis keys: ${err.message}\n`); return 2; }
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

function createRequest(o: Invocation['values']): KeyRequest {
  const name = o.name;
  if (typeof name !== 'string') throw new UsageError('needs --name NAME');
  const metadata: Record<string, string> = {};
  for (const pair of (o.meta as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--meta: key=value (got "${shown(pair)}")`);
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
