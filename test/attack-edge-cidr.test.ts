// One address range, one meaning, in every list of addresses: trusted proxies, IP rules (top level
// and per route), API key ranges and rule literals refuse the same entries, each located. An entry
// read loosely (`10.0.0.0/8/16` as /8), a zone id, or an IPv4-mapped or NAT64 form (clients in
// those forms are matched as the IPv4 address they carry, so a NAT64 entry never matches) would
// say something other than what it does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { configProblems } from './harness/config.js';
import { admin, ADMIN_TOKEN_HASH } from './harness/api-keys.js';
import { cidrProblem, ipSet } from '../src/lib/ip.js';

/** Entries every list refuses, and what the message says. */
const REFUSED: readonly (readonly [string, RegExp])[] = [
  ['10.0.0.0/8/16', /has more than one "\/"/],
  ['10.0.0.0/8/', /has more than one "\/"/],
  ['2001:db8::/32/48', /has more than one "\/"/],
  ['fe80::1%eth0', /has a zone id/],
  ['fe80::%1/64', /has a zone id/],
  ['64:ff9b::a00:0/104', /IPv4-mapped or NAT64/],
  ['64:ff9b::10.0.0.0/104', /IPv4-mapped or NAT64/],
  ['::ffff:10.0.0.0/104', /IPv4-mapped or NAT64/],
  ['::FFFF:a00:0/104', /IPv4-mapped or NAT64/],
  ['0:0:0:0:0:ffff:a00:1', /IPv4-mapped or NAT64/],
  ['10.0.0.0/33', /invalid prefix length/],
  ['10.0.0/8', /not an IP address or CIDR range/],
];

/** Entries every list takes. */
const ACCEPTED: readonly string[] = ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1/128', '0.0.0.0/0', '64:ff9b:1::/48'];

const BASE = 'upstreams: { app: { targets: [\'http://127.0.0.1:9\'] } }\n';
const ROUTE = (ipRules: string): string => `routes: [{ name: open, match: { path: /x }, upstream: app, public: true${ipRules} }]\n`;

/** The config text placing one entry in each list, and the option path and line the problem must name. */
const PLACES: readonly (readonly [string, (entry: string) => string, RegExp])[] = [
  ['trustedProxies', (e) => `trustedProxies: ['${e}']\n${BASE}${ROUTE('')}`, /^gateway\.yaml:1:\d+: trustedProxies\[0\]: /],
  ['ipRules.allow', (e) => `ipRules: { allow: ['${e}'] }\n${BASE}${ROUTE('')}`, /^gateway\.yaml:1:\d+: ipRules\.allow\[0\]: /],
  ['ipRules.deny', (e) => `ipRules: { deny: ['10.1.0.0/16', '${e}'] }\n${BASE}${ROUTE('')}`, /^gateway\.yaml:1:\d+: ipRules\.deny\[1\]: /],
  ['routes[].ipRules.deny', (e) => `${BASE}${ROUTE(`, ipRules: { deny: ['${e}'] }`)}`, /^gateway\.yaml:2:\d+: routes\[0\]\.ipRules\.deny\[0\]: /],
  ['a rule\'s inCidr literal', (e) => `${BASE}${ROUTE(`, when: [{ name: office, expr: 'inCidr(client.ip, "${e}")' }]`)}`, /^gateway\.yaml:2:\d+: routes\[0\]\.when\[0\]\.expr: /],
];

describe('CIDR entries: the same refused in every list, located', () => {
  for (const [entry, says] of REFUSED) {
    it(`refuses ${entry}`, () => {
      assert.match(cidrProblem(entry) ?? '', says);
      for (const [where, text, located] of PLACES) {
        const problems = configProblems(text(entry));
        assert.equal(problems.length, 1, `${where}: ${problems.join('\n')}`);
        assert.match(problems[0] ?? '', located, where);
        assert.match(problems[0] ?? '', says, where);
      }
    });
  }

  it('takes the plain forms of both families', () => {
    for (const entry of ACCEPTED) {
      assert.equal(cidrProblem(entry), null, entry);
      for (const [where, text] of PLACES) {
        if (where === 'trustedProxies' && entry.endsWith('/0')) continue; // see below
        assert.deepEqual(configProblems(text(entry)), [], `${where}: ${entry}`);
      }
    }
  });

  it('refuses a trustedProxies range of every address (a /0), located', () => {
    for (const entry of ['0.0.0.0/0', '::/0', '10.0.0.0/00']) {
      const problems = configProblems(`trustedProxies: ['10.0.0.0/8', '${entry}']\n${BASE}${ROUTE('')}`);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0] ?? '', /^gateway\.yaml:1:\d+: trustedProxies\[1\]: .* trusts every address/);
    }
  });

  it('never reads a loose entry as another range: ipSet throws', () => {
    for (const entry of ['10.0.0.0/8/16', 'fe80::1%eth0']) assert.throws(() => ipSet([entry]), /more than one|zone id/, entry);
    assert.equal(ipSet(['10.0.0.0/8']).has('10.200.0.1'), true);
  });
});

describe('CIDR entries: API key ranges refuse the same, at the admin API', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      admin: { tokenHash: ADMIN_TOKEN_HASH },
      apiKeys: { environment: 'live' },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { machines: { type: 'apiKey' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['machines'] }],
    });
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  it('refuses each with 400 naming the entry, and creates no key', async () => {
    for (const [entry, says] of REFUSED) {
      const res = await admin(gw.adminUrl, 'POST', '/admin/keys', { name: 'ranged', allowedCidrs: ['10.0.0.0/8', entry] });
      assert.equal(res.status, 400, `${entry}: ${res.body}`);
      assert.match(((JSON.parse(res.body) as { errors?: string[] }).errors ?? []).join('\n'), says, entry);
    }
    const listed = await admin(gw.adminUrl, 'GET', '/admin/keys');
    assert.equal(listed.status, 200);
    assert.doesNotMatch(listed.body, /ranged/);
  });

  it('creates a key with plain ranges of both families', async () => {
    const res = await admin(gw.adminUrl, 'POST', '/admin/keys', { name: 'plain', allowedCidrs: ['10.0.0.0/8', '2001:db8::/32'] });
    assert.equal(res.status, 201, res.body);
  });
});
