// The `portcullis keys` CLI against the embedded SQLite store, with a gateway running on the same
// store: a key created or revoked by the CLI takes effect in the running gateway.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withKey } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { CLI, startGateway, toYaml, type ConfigObject, type TestGateway } from './harness/gateway.js';

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('portcullis keys', () => {
  let dir: string;
  let file: string;
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-'));
    echo = await startEchoUpstream();
    const config: ConfigObject = {
      dataDir: join(dir, 'data'),
      apiKeys: { environment: 'test', maxLifetime: '180d' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'], authorize: { scopes: ['orders:read'] } }],
    };
    file = join(dir, 'gateway.yaml');
    await writeFile(file, toYaml(config));
    gw = await startGateway(config);
  });
  after(async () => {
    await gw.close();
    await echo.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a key, prints it once, and the running gateway accepts it', async () => {
    const run = await cli(['keys', 'create', '-c', file, '--name', 'ci-runner', '--tenant', 'acme', '--scopes', 'orders:read,orders:write', '--roles', 'bot',
      '--cidrs', '127.0.0.0/8,::1/128', '--tier', 'gold', '--meta', 'team=platform', '--meta', 'ticket=OPS-7', '--expires', '30d']);
    assert.equal(run.code, 0, run.stderr);
    const key = run.stdout.trim();
    assert.match(key, /^pk_test_[0-9a-z]{16}_[0-9A-Za-z]{49}$/, 'the key alone on stdout');
    assert.match(run.stderr, /shown this once/);
    const res = await withKey(`${gw.url}/orders/1`, key);
    assert.equal(res.status, 200, res.body);

    const id = key.split('_')[2] ?? '';
    const list = await cli(['keys', 'list', '-c', file]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+PREFIX\s+NAME\s+STATUS\s+TENANT\s+EXPIRES\s+LAST USED\s+USES$/m);
    assert.match(list.stdout, new RegExp(`^${id}\\s+pk_test_${id}\\s+ci-runner\\s+active\\s+acme\\s`, 'm'));
    assert.ok(!list.stdout.includes(key.split('_')[3] ?? key), 'no secret in the listing');

    const show = await cli(['keys', 'show', id, '-c', file]);
    const view = JSON.parse(show.stdout) as Record<string, unknown>;
    assert.deepEqual([view.tenant, view.scopes, view.roles, view.allowedCidrs, view.rateLimitTier, view.metadata],
      ['acme', ['orders:read', 'orders:write'], ['bot'], ['127.0.0.0/8', '::1/128'], 'gold', { team: 'platform', ticket: 'OPS-7' }]);
    assert.equal(view.hash, undefined);
  });

  it('revokes a key, and the running gateway refuses it within a second', async () => {
    const created = await cli(['keys', 'create', '-c', file, '--name', 'short-lived', '--scopes', 'orders:read', '--json']);
    const issued = JSON.parse(created.stdout) as { key: string; id: string; status: string };
    assert.equal(issued.status, 'active');
    assert.equal((await withKey(`${gw.url}/orders/1`, issued.key)).status, 200);
    const revoke = await cli(['keys', 'revoke', issued.id, '-c', file]);
    assert.equal(revoke.code, 0, revoke.stderr);
    // The CLI's write reaches the gateway through its change-log poller: a real event, polled for.
    const started = Date.now();
    let status = 200;
    await waitUntil('the running gateway stops accepting the revoked key', async () => (status = (await withKey(`${gw.url}/orders/1`, issued.key)).status) !== 200, 3000);
    assert.equal(status, 401);
    assert.ok(Date.now() - started < 1000, `refused after ${Date.now() - started} ms`);
    const list = await cli(['keys', 'list', '-c', file, '--json']);
    assert.equal((JSON.parse(list.stdout) as { id: string; status: string }[]).find((k) => k.id === issued.id)?.status, 'revoked');
    const again = await cli(['keys', 'rotate', issued.id, '--grace', '1h', '-c', file]);
    assert.equal(again.code, 4, 'a revoked key cannot be rotated');
    assert.match(again.stderr, /revoked/);
  });

  it('rotates a key: both work during the grace period', async () => {
    const created = await cli(['keys', 'create', '-c', file, '--name', 'rotating', '--scopes', 'orders:read', '--json']);
    const old = JSON.parse(created.stdout) as { key: string; id: string };
    const rotated = await cli(['keys', 'rotate', old.id, '--grace', '1h', '-c', file, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const next = JSON.parse(rotated.stdout) as { key: string; id: string; replaces: string };
    assert.equal(next.replaces, old.id);
    assert.equal((await withKey(`${gw.url}/orders/1`, old.key)).status, 200);
    assert.equal((await withKey(`${gw.url}/orders/1`, next.key)).status, 200);
    const show = JSON.parse((await cli(['keys', 'show', old.id, '-c', file])).stdout) as { status: string; replacedBy: string };
    assert.deepEqual([show.status, show.replacedBy], ['grace', next.id]);
  });

  it('refuses bad arguments with exit code 2, unknown keys with 3, and names config errors by line', async () => {
    const expect = async (args: string[], code: number, pattern: RegExp) => {
      const run = await cli(args);
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, pattern);
      assert.equal(run.stdout, '', 'nothing on stdout');
    };
    await Promise.all([
      expect(['keys', 'create', '-c', file], 2, /needs --name/),
      expect(['keys', 'create', '-c', file, '--name', 'x', '--expires', 'forever'], 2, /--expires: a duration/),
      expect(['keys', 'create', '-c', file, '--name', 'x', '--expires', '181d'], 2, /maximum key lifetime/),
      expect(['keys', 'create', '-c', file, '--name', 'x', '--scopes', 'a"b'], 2, /scopes/),
      expect(['keys', 'create', '-c', file, '--name', 'x', '--meta', 'novalue'], 2, /--meta/),
      expect(['keys', 'create', '-c', file, '--name', 'x', '--colour', 'red'], 2, /^portcullis keys create: unknown option --colour\n/),
      expect(['keys', 'revoke', 'nope', '-c', file], 2, /"nope" is not a key id/),
      expect(['keys', 'revoke', '0000000000000000', '-c', file], 3, /no key 0000000000000000/),
      expect(['keys', 'rotate', '0000000000000000', '-c', file], 2, /--grace/),
      expect(['keys', 'frobnicate', '-c', file], 2, /unknown keys command/),
    ]);
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'apiKeys:\n  store:\n    type: postgres\nupstreams: {}\nroutes: []\n');
    await expect(['keys', 'list', '-c', broken], 1, /broken\.yaml:\d+:\d+/);
    const none = join(dir, 'none.yaml');
    await writeFile(none, `upstreams:\n  echo:\n    targets: ["${echo.url}"]\nroutes:\n  - name: a\n    match: { path: /a }\n    upstream: echo\n    public: true\n`);
    await expect(['keys', 'list', '-c', none], 2, /no apiKeys section/);
  });
});
