// Revocation and rotation across two gateway processes sharing one PostgreSQL database.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { admin, ADMIN_TOKEN_HASH, createKey, withKey, type IssuedKeyReply } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcesses, type ConfigObject, type GatewayProcess } from './harness/gateway.js';
import { freshDatabase, type TestDatabase } from './harness/postgres.js';

function clusterConfig(echo: EchoUpstream, db: TestDatabase, listen: boolean): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { store: { type: 'postgres', url: db.url, listen } },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
  };
}

/** Successful reads of the key store's change log a gateway has made (its admin `/metrics`). */
async function changeLogReads(gw: GatewayProcess): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('portcullis_api_key_store_polls_total{result="ok"} '));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/**
 * Milliseconds from now until `key` is refused by every gateway (a bounded poll, at most 5 s): the
 * revocation reaches the other process through PostgreSQL, and the time it takes is what is measured.
 */
async function untilRefusedEverywhere(gateways: readonly GatewayProcess[], key: string): Promise<number> {
  const started = Date.now();
  const pending = new Set(gateways);
  await waitUntil('the key is refused by every gateway', async () => {
    for (const gw of [...pending]) if ((await withKey(`${gw.url}/orders/1`, key)).status === 401) pending.delete(gw);
    return pending.size === 0;
  }, 5000);
  return Date.now() - started;
}

async function statuses(gateways: readonly GatewayProcess[], key: string): Promise<number[]> {
  return Promise.all(gateways.map(async (gw) => (await withKey(`${gw.url}/orders/1`, key)).status));
}

for (const listen of [true, false]) {
  describe(`API keys across two gateway processes sharing PostgreSQL (${listen ? 'LISTEN/NOTIFY' : 'polling only'})`, () => {
    let db: TestDatabase | string;
    let echo: EchoUpstream;
    let gateways: GatewayProcess[] = [];

    before(async () => {
      db = await freshDatabase();
      if (typeof db === 'string') return; // each test skips, saying why
      echo = await startEchoUpstream();
      const config = clusterConfig(echo, db, listen);
      gateways = await startGatewayProcesses([config, config]);
    });
    after(async () => {
      await Promise.all(gateways.map((g) => g.stop()));
      await echo?.close();
      if (typeof db !== 'string') await db.drop();
    });

    it('denies a revoked key on both gateways within one second', async (t) => {
      if (typeof db === 'string') { t.skip(db); return; }
      const [a, b] = gateways as [GatewayProcess, GatewayProcess];
      const latencies: number[] = [];
      for (let round = 0; round < 3; round++) {
        const key = await createKey(a.adminUrl, { name: `svc-${round}` });
        assert.deepEqual(await statuses(gateways, key.key), [200, 200], 'cached on both');
        const revoked = await admin(b.adminUrl, 'POST', `/admin/keys/${key.id}/revoke`);
        assert.equal(revoked.status, 200);
        latencies.push(await untilRefusedEverywhere(gateways, key.key));
      }
      t.diagnostic(`revocation seen by both gateways after ${latencies.join(', ')} ms (${listen ? 'LISTEN/NOTIFY' : 'polling every 500 ms'})`);
      for (const ms of latencies) assert.ok(ms < 1000, `revocation took ${ms} ms`);
    });

    it('keeps both keys working on both gateways until the grace deadline, then only the new one', async (t) => {
      if (typeof db === 'string') { t.skip(db); return; }
      const [a, b] = gateways as [GatewayProcess, GatewayProcess];
      const old = await createKey(a.adminUrl, { name: 'rotating' });
      assert.deepEqual(await statuses(gateways, old.key), [200, 200]);
      const res = await admin(b.adminUrl, 'POST', `/admin/keys/${old.id}/rotate`, { grace: '2s' });
      assert.equal(res.status, 201, res.body);
      const next = JSON.parse(res.body) as IssuedKeyReply;
      const deadline = Date.parse(next.previous?.graceUntil ?? '');
      assert.ok(deadline - Date.now() > 1000, 'the grace period is still running');
      // Both gateways have read the rotation once each has finished two more reads of the change
      // log (the first may have started before the rotation was written).
      const before = await Promise.all(gateways.map(changeLogReads));
      await waitUntil('both gateways have read the change log since the rotation', async () =>
        (await Promise.all(gateways.map(changeLogReads))).every((reads, i) => reads >= (before[i] ?? 0) + 2));
      assert.deepEqual(await statuses(gateways, old.key), [200, 200], 'old key during the grace period');
      assert.deepEqual(await statuses(gateways, next.key), [200, 200], 'new key');
      // PostgreSQL's clock stamped the deadline and the gateways judge it by that clock, which no
      // test can move: real time has to pass (the grace is kept short for that reason).
      await delay(Math.max(0, deadline - Date.now()) + 50);
      assert.deepEqual(await statuses(gateways, old.key), [401, 401], 'old key after the deadline');
      assert.deepEqual(await statuses(gateways, next.key), [200, 200], 'new key after the deadline');
    });
  });
}
