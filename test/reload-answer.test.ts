// A reload answer says what did not apply: an option that changes only on restart is listed in the
// answer (`restartRequired`), in /readyz and in a metric, and no version is reported whose settings
// are not all in effect. Every restart-only option is walked, one by one.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RESTART_ONLY_OPTIONS } from '../src/lifecycle/restart-only.js';
import { admin, ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject, type TestGateway } from './harness/gateway.js';

interface Answer { ok: boolean; changed: boolean; version: string; restartRequired: string[]; pendingVersion?: string; errors?: string[] }
interface ReadyBody { ready: boolean; version: string; restartRequired: string[]; pendingVersion?: string; configVersion: string }

function base(echo: EchoUpstream, routes: string[] = ['a']): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    routes: routes.map((name) => ({ name, match: { path: `/${name}/**` }, upstream: 'echo', public: true })),
  };
}

async function reload(adminUrl: string): Promise<Answer> {
  const res = await admin(adminUrl, 'POST', '/admin/reload', {});
  return JSON.parse(res.body) as Answer;
}

async function readyz(adminUrl: string): Promise<ReadyBody> {
  return JSON.parse((await call(`${adminUrl}/readyz`)).body) as ReadyBody;
}

async function gauge(adminUrl: string, name: string): Promise<string[]> {
  const text = (await call(`${adminUrl}/metrics`)).body;
  return text.split('\n').filter((l) => l.startsWith(name));
}

/** Sets `path` (dotted) in a config object, creating the sections on the way. */
function withOption(config: ConfigObject, path: string, value: unknown): ConfigObject {
  const copy = structuredClone(config);
  const keys = path.split('.');
  let node = copy as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) {
    node[key] = { ...(node[key] as Record<string, unknown> | undefined) };
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1) ?? ''] = value;
  return copy;
}

describe('reload answers: restart-only changes', () => {
  let echo: EchoUpstream;
  let otherDir: string;
  before(async () => {
    echo = await startEchoUpstream();
    otherDir = await mkdtemp(join(tmpdir(), 'portcullis-other-data-'));
  });
  after(async () => {
    await echo.close();
    await rm(otherDir, { recursive: true, force: true });
  });

  it('a changed listen.http.port is listed, the old port keeps serving, and the version reported is the one in effect', async () => {
    const gw = await startGateway(base(echo));
    try {
      const v0 = (await readyz(gw.adminUrl)).version;
      assert.deepEqual(await gauge(gw.adminUrl, 'portcullis_config_restart_required'), ['portcullis_config_restart_required 0']);
      // One restart-only change and one live change in the same edit.
      await gw.writeConfig(withOption(base(echo, ['a', 'b']), 'listen.http', { host: '127.0.0.1', port: 1 }));
      const answer = await reload(gw.adminUrl);
      assert.equal(answer.ok, true, JSON.stringify(answer));
      assert.equal(answer.changed, true);
      assert.deepEqual(answer.restartRequired, ['listen.http.port']);
      assert.ok(answer.pendingVersion !== undefined && /^[0-9a-f]{16}$/.test(answer.pendingVersion), 'the file\'s version waits for a restart');
      assert.notEqual(answer.version, answer.pendingVersion, 'the version in effect is not the file\'s');
      assert.notEqual(answer.version, v0);
      assert.equal((await call(`${gw.url}/b/x`)).status, 200, 'the live change applied');
      assert.equal(gw.gateway.addresses().http?.port, gw.port, 'the old port keeps serving');

      const ready = await readyz(gw.adminUrl);
      assert.equal(ready.ready, true, 'a pending restart does not make the gateway unready');
      assert.equal(ready.version, answer.version);
      assert.equal(ready.configVersion, answer.version);
      assert.deepEqual(ready.restartRequired, ['listen.http.port']);
      assert.equal(ready.pendingVersion, answer.pendingVersion);
      assert.deepEqual(await gauge(gw.adminUrl, 'portcullis_config_restart_required'), ['portcullis_config_restart_required 1']);
      assert.deepEqual(await gauge(gw.adminUrl, 'portcullis_config_info'), [`portcullis_config_info{version="${answer.version}"} 1`]);
      const res = await call(`${gw.url}/a/x`);
      const [record] = await gw.auditFor(res.headers['x-request-id'] ?? '');
      assert.equal(record?.configVersion, answer.version, 'audit records carry the version in effect');
      assert.ok(gw.logs.some((l) => l.includes('these options change only on restart') && l.includes('listen.http.port')));

      // Reloading the same file again: unchanged, still pending.
      assert.deepEqual(await reload(gw.adminUrl), { ok: true, changed: false, version: answer.version, restartRequired: ['listen.http.port'], pendingVersion: answer.pendingVersion });

      // The port put back: the file is wholly in effect again, under its own version.
      await gw.writeConfig(base(echo, ['a', 'b']));
      const back = await reload(gw.adminUrl);
      assert.deepEqual(back.restartRequired, []);
      assert.equal(back.pendingVersion, undefined);
      assert.equal(back.version, gw.gateway.config.version);
      assert.deepEqual(await gauge(gw.adminUrl, 'portcullis_config_restart_required'), ['portcullis_config_restart_required 0']);
      assert.deepEqual((await readyz(gw.adminUrl)).restartRequired, []);
    } finally {
      await gw.close();
    }
  });

  it('walks every restart-only option: each change is listed under its own path and its running value stays', async () => {
    const other = `sha256:${createHash('sha256').update('another-admin-token').digest('hex')}`;
    /** One change per restart-only option, with how to read the running value. */
    const table: { path: string; value: unknown; running: (gw: TestGateway) => unknown }[] = [
      { path: 'listen.http.port', value: 1, running: (gw) => gw.gateway.addresses().http?.port },
      { path: 'listen.http.host', value: '0.0.0.0', running: (gw) => gw.gateway.addresses().http?.address },
      { path: 'admin.port', value: 1, running: (gw) => gw.gateway.addresses().admin?.port },
      { path: 'admin.host', value: 'localhost', running: (gw) => gw.gateway.config.admin.host },
      { path: 'admin.enabled', value: false, running: (gw) => gw.gateway.config.admin.enabled },
      { path: 'admin.tokenHash', value: other, running: (gw) => gw.gateway.config.admin.tokenHash },
      { path: 'admin.hosts', value: ['gateway.example'], running: (gw) => gw.gateway.config.admin.hosts },
      { path: 'admin.origins', value: ['https://ops.example'], running: (gw) => gw.gateway.config.admin.origins },
      { path: 'dataDir', value: otherDir, running: (gw) => gw.gateway.config.dataDir },
      { path: 'audit.file', value: 'audit/elsewhere.log', running: (gw) => gw.gateway.config.audit.file },
      { path: 'audit.maxQueueBytes', value: 131072, running: (gw) => gw.gateway.config.audit.maxQueueBytes },
      { path: 'audit.retryIntervalMs', value: 4321, running: (gw) => gw.gateway.config.audit.retryIntervalMs },
      { path: 'log.level', value: 'error', running: (gw) => gw.gateway.config.logLevel },
      { path: 'limits.maxHeaderBytes', value: 32768, running: (gw) => gw.gateway.config.limits.maxHeaderBytes },
    ];
    // Every restart-only option the gateway declares is walked here.
    for (const option of RESTART_ONLY_OPTIONS) {
      assert.ok(table.some((row) => row.path === option || row.path.startsWith(`${option}.`)), `the walk covers ${option}`);
    }
    const gw = await startGateway(base(echo));
    try {
      const fileVersion = gw.gateway.config.version;
      for (const row of table) {
        const before = row.running(gw);
        await gw.writeConfig(withOption(base(echo), row.path, row.value));
        const answer = await reload(gw.adminUrl);
        assert.equal(answer.ok, true, `${row.path}: ${JSON.stringify(answer)}`);
        assert.deepEqual(answer.restartRequired, [row.path], row.path);
        assert.notEqual(answer.version, answer.pendingVersion, row.path);
        assert.deepEqual(row.running(gw), before, `${row.path}: the running value stays`);
        assert.equal((await call(`${gw.url}/a/x`)).status, 200, `${row.path}: still serving`);
        await gw.writeConfig(base(echo));
        const back = await reload(gw.adminUrl);
        assert.deepEqual([back.restartRequired, back.version], [[], fileVersion], `${row.path}: put back, the file is wholly in effect`);
      }
    } finally {
      await gw.close();
    }
  });

  it('a dataDir change keeps the embedded stores where they run too', async () => {
    const config = { ...base(echo), apiKeys: { environment: 'live' }, authenticators: { machines: { type: 'apiKey' } } };
    const gw = await startGateway(config);
    try {
      const store = gw.gateway.config.apiKeys?.settings.store;
      await gw.writeConfig({ ...config, dataDir: otherDir });
      const answer = await reload(gw.adminUrl);
      assert.deepEqual(answer.restartRequired, ['dataDir']);
      assert.deepEqual(gw.gateway.config.apiKeys?.settings.store, store, 'the key store stays in the running data directory');
    } finally {
      await gw.close();
    }
  });
});

describe('reload answers: whole processes', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEchoUpstream(); });
  after(async () => { await echo.close(); });

  it('a SIGHUP reload logs the options that wait for a restart', async () => {
    const gw = await startGatewayProcess(base(echo));
    try {
      await gw.writeConfig(withOption(base(echo, ['a', 'b']), 'listen.http', { host: '127.0.0.1', port: 1 }));
      gw.child.kill('SIGHUP');
      assert.ok(await gw.logged('"config reloaded"'), gw.stdout.join('\n'));
      assert.ok(gw.stdout.some((l) => l.includes('"config reloaded"') && l.includes('"restartRequired":["listen.http.port"]')));
      assert.ok(gw.stdout.some((l) => l.includes('these options change only on restart') && l.includes('listen.http.port')));
      assert.equal((await call(`${gw.url}/b/x`)).status, 200, 'the live change applied on the old port');
      assert.deepEqual((await readyz(gw.adminUrl)).restartRequired, ['listen.http.port']);
    } finally {
      await gw.stop();
    }
  });

  it('under --workers the primary answers the same, and a replacement worker runs the host\'s port, not the file\'s', async () => {
    const gw = await startGatewayProcess(base(echo), { args: ['--workers', '2'] });
    try {
      await gw.writeConfig(withOption(base(echo, ['a', 'b']), 'listen.http', { host: '127.0.0.1', port: 1 }));
      const answer = await reload(gw.adminUrl);
      assert.equal(answer.ok, true, JSON.stringify(answer));
      assert.deepEqual(answer.restartRequired, ['listen.http.port']);
      assert.notEqual(answer.version, answer.pendingVersion);
      const ready = await readyz(gw.adminUrl);
      assert.equal(ready.ready, true, JSON.stringify(ready));
      assert.deepEqual([ready.version, ready.restartRequired, ready.pendingVersion], [answer.version, ['listen.http.port'], answer.pendingVersion]);
      assert.equal((await call(`${gw.url}/b/x`)).status, 200);
      assert.deepEqual(await gauge(gw.adminUrl, 'portcullis_config_restart_required'), ['portcullis_config_restart_required 1']);

      // A worker that dies is replaced; the replacement runs the host's settings and version.
      const pid = gw.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true')).map((l) => (JSON.parse(l) as { pid: number }).pid)[0];
      assert.ok(pid !== undefined);
      const listening = gw.stdout.filter((l) => l.includes('"worker listening"')).length;
      process.kill(pid, 'SIGKILL');
      await waitUntil('a replacement worker listens', () => gw.stdout.filter((l) => l.includes('"worker listening"')).length > listening, 15_000);
      await waitUntil('the host is ready on one version again', async () => (await readyz(gw.adminUrl)).ready, 15_000);
      const after = await readyz(gw.adminUrl);
      assert.equal(after.version, answer.version, 'the replacement runs the version in effect');
      assert.equal((await call(`${gw.url}/b/x`)).status, 200, 'the old port serves');
    } finally {
      await gw.stop();
    }
  });
});
