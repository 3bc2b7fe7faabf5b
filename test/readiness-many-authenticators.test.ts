// A host under --workers is as ready as one process with the same config: the primary held each
// worker's readiness report to at most 256 components, so a config whose routes use 254 or more
// authenticators (one issuer per tenant) never turned ready under --workers ("did not report its
// readiness"), and `--wait-ready` stopped it. Real gateway processes on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject } from './harness/gateway.js';

const TENANTS = 300;

function config(echo: EchoUpstream): ConfigObject {
  const names = Array.from({ length: TENANTS }, (_, i) => `tenant${i}`);
  return {
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: Object.fromEntries(names.map((n) => [n, { type: 'anonymous', subject: n }])),
    routes: names.map((n) => ({ name: n, match: { path: `/${n}/**` }, upstream: 'echo', authenticate: [n] })),
  };
}

interface ReadyBody { ready: boolean; components: Record<string, { ready: boolean; reason?: string }> }

async function readyz(adminUrl: string): Promise<{ status: number; body: ReadyBody }> {
  const res = await call(`${adminUrl}/readyz`);
  return { status: res.status, body: JSON.parse(res.body) as ReadyBody };
}

describe('readiness with hundreds of authenticators', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEchoUpstream(); });
  after(async () => { await echo.close(); });

  it('one process and a host under --workers both report every authenticator, ready', async () => {
    const alone = await startGateway(config(echo));
    let single: ReadyBody;
    try {
      const r = await readyz(alone.adminUrl);
      assert.equal(r.status, 200);
      single = r.body;
    } finally {
      await alone.close();
    }
    const host = await startGatewayProcess(config(echo), { args: ['--workers', '1'] });
    try {
      const r = await readyz(host.adminUrl);
      assert.equal(r.status, 200, JSON.stringify(Object.entries(r.body.components).filter(([, c]) => !c.ready)));
      const authenticators = (b: ReadyBody): string[] => Object.keys(b.components).filter((k) => k.startsWith('authenticator:')).sort();
      assert.equal(authenticators(r.body).length, TENANTS);
      assert.deepEqual(authenticators(r.body), authenticators(single));
    } finally {
      await host.stop();
    }
  });
});
