// The brute-force guard across config reloads. The guard is a resource keyed by its settings and
// where it counts: requests in flight when a reload changes those settings finish on the guard they
// started with (counted by it, answered as usual, audited once), and that guard stops only after
// them; a reload that keeps the settings keeps the running guard with its counts and blocks; one
// that changes them starts a new guard, so blocks in force are lifted and failure counts start
// again in process, or carry on under the new threshold in Redis, where they live.
// Windows and blocks run on an injected clock; a JWKS endpoint that holds its answer keeps requests
// in flight inside authentication while the reload happens.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { BruteForceGuard } from '../src/ratelimit/brute-force-guard.js';
import { RedisLimitStore } from '../src/ratelimit/redis-store.js';
import { call, type Reply } from './harness/api-keys.js';
import { assertProblem, oneAuditRecordFor, waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const ISS = 'https://issuer.test/';
// Far ahead of the real clock: Redis expires the guard's counts at times the injected clock gives.
// A UTC midnight, so the one-minute windows start with each test.
const FUTURE = 4_102_444_800_000;
const BLOCK_MS = 60_000;

/** A JWKS endpoint that answers at once or, while held, keeps every fetch waiting until released. */
class HoldingJwks {
  private keys: readonly TestKey[] = [];
  private held: ServerResponse[] = [];
  private holding = false;
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(keys: readonly TestKey[]): Promise<HoldingJwks> {
    let self: HoldingJwks | null = null;
    const server = createServer((_req, res) => { self?.answer(res); });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    self = new HoldingJwks(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`);
    self.setKeys(keys);
    return self;
  }

  setKeys(keys: readonly TestKey[]): void {
    this.keys = keys;
  }

  hold(): void {
    this.holding = true;
  }

  /** Fetches being held. */
  get waiting(): number {
    return this.held.length;
  }

  release(): void {
    this.holding = false;
    for (const res of this.held) this.send(res);
    this.held = [];
  }

  private answer(res: ServerResponse): void {
    if (this.holding) this.held.push(res);
    else this.send(res);
  }

  private send(res: ServerResponse): void {
    res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((done) => this.server.close(done));
  }
}

function guardOf(gw: TestGateway): BruteForceGuard {
  const guard = gw.gateway.config.rateLimiting.guard;
  assert.ok(guard !== null, 'the config has a brute-force guard');
  return guard;
}

const sharedStoreOf = (gw: TestGateway): RedisLimitStore | undefined =>
  gw.gateway.config.resources.find((r): r is RedisLimitStore => r instanceof RedisLimitStore);

for (const where of ['memory', 'redis'] as const) {
  describe(`brute-force guard across reloads (failures counted ${where === 'memory' ? 'in process' : 'in Redis'})`, () => {
    let redis: TestRedis | string | null = null;
    let echo: EchoUpstream;
    let k1: TestKey;
    let k2: TestKey;
    // Keys the issuer never published, under the kids it did: their tokens are forged (counted guesses).
    let forgerK1: TestKey;
    let forgerK2: TestKey;

    before(async () => {
      if (where === 'redis') redis = await startRedis();
      echo = await startEchoUpstream();
      [k1, k2, forgerK1, forgerK2] = await Promise.all([testKey('ES256', 'k1'), testKey('ES256', 'k2'), testKey('ES256', 'k1'), testKey('ES256', 'k2')]);
    });
    after(async () => {
      await echo.close();
      if (typeof redis === 'object' && redis !== null) await redis.stop();
    });

    /** Why this variant cannot run (no redis-server), or null. */
    const unavailable = (): string | null => (typeof redis === 'string' ? redis : null);

    interface Running {
      readonly gw: TestGateway;
      readonly clock: ManualClock;
      readonly jwks: HoldingJwks;
      /** Rewrites the config with these guard settings (and extra routes) and reloads; fails unless it changed. */
      reload(maxFailures: number, extraRoutes?: ConfigObject[]): Promise<void>;
    }

    /** A gateway whose guard blocks after `maxFailures` within a minute, for a minute; closed after the test. */
    async function open(t: TestContext, maxFailures: number): Promise<Running> {
      const jwks = await HoldingJwks.start([k1]);
      t.after(() => jwks.close());
      const store = typeof redis === 'object' && redis !== null ? { redis: { url: redis.url, timeoutMs: 2000 } } : null;
      const config = (max: number, extraRoutes: ConfigObject[] = []): ConfigObject => ({
        trustedProxies: ['127.0.0.1/32'],
        upstreams: { echo: { targets: [echo.url] } },
        authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', jwksUri: jwks.url, algorithms: ['ES256'] } },
        rateLimiting: {
          ...store,
          bruteForce: { maxFailures: max, within: '1m', blockFor: '1m', ...(store === null ? {} : { store: 'redis' }) },
        },
        routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['users'] }, ...extraRoutes],
      });
      const clock = new ManualClock(FUTURE);
      const gw = await startGateway(config(maxFailures), { clock });
      t.after(() => gw.close());
      return {
        gw, clock, jwks,
        async reload(max, extraRoutes) {
          await gw.writeConfig(config(max, extraRoutes));
          const reloaded = await gw.gateway.reload();
          assert.equal(reloaded.ok && reloaded.changed, true, JSON.stringify(reloaded));
        },
      };
    }

    /** A token signed by `key`, valid on the gateway's clock for an hour. */
    const token = (clock: ManualClock, key: TestKey): Promise<string> => {
      const iat = Math.floor(clock.now() / 1000);
      return mint(key, { iss: ISS, aud: 'orders-api', sub: 'user-1', iat, exp: iat + 3600, jti: randomUUID() });
    };
    const get = (gw: TestGateway, ip: string, bearer: string, path = '/api/orders'): Promise<Reply> =>
      call(`${gw.url}${path}`, { headers: { authorization: `Bearer ${bearer}`, 'x-forwarded-for': ip } });
    /** `n` failed authentications from `ip`, each an ordinary 401; returns the last answer. */
    const fail = async ({ gw, clock }: Running, ip: string, n: number): Promise<Reply> => {
      let last: Reply | undefined;
      for (let i = 0; i < n; i++) {
        last = await get(gw, ip, await token(clock, forgerK1));
        assertProblem(last, 401, 'invalid_credential');
      }
      assert.ok(last !== undefined);
      return last;
    };
    /** The audit detail of the request `res` answered. */
    const detailOf = async (gw: TestGateway, res: Reply): Promise<string> => (await gw.auditFor(res.headers['x-request-id'] ?? ''))[0]?.detail ?? '';

    it('requests in flight across a reload that changes the guard\'s settings are counted by the guard they started on and answered as usual, one audit record each; that guard stops after them', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const { gw, clock, jwks } = running;
      const old = guardOf(gw);
      const oldVersion = gw.gateway.config.version;
      const store = sharedStoreOf(gw);
      const attacker = '198.51.100.10';
      await fail(running, attacker, 2);

      // k2 is published now: the first request naming it makes the gateway fetch the set, and the
      // endpoint holds that fetch, so every request below waits for it inside authentication.
      jwks.setKeys([k1, k2]);
      jwks.hold();
      const plan = [
        { path: '/api/in-flight/third-failure', ip: attacker, bearer: await token(clock, forgerK2), status: 401 },
        { path: '/api/in-flight/first-failure', ip: '198.51.100.11', bearer: await token(clock, forgerK2), status: 401 },
        { path: '/api/in-flight/valid', ip: '198.51.100.12', bearer: await token(clock, k2), status: 200 },
      ];
      const answers = Promise.all(plan.map((p) => get(gw, p.ip, p.bearer, p.path)));
      await waitUntil('the requests are in flight and the key fetch is held', async () =>
        jwks.waiting === 1 && (await gw.gateway.metrics.inFlight.get()).values[0]?.value === plan.length);

      await running.reload(5);
      const current = guardOf(gw);
      assert.notEqual(current, old, 'changed settings: a new guard');
      assert.equal(old.isRunning, true, 'the old guard runs while requests that started on it are in flight');
      if (store !== undefined) assert.equal(sharedStoreOf(gw), store, 'the shared store, whose settings did not change, is kept');

      jwks.release();
      assert.deepEqual((await answers).map((r) => r.status), plan.map((p) => p.status), 'each answered as usual: no 503');
      for (const p of plan) {
        const record = await oneAuditRecordFor(gw, p.path);
        assert.equal(record.status, p.status, p.path);
        assert.equal(record.configVersion, oldVersion, `${p.path} finished on the config it started with`);
      }
      const third = await oneAuditRecordFor(gw, '/api/in-flight/third-failure');
      assert.match(third.detail ?? '', /ip 198\.51\.100\.10 blocked for 60000 ms after 3 failures/, 'the old guard counted it on top of the two before, under its own settings');
      assert.equal(third.limit, 'bruteForce');
      await waitUntil('the old guard stops once they are done', () => !old.isRunning);
      assert.equal(current.isRunning, true, 'the new guard runs');
    });

    it('a reload that keeps the guard\'s settings keeps the running guard: a blocked client stays blocked until its block ends, and one under the threshold keeps its count', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const { gw, clock } = running;
      const guard = guardOf(gw);
      const blocked = '203.0.113.10';
      const counting = '203.0.113.11';
      await fail(running, blocked, 3);
      assertProblem(await get(gw, blocked, await token(clock, k1)), 429, 'too_many_failures');
      await fail(running, counting, 2);
      clock.advance(BLOCK_MS / 3); // within the window and the block

      await running.reload(3, [{ name: 'other', match: { path: '/other' }, upstream: 'echo', public: true }]);
      assert.equal(guardOf(gw), guard, 'same settings: the running guard is reused');
      const still = await get(gw, blocked, await token(clock, k1));
      assertProblem(still, 429, 'too_many_failures');
      assert.equal(still.headers['retry-after'], '40', 'the block keeps its end');
      const crossing = await fail(running, counting, 1);
      assert.match(await detailOf(gw, crossing), /ip 203\.0\.113\.11 blocked for 60000 ms after 3 failures/, 'the third failure, the first after the reload, blocks');
      assertProblem(await get(gw, counting, await token(clock, k1)), 429, 'too_many_failures');

      clock.advance((BLOCK_MS * 2) / 3);
      assert.equal((await get(gw, blocked, await token(clock, k1))).status, 200, 'the block ends when it would have without the reload');
      assert.equal(guard.isRunning, true, 'the reused guard was never stopped');
    });

    // What a user sees when changing `rateLimiting.bruteForce`: blocks are held by the guard, so a
    // new guard starts with none; failure counts are the guard's own in process, but live in Redis.
    const countsCarry = where === 'redis';
    it(countsCarry
      ? 'a reload that changes the guard\'s settings lifts the blocks in force, and the failure counts kept in Redis carry on under the new threshold'
      : 'a reload that changes the guard\'s settings starts afresh: blocks in force are lifted and failure counts start again from zero under the new threshold', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const { gw, clock } = running;
      const old = guardOf(gw);
      const blocked = '192.0.2.10';
      const counting = '192.0.2.11';
      await fail(running, blocked, 3);
      assertProblem(await get(gw, blocked, await token(clock, k1)), 429, 'too_many_failures');
      await fail(running, counting, 2);

      await running.reload(5);
      assert.notEqual(guardOf(gw), old, 'changed settings: a new guard');
      assert.equal((await get(gw, blocked, await token(clock, k1))).status, 200, 'the block in force is lifted');
      // The failures that still count towards the new threshold of 5.
      const counted = countsCarry ? 2 : 0;
      await fail(running, counting, 5 - counted - 1);
      assert.equal((await get(gw, counting, await token(clock, k1))).status, 200, 'one failure short of the new threshold: not blocked');
      const crossing = await fail(running, counting, 1);
      assert.match(await detailOf(gw, crossing), /ip 192\.0\.2\.11 blocked for 60000 ms after 5 failures/, 'blocked at the new threshold');
      assertProblem(await get(gw, counting, await token(clock, k1)), 429, 'too_many_failures');
      await waitUntil('the old guard stops', () => !old.isRunning);
    });
  });
}
