// The key commands read only what they need: the key store's sections are interpolated and
// validated; the rest of the file (upstreams, identity providers, routes) is not.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, formatProblem } from '../src/config/errors.js';
import { loadKeyStoreBackend } from '../src/config/key-store-config.js';
import { CLI } from './harness/gateway.js';

/** A gateway config whose upstreams, identity provider and routes need variables the key commands must not. */
const FULL = `listen: { http: { port: "\${PORT}" } }
upstreams:
  orders: { targets: ["\${ORDERS_URL}"] }
authenticators:
  users: { type: jwt, issuer: "\${IDP_ISSUER}", jwksUri: "\${IDP_JWKS}", audience: orders, algorithms: [RS256] }
  machines: { type: apiKey }
apiKeys:
  environment: \${KEY_ENV:-live}
  maxLifetime: \${MAX_LIFETIME}
dataDir: \${DATA_DIR}
routes:
  - { name: orders, match: { path: /orders }, upstream: orders, authenticate: [users, machines] }
`;

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function problemsOf(file: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  try {
    await loadKeyStoreBackend(file, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(formatProblem);
    throw err;
  }
  return [];
}

describe('the key commands read only the key store sections', () => {
  let dir: string;
  const write = async (name: string, text: string): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  };

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-key-store-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('needs only the key store variables, and interpolates them', async () => {
    const file = await write('full.yaml', FULL);
    const backend = await loadKeyStoreBackend(file, { KEY_ENV: 'test', MAX_LIFETIME: '30d', DATA_DIR: join(dir, 'data') });
    assert.ok(backend !== null);
    assert.equal(backend.settings.environment, 'test');
    assert.equal(backend.settings.maxLifetimeMs, 30 * 86_400_000);
    assert.deepEqual(backend.settings.store, { type: 'sqlite', file: join(dir, 'data', 'keys', 'api-keys.db') });
  });

  it('is not stopped by mistakes in other sections', async () => {
    const file = await write('broken-elsewhere.yaml', FULL.replace('audience: orders', 'audiance: orders').replace('path: /orders', 'path: 5') + 'bogus: { a: 1 }\nroutes2: ${X\n');
    assert.deepEqual(await problemsOf(file, { MAX_LIFETIME: '30d', DATA_DIR: 'd' }), []);
  });

  it('reports a mistake in its own sections with file, line and option', async () => {
    const file = await write('broken-store.yaml', FULL);
    assert.deepEqual(await problemsOf(file, { MAX_LIFETIME: '1y', DATA_DIR: 'd' }), [
      `${file}:9:16: apiKeys.maxLifetime: must be a duration like 30s, 15m, 1h or 1d: a whole number, then s, m, h or d`,
    ]);
    assert.deepEqual(await problemsOf(file, { MAX_LIFETIME: '30d' }), [
      `${file}:10:10: dataDir: environment variable DATA_DIR is not set (set it, or give a default: \${DATA_DIR:-default})`,
    ]);
    const misspelt = await write('misspelt-store.yaml', FULL.replace('  maxLifetime:', '  maxLifeTime:'));
    assert.deepEqual(await problemsOf(misspelt, { MAX_LIFETIME: '30d', DATA_DIR: 'd' }), [
      `${misspelt}:9:3: apiKeys.maxLifeTime: is not a known option; did you mean \`maxLifetime\`?`,
    ]);
    const checked = await write('checked-store.yaml', FULL.replace('machines: { type: apiKey }', 'machines: { type: apiKey }\n  other: { type: apiKey }') + 'apiKeys2: 1\n');
    assert.deepEqual(await problemsOf(checked, { MAX_LIFETIME: '30d', DATA_DIR: 'd', KEY_ENV: 'Live' }), [
      `${checked}:9:16: apiKeys.environment: must be a lower-case label like live or test: a letter, then up to 15 letters or digits`,
    ]);
  });

  it('uses the store with its defaults when only an apiKey authenticator names it, and none without either', async () => {
    const only = await write('only-authenticator.yaml', 'authenticators:\n  m: { type: apiKey }\nupstreams: ${UNSET}\n');
    const backend = await loadKeyStoreBackend(only, {});
    assert.deepEqual(backend?.settings.store, { type: 'sqlite', file: join(dir, 'data', 'keys', 'api-keys.db') });
    const none = await write('no-store.yaml', 'authenticators:\n  u: { type: jwt }\n');
    assert.equal(await loadKeyStoreBackend(none, {}), null);
  });

  it('still needs a file that is YAML', async () => {
    const file = await write('not-yaml.yaml', 'apiKeys: { environment: test }\nroutes: [\n');
    const found = await problemsOf(file, {});
    assert.ok(found.length > 0 && found.every((p) => p.startsWith(`${file}:`)), found.join('\n'));
  });

  it('portcullis keys create and list work with only the key store variables set', async () => {
    const file = await write('cli.yaml', FULL);
    const env = { MAX_LIFETIME: '30d', DATA_DIR: join(dir, 'cli-data'), KEY_ENV: 'test' };
    const created = await cli(['keys', 'create', '-c', file, '--name', 'ci'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout.trim(), /^pk_test_/);
    const listed = await cli(['keys', 'list', '-c', file], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID +PREFIX +NAME .*\n[0-9a-z]{16} +\S+ +ci +active/);
    const broken = await cli(['keys', 'list', '-c', file], { ...env, MAX_LIFETIME: '1y' });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:9:16: apiKeys\\.maxLifetime: must be a duration`));
  });
});
