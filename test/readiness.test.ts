// Readiness tells the truth: /readyz is 503 until every authenticator some route uses can decide
// (a remote JWK Set loaded, an API key store read within maxStalenessMs), names each component
// not ready and why, turns ready when the component comes back and not ready again when it is
// lost, and logs each change once. Real JWKS and PostgreSQL servers on loopback; time moves on an
// injected clock, and only real events (a fetch, a store read) are waited for.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from './harness/manual-clock.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';
import { ADMIN_TOKEN_HASH, call } from './harness/api-keys.js';
import { CuttableRelay, freshDatabase, POSTGRES_TARGET, relayedUrl, type TestDatabase } from './harness/postgres.js';
import { waitUntil } from './harness/assertions.js';
import { READINESS_CHECK_MS } from '../src/lifecycle/readiness.js';

const ISS = 'https://idp.readiness.test/';
const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';

interface ReadyBody {
  ready: boolean;
  version: string;
  configVersion: string;
  status: string;
  components: Record<string, { ready: boolean; reason?: string; [detail: string]: unknown }>;
  restartRequired: string[];
  pendingVersion?: string;
}

async function readyz(adminUrl: string): Promise<{ status: number; body: ReadyBody; raw: string }> {
  const res = await call(`${adminUrl}/readyz`);
  return { status: res.status, body: JSON.parse(res.body) as ReadyBody, raw: res.body };
}

function jwtConfig(echo: EchoUpstream, jwksUri: string, extra: Record<string, unknown> = {}): ConfigObject {
  return {
    log: { level: 'info' },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: {
      users: { type: 'jwt', issuer: ISS, jwksUri, audience: 'api', algorithms: ['ES256'], jwks: { cooldownMs: 1000, timeoutMs: 2000 } },
      ...extra,
    },
    routes: [
      { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] },
      { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
    ],
  };
}

describe('readiness with a remote JWK Set', () => {
  let key: TestKey;
  let jwks: JwksServer;
  let echo: EchoUpstream;
  before(async () => {
    key = await testKey('ES256', 'ready-1');
    jwks = await JwksServer.start([key]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await jwks.close();
    await echo.close();
  });

  it('is not ready while the issuer is down at start, says why, and turns ready once the keys load', async () => {
    jwks.mode = 'error';
    const clock = new ManualClock(Date.now());
    const gw = await startGateway(jwtConfig(echo, jwks.url), { clock });
    try {
      const down = await readyz(gw.adminUrl);
      assert.equal(down.status, 503);
      assert.equal(down.body.ready, false);
      assert.equal(down.body.version, gw.gateway.config.version);
      const users = down.body.components['authenticator:users'];
      assert.equal(users?.ready, false);
      assert.match(users.reason ?? '', /JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json has not been loaded \(last fetch: HTTP 500\)/);
      for (const name of ['gateway', 'listener:http', 'listener:admin', 'audit']) assert.equal(down.body.components[name]?.ready, true, name);
      assert.ok(gw.logs.some((l) => l.includes('gateway not ready yet') && l.includes('authenticator:users')), 'the start is logged as not ready, naming the component');
      assert.ok(gw.logs.some((l) => l.includes('JWKS fetch failed; no keys yet')), 'the failed fetch says there are no keys');
      assert.ok(!gw.logs.some((l) => l.includes('keeping the last good keys')), 'no "last good keys" when there are none');
      const token = await mint(key, { iss: ISS, aud: 'api', sub: 'u1' });
      assert.equal((await call(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } })).status, 503, 'what /readyz says matches what requests get');

      jwks.mode = 'ok';
      clock.advance(1000); // the retry after the cooldown
      await waitUntil('/readyz answers ready once the keys loaded', async () => (await readyz(gw.adminUrl)).status === 200);
      const up = await readyz(gw.adminUrl);
      assert.deepEqual(up.body.components['authenticator:users'], { ready: true, type: 'jwt' });
      assert.equal(up.body.ready, true);
      assert.equal((await call(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
      clock.advance(READINESS_CHECK_MS);
      await waitUntil('the change is logged', () => gw.logs.some((l) => l.includes('"gateway ready"')));
      assert.equal(gw.logs.filter((l) => l.includes('"gateway ready"')).length, 1, 'logged once');
      // A failed refresh keeps the last good keys: still able to decide, still ready.
      jwks.mode = 'error';
      const fetches = jwks.requests;
      clock.advance(300_000);
      await waitUntil('the scheduled refresh ran', () => jwks.requests > fetches);
      assert.equal((await readyz(gw.adminUrl)).status, 200, 'the last good keys still decide');
    } finally {
      await gw.close();
      jwks.mode = 'ok';
    }
  });

  it('an authenticator no route uses does not hold readiness back; keys from the config are always ready', async () => {
    const clock = new ManualClock(Date.now());
    const config = jwtConfig(echo, jwks.url, {
      unused: { type: 'jwt', issuer: 'https://unused.test/', jwksUri: 'http://127.0.0.1:1/jwks.json', audience: 'api', algorithms: ['ES256'], jwks: { timeoutMs: 500 } },
      partners: { type: 'jwt', issuer: 'https://partners.test/', secret: SECRET, audience: 'api', algorithms: ['HS256'] },
      guest: { type: 'anonymous' },
    });
    (config.routes as unknown[]).push(
      { name: 'partners', match: { path: '/partners' }, upstream: 'echo', authenticate: ['partners', 'guest'] },
    );
    const gw = await startGateway(config, { clock });
    try {
      const r = await readyz(gw.adminUrl);
      assert.equal(r.status, 200, r.raw);
      assert.deepEqual(Object.keys(r.body.components).filter((k) => k.startsWith('authenticator:')).sort(),
        ['authenticator:guest', 'authenticator:partners', 'authenticator:users']);
      assert.equal(r.body.components['authenticator:unused'], undefined, 'no route uses it');
      assert.equal(r.body.components['authenticator:partners']?.ready, true);
      assert.equal(r.body.components['authenticator:guest']?.ready, true);
      assert.doesNotMatch(r.raw, new RegExp(SECRET), 'no secret in the readiness body');
    } finally {
      await gw.close();
    }
  });

  it('a reload onto an issuer that cannot be reached turns readiness off until its keys load', async () => {
    const clock = new ManualClock(Date.now());
    const other = await JwksServer.start([key]);
    other.mode = 'refuse';
    const gw = await startGateway(jwtConfig(echo, jwks.url), { clock });
    try {
      assert.equal((await readyz(gw.adminUrl)).status, 200);
      await gw.writeConfig(jwtConfig(echo, other.url));
      const reloaded = await gw.gateway.reload();
      assert.equal(reloaded.ok, true);
      const r = await readyz(gw.adminUrl);
      assert.equal(r.status, 503);
      assert.match(r.body.components['authenticator:users']?.reason ?? '', /has not been loaded/);
      clock.advance(READINESS_CHECK_MS);
      await waitUntil('the loss is logged', () => gw.logs.some((l) => l.includes('gateway no longer ready') && l.includes('authenticator:users')));
      other.mode = 'ok';
      clock.advance(1000);
      await waitUntil('ready again once the new issuer answers', async () => (await readyz(gw.adminUrl)).status === 200);
    } finally {
      await gw.close();
      await other.close();
    }
  });

  it('whenReady resolves with the ready report, or with what is still not ready once the wait is over', async () => {
    jwks.mode = 'error';
    const clock = new ManualClock(Date.now());
    const gw = await startGateway(jwtConfig(echo, jwks.url), { clock });
    try {
      const waiting = gw.gateway.whenReady(5000);
      clock.advance(5000);
      const late = await waiting;
      assert.equal(late.ready, false);
      assert.match(late.components['authenticator:users']?.reason ?? '', /has not been loaded/);
      jwks.mode = 'ok';
      const ready = gw.gateway.whenReady(60_000);
      // The JWKS retry falls due first; the background checks after it see the keys.
      clock.advance(1000);
      await waitUntil('the keys loaded', () => gw.gateway.readiness().ready);
      assert.equal((await ready).ready, true);
    } finally {
      await gw.close();
      jwks.mode = 'ok';
    }
  });
});

describe('readiness with an API key store', () => {
  let db: TestDatabase | string;
  let echo: EchoUpstream;
  const relay = new CuttableRelay(POSTGRES_TARGET.host, POSTGRES_TARGET.port);
  before(async () => {
    db = await freshDatabase();
    echo = await startEchoUpstream();
  });
  after(async () => {
    await relay.cut();
    await echo.close();
    if (typeof db !== 'string') await db.drop();
  });

  it('is not ready until the store is read, and not ready again once it has not been read for maxStalenessMs', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; }
    await relay.start();
    const url = relayedUrl(db, relay);
    await relay.cut(); // down at start
    const pollIntervalMs = 100;
    const maxStalenessMs = 1000;
    const clock = new ManualClock();
    const gw: TestGateway = await startGateway({
      log: { level: 'info' },
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { environment: 'live', store: { type: 'postgres', url, timeoutMs: 500, listen: false }, pollIntervalMs, maxStalenessMs },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
    }, { clock });
    try {
      const down = await readyz(gw.adminUrl);
      assert.equal(down.status, 503);
      const machines = down.body.components['authenticator:machines'];
      assert.equal(machines?.ready, false);
      assert.equal(machines.store, 'postgres');
      assert.match(machines.reason ?? '', /the api key store has not been read yet \(last read: /);
      assert.doesNotMatch(down.raw, /postgres:\/\//, 'no store URL in the body');

      await relay.restore();
      await waitUntil('ready once a read of the store succeeds', async () => { clock.advance(pollIntervalMs); return (await readyz(gw.adminUrl)).status === 200; });
      assert.deepEqual((await readyz(gw.adminUrl)).body.components['authenticator:machines'], { ready: true, store: 'postgres', type: 'apiKey' });

      await relay.cut();
      clock.advance(maxStalenessMs + 1);
      const stale = await readyz(gw.adminUrl);
      assert.equal(stale.status, 503, stale.raw);
      assert.match(stale.body.components['authenticator:machines']?.reason ?? '', /key changes not read for \d+ ms, over apiKeys\.maxStalenessMs 1000/);
      await waitUntil('the loss is logged', () => gw.logs.some((l) => l.includes('gateway no longer ready') && l.includes('authenticator:machines')));

      await relay.restore();
      await waitUntil('ready again once the store is read', async () => { clock.advance(pollIntervalMs); return (await readyz(gw.adminUrl)).status === 200; });
    } finally {
      await gw.close();
    }
  });
});
