// A flood of well-formed API keys with random (unknown) ids against two gateway processes sharing
// one PostgreSQL database: revocations keep propagating and valid keys keep working. And a gateway
// cut off from the change log stops trusting its cache after apiKeys.maxStalenessMs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { Agent, request } from 'undici';
import { newKey } from '../src/authn/api-key/key-format.js';
import { assertProblem, waitUntil } from './harness/assertions.js';
import { admin, ADMIN_TOKEN_HASH, createKey, withKey, type IssuedKeyReply } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcesses, type ConfigObject, type GatewayProcess } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { freshDatabase, POSTGRES_TARGET, type TestDatabase } from './harness/postgres.js';

function config(echo: EchoUpstream, db: TestDatabase, apiKeys: Record<string, unknown> = {}): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { store: { type: 'postgres', url: db.url }, ...apiKeys },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
  };
}

/**
 * Polls `probe` until it returns true; only probes sent within `timeoutMs` count. Returns the
 * milliseconds until that probe's answer, or null if none sent in time succeeded. Real time on
 * purpose: the gateways are other processes on the machine's clock, and what is measured is how
 * fast a change travels between them through PostgreSQL.
 */
async function until(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 5): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await probe()) return Date.now() - started;
    await delay(everyMs);
  }
  return null;
}

interface FloodResult { status: number; retryAfter: string | undefined; requestId: string }

/**
 * Keeps `concurrency` requests with random well-formed unknown keys in flight, split across the
 * gateways, until `stop()`, `budget` requests in total or `maxMs`, whichever comes first. Connections are opened in batches below
 * the listen backlog (511), each batch once the previous one has been answered, so the kernel does
 * not reset connections the gateway never saw.
 */
function flood(urls: readonly string[], concurrency: number, budget: number, maxMs: number): { started: Promise<void>; stop: () => Promise<{ results: FloodResult[]; connectionErrors: string[] }>; readonly running: boolean } {
  const deadline = Date.now() + maxMs;
  const going = (): boolean => !stopped && sent < budget && Date.now() < deadline;
  const agents = urls.map(() => new Agent({ connections: Math.ceil(concurrency / urls.length), pipelining: 1 }));
  // Made in advance, so the flood spends the test's CPU on requests, not on minting keys.
  const keys = Array.from({ length: budget }, () => newKey('live'));
  const results: FloodResult[] = [];
  const connectionErrors: string[] = [];
  let sent = 0;
  let stopped = false;
  const worker = async (i: number, answered: () => void): Promise<void> => {
    const url = urls[i % urls.length] as string;
    const dispatcher = agents[i % urls.length] as Agent;
    let first = true;
    while (going()) {
      const key = keys[sent++] as string;
      try {
        const res = await request(`${url}/orders/1`, { headers: { 'x-api-key': key }, dispatcher });
        const text = await res.body.text();
        const retryAfter = res.headers['retry-after'];
        results.push({ status: res.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, requestId: (JSON.parse(text) as { requestId: string }).requestId });
      } catch (err) {
        connectionErrors.push((err as Error).message);
      }
      if (first) { first = false; answered(); }
    }
    if (first) answered();
  };
  const workers: Promise<void>[] = [];
  const BATCH = 250;
  const started = (async () => {
    for (let base = 0; base < concurrency && !stopped; base += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, concurrency - base) }, (_, j) => new Promise<void>((answered) => { workers.push(worker(base + j, answered)); }));
      await Promise.all(batch);
    }
  })();
  return {
    started,
    get running() { return going(); },
    async stop() {
      stopped = true;
      await started;
      await Promise.all(workers);
      await Promise.all(agents.map((a) => a.close()));
      return { results, connectionErrors };
    },
  };
}

describe('API keys under a flood of unknown key ids (two gateway processes, one PostgreSQL)', () => {
  let db: TestDatabase | string;
  let echo: EchoUpstream;
  let gateways: GatewayProcess[] = [];

  before(async () => {
    db = await freshDatabase();
    if (typeof db === 'string') return;
    echo = await startEchoUpstream();
    gateways = await startGatewayProcesses([config(echo, db), config(echo, db)]);
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await echo?.close();
    if (typeof db !== 'string') await db.drop();
  });

  it('keeps revocations reaching the other gateway within 1 s and valid keys working while ~1,500 random ids are in flight', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; }
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const steady = await createKey(a.adminUrl, { name: 'steady' });
    const doomed = await createKey(a.adminUrl, { name: 'doomed' });
    for (const key of [steady, doomed]) {
      for (const gw of gateways) {
        assert.notEqual(await until(async () => (await withKey(`${gw.url}/orders/1`, key.key)).status === 200, 2000), null, `${key.name} works on ${gw.url} before the flood`);
      }
    }

    const load = flood([a.url, b.url], 1500, 60_000, 90_000);
    await load.started;
    assert.ok(load.running, 'the flood is under way');

    // Meanwhile, on both gateways and all along: the valid key keeps working.
    const steadyStatuses: number[] = [];
    let checking = true;
    const steadyProbes = (async () => {
      do {
        steadyStatuses.push(...await Promise.all(gateways.map(async (gw) => (await withKey(`${gw.url}/orders/1`, steady.key)).status)));
      } while (checking);
    })();
    // Meanwhile: revoke on A, and B must refuse within 1 s. Probes go to B every 20 ms of real time
    // (the bound is on real propagation) without waiting for each other, so B's audit trail shows
    // when it first refused the key, whatever the probes' own round trips cost on a busy machine.
    const probes: Promise<{ status: number; requestId: string }>[] = [];
    let refusedOnB = false;
    const prober = (async () => {
      const started = Date.now();
      while (!refusedOnB && Date.now() - started < 5000) {
        probes.push(withKey(`${b.url}/orders/1`, doomed.key).then((r) => {
          if (r.status === 401) refusedOnB = true;
          return { status: r.status, requestId: r.headers['x-request-id'] ?? '' };
        }));
        await delay(20);
      }
    })();
    assert.equal((await admin(a.adminUrl, 'POST', `/admin/keys/${doomed.id}/revoke`)).status, 200);
    const revokedAt = Date.now();
    await prober;
    const answers = await Promise.all(probes);
    // Meanwhile: a key created on A becomes usable on B (a liveness check, looser than the revocation bound).
    const fresh: IssuedKeyReply = await createKey(a.adminUrl, { name: 'fresh' });
    const freshAfterMs = await until(async () => (await withKey(`${b.url}/orders/1`, fresh.key)).status === 200, 5000);
    checking = false;
    await steadyProbes;
    const stillFlooding = load.running;
    const { results, connectionErrors } = await load.stop();
    t.diagnostic(`flood connection errors: ${connectionErrors.length} ${[...new Set(connectionErrors)].join('; ')}`);

    const refused = new Set(answers.filter((p) => p.status === 401).map((p) => p.requestId));
    assert.deepEqual([...new Set(answers.map((p) => p.status))].filter((s) => s !== 200 && s !== 401), [], 'B answers the revoked key with 200 (before) or 401 (after) only');
    const firstRefusal = (await b.audit()).filter((r) => refused.has(r.requestId)).map((r) => Date.parse(r.time)).sort((x, y) => x - y)[0];
    const refusedAfterMs = firstRefusal === undefined ? null : firstRefusal - revokedAt;
    t.diagnostic(`flood: ${results.length} requests; revocation seen by B ${refusedAfterMs ?? 'never'} ms after the revoke call returned (negative: before it returned); new key usable on B after ${freshAfterMs ?? 'never'} ms`);
    assert.ok(stillFlooding, 'the checks ran while the flood was still under way');
    assert.ok(refusedAfterMs !== null && refusedAfterMs <= 1000, `the revoked key is refused by the other gateway within 1 s (after ${refusedAfterMs ?? 'never'} ms)`);
    assert.notEqual(freshAfterMs, null, 'a key created during the flood works on the other gateway');
    assert.deepEqual([...new Set(steadyStatuses)], [200], 'the valid key keeps working on both gateways');

    // Every flood request was answered precisely: unknown (401) or refused for the look-up bound (503 with Retry-After).
    const byStatus = new Map<number, number>();
    for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    t.diagnostic(`flood answers by status: ${JSON.stringify(Object.fromEntries(byStatus))}`);
    assert.deepEqual([...byStatus.keys()].filter((s) => s !== 401 && s !== 503), [], 'only 401 and 503');
    for (const r of results) if (r.status === 503) assert.equal(r.retryAfter, '1', '503 carries Retry-After');

    // Exactly one audit record per flood request; the refusals say the look-up limit was reached.
    const records = [...await a.audit(), ...await b.audit()];
    const perRequest = new Map<string, number>();
    for (const r of records) perRequest.set(r.requestId, (perRequest.get(r.requestId) ?? 0) + 1);
    for (const r of results) assert.equal(perRequest.get(r.requestId), 1, `one audit record for ${r.requestId}`);
    if ((byStatus.get(503) ?? 0) > 0) {
      assert.ok(records.some((r) => r.reason === 'authentication_unavailable' && /look-up limit reached/.test(r.detail ?? '')), 'the audit names the look-up limit');
    }
    for (const gw of gateways) assert.equal((await withKey(`${gw.url}/orders/1`, steady.key)).status, 200, 'still serving after the flood');
  });
});

describe('API keys when the change log is out of reach (apiKeys.maxStalenessMs)', () => {
  let db: TestDatabase | string;
  let echo: EchoUpstream;
  const adminDb = (): pg.Client => new pg.Client({ connectionString: `postgres://${process.env.PGUSER ?? 'postgres'}@${POSTGRES_TARGET.host}:${POSTGRES_TARGET.port}/postgres` });

  before(async () => {
    db = await freshDatabase();
    if (typeof db !== 'string') echo = await startEchoUpstream();
  });
  after(async () => {
    await echo?.close();
    if (typeof db !== 'string') await db.drop();
  });

  it('refuses cached keys with 503 once the change log has not been read for maxStalenessMs, and recovers when it can be read again', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; }
    const maxStalenessMs = 1000;
    const pollIntervalMs = 100;
    // The staleness bound and the polls of the change log run on the gateway's clock: the test
    // moves it instead of waiting for the bound to pass.
    const clock = new ManualClock();
    // A long cache TTL: only the staleness bound can end the cached key's use.
    const gw = await startGateway(config(echo, db, { cacheTtlMs: 600_000, pollIntervalMs, maxStalenessMs }), { clock });
    const control = adminDb();
    await control.connect();
    try {
      const key = await createKey(gw.adminUrl, { name: 'cached' });
      const url = `${gw.url}/orders/1`;
      assert.notEqual(await until(async () => (await withKey(url, key.key)).status === 200, 2000), null, 'the key works and is cached');

      // Cut the change-log reader and LISTEN connections, and keep them from coming back; the
      // look-up pool's open connections stay, so look-ups alone would still succeed.
      await control.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
      const cut = await control.query<{ n: string }>(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name IN ('portcullis-sync', 'portcullis-listen')", [db.name]);
      assert.equal(Number(cut.rows[0]?.n), 2, 'the change-log reader and the LISTEN connection were cut');

      // The clock has not moved since the last read of the change log: the polls that fall due on
      // the way fail, the cached key works up to the bound, and one millisecond past it, it does not.
      clock.advance(maxStalenessMs);
      assert.equal((await withKey(url, key.key)).status, 200, 'the cached key works until the bound');
      clock.advance(1);
      const doc = assertProblem(await withKey(url, key.key), 503, 'authentication_unavailable');
      const records = await gw.auditFor(doc.requestId);
      assert.equal(records.length, 1, 'one audit record');
      assert.match(records[0]?.detail ?? '', /maxStalenessMs/);
      assertProblem(await withKey(url, newKey('live')), 503, 'authentication_unavailable');

      // The failed poll has reported before the database takes connections again, so it cannot succeed late.
      await waitUntil('the failed read of the change log is reported', () => gw.logs.some((l) => l.includes('api key store unreachable')));
      await control.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
      // The next poll reads the change log again; each probe moves the clock one poll interval.
      await waitUntil('the cached key works again once the change log can be read', async () => {
        clock.advance(pollIntervalMs);
        return (await withKey(url, key.key)).status === 200;
      }, 5000);
      assert.ok(gw.logs.some((l) => l.includes('api key store unreachable')), 'the outage was logged');
    } finally {
      await control.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await control.end();
      await gw.close();
    }
  });
});
