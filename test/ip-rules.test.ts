// IP rules: allow and deny lists on the client address resolved through trusted proxies, at the
// top level (every request, before routing) and per route (before anything else on it).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { configProblems } from './harness/config.js';
import { forwardedHopAddress } from '../src/http/headers.js';

async function from(gw: TestGateway, path: string, forwardedFor: string | null, extra: Record<string, string> = {}): Promise<{ status: number; code: string | null; requestId: string }> {
  const res = await request(`${gw.url}${path}`, { headers: { ...(forwardedFor === null ? {} : { 'x-forwarded-for': forwardedFor }), ...extra } });
  const text = await res.body.text();
  const code = res.statusCode >= 300 && text !== '' ? (JSON.parse(text) as { type?: string }).type?.split(':').at(-1) ?? null : null;
  return { status: res.statusCode, code, requestId: String(res.headers['x-request-id']) };
}

describe('ipRules on the client address', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      trustedProxies: ['127.0.0.1/32'],
      ipRules: { allow: ['10.0.0.0/8', '198.51.100.0/24', '2001:db8::/32'], deny: ['10.9.0.0/16', '2001:db8:bad::/48'] },
      upstreams: { app: { targets: [echo.url] } },
      cors: { partners: { origins: ['https://partner.example'] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true },
        { name: 'partner', match: { path: '/partner/**' }, upstream: 'app', public: true, cors: 'partners', ipRules: { allow: ['198.51.100.0/24'] } },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  const cases: readonly (readonly [string, string, number])[] = [
    ['an allowed IPv4 address', '10.1.2.3', 200],
    ['an IPv4-mapped IPv6 form of an allowed address', '::ffff:10.1.2.3', 200],
    ['the hex IPv4-mapped form of an allowed address', '::ffff:a01:203', 200],
    ['an allowed IPv6 address', '2001:db8::5', 200],
    ['an address outside every allowed range', '11.0.0.1', 403],
    ['an IPv6 address outside the allowed ranges', '2001:db9::1', 403],
    ['a denied range inside an allowed one (deny wins)', '10.9.1.1', 403],
    ['the IPv4-mapped form of a denied address', '::ffff:10.9.1.1', 403],
    ['a denied IPv6 range inside an allowed one', '2001:db8:bad::1', 403],
    ['the expanded upper-case hex IPv4-mapped form of an allowed address', '0:0:0:0:0:FFFF:0a01:0203', 200],
    ['the NAT64 (64:ff9b::/96) form of an allowed address', '64:ff9b::10.1.2.3', 200],
    ['the NAT64 hex form of a denied address', '64:FF9B::a09:101', 403],
    ['an allowed IPv4 address with a port', '10.1.2.3:5678', 200],
    ['a denied IPv4 address with a port', '10.9.1.1:80', 403],
    ['a bracketed allowed IPv6 address with a port', '[2001:db8::5]:443', 200],
    ['an allowed IPv6 address written out in upper case', '2001:0DB8:0000:0000:0000:0000:0000:0005', 200],
    ['a denied IPv6 address written out in upper case', '2001:0DB8:0BAD:0000:0000:0000:0000:0001', 403],
    ['the IPv4-mapped form of a denied address with a port', '[::ffff:10.9.1.1]:80', 403],
  ];
  for (const [what, address, status] of cases) {
    it(`${status === 200 ? 'admits' : 'refuses'} ${what} (${address})`, async () => {
      const before = echo.received.length;
      const got = await from(gw, `/open/${encodeURIComponent(address)}`, address);
      assert.equal(got.status, status);
      if (status === 403) {
        assert.equal(got.code, 'ip_denied');
        assert.equal(echo.received.length, before, 'nothing forwarded');
        const records = await gw.auditFor(got.requestId);
        assert.equal(records.length, 1);
        assert.equal(records[0]?.reason, 'ip_denied');
        assert.equal(records[0]?.decision, 'deny');
      }
    });
  }

  it('refuses a denied address before routing: an unknown path is 403, not 404', async () => {
    assert.deepEqual(await from(gw, '/nowhere', '11.0.0.1').then((r) => [r.status, r.code]), [403, 'ip_denied']);
    assert.deepEqual(await from(gw, '/nowhere', '10.1.2.3').then((r) => [r.status, r.code]), [404, 'route_not_found']);
  });

  it('applies a route\'s rules after the top-level ones, to its CORS preflights too', async () => {
    assert.equal((await from(gw, '/partner/x', '198.51.100.7')).status, 200);
    assert.deepEqual(await from(gw, '/partner/x', '10.1.2.3').then((r) => [r.status, r.code]), [403, 'ip_denied']);
    const preflight = await request(`${gw.url}/partner/x`, { method: 'OPTIONS', headers: { 'x-forwarded-for': '10.1.2.3', origin: 'https://partner.example', 'access-control-request-method': 'GET' } });
    assert.equal(preflight.statusCode, 403);
    await preflight.body.dump();
  });

  it('refuses an X-Forwarded-For hop with a zone id (not an address), forwarding nothing', async () => {
    const before = echo.received.length;
    assert.deepEqual(await from(gw, '/open/zone', 'fe80::1%eth0').then((r) => [r.status, r.code]), [400, 'invalid_header']);
    assert.equal(echo.received.length, before);
  });

  // A hop that is not one client address cannot be attributed: the request is refused (400), never
  // attributed to the proxy, and never read as some other address (010.1.2.3 is octal 8.1.2.3 to
  // inet_aton and 10.1.2.3 to others).
  for (const hop of ['010.1.2.3', '10.01.2.3', '0x0a.1.2.3', '10.1.2', '167838211', '::10.1.2.3', '::a01:203', '[10.1.2.3]:80', '10.1.2.3:99999', '[2001:db8::5]x', 'unknown', '10.1.2.3 10.1.2.4', '[fe80::1%25eth0]:80']) {
    it(`refuses the X-Forwarded-For hop ${JSON.stringify(hop)} as no address, with one record and nothing forwarded`, async () => {
      const before = echo.received.length;
      const got = await from(gw, '/open/hop', hop);
      assert.deepEqual([got.status, got.code], [400, 'invalid_header']);
      assert.equal(echo.received.length, before);
      const records = await gw.auditFor(got.requestId);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.reason, 'invalid_header');
    });
  }

  it('records one spelling of each client address: IPv6 canonical, IPv4-mapped and NAT64 forms as IPv4', async () => {
    for (const [sent, recorded] of [['0:0:0:0:0:FFFF:0A01:0203', '10.1.2.3'], ['64:ff9b::a01:203', '10.1.2.3'], ['2001:0DB8:0:0::0005', '2001:db8::5'], ['[2001:DB8::5]:8443', '2001:db8::5'], ['10.1.2.3:1', '10.1.2.3']] as const) {
      const got = await from(gw, '/open/canonical', sent);
      assert.equal(got.status, 200, sent);
      assert.equal((await gw.auditFor(got.requestId))[0]?.clientIp, recorded, sent);
    }
  });

  it('skips empty list elements and takes the nearest untrusted hop of a long chain', async () => {
    assert.equal((await from(gw, '/open/list', ' , 10.1.2.3 ,, ')).status, 200);
    const chain = ['11.0.0.1', '10.1.2.3', ...new Array<string>(500).fill('127.0.0.1')].join(', ');
    const got = await from(gw, '/open/list', chain);
    assert.equal(got.status, 200);
    assert.equal((await gw.auditFor(got.requestId))[0]?.clientIp, '10.1.2.3');
  });
});

describe('ipRules and an X-Forwarded-For from a peer that is not a trusted proxy', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      ipRules: { allow: ['10.0.0.0/8'] },
      upstreams: { app: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }],
    });
  });
  after(async () => {
    await gw.close();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  it('judges the peer, not the address the header claims', async () => {
    for (const spoofed of ['10.1.2.3', '10.1.2.3, 10.1.2.4', '::ffff:10.1.2.3']) {
      assert.deepEqual(await from(gw, '/open/spoof', spoofed).then((r) => [r.status, r.code]), [403, 'ip_denied'], spoofed);
    }
  });
});

describe('ipRules in the config', () => {
  it('names the file line and entry of a bad address, and refuses IPv4-mapped forms', () => {
    const found = configProblems([
      'upstreams: { app: { targets: [http://127.0.0.1:1] } }',
      'ipRules:',
      '  allow: [10.0.0.0/8, 10.0.0.0/33]',
      '  deny: ["::ffff:10.1.0.0/112"]',
      'routes:',
      '  - { name: r, match: { path: /x }, upstream: app, public: true, ipRules: { deny: [not-an-address] } }',
      '',
    ].join('\n'));
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0] ?? '', /^gateway\.yaml:3:\d+: ipRules\.allow\[1\]: "10\.0\.0\.0\/33" has an invalid prefix length/);
    assert.match(found[1] ?? '', /^gateway\.yaml:4:\d+: ipRules\.deny\[0\]: .*IPv4-mapped or NAT64 \(64:ff9b::\/96\) IPv6 form: write the IPv4 address or range itself/);
    assert.match(found[2] ?? '', /^gateway\.yaml:6:\d+: routes\[0\]\.ipRules\.deny\[0\]: "not-an-address" is not an IP address/);
  });
});

describe('an X-Forwarded-For hop, every way a proxy may write it', () => {
  // [hop, the address it names, or null: not one client address]
  const table: readonly (readonly [string, string | null])[] = [
    ['10.1.2.3', '10.1.2.3'], [' \t10.1.2.3 ', '10.1.2.3'], ['10.1.2.3:5678', '10.1.2.3'], ['10.1.2.3:080', '10.1.2.3'],
    ['10.1.2.3:', null], ['10.1.2.3:65536', null], ['10.1.2.3:-1', null], ['10.1.2.3 :80', null],
    ['010.1.2.3', null], ['10.1.2.03', null], ['0x0a.1.2.3', null], ['10.1.2', null], ['167838211', null], ['10.1.2.3.4', null], ['256.1.2.3', null],
    ['2001:db8::1', '2001:db8::1'], ['2001:DB8::1', '2001:db8::1'], ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'], ['[2001:db8::1]:443', '2001:db8::1'], ['[2001:db8::1]:', null], ['[2001:db8::1', null], ['2001:db8::1]', null],
    // Unbracketed IPv6 cannot carry a port: this is the address 2001:db8::1:80, and is read as it.
    ['2001:db8::1:80', '2001:db8::1:80'],
    ['[10.1.2.3]', null], ['[10.1.2.3]:80', null],
    ['::ffff:10.1.2.3', '10.1.2.3'], ['::FFFF:10.1.2.3', '10.1.2.3'], ['0:0:0:0:0:ffff:a01:203', '10.1.2.3'], ['[::ffff:10.1.2.3]:80', '10.1.2.3'], ['::ffff:010.1.2.3', null],
    ['64:ff9b::10.1.2.3', '10.1.2.3'], ['64:ff9b::a01:203', '10.1.2.3'], ['64:ff9b:1::a01:203', '64:ff9b:1::a01:203'],
    ['::10.1.2.3', null], ['::a01:203', null], ['::', null], ['::1', '::1'], ['[::1]:80', '::1'],
    ['fe80::1%eth0', null], ['[fe80::1%eth0]:80', null], ['[fe80::1%25eth0]', null],
    ['', null], ['unknown', null], ['_hidden', null], ['10.1.2.3 10.1.2.4', null], ['x'.repeat(10_000), null],
  ];
  for (const [hop, expected] of table) {
    it(`${JSON.stringify(hop.length > 40 ? `${hop.slice(0, 20)}…` : hop)} → ${expected ?? 'no address'}`, () => {
      assert.equal(forwardedHopAddress(hop), expected);
    });
  }
});
