// A wait longer than one setTimeout can hold (2^31 - 1 ms, about 24.8 days) never fires early: Node
// would fire it at once (with a TimeoutOverflowWarning), so `start --wait-ready 30d` stopped a
// gateway a millisecond after it listened, saying it was "not ready within 2592000000 ms".
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGatewayProcess } from './harness/gateway.js';
import { JwksServer, testKey } from './harness/jwt.js';
import { MAX_TIMEOUT_MS, systemClock } from '../src/lib/clock.js';

describe('timers beyond setTimeout\'s range', () => {
  let jwks: JwksServer;
  let echo: EchoUpstream;
  before(async () => {
    jwks = await JwksServer.start([await testKey('ES256', 'long-1')]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await jwks.close();
    await echo.close();
  });

  it('the system clock waits them out: neither just past the limit nor past 2^32 ms fires before a 30 ms timer', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.name); };
    process.on('warning', onWarning);
    const fired: string[] = [];
    const timers = [MAX_TIMEOUT_MS + 1, 2 ** 32, 30 * 86_400_000, Infinity].map((ms) => systemClock.setTimer(() => fired.push(String(ms)), ms));
    // (a ref'd timer alongside, so the process stays up while the unref'd ones wait)
    await new Promise<void>((resolve) => { systemClock.setTimer(resolve, 30); setTimeout(() => undefined, 30); });
    for (const t of timers) t.cancel();
    process.off('warning', onWarning);
    assert.deepEqual(fired, []);
    assert.ok(!warnings.includes('TimeoutOverflowWarning'), warnings.join(', '));
    // Within range it fires as before.
    await new Promise<void>((resolve) => { systemClock.setTimer(resolve, 1); });
  });

  it('start --wait-ready 30d keeps serving (not ready yet) instead of stopping at once', async () => {
    jwks.mode = 'error';
    const gw = await startGatewayProcess({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://idp.long.test/', jwksUri: jwks.url, audience: 'api', algorithms: ['ES256'], jwks: { cooldownMs: 100, timeoutMs: 2000 } } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
    }, { args: ['--wait-ready', '30d'] });
    try {
      assert.ok(await gw.logged('gateway not ready yet'), 'the gateway says it is not ready yet');
      const res = await call(`${gw.adminUrl}/readyz`);
      assert.equal(res.status, 503);
      assert.equal(gw.child.exitCode, null, `still running; stderr: ${gw.stderr.join('')}`);
      assert.ok(!gw.stderr.join('').includes('not ready within'), gw.stderr.join(''));
    } finally {
      jwks.mode = 'ok';
      await gw.stop();
    }
  });
});
