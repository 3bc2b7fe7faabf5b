// Rate limits through the gateway (in-process store): 429 with Retry-After and the rate-limit
// headers, nothing forwarded, one audit record naming the limit; keys that cannot be evaded by
// spoofed X-Forwarded-For, IPv6 address rotation within a /64, or API key spelling variants; tiers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertProblem } from './harness/assertions.js';
import { ADMIN_TOKEN_HASH, call, createKey, withKey, type IssuedKeyReply, type Reply } from './harness/api-keys.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, testKey } from './harness/jwt.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { ipKey } from '../src/lib/ip.js';

function configFor(echo: EchoUpstream): ConfigObject {
  return {
    admin: { tokenHash: ADMIN_TOKEN_HASH },
    trustedProxies: ['127.0.0.2/32'],
    apiKeys: { environment: 'live' },
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { machines: { type: 'apiKey' } },
    rateLimits: {
      perIp: { algorithm: 'fixed-window', limit: 3, per: '60s', by: ['ip'] },
      perKey: { algorithm: 'token-bucket', limit: 2, per: '1h', burst: 2, by: ['keyId'], tiers: { pro: { limit: 5, burst: 5 } } },
      perHeader: { algorithm: 'sliding-window', limit: 2, per: '60s', by: ['header:x-client-id', 'route'] },
    },
    rateLimiting: { ipv6PrefixLength: 64 },
    routes: [
      { name: 'by-ip', match: { path: '/ip/**' }, upstream: 'echo', public: true, rateLimit: 'perIp' },
      { name: 'by-key', match: { path: '/key/**' }, upstream: 'echo', authenticate: ['machines'], rateLimit: ['perKey'] },
      { name: 'by-header', match: { path: '/header/**' }, upstream: 'echo', public: true, rateLimit: 'perHeader' },
      { name: 'unlimited', match: { path: '/free/**' }, upstream: 'echo', public: true },
    ],
  };
}

function from(ip: string, headers: Record<string, string> = {}): Record<string, string> {
  return { 'x-forwarded-for': ip, ...headers };
}

describe('rate limits through the gateway', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let plain: IssuedKeyReply;
  let pro: IssuedKeyReply;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway(configFor(echo));
    plain = await createKey(gw.adminUrl, { name: 'plain-client', expires: '30d' });
    pro = await createKey(gw.adminUrl, { name: 'pro-client', rateLimitTier: 'pro', expires: '30d' });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  it('allows the limit with headers on every response, then answers 429 with Retry-After, forwards nothing and audits the limit by name', async () => {
    const replies: Reply[] = [];
    for (let i = 0; i < 3; i++) replies.push(await call(`${gw.url}/ip/a`));
    replies.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.headers['ratelimit-policy'], '"perIp";q=3;w=60');
      assert.match(r.headers.ratelimit ?? '', new RegExp(`^"perIp";r=${2 - i};t=\\d+$`));
      assert.equal(r.headers['x-ratelimit-limit'], '3');
      assert.equal(r.headers['x-ratelimit-remaining'], String(2 - i));
      const reset = Number(r.headers['x-ratelimit-reset']);
      assert.ok(reset >= 1 && reset <= 60);
    });
    const forwarded = echo.received.length;
    const denied = await call(`${gw.url}/ip/a`);
    const doc = assertProblem(denied, 429, 'rate_limited');
    const retry = Number(denied.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${denied.headers['retry-after']}`);
    assert.equal(denied.headers['x-ratelimit-remaining'], '0');
    assert.match(denied.headers.ratelimit ?? '', /^"perIp";r=0;t=\d+$/);
    assert.equal(echo.received.length, forwarded, 'nothing forwarded');
    const records = (await gw.audit()).filter((r) => r.requestId === doc.requestId);
    assert.equal(records.length, 1);
    assert.equal(records[0]?.reason, 'rate_limited');
    assert.equal(records[0]?.limit, 'perIp');
    assert.equal(records[0]?.status, 429);
    assert.match(records[0]?.detail ?? '', /perIp/);
    // A route without limits carries no rate-limit headers.
    const free = await call(`${gw.url}/free/x`);
    assert.equal(free.headers['ratelimit-policy'], undefined);
    assert.equal(free.headers['x-ratelimit-limit'], undefined);
  });

  it('keys on the connection address when the peer is not a trusted proxy: rotating X-Forwarded-For changes nothing', async () => {
    // The previous test used up 127.0.0.1's three requests.
    for (const ip of ['10.0.0.1', '10.0.0.2', '203.0.113.9', '1.1.1.1, 2.2.2.2']) {
      assertProblem(await call(`${gw.url}/ip/b`, { headers: from(ip) }), 429, 'rate_limited');
    }
  });

  it('keys IPv6 callers by /64 (behind a trusted proxy): addresses within one /64 share a count', async () => {
    const proxied = await startGateway({ ...configFor(echo), trustedProxies: ['127.0.0.1/32'] });
    try {
      const statuses = async (ip: string, n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push((await call(`${proxied.url}/ip/v6`, { headers: from(ip) })).status);
        return out;
      };
      assert.deepEqual(await statuses('2001:db8:1:2::1', 2), [200, 200]);
      assert.deepEqual(await statuses('2001:db8:1:2:ffff:eeee:dddd:cccc', 2), [200, 429], 'same /64');
      assert.deepEqual(await statuses('2001:db8:1:3::1', 1), [200], 'another /64');
      assert.deepEqual(await statuses('198.51.100.7', 3), [200, 200, 200], 'IPv4 keyed by address');
      assert.deepEqual(await statuses('198.51.100.8', 1), [200]);
    } finally {
      await proxied.close();
    }
  });

  it('counts an API key by its id: spelling variants of the key are refused, not given a bucket of their own', async () => {
    assert.equal((await withKey(`${gw.url}/key/1`, plain.key)).status, 200);
    assert.equal((await withKey(`${gw.url}/key/2`, plain.key)).status, 200);
    assertProblem(await withKey(`${gw.url}/key/3`, plain.key), 429, 'rate_limited');
    for (const variant of [plain.key.toUpperCase(), ` ${plain.key}`, `${plain.key} `, plain.key.replace('pk_live_', 'PK_LIVE_')]) {
      const res = await withKey(`${gw.url}/key/4`, variant);
      // Header whitespace is not part of the value (RFC 9110 §5.5), so a padded key is the key itself.
      assert.ok(res.status === 401 || res.status === 429, `variant ${JSON.stringify(variant)} answered ${res.status}`);
    }
    assertProblem(await withKey(`${gw.url}/key/5`, plain.key), 429, 'rate_limited');
  });

  it('gives a caller of a listed tier that tier\'s limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await withKey(`${gw.url}/key/pro`, pro.key)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    const res = await withKey(`${gw.url}/key/pro`, pro.key);
    assert.equal(res.headers['ratelimit-policy'], '"perKey";q=5;w=3600');
  });

  it('counts by a header and the route; callers without the header share one count', async () => {
    const get = (headers: Record<string, string>) => call(`${gw.url}/header/x`, { headers }).then((r) => r.status);
    assert.deepEqual([await get({ 'x-client-id': 'one' }), await get({ 'x-client-id': 'one' }), await get({ 'x-client-id': 'one' })], [200, 200, 429]);
    assert.equal(await get({ 'x-client-id': 'two' }), 200);
    assert.deepEqual([await get({}), await get({}), await get({})], [200, 200, 429]);
    // A 10 kB value is counted by its digest: the same value shares a count, another has its own.
    const long = 'v'.repeat(10_000);
    assert.deepEqual([await get({ 'x-client-id': long }), await get({ 'x-client-id': long }), await get({ 'x-client-id': long })], [200, 200, 429]);
    assert.equal(await get({ 'x-client-id': `${long}w` }), 200);
  });
});

describe('global limits, tiers and claims from tokens, reloads', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEchoUpstream(); });
  after(async () => { await echo.close(); });

  it('applies global limits on every route, identity limits on authenticated routes only, and keeps counts across a reload', async () => {
    const key = await testKey('ES256', 'k1');
    const config = (routeLimit: number): ConfigObject => ({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', publicKeys: [{ pem: key.pem }], audience: 'orders-api', algorithms: ['ES256'], claims: { tier: 'plan' } } },
      rateLimits: {
        everyone: { algorithm: 'fixed-window', limit: 1000, per: '1h', by: ['ip'] },
        perUser: { algorithm: 'fixed-window', limit: 2, per: '1h', by: ['subject'], tiers: { gold: { limit: 4 } } },
        perOrg: { algorithm: 'sliding-window', limit: routeLimit, per: '1h', by: ['claim:org.id'] },
      },
      rateLimiting: { global: ['everyone', 'perUser'] },
      routes: [
        { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
        { name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['users'] },
        { name: 'org', match: { path: '/org/**' }, upstream: 'echo', authenticate: ['users'], rateLimit: 'perOrg' },
      ],
    });
    const gw = await startGateway(config(3));
    try {
      const open = await call(`${gw.url}/open`);
      assert.equal(open.status, 200);
      assert.equal(open.headers['ratelimit-policy'], '"everyone";q=1000;w=3600', 'the public route gets the global address limit only');
      const bearer = async (claims: Record<string, unknown>) => ({ authorization: `Bearer ${await mint(key, claims)}` });
      const plain = await bearer({ sub: 'pat' });
      const gold = await bearer({ sub: 'goldie', plan: 'gold' });
      const statuses = async (path: string, headers: Record<string, string>, n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push((await call(`${gw.url}${path}`, { headers })).status);
        return out;
      };
      assert.deepEqual(await statuses('/api/x', plain, 3), [200, 200, 429]);
      assert.deepEqual(await statuses('/api/x', gold, 5), [200, 200, 200, 200, 429], 'the plan claim selects the gold tier');
      const res = await call(`${gw.url}/api/x`, { headers: gold });
      assert.equal(res.headers['ratelimit-policy'], '"everyone";q=1000;w=3600, "perUser";q=4;w=3600');
      assert.equal(res.headers['x-ratelimit-limit'], '4', 'classic headers describe the tightest limit');

      // claim:org.id counts members of one organisation together (each user has their own perUser count).
      const member = async (sub: string, org: string) => bearer({ sub, org: { id: org } });
      assert.equal((await statuses('/org/x', await member('m1', 'acme'), 1))[0], 200);
      assert.equal((await statuses('/org/x', await member('m2', 'acme'), 1))[0], 200);
      assert.equal((await statuses('/org/x', await member('m3', 'acme'), 1))[0], 200);
      assert.equal((await statuses('/org/x', await member('m4', 'acme'), 1))[0], 429);
      assert.equal((await statuses('/org/x', await member('m5', 'globex'), 1))[0], 200);

      // A reload that raises the limit keeps the counts: acme has used 3 of now 4.
      await gw.writeConfig(config(4));
      const reloaded = await gw.gateway.reload();
      assert.ok(reloaded.ok && reloaded.changed, JSON.stringify(reloaded));
      assert.equal((await statuses('/org/x', await member('m6', 'acme'), 1))[0], 200);
      assert.equal((await statuses('/org/x', await member('m7', 'acme'), 1))[0], 429);
    } finally {
      await gw.close();
    }
  });

  it('counts by a claim addressed by JSON pointer, through a name with a dot', async () => {
    const key = await testKey('ES256', 'k1');
    const gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', publicKeys: [{ pem: key.pem }], audience: 'orders-api', algorithms: ['ES256'] } },
      rateLimits: { perClientOrg: { algorithm: 'fixed-window', limit: 1, per: '1h', by: ['claim:/resource_access/orders.api/org'] } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: 'echo', authenticate: ['users'], rateLimit: 'perClientOrg' }],
    });
    try {
      const member = async (sub: string, org: string) => ({ authorization: `Bearer ${await mint(key, { sub, resource_access: { 'orders.api': { org } } })}` });
      assert.equal((await call(`${gw.url}/api/x`, { headers: await member('m1', 'acme') })).status, 200);
      assert.equal((await call(`${gw.url}/api/x`, { headers: await member('m2', 'acme') })).status, 429, 'members of one organization share the count');
      assert.equal((await call(`${gw.url}/api/x`, { headers: await member('m3', 'globex') })).status, 200);
    } finally {
      await gw.close();
    }
  });
});

describe('address keys', () => {
  it('cuts IPv6 addresses to the configured prefix and keeps IPv4 addresses whole', () => {
    const cases: [string, number, string][] = [
      ['203.0.113.7', 64, '203.0.113.7'],
      ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2:0:0:0:0/64'],
      ['2001:DB8:1:2::9', 64, '2001:db8:1:2:0:0:0:0/64'],
      ['2001:db8:1:2:3:4:5:6', 48, '2001:db8:1:0:0:0:0:0/48'],
      ['2001:db8:1:2:3:4:5:6', 56, '2001:db8:1:0:0:0:0:0/56'],
      ['2001:db8:1:2ff:3:4:5:6', 56, '2001:db8:1:200:0:0:0:0/56'],
      ['2001:db8::1', 128, '2001:db8:0:0:0:0:0:1/128'],
      ['::1', 64, '0:0:0:0:0:0:0:0/64'],
      ['64:ff9b::198.51.100.7', 96, '64:ff9b:0:0:0:0:0:0/96'],
      ['64:ff9b::198.51.100.7', 128, '64:ff9b:0:0:0:0:c633:6407/128'],
      ['fe80::1%eth0', 64, 'fe80:0:0:0:0:0:0:0/64'],
    ];
    for (const [address, bits, want] of cases) assert.equal(ipKey(address, bits), want, `${address}/${bits}`);
  });
});

describe('rate limit configuration', () => {
  const base = `
upstreams: { u: { targets: ['http://127.0.0.1:1'] } }
authenticators: { keys: { type: apiKey } }
`;
  it('locates every problem: public route with an identity limit, credential header keys, burst on a window, unknown names, overflow', () => {
    const problems = configProblems(`${base}
rateLimits:
  caller: { algorithm: fixed-window, limit: 10, per: 60s, by: [subject] }
  creds: { algorithm: fixed-window, limit: 10, per: 60s, by: ['header:Authorization'] }
  keyHeader: { algorithm: gcra, limit: 10, per: 60s, by: ['header:x-api-key'] }
  windowBurst: { algorithm: sliding-window, limit: 10, per: 60s, burst: 5, by: [ip] }
  huge: { algorithm: token-bucket, limit: 1000000, per: 1d, burst: 1000000, by: [ip] }
  long: { algorithm: fixed-window, limit: 10, per: 30d, by: [ip] }
  redisNoUrl: { algorithm: gcra, limit: 10, per: 1s, by: [ip], store: redis }
  openMemory: { algorithm: gcra, limit: 10, per: 1s, by: [ip], onStoreError: failOpen }
rateLimiting: { global: [nope] }
routes:
  - { name: pub, match: { path: /p }, upstream: u, public: true, rateLimit: caller }
  - { name: other, match: { path: /o }, upstream: u, authenticate: [keys], rateLimit: [missing] }
`);
    const expect = [
      /gateway\.yaml:\d+:\d+: rateLimits\.creds\.by\[0\]: authorization carries credentials/,
      /rateLimits\.keyHeader\.by\[0\]: x-api-key carries credentials/,
      /rateLimits\.windowBurst\.burst: applies to token-bucket and gcra/,
      /rateLimits\.huge\.limit: limit × window \(ms\) × burst must stay below 2\^52/,
      /rateLimits\.long\.per: at most 1d/,
      /rateLimits\.redisNoUrl\.store: store redis needs rateLimiting\.redis\.url/,
      /rateLimits\.openMemory\.onStoreError: applies to limits in redis/,
      /rateLimiting\.global\[0\]: unknown rate limit "nope"/,
      /routes\[0\]\.rateLimit: "caller" counts by the caller's identity or tier, but the route is public/,
      /routes\[1\]\.rateLimit\[0\]: unknown rate limit "missing"/,
    ];
    for (const re of expect) assert.ok(problems.some((p) => re.test(p)), `${re} not in:\n${problems.join('\n')}`);
  });

  it('reports a redis default store without a URL once, and a brute-force window over a day', () => {
    const problems = configProblems(`${base}
rateLimits:
  a: { algorithm: gcra, limit: 10, per: 1s, by: [ip] }
quotas:
  q: { limit: 10, period: day, by: [ip], timeZone: Mars/Olympus_Mons }
rateLimiting: { store: redis, bruteForce: { within: 2d } }
routes:
  - { name: pub, match: { path: /p }, upstream: u, public: true, rateLimit: a, quota: q }
`);
    assert.deepEqual(problems.map((p) => p.replace(/^gateway\.yaml:\d+:\d+: /, '')).sort(), [
      'quotas.q.timeZone: "Mars/Olympus_Mons" is not a time zone this runtime knows (IANA names, e.g. Europe/Berlin)',
      'rateLimiting.bruteForce.within: at most 1d',
      'rateLimiting.store: store redis needs rateLimiting.redis.url',
    ].sort());
  });

  it('refuses a limit or quota keyed on a header the gateway asserts, at its line, naming the dimension to count by', () => {
    const cases: [string, string, RegExp][] = [
      ['userId', 'X-User-Id', /count by subject$/],
      ['tenantId', 'x_tenant_id', /count by tenant$/],
      ['roles', 'X-Roles', /count by subject, or claim:<path> of the roles claim$/],
      ['scopes', 'x-scopes', /count by subject, or claim:<path> of the scopes claim$/],
      ['method', 'X-Auth-Method', /count by subject \(qualified by its authenticator\) or keyId$/],
      ['keyIdHeader', 'X-Api-Key-Id', /count by keyId$/],
      ['principal', 'X-Principal', /count by subject$/],
      ['certSubject', 'X-Client-Cert-Subject', /count by subject$/],
      ['certOther', 'X-Client-Cert-Fingerprint', /count by subject$/],
      ['portcullis', 'X-Portcullis-Anything', /count by subject, keyId, tenant or claim:<path>$/],
      ['trace', 'X-Trace-Id', /count by ip or an identity dimension/],
      ['org', 'X-Org', /count by claim:org\.id$/],
      ['internal', 'X-Internal-Role', /count by subject, keyId, tenant or claim:<path>$/],
      ['forwarded', 'X-Forwarded-For', /count by ip \(the address resolved through trustedProxies\)$/],
    ];
    const text = `upstreams: { u: { targets: ['http://127.0.0.1:1'] } }
headers: { identity: { subject: X-Principal }, requestId: X-Trace-Id, protected: [X-Internal-Role] }
authenticators:
  keys: { type: apiKey }
  users: { type: jwt, issuer: 'https://idp.example/', jwksUri: 'https://idp.example/jwks.json', audience: a, algorithms: [RS256], forwardClaims: { X-Org: org.id } }
rateLimits:
${cases.map(([name, header]) => `  ${name}: { algorithm: fixed-window, limit: 10, per: 60s, by: [ip, 'header:${header}'] }`).join('\n')}
quotas:
  monthly: { limit: 10, period: month, by: ['header:X-Tenant-Id'] }
routes:
  - { name: pub, match: { path: /p }, upstream: u, public: true }
`;
    const lines = text.split('\n');
    const problems = configProblems(text);
    for (const [name, header, instead] of cases) {
      const line = lines.findIndex((l) => l.startsWith(`  ${name}:`)) + 1;
      const found = problems.find((p) => p.includes(`rateLimits.${name}.by[1]: `));
      assert.ok(found !== undefined, `${name} (${header}) not refused:\n${problems.join('\n')}`);
      assert.match(found, new RegExp(`^gateway\\.yaml:${line}:\\d+: rateLimits\\.${name}\\.by\\[1\\]: ${header.toLowerCase()} is a header the gateway asserts itself`));
      assert.match(found, instead);
    }
    const quotaLine = lines.findIndex((l) => l.startsWith('  monthly:')) + 1;
    assert.ok(problems.some((p) => p.startsWith(`gateway.yaml:${quotaLine}:`) && /quotas\.monthly\.by\[0\]: x-tenant-id is a header the gateway asserts itself.*count by tenant$/.test(p)), problems.join('\n'));
    assert.equal(problems.length, cases.length + 1, problems.join('\n'));
  });

  it('exposes the header names limits and quotas count by, for the header pass to protect', () => {
    const compiled = compileConfig(loadConfigText(`upstreams: { u: { targets: ['http://127.0.0.1:1'] } }
rateLimits:
  byClient: { algorithm: gcra, limit: 10, per: 1s, by: [ip, 'header:X-Client-Id'] }
  byRoute: { algorithm: gcra, limit: 10, per: 1s, by: [route] }
quotas:
  perPartner: { limit: 10, period: day, by: ['header:x-partner', route] }
routes:
  - { name: pub, match: { path: /p }, upstream: u, public: true, rateLimit: byClient, quota: perPartner }
`, 'gateway.yaml', {}));
    assert.deepEqual([...compiled.rateLimiting.decisionHeaders].sort(), ['x-client-id', 'x-partner']);
  });

  it('rejects an unknown algorithm and a by dimension it does not know, at their lines', () => {
    const problems = configProblems(`${base}
rateLimits:
  a: { algorithm: leaky-ish, limit: 10, per: 60s, by: [ip] }
  b: { algorithm: gcra, limit: 10, per: 60s, by: [cookie] }
routes:
  - { name: pub, match: { path: /p }, upstream: u, public: true }
`);
    assert.ok(problems.some((p) => /gateway\.yaml:6:\d+: rateLimits\.a\.algorithm/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /gateway\.yaml:7:\d+: rateLimits\.b\.by\[0\]/.test(p)), problems.join('\n'));
  });
});
