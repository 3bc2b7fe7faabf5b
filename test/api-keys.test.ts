// API keys through the gateway: identity propagation, hostile keys, CIDRs, query keys, the
// lifecycle on the admin API, usage tracking, and a store that goes down (real PostgreSQL behind a
// relay the test cuts). Expiry, grace and cache TTLs are waited for by moving the gateway's
// injected clock; only real events (the store coming back) are polled for.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { newKey } from '../src/authn/api-key/key-format.js';
import { SqliteKeyStore } from '../src/authn/api-key/sqlite-store.js';
import type { Authenticator } from '../src/authn/authenticator.js';
import type { Exchange } from '../src/pipeline/exchange.js';
import { assertProblem, waitUntil } from './harness/assertions.js';
import { admin, ADMIN_TOKEN_HASH, call, createKey, withKey, type IssuedKeyReply } from './harness/api-keys.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { CuttableRelay, freshDatabase, POSTGRES_TARGET, relayedUrl, type TestDatabase } from './harness/postgres.js';
import { rawRequest, requestHead } from './harness/raw-client.js';

function configFor(echo: EchoUpstream, apiKeys: Record<string, unknown> = {}): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    apiKeys: { environment: 'live', ...apiKeys },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    routes: [
      { name: 'orders', match: { path: '/api/{tenant}/orders/**' }, upstream: 'echo', authenticate: ['machines'], authorize: { scopes: ['orders:read'], tenant: { param: 'tenant' } } },
      { name: 'query', match: { path: '/q/**' }, upstream: 'echo', authenticate: ['machines'], apiKeyInQuery: true },
      { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
    ],
  };
}

function headerValues(seen: EchoedRequest | undefined, name: string): string[] {
  assert.ok(seen !== undefined, 'the upstream received the request');
  const out: string[] = [];
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) if ((seen.rawHeaders[i] ?? '').toLowerCase() === name) out.push(seen.rawHeaders[i + 1] ?? '');
  return out;
}

/** The secret part of a key: what must never appear in logs, audit or listings. */
const secretOf = (key: string): string => key.split('_')[3] ?? key;

describe('API keys through the gateway', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let reader: IssuedKeyReply;
  // The gateway's SQLite store stamps with this clock too, so expiry and grace move with it.
  const clock = new ManualClock();

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway(configFor(echo), { clock });
    reader = await createKey(gw.adminUrl, { name: 'billing-service', tenant: 'acme', roles: ['reader'], scopes: ['orders:read', 'orders:list'], expires: '30d' });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  it('accepts the key in X-API-Key or Authorization: ApiKey and asserts the identity upstream', async () => {
    for (const headers of [{ 'x-api-key': reader.key }, { authorization: `ApiKey ${reader.key}` }, { authorization: `apikey ${reader.key}` }]) {
      const before = echo.received.length;
      const res = await call(`${gw.url}/api/acme/orders/1`, { headers });
      assert.equal(res.status, 200, res.body);
      const seen = echo.received[before];
      assert.deepEqual(headerValues(seen, 'x-user-id'), ['billing-service']);
      assert.deepEqual(headerValues(seen, 'x-tenant-id'), ['acme']);
      assert.deepEqual(headerValues(seen, 'x-roles'), ['reader']);
      assert.deepEqual(headerValues(seen, 'x-scopes'), ['orders:read orders:list']);
      assert.deepEqual(headerValues(seen, 'x-auth-method'), ['apiKey']);
      assert.deepEqual(headerValues(seen, 'x-api-key-id'), [reader.id]);
      assert.deepEqual(headerValues(seen, 'x-api-key'), [], 'the key is not forwarded');
      assert.deepEqual(headerValues(seen, 'authorization'), []);
    }
    const res = await withKey(`${gw.url}/api/acme/orders/2`, reader.key, { 'x-api-key-id': 'spoofed', 'x-user-id': 'root' });
    assert.equal(res.status, 200);
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-api-key-id'), [reader.id], 'a spoofed key id header is replaced');
    assert.deepEqual(headerValues(echo.received.at(-1), 'x-user-id'), ['billing-service']);

    assertProblem(await withKey(`${gw.url}/api/other/orders/1`, reader.key), 403, 'tenant_mismatch');
    const records = await gw.audit();
    const mine = records.filter((r) => r.identity?.keyId === reader.id);
    assert.ok(mine.length >= 4);
    assert.deepEqual(mine[0]?.identity, { subject: 'billing-service', authMethod: 'apiKey', keyId: reader.id });
    assert.equal(mine[0]?.tenant, 'acme');
  });

  it('answers every bad key with the same 401, a distinct audit reason, and no store lookup when the format is wrong', async () => {
    const backend = gw.gateway.config.apiKeys;
    assert.ok(backend !== null);
    const store = backend.store;
    const lookups: string[] = [];
    const original = store.get.bind(store);
    store.get = (id: string) => { lookups.push(id); return original(id); };
    const revoked = await createKey(gw.adminUrl, { name: 'revoked', tenant: 'acme', scopes: ['orders:read'] });
    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${revoked.id}/revoke`)).status, 200);
    const expiring = await createKey(gw.adminUrl, { name: 'short', tenant: 'acme', scopes: ['orders:read'], expires: '1s' });
    clock.advance(1100);
    // Let the directory see these creations (each evicts its id once), then load the reader's key.
    await backend.directory.sync();
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, reader.key)).status, 200);
    const k = reader.key;
    const swapped = k.slice(0, 26) + k.slice(26).toUpperCase();
    // `lookup`: whether the key may reach the store (only well-formed keys of this environment may).
    const cases: { label: string; lines: string[]; reason: string; lookup: boolean; path?: string }[] = [
      { label: 'wrong checksum', lines: [`X-API-Key: ${k.slice(0, -1)}${k.endsWith('A') ? 'B' : 'A'}`], reason: 'api_key_malformed', lookup: false },
      { label: 'truncated', lines: [`X-API-Key: ${k.slice(0, -10)}`], reason: 'api_key_malformed', lookup: false },
      { label: 'right id, wrong secret', lines: [`X-API-Key: ${newKey('live', reader.id)}`], reason: 'api_key_secret_mismatch', lookup: true },
      { label: 'unknown id', lines: [`X-API-Key: ${newKey('live')}`], reason: 'api_key_unknown', lookup: true },
      { label: 'inner whitespace', lines: [`X-API-Key: ${k.slice(0, 30)} ${k.slice(30)}`], reason: 'api_key_malformed', lookup: false },
      { label: 'trailing junk after a space', lines: [`X-API-Key: ${k} x`], reason: 'api_key_malformed', lookup: false },
      { label: 'two spaces after ApiKey', lines: [`Authorization: ApiKey  ${k}`], reason: 'api_key_malformed', lookup: false },
      { label: 'different case', lines: [`X-API-Key: ${swapped}`], reason: 'api_key_malformed', lookup: false },
      { label: 'key in header and query', lines: [`X-API-Key: ${k}`], reason: 'api_key_malformed', lookup: false, path: `/q/x?api_key=${k}` },
      { label: 'key in X-API-Key and Authorization', lines: [`X-API-Key: ${k}`, `Authorization: ApiKey ${k}`], reason: 'api_key_malformed', lookup: false },
      { label: 'several X-API-Key headers', lines: [`X-API-Key: ${k}`, `X-API-Key: ${k}`], reason: 'api_key_malformed', lookup: false },
      { label: 'several Authorization headers', lines: [`Authorization: ApiKey ${k}`, 'Authorization: Basic eDp5'], reason: 'api_key_malformed', lookup: false },
      { label: '10 kB key', lines: [`X-API-Key: pk_live_${'a'.repeat(10_240)}`], reason: 'api_key_malformed', lookup: false },
      { label: 'non-ASCII', lines: [`X-API-Key: ${k.slice(0, 30)}\u00e9${k.slice(31)}`], reason: 'api_key_malformed', lookup: false },
      { label: 'empty', lines: ['X-API-Key: '], reason: 'api_key_malformed', lookup: false },
      { label: 'another environment', lines: [`X-API-Key: ${newKey('test')}`], reason: 'api_key_wrong_environment', lookup: false },
      { label: 'revoked', lines: [`X-API-Key: ${revoked.key}`], reason: 'api_key_revoked', lookup: true },
      { label: 'expired', lines: [`X-API-Key: ${expiring.key}`], reason: 'api_key_expired', lookup: true },
    ];
    let first: { body: Record<string, unknown>; challenge: string } | null = null;
    try {
      for (const c of cases) {
        const before = echo.received.length;
        lookups.length = 0;
        const res = await rawRequest(gw.port, requestHead('GET', c.path ?? '/api/acme/orders/1', c.lines), { settleMs: 0 });
        const doc = assertProblem(res, 401, 'invalid_credential');
        const { requestId, ...body } = doc as unknown as Record<string, unknown>;
        const challenge = res.headers['www-authenticate'] ?? '';
        first ??= { body, challenge };
        assert.deepEqual(body, first.body, `${c.label}: the same body for every bad key`);
        assert.equal(challenge, first.challenge, `${c.label}: the same challenge`);
        assert.equal(echo.received.length, before, `${c.label}: nothing forwarded`);
        if (!c.lookup) assert.deepEqual(lookups, [], `${c.label}: no store lookup`);
        const records = await gw.auditFor(String(requestId));
        assert.equal(records.length, 1, `${c.label}: one audit record`);
        assert.equal(records[0]?.reason, 'invalid_credential');
        assert.match(records[0]?.detail ?? '', new RegExp(`^machines: ${c.reason}:`), `${c.label}: audit detail ${records[0]?.detail ?? ''}`);
      }
      assert.equal(first?.challenge, 'ApiKey realm="portcullis", error="invalid_key"');
    } finally {
      store.get = original;
    }
    await gw.auditBarrier(); // every record of the requests above is on disk
    const audit = await readFile(join(gw.gateway.config.dataDir, gw.gateway.config.audit.file), 'utf8');
    assert.ok(!audit.includes(secretOf(k)) && !audit.includes(secretOf(revoked.key)), 'no secret in the audit trail');
    assert.ok(!gw.logs.join('\n').includes(secretOf(k)), 'no secret in the logs');
  });

  it('warns when a key in use nears its expiry, and lists it as expiring', async () => {
    const soon = await createKey(gw.adminUrl, { name: 'nearly-done', tenant: 'acme', scopes: ['orders:read'], expires: '2d' });
    assert.equal(soon.status, 'expiring');
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, soon.key)).status, 200);
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, soon.key)).status, 200);
    const warnings = gw.logs.filter((l) => l.includes('expires soon') && l.includes(soon.id));
    assert.equal(warnings.length, 1, 'one warning per key and hour, not per request');
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, reader.key)).status, 200);
    assert.ok(!gw.logs.some((l) => l.includes('expires soon') && l.includes(reader.id)), 'no warning for a key far from expiry');
  });

  it('refuses a key used from outside its allowed CIDRs with 403', async () => {
    const elsewhere = await createKey(gw.adminUrl, { name: 'office-only', tenant: 'acme', scopes: ['orders:read'], allowedCidrs: ['10.0.0.0/8'] });
    const res = await withKey(`${gw.url}/api/acme/orders/1`, elsewhere.key);
    assertProblem(res, 403, 'ip_not_allowed');
    const local = await createKey(gw.adminUrl, { name: 'loopback', tenant: 'acme', scopes: ['orders:read'], allowedCidrs: ['127.0.0.0/8', '::1/128'] });
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, local.key)).status, 200);
  });

  it('reads query-string keys only on routes that enable them, and never forwards them', async () => {
    const before = echo.received.length;
    const res = await call(`${gw.url}/q/x?a=1&api_key=${reader.key}&b=2`);
    assert.equal(res.status, 200, res.body);
    assert.equal(echo.received[before]?.url, '/q/x?a=1&b=2');
    assert.equal((await call(`${gw.url}/q/x?api_key=${reader.key}`)).status, 200);
    assert.equal(echo.received.at(-1)?.url, '/q/x');
    assertProblem(await call(`${gw.url}/api/acme/orders/1?api_key=${reader.key}`), 401, 'unauthenticated');
    assertProblem(await call(`${gw.url}/q/x?api_key=${reader.key}&api_key=${reader.key}`), 401, 'invalid_credential');
    assertProblem(await call(`${gw.url}/q/x?api_key=`), 401, 'invalid_credential');
  });

  it('revokes at once, and rotates with a grace period during which both keys work', async () => {
    const key = await createKey(gw.adminUrl, { name: 'rotating', tenant: 'acme', scopes: ['orders:read'] });
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, key.key)).status, 200);
    const rotated = await admin(gw.adminUrl, 'POST', `/admin/keys/${key.id}/rotate`, { grace: '2s' });
    assert.equal(rotated.status, 201, rotated.body);
    const successor = JSON.parse(rotated.body) as IssuedKeyReply;
    assert.equal(successor.previous?.id, key.id);
    assert.notEqual(successor.id, key.id);
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, key.key)).status, 200, 'old key works during the grace period');
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, successor.key)).status, 200, 'new key works');
    assert.equal(headerValues(echo.received.at(-1), 'x-user-id')[0], 'rotating', 'the successor keeps the name');
    const deadline = Date.parse(successor.previous?.graceUntil ?? '');
    clock.advance(deadline - clock.now() - 1);
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, key.key)).status, 200, 'old key works until the last millisecond of its grace');
    clock.advance(1);
    const after = await withKey(`${gw.url}/api/acme/orders/1`, key.key);
    const doc = assertProblem(after, 401, 'invalid_credential');
    assert.match((await gw.auditFor(doc.requestId))[0]?.detail ?? '', /api_key_superseded/);
    assert.equal((await withKey(`${gw.url}/api/acme/orders/1`, successor.key)).status, 200);
    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${key.id}/rotate`, { grace: '1h' })).status, 409, 'a rotated key cannot be rotated again');

    assert.equal((await admin(gw.adminUrl, 'POST', `/admin/keys/${successor.id}/revoke`)).status, 200);
    const revokedDoc = assertProblem(await withKey(`${gw.url}/api/acme/orders/1`, successor.key), 401, 'invalid_credential');
    assert.match((await gw.auditFor(revokedDoc.requestId))[0]?.detail ?? '', /api_key_revoked/);
  });

  it('keeps the admin key API behind the admin token and validates every request', async () => {
    assertProblem(await call(`${gw.adminUrl}/admin/keys`), 401, 'admin_unauthorized');
    assertProblem(await admin(gw.adminUrl, 'GET', '/admin/keys', undefined, 'wrong'), 401, 'admin_unauthorized');
    const bad = async (body: unknown, pattern: RegExp) => {
      const res = await admin(gw.adminUrl, 'POST', '/admin/keys', body);
      const doc = assertProblem(res, 400, 'invalid_admin_request') as unknown as { errors: string[] };
      assert.match(doc.errors.join(' '), pattern);
    };
    await bad({}, /name: required/);
    await bad({ name: 'x', colour: 'red' }, /unknown field colour/);
    await bad({ name: 'x', expires: '91d' }, /maximum key lifetime/);
    await bad({ name: 'x', expires: 'soon' }, /expires: a duration/);
    await bad({ name: 'x', scopes: ['a b'] }, /scopes/);
    await bad({ name: 'x', allowedCidrs: ['10.0.0.0/33'] }, /allowedCidrs/);
    await bad({ name: 'x\ny' }, /name/);
    await bad('{"name":"a","name":"b"}', /duplicate key/);
    await bad('[1]', /JSON object/);
    assert.equal((await call(`${gw.adminUrl}/admin/keys`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token-2f6c1a9e4b7d', 'content-type': 'text/plain' }, body: '{"name":"x"}' })).status, 400);
    assertProblem(await admin(gw.adminUrl, 'GET', '/admin/keys/0000000000000000'), 404, 'key_not_found');
    assertProblem(await admin(gw.adminUrl, 'GET', '/admin/keys/..%2f'), 404, 'key_not_found');
    assertProblem(await admin(gw.adminUrl, 'POST', '/admin/keys/0000000000000000/revoke'), 404, 'key_not_found');
    assertProblem(await admin(gw.adminUrl, 'DELETE', '/admin/keys'), 405, 'method_not_allowed');
    assertProblem(await admin(gw.adminUrl, 'POST', `/admin/keys/${reader.id}/rotate`, {}), 400, 'invalid_admin_request');

    const list = await admin(gw.adminUrl, 'GET', '/admin/keys');
    assert.equal(list.status, 200);
    const keys = (JSON.parse(list.body) as { keys: Record<string, unknown>[] }).keys;
    const mine = keys.find((x) => x.id === reader.id);
    assert.equal(mine?.prefix, `pk_live_${reader.id}`);
    assert.equal(mine?.status, 'active');
    for (const x of keys) { assert.equal(x.key, undefined); assert.equal(x.hash, undefined); }
    assert.ok(!list.body.includes(secretOf(reader.key)));
    const records = (await gw.audit()).filter((r: AuditRecord) => r.kind === 'admin');
    assert.ok(records.some((r) => r.status === 201 && /^created key/.test(r.detail ?? '')));
    assert.ok(records.some((r) => r.status === 401 && r.identity === undefined));
    assert.ok(!JSON.stringify(records).includes(secretOf(reader.key)), 'no secret in admin audit records');
  });

  it('tells an operator without an admin token how to enable key management', async () => {
    const other = await startGateway({ ...configFor(echo), admin: {} });
    try {
      const doc = assertProblem(await call(`${other.adminUrl}/admin/keys`), 403, 'admin_disabled') as unknown as { errors: string[] };
      assert.match(doc.errors.join(), /admin\.tokenHash/);
    } finally {
      await other.close();
    }
  });

  it('costs the same for an unknown key id as for a wrong secret (within noise)', async () => {
    const authenticator = gw.gateway.config.authenticators.get('machines') as Authenticator;
    const exchange = (key: string) => ({ req: { rawHeaders: ['X-API-Key', key], headers: {} }, target: null, clientIp: '127.0.0.1', forwardQuery: null }) as unknown as Exchange;
    const unknownId = exchange(newKey('live'));
    const wrongSecret = exchange(newKey('live', reader.id));
    // Load both into the directory first (each costs one store lookup, the same query).
    for (const ex of [unknownId, wrongSecret]) await authenticator.authenticate(ex);
    const batch = (ex: Exchange): number => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < 200; i++) {
        const outcome = authenticator.authenticate(ex);
        assert.ok(!(outcome instanceof Promise) && outcome.kind === 'rejected');
      }
      return Number(process.hrtime.bigint() - start);
    };
    const a: number[] = [];
    const b: number[] = [];
    for (let round = 0; round < 200; round++) { a.push(batch(unknownId)); b.push(batch(wrongSecret)); }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1] ?? 0;
    const ratio = median(a) / median(b);
    assert.ok(ratio > 0.8 && ratio < 1.25, `unknown id / wrong secret median time ratio ${ratio.toFixed(3)}`);
  });
});

describe('API key usage tracking', () => {
  it('counts every use exactly, in batches, and writes the rest on graceful shutdown', async () => {
    const echo = await startEchoUpstream();
    const gw = await startGateway(configFor(echo, { usageFlushMs: 60_000 }));
    const file = join(gw.gateway.config.dataDir, 'keys', 'api-keys.db');
    const store = new SqliteKeyStore(file);
    try {
      const key = await createKey(gw.adminUrl, { name: 'counted', tenant: 'acme', scopes: ['orders:read'] });
      const agent = new Agent({ connections: 32 });
      const n = 400;
      const statuses = await Promise.all(Array.from({ length: n }, async () => {
        const res = await request(`${gw.url}/api/acme/orders/1`, { headers: { 'x-api-key': key.key }, dispatcher: agent });
        await res.body.dump();
        return res.statusCode;
      }));
      await agent.close();
      assert.deepEqual(new Set(statuses), new Set([200]));
      assert.equal((await store.get(key.id))?.useCount, 0, 'nothing written per request: the batch waits for the flush interval');
      await gw.gateway.stop();
      const stored = await store.get(key.id);
      assert.equal(stored?.useCount, n);
      assert.equal(stored?.lastUsedIp, '127.0.0.1');
      assert.ok((stored?.lastUsedAt ?? 0) > Date.now() - 60_000);
    } finally {
      await store.close();
      await gw.close();
      await echo.close();
    }
  });
});

describe('API keys when the store is down', () => {
  let db: TestDatabase | string;
  const relay = new CuttableRelay(POSTGRES_TARGET.host, POSTGRES_TARGET.port);
  before(async () => {
    // Without PostgreSQL each test skips, saying why.
    db = await freshDatabase();
  });
  after(async () => {
    await relay.cut();
    if (typeof db !== 'string') await db.drop();
  });

  it('serves cached keys until their TTL, refuses unknown keys with 503, keeps serving, and recovers', async (t) => {
    if (typeof db === 'string') { t.skip(db); return; }
    await relay.start();
    const echo = await startEchoUpstream();
    const ttl = 1500;
    const pollIntervalMs = 100;
    // The cache TTL is judged by the gateway's clock, so a manual one makes it exact; the change-log
    // poller runs on it too, so the test moves it wherever a poll has to happen.
    const clock = new ManualClock();
    const gw = await startGateway(configFor(echo, {
      store: { type: 'postgres', url: relayedUrl(db, relay), timeoutMs: 500 }, cacheTtlMs: ttl, pollIntervalMs,
    }), { clock });
    try {
      const key = await createKey(gw.adminUrl, { name: 'cached', tenant: 'acme', scopes: ['orders:read'] });
      // Let the directory apply the creation first, so the load below is not undone by its notification.
      const directory = gw.gateway.config.apiKeys?.directory;
      assert.ok(directory !== undefined);
      await directory.sync();
      await directory.sync();
      const url = `${gw.url}/api/acme/orders/1`;
      assert.equal((await withKey(url, key.key)).status, 200);
      await relay.cut();
      assert.equal((await withKey(url, key.key)).status, 200, 'a cached key keeps working');
      const unknown = await withKey(url, newKey('live'));
      assertProblem(unknown, 503, 'authentication_unavailable');
      assert.equal((await call(`${gw.url}/open`)).status, 200, 'the gateway keeps serving');
      assert.equal((await call(`${gw.adminUrl}/readyz`)).status, 200);
      // The polls that fall due meanwhile find the store down.
      clock.advance(ttl - 1);
      await waitUntil('a poll finds the store down', () => !directory.isHealthy);
      assert.equal((await withKey(url, key.key)).status, 200, 'still cached one millisecond before the TTL ends');
      clock.advance(1);
      assertProblem(await withKey(url, key.key), 503, 'authentication_unavailable');
      await relay.restore();
      let status = 0;
      await waitUntil('the key works again once the store is back', async () => (status = (await withKey(url, key.key)).status) === 200, 5000);
      assert.equal(status, 200, 'works again once the store is back');
      const up = async () => /portcullis_api_key_store_up 1/.test((await call(`${gw.adminUrl}/metrics`)).body);
      // The store is seen up by the next poll: each look lets one poll interval pass.
      await waitUntil('the store metric shows it up again', async () => { clock.advance(pollIntervalMs); return up(); }, 5000);
      assert.ok(await up(), 'the store metric shows it up again');
      assert.ok(gw.logs.some((l) => l.includes('api key store unreachable')), 'the outage was logged');
    } finally {
      await gw.close();
      await echo.close();
    }
  });
});
