// Metrics an operator alerts on, read the way Prometheus reads them: real requests to a real
// gateway (allowed; refused by each family of authentication outcome; rate limited; a limit whose
// store is down), then a scrape of /metrics. Each step must move the counters by exactly what it
// did, and nothing else: no label value may be a path, an address, a key id or a subject.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { DENIALS } from '../src/pipeline/denials.js';
import { ADMIN_TOKEN_HASH, createKey } from './harness/api-keys.js';
import { waitUntil } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type TestGateway } from './harness/gateway.js';
import { craft, JwksServer, mint, nowSec, testKey, type TestKey } from './harness/jwt.js';
import { ManualClock } from './harness/manual-clock.js';

/** The families this test accounts for, sample by sample. */
const FAMILIES = ['portcullis_requests_total', 'portcullis_denials_total', 'portcullis_authentications_total', 'portcullis_rate_limit_decisions_total'];

type Samples = Map<string, number>;

/** Every sample of FAMILIES in an exposition text, by series (`name{labels}`). */
function samplesOf(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !FAMILIES.some((f) => line.startsWith(`${f}{`) || line.startsWith(`${f} `))) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** What moved between two scrapes, series by series (only those that did). */
function moved(before: Samples, after: Samples): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [series, value] of after) {
    const delta = value - (before.get(series) ?? 0);
    if (delta !== 0) out[series] = delta;
  }
  return out;
}

const requestsIn = (samples: Samples): number =>
  [...samples].filter(([series]) => series.startsWith('portcullis_requests_total{')).reduce((sum, [, v]) => sum + v, 0);

/**
 * Scrapes until the gateway has counted `requests` requests in all (each is counted when its
 * exchange is over, which can trail its response; under --workers a worker's counts reach the
 * primary at its scrape), at most for 5 s.
 */
async function scrapeCounted(adminUrl: string, requests: number): Promise<Samples> {
  let samples: Samples = new Map();
  await waitUntil(`${requests} requests are counted`, async () => requestsIn(samples = samplesOf(await (await fetch(`${adminUrl}/metrics`)).text())) >= requests, 5000);
  return samples;
}

/** The samples other than portcullis_requests_total, as an object. */
const beyondRequests = (samples: Samples): Record<string, number> =>
  Object.fromEntries([...samples].filter(([series]) => !series.startsWith('portcullis_requests_total')));

describe('metrics an operator alerts on', () => {
  let echo: EchoUpstream;
  let jwks: JwksServer;
  let downJwks: JwksServer;
  let key: TestKey;
  let stranger: TestKey;
  let gw: TestGateway;
  let apiKey = '';
  let deadRedis = '';
  const clock = new ManualClock(Date.now());

  before(async () => {
    [key, stranger] = await Promise.all([testKey('ES256', 'm1'), testKey('ES256', 'm1')]);
    echo = await startEchoUpstream();
    jwks = await JwksServer.start([key]);
    downJwks = await JwksServer.start([key]);
    downJwks.mode = 'refuse';
    // A port nothing listens on: the shared limit's store is down from the start.
    const probe = createServer();
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
    const port = (probe.address() as { port: number }).port;
    await new Promise((done) => probe.close(done));
    deadRedis = `redis://127.0.0.1:${port}`;
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: {
        users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', jwksUri: jwks.url, algorithms: ['ES256'], jwks: { cooldownMs: 60_000, timeoutMs: 500 } },
        outage: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', jwksUri: downJwks.url, algorithms: ['ES256'], jwks: { cooldownMs: 60_000, timeoutMs: 500 } },
        machines: { type: 'apiKey' },
      },
      rateLimiting: { redis: { url: deadRedis, timeoutMs: 200 } },
      rateLimits: {
        perAddress: { algorithm: 'fixed-window', limit: 2, per: '1h', by: ['ip'] },
        shared: { algorithm: 'fixed-window', limit: 100, per: '1h', by: ['ip'], store: 'redis' },
      },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users', 'machines'] },
        { name: 'outage', match: { path: '/outage' }, upstream: 'echo', authenticate: ['outage'] },
        { name: 'limited', match: { path: '/limited' }, upstream: 'echo', public: true, rateLimit: 'perAddress' },
        { name: 'shared', match: { path: '/shared' }, upstream: 'echo', public: true, rateLimit: 'shared' },
        { name: 'open', match: { path: '/open' }, upstream: 'echo', public: true },
      ],
    }, { clock });
    apiKey = (await createKey(gw.adminUrl, { name: 'metrics' })).key;
  });
  after(async () => {
    await gw.close();
    await Promise.all([jwks.close(), downJwks.close(), echo.close()]);
  });

  const scrape = async (): Promise<Samples> => samplesOf(await (await fetch(`${gw.adminUrl}/metrics`)).text());

  /**
   * Sends the requests, waits until the gateway has counted all of them (each is counted when its
   * exchange is over, which can trail its response), and returns what moved.
   */
  async function step(requests: readonly (readonly [string, Record<string, string>?, number?])[]): Promise<Record<string, number>> {
    const before = await scrape();
    for (const [path, headers = {}, status] of requests) {
      const res = await fetch(`${gw.url}${path}`, { headers });
      await res.arrayBuffer();
      if (status !== undefined) assert.equal(res.status, status, `${path}: ${res.status}`);
    }
    return moved(before, await scrapeCounted(gw.adminUrl, requestsIn(before) + requests.length));
  }

  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

  it('counts an allowed request on a public route, and no authentication or limit', async () => {
    assert.deepEqual(await step([['/open', {}, 200]]), { 'portcullis_requests_total{route="open",status="200",decision="allow"}': 1 });
  });

  it('counts authentication outcomes by authenticator and code, and denials by route and code', async () => {
    const token = await mint(key);
    const forged = await mint(stranger); // the same kid, signed by another key
    const expired = await mint(key, { exp: Math.floor(Date.now() / 1000) - 3600 });
    const wrongSecret = apiKey.slice(0, -4) + (apiKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.deepEqual(await step([
      ['/orders/1', bearer(token), 200],
      ['/orders/2', bearer(token), 200],
      ['/orders/1', { 'x-api-key': apiKey }, 200],
      ['/orders/1', {}, 401],
      ['/orders/1', bearer(forged), 401],
      ['/orders/1', bearer(expired), 401],
      ['/orders/1', { 'x-api-key': wrongSecret }, 401],
      ['/outage', bearer(token), 503],
    ]), {
      'portcullis_requests_total{route="orders",status="200",decision="allow"}': 3,
      'portcullis_requests_total{route="orders",status="401",decision="deny"}': 4,
      'portcullis_requests_total{route="outage",status="503",decision="error"}': 1,
      'portcullis_authentications_total{authenticator="users",outcome="authenticated"}': 2,
      'portcullis_authentications_total{authenticator="machines",outcome="authenticated"}': 1,
      'portcullis_authentications_total{authenticator="",outcome="unauthenticated"}': 1,
      'portcullis_authentications_total{authenticator="users",outcome="invalid_credential"}': 2,
      'portcullis_authentications_total{authenticator="machines",outcome="invalid_credential"}': 1,
      'portcullis_authentications_total{authenticator="outage",outcome="authentication_unavailable"}': 1,
      'portcullis_denials_total{route="orders",reason="unauthenticated"}': 1,
      'portcullis_denials_total{route="orders",reason="invalid_credential"}': 3,
      'portcullis_denials_total{route="outage",reason="authentication_unavailable"}': 1,
    });
  });

  it('counts each limit\'s decisions: allowed, limited, and unavailable when its store is down and it fails closed', async () => {
    assert.deepEqual(await step([['/limited', {}, 200], ['/limited', {}, 200], ['/limited', {}, 429], ['/shared', {}, 503]]), {
      'portcullis_requests_total{route="limited",status="200",decision="allow"}': 2,
      'portcullis_requests_total{route="limited",status="429",decision="deny"}': 1,
      'portcullis_requests_total{route="shared",status="503",decision="error"}': 1,
      'portcullis_rate_limit_decisions_total{limit="perAddress",decision="allowed"}': 2,
      'portcullis_rate_limit_decisions_total{limit="perAddress",decision="limited"}': 1,
      'portcullis_rate_limit_decisions_total{limit="shared",decision="unavailable"}': 1,
      'portcullis_denials_total{route="limited",reason="rate_limited"}': 1,
      'portcullis_denials_total{route="shared",reason="rate_limit_unavailable"}': 1,
    });
  });

  it('counts a request no route matches under an empty route, which no route name can be', async () => {
    assert.deepEqual(await step([['/nowhere', {}, 404]]), {
      'portcullis_requests_total{route="",status="404",decision="deny"}': 1,
      'portcullis_denials_total{route="",reason="route_not_found"}': 1,
    });
  });

  it('reports key-store and JWKS health', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(text, /^portcullis_api_key_store_up 1$/m);
    assert.match(text, new RegExp(`^portcullis_jwks_up\\{uri="${jwks.url}"\\} 1$`, 'm'));
    assert.match(text, new RegExp(`^portcullis_jwks_up\\{uri="${downJwks.url}"\\} 0$`, 'm'));
    assert.match(text, new RegExp(`^portcullis_jwks_keys\\{uri="${downJwks.url}"\\} 0$`, 'm'));
    assert.match(text, /^portcullis_rate_limit_store_up\{store="redis:\/\/127\.0\.0\.1:\d+"\} 0$/m);
  });

  it('labels only with names from the config, codes from the catalogue and fixed outcomes', async () => {
    const samples = await scrape();
    const config = gw.gateway.config;
    const allowed: Record<string, ReadonlySet<string>> = {
      route: new Set(['', ...config.routes.map((r) => r.name)]),
      authenticator: new Set(['', 'users', 'outage', 'machines']),
      limit: new Set(['perAddress', 'shared']),
      reason: new Set(Object.keys(DENIALS)),
      outcome: new Set(['authenticated', ...Object.keys(DENIALS)]),
      decision: new Set(['allow', 'deny', 'error', 'abort', 'allowed', 'limited', 'unavailable']),
      status: new Set(['200', '401', '404', '429', '503']),
    };
    assert.ok(samples.size > 10);
    for (const series of samples.keys()) {
      for (const [, name, value] of series.matchAll(/(\w+)="([^"]*)"/g)) {
        assert.ok(allowed[name ?? '']?.has(value ?? ''), `${series}: ${name}="${value}"`);
      }
    }
  });
});

describe('metrics an operator alerts on, with the brute-force guard', () => {
  it('counts the credentials an authenticator refused, and the guard\'s blocks as denials only', async () => {
    const echo = await startEchoUpstream();
    const gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { partners: { type: 'jwt', issuer: 'https://partners.test/', secret: 'guard-shared-secret-0123456789abcdef', audience: 'orders-api', algorithms: ['HS256'] } },
      rateLimiting: { bruteForce: { maxFailures: 2, within: '1h', blockFor: '1h' } },
      routes: [{ name: 'partners', match: { path: '/partners' }, upstream: 'echo', authenticate: ['partners'] }],
    });
    try {
      const forged = craft('{"alg":"HS256","typ":"JWT"}', JSON.stringify({ iss: 'https://partners.test/', aud: 'orders-api', sub: 'p', exp: nowSec() + 300 }), { hmac: 'a-guess-0123456789abcdef-0123456789' });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${gw.url}/partners`, { headers: { authorization: `Bearer ${forged}` } });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [401, 401, 429], 'the second guess starts the block, the third is refused before authentication');
      assert.deepEqual(beyondRequests(await scrapeCounted(gw.adminUrl, 3)), {
        'portcullis_authentications_total{authenticator="partners",outcome="invalid_credential"}': 2,
        'portcullis_denials_total{route="partners",reason="invalid_credential"}': 2,
        'portcullis_denials_total{route="partners",reason="too_many_failures"}': 1,
      });
    } finally {
      await gw.close();
      await echo.close();
    }
  });
});

describe('metrics an operator alerts on, under start --workers', () => {
  it('reads the host\'s counts on the primary: authentication outcomes and limit decisions summed over the workers', async () => {
    const echo = await startEchoUpstream();
    const secret = 'workers-shared-secret-0123456789abcdef';
    const gw = await startGatewayProcess({
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { partners: { type: 'jwt', issuer: 'https://partners.test/', secret, audience: 'orders-api', algorithms: ['HS256'] } },
      rateLimits: { perAddress: { algorithm: 'fixed-window', limit: 2, per: '1h', by: ['ip'] } },
      routes: [
        { name: 'partners', match: { path: '/partners' }, upstream: 'echo', authenticate: ['partners'] },
        { name: 'limited', match: { path: '/limited' }, upstream: 'echo', public: true, rateLimit: 'perAddress' },
      ],
    }, { args: ['--workers', '2'] });
    try {
      const token = (key: string): string => craft('{"alg":"HS256","typ":"JWT"}', JSON.stringify({ iss: 'https://partners.test/', aud: 'orders-api', sub: 'p', exp: nowSec() + 300 }), { hmac: key });
      const sent: [string, Record<string, string>, number][] = [
        ['/partners', { authorization: `Bearer ${token(secret)}` }, 200],
        ['/partners', {}, 401],
        ['/partners', { authorization: `Bearer ${token('another-secret-0123456789abcdef-xyz')}` }, 401],
        ['/limited', {}, 200], ['/limited', {}, 200], ['/limited', {}, 429],
      ];
      // A connection each, so the primary hands them to both workers.
      for (const [path, headers, status] of sent) {
        const res = await fetch(`${gw.url}${path}`, { headers: { ...headers, connection: 'close' } });
        await res.arrayBuffer();
        assert.equal(res.status, status, path);
      }
      assert.deepEqual(beyondRequests(await scrapeCounted(gw.adminUrl, sent.length)), {
        'portcullis_authentications_total{authenticator="partners",outcome="authenticated"}': 1,
        'portcullis_authentications_total{authenticator="",outcome="unauthenticated"}': 1,
        'portcullis_authentications_total{authenticator="partners",outcome="invalid_credential"}': 1,
        'portcullis_denials_total{route="partners",reason="unauthenticated"}': 1,
        'portcullis_denials_total{route="partners",reason="invalid_credential"}': 1,
        'portcullis_denials_total{route="limited",reason="rate_limited"}': 1,
        'portcullis_rate_limit_decisions_total{limit="perAddress",decision="allowed"}': 2,
        'portcullis_rate_limit_decisions_total{limit="perAddress",decision="limited"}': 1,
      });
    } finally {
      await gw.stop();
      await echo.close();
    }
  });
});
