// Files a config references are part of its version: editing a JWKS file or a PEM key and
// reloading takes effect at once, verified-token cache included; reloading an unchanged config
// and unchanged files changes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { compileConfig } from '../src/config/compile.js';
import { MAX_CONFIG_FILE_BYTES } from '../src/config/config-files.js';
import { ConfigError, formatProblem } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { ADMIN_TOKEN, ADMIN_TOKEN_HASH } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, toYaml, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://issuer.test/';

async function status(gw: TestGateway, token: string): Promise<number> {
  const res = await request(`${gw.url}/orders`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.dump();
  return res.statusCode;
}

async function reload(gw: TestGateway): Promise<{ ok: boolean; changed: boolean; version: string }> {
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  return await (await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers })).json() as { ok: boolean; changed: boolean; version: string };
}

async function readyVersion(gw: TestGateway): Promise<string> {
  return (await (await fetch(`${gw.adminUrl}/readyz`)).json() as { configVersion: string }).configVersion;
}

async function metricVersion(gw: TestGateway): Promise<string | undefined> {
  return /^portcullis_config_info\{version="([0-9a-f]+)"\} 1$/m.exec(await (await fetch(`${gw.adminUrl}/metrics`)).text())?.[1];
}

const jwksText = (...keys: TestKey[]): string => JSON.stringify({ keys: keys.map((k) => k.jwk) });

describe('key files are part of the config version', () => {
  let echo: EchoUpstream;
  let k1: TestKey, k2: TestKey;
  const config = (issuer: Record<string, unknown>): ConfigObject => ({
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', algorithms: ['ES256'], ...issuer } },
    routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'echo', authenticate: ['users'] }],
  });

  before(async () => {
    [k1, k2] = await Promise.all([testKey('ES256', 'file-1'), testKey('ES256', 'file-2')]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await echo.close();
  });

  const cases = [
    { name: 'jwksFile', issuer: { jwksFile: 'keys/jwks.json' }, file: 'keys/jwks.json', before: () => jwksText(k1, k2), after: () => jwksText(k2) },
    { name: 'publicKeys file (PEM)', issuer: { publicKeys: [{ file: 'keys/signing.pem' }] }, file: 'keys/signing.pem', before: () => k1.pem, after: () => k2.pem },
  ];
  for (const c of cases) {
    it(`${c.name}: an edited file and a reload refuse the removed key at once, cached tokens included`, async () => {
      const gw = await startGateway(config(c.issuer), {
        beforeStart: async (dir) => {
          await mkdir(join(dir, 'keys'));
          await writeFile(join(dir, c.file), c.before());
        },
      });
      try {
        const old = await mint(k1);
        assert.equal(await status(gw, old), 200);
        assert.equal(await status(gw, old), 200, 'now in the verified-token cache');
        const v1 = await readyVersion(gw);

        const unchanged = await reload(gw);
        assert.deepEqual(unchanged, { ok: true, changed: false, version: v1, restartRequired: [] }, 'nothing edited: nothing changes');

        await writeFile(join(gw.dir, c.file), c.after());
        const edited = await reload(gw);
        assert.equal(edited.ok, true);
        assert.equal(edited.changed, true, 'editing only the key file is a new config');
        assert.notEqual(edited.version, v1);
        assert.equal(await readyVersion(gw), edited.version);
        assert.equal(await metricVersion(gw), edited.version);

        const forwarded = echo.received.length;
        assert.equal(await status(gw, old), 401, 'the removed key no longer verifies, though its token was cached');
        assert.equal(echo.received.length, forwarded);
        assert.equal(await status(gw, await mint(k2)), 200);
        assert.deepEqual(await reload(gw), { ok: true, changed: false, version: edited.version, restartRequired: [] });

        await rm(join(gw.dir, c.file));
        const missing = await reload(gw);
        assert.equal(missing.ok, false, 'a missing key file is a config error; the running config keeps serving');
        assert.equal(await status(gw, await mint(k2)), 200);
      } finally {
        await gw.close();
      }
    });
  }
});

describe('the config file reader', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-files-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  const text = (file: string): string => toYaml({
    upstreams: { echo: { targets: ['http://127.0.0.1:1'] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'a', algorithms: ['ES256'], jwksFile: file } },
    routes: [{ name: 'r', match: { path: '/r' }, upstream: 'echo', authenticate: ['users'] }],
  });
  const version = (file: string): string => compileConfig(loadConfigText(text(file), join(dir, 'gateway.yaml'), {})).version;

  it('versions by path and content: same content same version, any change a new one', async () => {
    const k = await testKey('ES256', 'v-1');
    const other = await testKey('ES256', 'v-2');
    await writeFile(join(dir, 'a.json'), jwksText(k));
    await writeFile(join(dir, 'b.json'), jwksText(k));
    const a = version('a.json');
    assert.equal(version('a.json'), a);
    assert.notEqual(version('b.json'), a, 'another path is another config');
    await writeFile(join(dir, 'a.json'), `${jwksText(k)}\n`);
    assert.notEqual(version('a.json'), a, 'one byte more is a new version');
    await writeFile(join(dir, 'a.json'), jwksText(other));
    assert.notEqual(version('a.json'), a);
  });

  it(`refuses a referenced file larger than ${MAX_CONFIG_FILE_BYTES} bytes, naming file, line and option`, async () => {
    await writeFile(join(dir, 'huge.json'), Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1, 0x20));
    try {
      version('huge.json');
      assert.fail('compiled');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const problems = err.problems.map(formatProblem);
      assert.ok(problems.some((p) => /gateway\.yaml:\d+:\d+: authenticators\.users\.jwksFile: cannot read huge\.json: EFBIG/.test(p)), problems.join('\n'));
    }
  });

  it('refuses a key file that is a directory or a FIFO, without blocking on it', async () => {
    await mkdir(join(dir, 'a-dir'));
    const fifo = join(dir, 'a-fifo');
    const made = spawnSync('mkfifo', [fifo]);
    for (const file of made.status === 0 ? ['a-dir', 'a-fifo'] : ['a-dir']) {
      try {
        version(file);
        assert.fail(`compiled with ${file}`);
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        assert.match(err.problems.map(formatProblem).join('\n'), new RegExp(`jwksFile: cannot read ${file}: ENOTFILE`));
      }
    }
  });
});
