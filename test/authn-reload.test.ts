// A reload that changes a remote key set's or the API key backend's settings starts a new one; the
// requests in flight on the old config finish on the old one (no 503 from a stopped key set or
// store), and the old one stops once they are done.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ApiKeyBackend } from '../src/authn/api-key/backend.js';
import { RemoteJwks } from '../src/authn/jwt/remote-jwks.js';
import { ADMIN_TOKEN_HASH, call, createKey, withKey } from './harness/api-keys.js';
import { eventually } from './harness/assertions.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { JwksServer, mint, testKey } from './harness/jwt.js';

const ISS = 'https://idp.example/';

/** An upstream that holds every request until the test releases them, so they stay in flight. */
class HoldingUpstream {
  private held: ServerResponse[] = [];
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<HoldingUpstream> {
    let self: HoldingUpstream | null = null;
    const server = createServer((_req: IncomingMessage, res: ServerResponse) => { self?.held.push(res); });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    self = new HoldingUpstream(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return self;
  }

  get waiting(): number {
    return this.held.length;
  }

  release(): void {
    for (const res of this.held) res.end('ok');
    this.held = [];
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((done) => this.server.close(done));
  }
}

function resourceOf<R>(gw: TestGateway, kind: abstract new (...args: never[]) => R): R {
  const found = gw.gateway.config.resources.find((r): r is R & typeof r => r instanceof kind);
  assert.ok(found !== undefined, `the config uses a ${kind.name}`);
  return found;
}

describe('auth resources across reloads that change them', () => {
  let upstream: HoldingUpstream;
  before(async () => { upstream = await HoldingUpstream.start(); });
  after(async () => { await upstream.close(); });

  it('JWKS: requests in flight across a reload that changes the key set settings all succeed; the old set stops after them', async () => {
    const [k1, k2] = await Promise.all([testKey('ES256', 'reload-a'), testKey('ES256', 'reload-b')]);
    const jwks = await JwksServer.start([k1]);
    const config = (refreshMs: number): ConfigObject => ({
      upstreams: { held: { targets: [upstream.url] } },
      authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri: jwks.url, audience: 'orders-api', algorithms: ['ES256'], jwks: { cooldownMs: 100, refreshMs } } },
      routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'held', authenticate: ['users'] }],
    });
    const gw = await startGateway(config(300_000));
    try {
      const old = resourceOf(gw, RemoteJwks);
      // k2 is published after start: the requests signed with it wait on the old set's refetch,
      // which the endpoint answers slowly, and then at the upstream.
      jwks.setKeys([k1, k2]);
      jwks.mode = 'slow';
      jwks.slowMs = 300;
      const token = await mint(k2, { iss: ISS, aud: 'orders-api' });
      const inFlight = Array.from({ length: 5 }, () => call(`${gw.url}/orders`, { headers: { authorization: `Bearer ${token}` } }));
      await eventually(() => jwks.requests >= 2, true);
      await gw.writeConfig(config(600_000));
      assert.equal((await gw.gateway.reload()).ok, true);
      const current = resourceOf(gw, RemoteJwks);
      assert.notEqual(current, old, 'changed settings: a new key set');
      await eventually(() => upstream.waiting, 5);
      assert.equal(old.isRunning, true, 'the old set runs while requests that started on it are in flight');
      upstream.release();
      assert.deepEqual((await Promise.all(inFlight)).map((r) => r.status), [200, 200, 200, 200, 200]);
      assert.equal(await eventually(() => old.isRunning, false), false, 'the old set stops once they are done');
      assert.equal(current.isRunning, true);
    } finally {
      await gw.close();
      await jwks.close();
    }
  });

  it('API keys: requests in flight across a reload that changes the backend settings all succeed; the old backend stops after them and their uses are written', async () => {
    const config = (cacheTtlMs: number): ConfigObject => ({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { cacheTtlMs, usageFlushMs: 3_600_000 },
      upstreams: { held: { targets: [upstream.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders' }, upstream: 'held', authenticate: ['machines'] }],
    });
    const gw = await startGateway(config(60_000));
    try {
      const key = await createKey(gw.adminUrl, { name: 'reload-client' });
      const old = resourceOf(gw, ApiKeyBackend);
      const inFlight = Array.from({ length: 5 }, () => withKey(`${gw.url}/orders`, key.key));
      await eventually(() => upstream.waiting, 5);
      await gw.writeConfig(config(30_000));
      assert.equal((await gw.gateway.reload()).ok, true);
      const current = resourceOf(gw, ApiKeyBackend);
      assert.notEqual(current, old, 'changed settings: a new backend');
      assert.equal(old.isRunning, true, 'the old backend runs while requests that started on it are in flight');
      upstream.release();
      assert.deepEqual((await Promise.all(inFlight)).map((r) => r.status), [200, 200, 200, 200, 200]);
      assert.equal(await eventually(() => old.isRunning, false), false, 'the old backend stops once they are done');
      const next = withKey(`${gw.url}/orders`, key.key);
      await eventually(() => upstream.waiting, 1);
      upstream.release();
      assert.equal((await next).status, 200, 'the new backend answers');
      const db = new Database(join(gw.gateway.config.dataDir, 'keys', 'api-keys.db'), { readonly: true });
      try {
        const uses = (): number => (db.prepare('SELECT use_count AS n FROM api_keys WHERE id = ?').get(key.id) as { n: number }).n;
        assert.equal(await eventually(uses, 5), 5, 'the old backend wrote the uses of the requests it served when it stopped');
      } finally {
        db.close();
      }
    } finally {
      await gw.close();
    }
  });
});
