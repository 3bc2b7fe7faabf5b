// log.level applies on restart only, for the whole host: a worker that replaces one that died after
// a reload changed log.level logs at the level the host runs, not the file's (it read the file's
// level for its logger while taking every other restart-only setting from the primary). A real
// gateway process under --workers on loopback; only its log lines are waited for.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { admin, ADMIN_TOKEN_HASH } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcess, type ConfigObject } from './harness/gateway.js';

function config(echo: EchoUpstream, level: string): ConfigObject {
  return {
    log: { level },
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'open', match: { path: '/open' }, upstream: 'echo', public: true }],
  };
}

describe('log.level under --workers', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEchoUpstream(); });
  after(async () => { await echo.close(); });

  it('a replacement worker logs at the running level while a changed level waits for a restart', async () => {
    const gw = await startGatewayProcess(config(echo, 'info'), { args: ['--workers', '1'] });
    try {
      const own = (): string[] => gw.stdout.filter((l) => l.includes('"worker listening"') && !l.includes('"primary":true'));
      const primary = (): string[] => gw.stdout.filter((l) => l.includes('"worker listening"') && l.includes('"primary":true'));
      await waitUntil('the worker logs that it listens', () => own().length === 1, 10_000);
      await gw.writeConfig(config(echo, 'error'));
      const res = await admin(gw.adminUrl, 'POST', '/admin/reload', {});
      assert.deepEqual((JSON.parse(res.body) as { restartRequired: string[] }).restartRequired, ['log.level']);
      const pid = primary().map((l) => (JSON.parse(l) as { pid: number }).pid)[0];
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGKILL');
      await waitUntil('a replacement worker listens', () => primary().length === 2, 15_000);
      await waitUntil('the replacement logs at info, the level the host runs', () => own().length === 2, 5_000);
    } finally {
      await gw.stop();
    }
  });
});
