// The brute-force guard across config reloads. The guard is a resource keyed by its settings and
// where it counts: requests in flight when a reload changes those settings finish on the guard they
// started with (counted by it, answered as usual, audited once), and that guard stops only after
// them; a reload that keeps the settings keeps the running guard with its counts and blocks. One
// that changes them starts a new guard, which takes over every block in force (each until its own
// end, capped at the new blockFor) and counts on under the new threshold: the counts live in
// tables of their own in process (kept while maxEntries is), or in Redis.
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

    /** The guard's settings a test varies (under `rateLimiting.bruteForce`, and `rateLimiting` for the last two). */
    interface GuardSettings {
      readonly maxFailures: number;
      readonly blockFor?: string;
      readonly ipv6PrefixLength?: number;
      readonly maxEntries?: number;
    }

    interface Running {
      readonly gw: TestGateway;
      readonly clock: ManualClock;
      readonly jwks: HoldingJwks;
      /** Rewrites the config with these guard settings (and extra routes) and reloads; fails unless it changed. */
      reload(settings: number | GuardSettings, extraRoutes?: ConfigObject[]): Promise<void>;
    }

    /** A gateway whose guard blocks after `maxFailures` within a minute, for a minute unless told otherwise; closed after the test. */
    async function open(t: TestContext, initial: number | GuardSettings): Promise<Running> {
      const jwks = await HoldingJwks.start([k1]);
      t.after(() => jwks.close());
      const store = typeof redis === 'object' && redis !== null ? { redis: { url: redis.url, timeoutMs: 2000 } } : null;
      const config = (settings: number | GuardSettings, extraRoutes: ConfigObject[] = []): ConfigObject => {
        const { maxFailures, blockFor = '1m', ipv6PrefixLength, maxEntries } = typeof settings === 'number' ? { maxFailures: settings } : settings;
        return {
          trustedProxies: ['127.0.0.1/32'],
          upstreams: { echo: { targets: [echo.url] } },
          authenticators: { users: { type: 'jwt', issuer: ISS, audience: 'orders-api', jwksUri: jwks.url, algorithms: ['ES256'] } },
          rateLimiting: {
            ...store,
            ...(ipv6PrefixLength === undefined ? {} : { ipv6PrefixLength }),
            ...(maxEntries === undefined ? {} : { maxEntries }),
            bruteForce: { maxFailures, within: '1m', blockFor, ...(store === null ? {} : { store: 'redis' }) },
          },
          routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['users'] }, ...extraRoutes],
        };
      };
      const clock = new ManualClock(FUTURE);
      const gw = await startGateway(config(initial), { clock });
      t.after(() => gw.close());
      return {
        gw, clock, jwks,
        async reload(settings, extraRoutes) {
          await gw.writeConfig(config(settings, extraRoutes));
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
      await waitUntil('the requests are in flight and the key fetch is held', () =>
        jwks.waiting === 1 && gw.gateway.metrics.requestsInFlight === plan.length);

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

    /** The request from `ip` is refused by the guard, which says to retry in `retryAfter` seconds. */
    const assertBlocked = async ({ gw, clock }: Running, ip: string, retryAfter: number, message?: string): Promise<void> => {
      const res = await get(gw, ip, await token(clock, k1));
      assertProblem(res, 429, 'too_many_failures');
      assert.equal(res.headers['retry-after'], String(retryAfter), message);
    };
    const assertAdmitted = async ({ gw, clock }: Running, ip: string, message?: string): Promise<void> => {
      assert.equal((await get(gw, ip, await token(clock, k1))).status, 200, message);
    };

    it('a reload that changes the guard\'s settings keeps the blocks in force, each until its own end, and the failure counts carry on under the new threshold', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const { gw, clock } = running;
      const old = guardOf(gw);
      const blocked = '192.0.2.10';
      const counting = '192.0.2.11';
      await fail(running, blocked, 3);
      await assertBlocked(running, blocked, 60);
      await fail(running, counting, 2);
      clock.advance(BLOCK_MS / 3); // within the window and the block

      await running.reload(5);
      assert.notEqual(guardOf(gw), old, 'changed settings: a new guard');
      await assertBlocked(running, blocked, 40, 'the block in force is kept, with its end');
      // Two failures counted before the reload, two after: one short of the new threshold of 5.
      await fail(running, counting, 2);
      await assertAdmitted(running, counting, 'one failure short of the new threshold: not blocked');
      const crossing = await fail(running, counting, 1);
      assert.match(await detailOf(gw, crossing), /ip 192\.0\.2\.11 blocked for 60000 ms after 5 failures/, 'blocked at the new threshold, counting the failures before the reload');
      await assertBlocked(running, counting, 60);

      clock.advance((BLOCK_MS * 2) / 3);
      await assertAdmitted(running, blocked, 'the block ends when it would have without the reload');
      await waitUntil('the old guard stops', () => !old.isRunning);
    });

    it('a reload that shortens blockFor caps the blocks in force at the new duration; one that lengthens it keeps each block\'s own end', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const { clock } = running;
      const early = '198.51.100.20';
      await fail(running, early, 3);
      clock.advance(10_000); // 50 s of the block left

      await running.reload({ maxFailures: 3, blockFor: '20s' });
      await assertBlocked(running, early, 20, 'capped at the new blockFor, from the reload');
      const later = '198.51.100.21';
      await fail(running, later, 3);
      await assertBlocked(running, later, 20, 'a new block lasts the new blockFor');
      clock.advance(5_000);
      await assertBlocked(running, later, 15);

      await running.reload({ maxFailures: 3, blockFor: '2m' });
      await assertBlocked(running, early, 15, 'a longer blockFor does not extend a block in force');
      await assertBlocked(running, later, 15);
      clock.advance(15_000);
      await assertAdmitted(running, early);
      await assertAdmitted(running, later);
    });

    it('a reload that changes ipv6PrefixLength keeps an IPv6 block on exactly the network it blocked', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3); // IPv6 addresses counted per /64
      await fail(running, '2001:db8:1:2::10', 3);
      await assertBlocked(running, '2001:db8:1:2::99', 60, 'the /64 is blocked');

      await running.reload({ maxFailures: 3, ipv6PrefixLength: 48 });
      await assertBlocked(running, '2001:db8:1:2::99', 60, 'still blocked under /48 networks');
      await assertAdmitted(running, '2001:db8:1:3::1', 'the block is not widened to the /48');
      await assertAdmitted(running, '198.51.100.30');

      await running.reload({ maxFailures: 3, ipv6PrefixLength: 96 });
      await assertBlocked(running, '2001:db8:1:2::ffff:1', 60, 'and under /96 networks, on the whole /64');
      running.clock.advance(BLOCK_MS);
      await assertAdmitted(running, '2001:db8:1:2::10', 'until the block ends');
    });

    // In process the counts are kept in tables of maxEntries sources; Redis keeps them whatever the tables' size.
    const countsKeptAcrossSizes = where === 'redis';
    it(countsKeptAcrossSizes
      ? 'a reload that changes maxEntries keeps the blocks in force and the counts kept in Redis'
      : 'a reload that changes maxEntries keeps the blocks in force; the failure counts start again in tables of the new size', async (t) => {
      const reason = unavailable();
      if (reason !== null) { t.skip(reason); return; }
      const running = await open(t, 3);
      const blocked = '203.0.113.40';
      const counting = '203.0.113.41';
      await fail(running, blocked, 3);
      await fail(running, counting, 2);

      await running.reload({ maxFailures: 3, maxEntries: 500 });
      await assertBlocked(running, blocked, 60);
      const counted = countsKeptAcrossSizes ? 2 : 0;
      if (3 - counted - 1 > 0) await fail(running, counting, 3 - counted - 1);
      await assertAdmitted(running, counting, 'one failure short of the threshold');
      const crossing = await fail(running, counting, 1);
      assert.match(await detailOf(running.gw, crossing), /ip 203\.0\.113\.41 blocked/);
    });
  });
}
