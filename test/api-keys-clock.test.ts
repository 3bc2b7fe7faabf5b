// Key lifecycle against wrong clocks: revocation is a state, and every stored instant comes from
// the store's clock, so a revoker, creator, rotator or gateway whose clock is off cannot make a
// revoked key work, or a valid key fail. The CLI (SQLite store) and the admin API (PostgreSQL
// store) each run as a separate process with a skewed clock; the gateways are real.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { admin, ADMIN_TOKEN_HASH, createKey, withKey, type IssuedKeyReply } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { CLI, startGateway, startGatewayProcess, toYaml, type ConfigObject, type GatewayProcess, type TestGateway } from './harness/gateway.js';
import { freshDatabase, type TestDatabase } from './harness/postgres.js';
import { skewedClockEnv } from './harness/skewed-clock.js';

const HOUR = 3_600_000;

interface Run { code: number | null; stdout: string; stderr: string }

/** A CLI run that has not ended by then is killed, and the test fails saying so instead of hanging. */
const CLI_TIMEOUT_MS = 60_000;

function cli(args: string[], skewMs = 0): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...skewedClockEnv(skewMs) } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const timer = setTimeout(() => {
      stderr += `\n(portcullis ${args.slice(0, 2).join(' ')} had not ended after ${CLI_TIMEOUT_MS} ms and was killed)`;
      child.kill('SIGKILL');
    }, CLI_TIMEOUT_MS);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/**
 * Polls (bounded, at most `timeoutMs`) until `url` answers `status` for `key`; fails with `what`
 * otherwise. What it waits for is another process's write reaching a real gateway through its
 * change log, which signals nothing to the test; no wait here is for a clock this test could move.
 */
function untilStatus(what: string, url: string, key: string, status: number, timeoutMs = 1000): Promise<void> {
  return waitUntil(what, async () => (await withKey(url, key)).status === status, timeoutMs);
}

interface KeyJson { id: string; key: string; status: string; revokedAt: string | null; expiresAt: string | null; graceUntil: string | null }

describe('API key lifecycle from a CLI whose clock is wrong (SQLite store)', () => {
  let dir: string;
  let file: string;
  let echo: EchoUpstream;
  let gw: TestGateway;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-clock-'));
    echo = await startEchoUpstream();
    const config: ConfigObject = {
      dataDir: join(dir, 'data'),
      apiKeys: { environment: 'test' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
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

  it('a revocation from a clock an hour ahead takes effect at once; show and list agree, whatever their clocks; revoking again changes nothing', async () => {
    const created = await cli(['keys', 'create', '-c', file, '--name', 'ahead', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const issued = JSON.parse(created.stdout) as KeyJson;
    const url = `${gw.url}/orders/1`;
    await untilStatus('the running gateway accepts the key', url, issued.key, 200);

    const revokeSent = Date.now();
    const revoke = await cli(['keys', 'revoke', issued.id, '-c', file], HOUR);
    const revokeEnded = Date.now();
    assert.equal(revoke.code, 0, revoke.stderr);
    await untilStatus('refused by the running gateway within a second', url, issued.key, 401);

    const [behind, ahead, list] = await Promise.all([
      cli(['keys', 'show', issued.id, '-c', file], -HOUR), cli(['keys', 'show', issued.id, '-c', file], HOUR), cli(['keys', 'list', '-c', file, '--json'], -HOUR),
    ]);
    const shown = [JSON.parse(behind.stdout) as KeyJson, JSON.parse(ahead.stdout) as KeyJson];
    const listed = (JSON.parse(list.stdout) as KeyJson[]).find((k) => k.id === issued.id);
    assert.deepEqual([...shown.map((k) => k.status), listed?.status], ['revoked', 'revoked', 'revoked']);
    const revokedAt = Date.parse(shown[0]?.revokedAt ?? '');
    // The store's time lies within the revoke call (give or take this machine's clock steps); the revoker's is an hour later.
    const slack = 10 * 60_000;
    assert.ok(revokedAt >= revokeSent - slack && revokedAt <= revokeEnded + slack, `revokedAt ${shown[0]?.revokedAt ?? ''} is the store's time, not the revoker's`);

    const again = await cli(['keys', 'revoke', issued.id, '-c', file, '--json'], -HOUR);
    assert.equal(again.code, 0, again.stderr);
    const afterAgain = JSON.parse((await cli(['keys', 'show', issued.id, '-c', file])).stdout) as KeyJson;
    assert.equal(afterAgain.revokedAt, shown[0]?.revokedAt, 'revoking again keeps the first revocation');
    assert.equal((await withKey(url, issued.key)).status, 401);
  });

  it('a key created, and a rotation made, from a clock an hour behind still last their full lifetime and grace', async () => {
    const created = await cli(['keys', 'create', '-c', file, '--name', 'behind', '--expires', '30m', '--json'], -HOUR);
    assert.equal(created.code, 0, created.stderr);
    const issued = JSON.parse(created.stdout) as KeyJson;
    assert.equal(issued.status, 'expiring', 'not born expired (expiring: within expiryWarning)');
    const url = `${gw.url}/orders/1`;
    await untilStatus('works for its lifetime', url, issued.key, 200);
    const rotated = await cli(['keys', 'rotate', issued.id, '--grace', '20m', '-c', file, '--json'], -HOUR);
    assert.equal(rotated.code, 0, rotated.stderr);
    const successor = JSON.parse(rotated.stdout) as KeyJson;
    await gw.gateway.config.apiKeys?.directory.sync();
    assert.equal((await withKey(url, issued.key)).status, 200, 'the old key keeps working during its grace period');
    assert.equal((await withKey(url, successor.key)).status, 200);
    const old = JSON.parse((await cli(['keys', 'show', issued.id, '-c', file], HOUR)).stdout) as KeyJson;
    assert.equal(old.status, 'grace', 'a clock an hour ahead still sees the grace period');
  });
});

describe('API key lifecycle from an admin API and a gateway whose clocks are wrong (PostgreSQL store)', () => {
  let db: TestDatabase | string;
  let echo: EchoUpstream;
  let ahead: GatewayProcess | null = null;
  let right: TestGateway | null = null;

  before(async () => {
    db = await freshDatabase();
    if (typeof db === 'string') return;
    echo = await startEchoUpstream();
    const config: ConfigObject = {
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { store: { type: 'postgres', url: db.url } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
    };
    [ahead, right] = await Promise.all([startGatewayProcess(config, { env: skewedClockEnv(HOUR) }), startGateway(config)]);
  });
  after(async () => {
    await ahead?.stop();
    await right?.close();
    await echo?.close();
    if (typeof db !== 'string') await db.drop();
  });

  it('a revocation through the admin API of a gateway an hour ahead is refused by every gateway within a second, and revoking again is harmless', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; } // only without PostgreSQL, and never under CI=true (the harness throws)
    assert.ok(ahead !== null && right !== null, 'both gateways started');
    const key = await createKey(right.adminUrl, { name: 'to-revoke' });
    for (const gw of [ahead, right]) await untilStatus(`works on ${gw.url}`, `${gw.url}/orders/1`, key.key, 200);
    const res = await admin(ahead.adminUrl, 'POST', `/admin/keys/${key.id}/revoke`);
    assert.equal(res.status, 200, res.body);
    assert.equal((JSON.parse(res.body) as KeyJson).status, 'revoked');
    for (const gw of [right, ahead]) await untilStatus(`refused by ${gw.url} within a second`, `${gw.url}/orders/1`, key.key, 401);
    const again = await admin(right.adminUrl, 'POST', `/admin/keys/${key.id}/revoke`);
    assert.equal(again.status, 200);
    const views = await Promise.all([ahead, right].map(async (gw) => JSON.parse((await admin(gw.adminUrl, 'GET', `/admin/keys/${key.id}`)).body) as KeyJson));
    assert.deepEqual(views.map((v) => v.status), ['revoked', 'revoked'], 'both admin APIs agree');
    assert.equal(views[0]?.revokedAt, (JSON.parse(res.body) as KeyJson).revokedAt, 'the first revocation is kept');
    assert.ok(Math.abs(Date.parse(views[0]?.revokedAt ?? '') - Date.now()) < 10 * 60_000, 'stamped by the database, not the revoker');
  });

  it('a rotation with no grace through a gateway an hour ahead ends the old key at once everywhere', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; } // only without PostgreSQL, and never under CI=true (the harness throws)
    assert.ok(ahead !== null && right !== null, 'both gateways started');
    const key = await createKey(right.adminUrl, { name: 'to-rotate' });
    for (const gw of [ahead, right]) await untilStatus(`works on ${gw.url}`, `${gw.url}/orders/1`, key.key, 200);
    const res = await admin(ahead.adminUrl, 'POST', `/admin/keys/${key.id}/rotate`, { grace: '1s' });
    assert.equal(res.status, 201, res.body);
    const next = JSON.parse(res.body) as IssuedKeyReply;
    for (const gw of [right, ahead]) {
      // The grace ends by the database server's clock, which no test can move: this poll waits for it.
      await untilStatus(`old key refused by ${gw.url} once the 1 s grace is over`, `${gw.url}/orders/1`, key.key, 401, 3000);
      await untilStatus(`the successor works on ${gw.url}`, `${gw.url}/orders/1`, next.key, 200);
    }
  });

  it('a gateway an hour ahead judges expiry by the database\'s clock: a key with 30 minutes left works there', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; } // only without PostgreSQL, and never under CI=true (the harness throws)
    assert.ok(ahead !== null && right !== null, 'both gateways started');
    const key = await createKey(right.adminUrl, { name: 'half-hour', expires: '30m' });
    for (const gw of [right, ahead]) await untilStatus(`works on ${gw.url}`, `${gw.url}/orders/1`, key.key, 200);
    const view = JSON.parse((await admin(ahead.adminUrl, 'GET', `/admin/keys/${key.id}`)).body) as KeyJson;
    assert.equal(view.status, 'expiring', 'listed by the database\'s clock, not as expired');
  });
});
