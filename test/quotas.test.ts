// Quotas: calendar periods in time zones (DST included), the quota store contract on SQLite and
// Redis, and a quota through the gateway that still holds after a restart.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Calendar } from '../src/ratelimit/calendar.js';
import { SqliteQuotaStore, type QuotaStore } from '../src/ratelimit/quota-store.js';
import { RedisLimitStore } from '../src/ratelimit/redis-store.js';
import { assertProblem } from './harness/assertions.js';
import { ADMIN_TOKEN_HASH, createKey, withKey } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject } from './harness/gateway.js';
import { startRedis, type TestRedis } from './harness/redis.js';

const iso = (ms: number) => new Date(ms).toISOString();

describe('calendar periods', () => {
  const cases: [string, 'day' | 'month', string, string, string, string][] = [
    ['UTC', 'day', '2026-11-26T13:45:00Z', '2026-11-26', '2026-11-26T00:00:00.000Z', '2026-11-27T00:00:00.000Z'],
    ['UTC', 'month', '2026-12-31T23:59:59Z', '2026-12', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ['UTC', 'month', '2028-02-15T00:00:00Z', '2028-02', '2028-02-01T00:00:00.000Z', '2028-03-01T00:00:00.000Z'],
    ['Europe/Berlin', 'day', '2026-11-26T23:30:00Z', '2026-11-27', '2026-11-26T23:00:00.000Z', '2026-11-27T23:00:00.000Z'],
    // Spring forward: the day has 23 hours; fall back: 25.
    ['Europe/Berlin', 'day', '2026-03-29T12:00:00Z', '2026-03-29', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'],
    ['Europe/Berlin', 'day', '2026-10-25T12:00:00Z', '2026-10-25', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'],
    ['Europe/Berlin', 'month', '2026-03-31T22:30:00Z', '2026-04', '2026-03-31T22:00:00.000Z', '2026-04-30T22:00:00.000Z'],
    ['America/New_York', 'day', '2026-11-27T03:00:00Z', '2026-11-26', '2026-11-26T05:00:00.000Z', '2026-11-27T05:00:00.000Z'],
    ['Asia/Kolkata', 'day', '2026-11-26T18:29:59Z', '2026-11-26', '2026-11-25T18:30:00.000Z', '2026-11-26T18:30:00.000Z'],
    ['Pacific/Kiritimati', 'month', '2026-10-31T10:00:00Z', '2026-11', '2026-10-31T10:00:00.000Z', '2026-11-30T10:00:00.000Z'],
  ];
  for (const [zone, kind, at, id, start, end] of cases) {
    it(`${kind} in ${zone} at ${at} is ${id}`, () => {
      const p = new Calendar(kind, zone).periodAt(Date.parse(at));
      assert.deepEqual({ id: p.id, start: iso(p.startMs), end: iso(p.endMs) }, { id, start, end });
    });
  }

  it('moves to the next period at its first millisecond, and back for earlier times', () => {
    const c = new Calendar('day', 'Europe/Berlin');
    const p = c.periodAt(Date.parse('2026-11-26T12:00:00Z'));
    assert.equal(c.periodAt(p.endMs - 1).id, '2026-11-26');
    assert.equal(c.periodAt(p.endMs).id, '2026-11-27');
    assert.equal(c.periodAt(p.startMs - 1).id, '2026-11-25');
  });
});

function quotaContract(name: string, make: () => Promise<QuotaStore | string>): void {
  describe(`quota store contract: ${name}`, () => {
    let store: QuotaStore | string = 'not started';
    before(async () => { store = await make(); });
    after(async () => { if (typeof store !== 'string') await store.close(); });
    const period = (id: string) => ({ id, startMs: Date.now() - 1000, endMs: Date.now() + 3_600_000 });

    it('counts up to the limit, exactly, and keeps periods and keys apart', async (t) => {
      if (typeof store === 'string') { t.skip(store); return; }
      const s = store;
      const uses = await Promise.all(Array.from({ length: 25 }, () => Promise.resolve(s.consume(`${name}-k1`, period('p1'), 10))));
      assert.equal(uses.filter((u) => u.allowed).length, 10);
      assert.deepEqual(uses.filter((u) => u.allowed).map((u) => u.used).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.ok(uses.filter((u) => !u.allowed).every((u) => u.used === 10));
      assert.deepEqual(await s.consume(`${name}-k1`, period('p2'), 10), { allowed: true, used: 1 });
      assert.deepEqual(await s.consume(`${name}-k2`, period('p1'), 10), { allowed: true, used: 1 });
      // A raised limit admits again from the count so far.
      assert.deepEqual(await s.consume(`${name}-k1`, period('p1'), 11), { allowed: true, used: 11 });
    });
  });
}

let sqliteDir = '';
quotaContract('sqlite', async () => {
  sqliteDir = await mkdtemp(join(tmpdir(), 'portcullis-quota-'));
  return new SqliteQuotaStore({ file: join(sqliteDir, 'q.db'), flushMs: 1000, maxEntries: 10_000 });
});
after(async () => { if (sqliteDir !== '') await rm(sqliteDir, { recursive: true, force: true }); });

let redisForQuotas: TestRedis | string = 'not started';
quotaContract('redis', async () => {
  redisForQuotas = await startRedis();
  if (typeof redisForQuotas === 'string') return redisForQuotas;
  const store = new RedisLimitStore({ url: redisForQuotas.url, keyPrefix: 'q', timeoutMs: 500, connectTimeoutMs: 1000, breakerFailures: 5, breakerOpenMs: 500 });
  await store.connect();
  return store;
});
after(async () => { if (typeof redisForQuotas !== 'string') await redisForQuotas.stop(); });

describe('a quota through the gateway', () => {
  let echo: EchoUpstream;
  let dataDir = '';
  before(async () => {
    echo = await startEchoUpstream();
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-quota-gw-'));
  });
  after(async () => {
    await echo.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const config = (): ConfigObject => ({
    dataDir,
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    quotas: { daily: { limit: 3, period: 'day', by: ['keyId'], tiers: { pro: { limit: 5 } } } },
    rateLimits: { burst: { algorithm: 'token-bucket', limit: 100, per: '1s', by: ['keyId'] } },
    routes: [{ name: 'metered', match: { path: '/metered/**' }, upstream: 'echo', authenticate: ['machines'], rateLimit: 'burst', quota: 'daily' }],
  });

  it('refuses with 429 quota_exceeded until the period ends, reports both limits, and holds across a restart', async () => {
    let gw = await startGateway(config());
    let key: string;
    try {
      key = (await createKey(gw.adminUrl, { name: 'metered-client', expires: '30d' })).key;
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await withKey(`${gw.url}/metered/x`, key);
        statuses.push(res.status);
        assert.match(res.headers['ratelimit-policy'] ?? '', /^"burst";q=100;w=1, "daily";q=3;w=86400$/);
        assert.match(res.headers.ratelimit ?? '', new RegExp(`"daily";r=${2 - i};t=\\d+$`));
      }
      assert.deepEqual(statuses, [200, 200, 200]);
      const denied = await withKey(`${gw.url}/metered/x`, key);
      const doc = assertProblem(denied, 429, 'quota_exceeded');
      const untilMidnight = Math.ceil((86_400_000 - (Date.now() % 86_400_000)) / 1000);
      assert.ok(Math.abs(Number(denied.headers['retry-after']) - untilMidnight) <= 2, `Retry-After ${denied.headers['retry-after']}, midnight UTC in ${untilMidnight} s`);
      const record = (await gw.audit()).find((r) => r.requestId === doc.requestId);
      assert.equal(record?.limit, 'daily');
      assert.match(record?.detail ?? '', /quota of 3 per day \d{4}-\d\d-\d\d \(UTC\)/);
    } finally {
      await gw.close();
    }
    gw = await startGateway(config());
    try {
      assertProblem(await withKey(`${gw.url}/metered/x`, key), 429, 'quota_exceeded');
    } finally {
      await gw.close();
    }
  });
});
