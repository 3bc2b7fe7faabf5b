// Revocations under `start --workers 2` without Redis: the list is the host's. A token revoked
// through the primary's admin API is refused by every worker within a second (the workers digest
// with the host's key file, so one worker's digest is every worker's), and a worker that replaces
// one that died loads the revocations in force before it serves.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN_HASH, admin } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcess, type GatewayProcess } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';

/** One request on a connection of its own (the primary hands each new connection to the next worker); the status. */
function fresh(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close', authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

const spread = (gw: GatewayProcess, token: string): Promise<number[]> => Promise.all(Array.from({ length: 8 }, () => fresh(`${gw.url}/orders/1`, token)));

describe('revocations across the workers of one host, without Redis', () => {
  let echo: EchoUpstream;
  let key: TestKey;
  let gw: GatewayProcess;

  before(async () => {
    echo = await startEchoUpstream();
    key = await testKey('ES256', 'k1');
    gw = await startGatewayProcess({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
    }, { args: ['--workers', '2'] });
  });
  after(async () => {
    await gw.stop();
    await echo.close();
  });

  it('a token revoked through the primary is refused by every worker within a second', async () => {
    const token = await mint(key, { sub: 'alice' });
    assert.deepEqual(await spread(gw, token), Array(8).fill(200), 'both workers verified and cached it');
    const started = performance.now();
    const res = await admin(gw.adminUrl, 'POST', '/admin/revocations', { token });
    assert.equal(res.status, 200, res.body);
    await waitUntil('every worker refuses the revoked token', async () => (await spread(gw, token)).every((s) => s === 401), 1000);
    assert.ok(performance.now() - started < 1000);
    assert.deepEqual(await spread(gw, await mint(key, { sub: 'alice', jti: 'another' })), Array(8).fill(200), 'other tokens still work');
  });

  it('a worker that replaces a dead one loads the revocations in force', async () => {
    const token = await mint(key, { sub: 'bob' });
    assert.equal((await admin(gw.adminUrl, 'POST', '/admin/revocations', { token })).status, 200);
    const pids = gw.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true')).map((l) => (JSON.parse(l) as { pid: number }).pid);
    const victim = pids[0];
    assert.ok(victim !== undefined, 'a worker pid was logged');
    process.kill(victim, 'SIGKILL');
    await waitUntil('a replacement worker listens', () => gw.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true')).length > pids.length, 15_000);
    assert.deepEqual(await spread(gw, token), Array(8).fill(401));
  });
});
