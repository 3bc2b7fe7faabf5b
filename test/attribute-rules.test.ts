// Attribute rules (routes[].when) through a real gateway and a loopback upstream that counts what
// it receives: one table per attribute, each with requests a rule admits and requests it refuses,
// hostile variants included (spoofed, duplicated, ambiguous, ill-typed, oversized). A refusal is
// 403 problem+json policy_denied, nothing forwarded, one audit record naming the rule.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { craft } from './harness/jwt.js';
import { rawRequest, requestHead } from './harness/raw-client.js';
import { ManualClock } from './harness/manual-clock.js';
import { DENIALS } from '../src/pipeline/denials.js';
import { verifyTrail } from '../src/audit/verify.js';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';

const ISS = 'https://issuer.test/';
const SECRET = 'attribute-rules-test-hmac-secret-0123456789';
/** Wednesday 3 June 2026, 10:00 UTC: 12:00 in Berlin (CEST, UTC+2). */
const START = Date.UTC(2026, 5, 3, 10, 0);
const HOUR = 3_600_000;

interface Case {
  readonly what: string;
  readonly method?: string;
  readonly path: string;
  /** Claims of the bearer token (iss, aud, iat and exp added); absent: no token. */
  readonly claims?: Record<string, unknown>;
  readonly headers?: Record<string, string | string[]>;
  /** The client address a trusted proxy asserts (X-Forwarded-For). */
  readonly from?: string;
  /** Moves the gateway's clock to this time first (cases of one table run in order). */
  readonly at?: number;
  /** 200, or the status and code of a refusal; a 403 policy_denied names `rule`. */
  readonly expect: 200 | { readonly status: number; readonly code: string; readonly rule?: string; readonly detail?: RegExp };
}

const alice = { sub: 'alice', tenant_id: 'acme', roles: ['admin'], scope: 'orders:read orders:write' };

describe('attribute rules (when) on a real gateway', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  const clock = new ManualClock(START);

  before(async () => {
    echo = await startEchoUpstream();
    const route = (name: string, path: string, when: unknown, extra: Record<string, unknown> = {}) =>
      ({ name, match: { path }, upstream: 'app', authenticate: ['users'], when, ...extra });
    gw = await startGateway({
      trustedProxies: ['127.0.0.1/32'],
      upstreams: { app: { targets: [echo.url] } },
      authenticators: {
        users: { type: 'jwt', issuer: ISS, secret: SECRET, audience: 'orders-api', algorithms: ['HS256'], claims: { roles: 'roles', tenant: 'tenant_id', tier: 'tier' } },
      },
      routes: [
        route('tenant', '/t/{tenant}/orders/**', 'identity.tenant == request.params.tenant'),
        route('roles', '/roles/**', [{ name: 'admin-role', expr: '"admin" in identity.roles' }]),
        route('scopes', '/scopes/**', [{ name: 'can-write', expr: 'identity.scopes.exists(s, s == "orders:write")' }]),
        route('subject', '/subject/**', [{ name: 'alice-by-jwt', expr: 'identity.sub == "alice" && identity.method == "jwt"' }]),
        route('tier', '/tier/**', [{ name: 'gold', expr: 'has(identity.tier) && identity.tier == "gold"' }]),
        route('method', '/method/**', [{ name: 'read-only', expr: 'request.method in ["GET", "HEAD"]' }],
          { match: { path: '/method/**', methods: ['GET', 'HEAD', 'DELETE'] }, allowMethodOverride: true }),
        route('claims', '/claims/**', [
          { name: 'level', expr: 'claims.level >= 3' },
          { name: 'org', expr: 'claims.org.name == "acme"' },
        ]),
        route('groups', '/groups/**', [{ name: 'not-banned', expr: '!claims.groups.exists(g, g == "banned")' }]),
        // A comprehension's name hides the variable of that name inside it, whatever another rule reads.
        route('shadow', '/shadow/{tenant}/**', [
          { name: 'own-tenant', expr: 'identity.tenant == request.params.tenant' },
          { name: 'inner-name', expr: '[{"tenant": "globex"}].exists(identity, identity.tenant == "globex")' },
          { name: 'inner-param', expr: '[{"params": {"tenant": "initech"}}].all(request, request.params.tenant == "initech")' },
        ]),
        { name: 'path', match: { path: '/path/**' }, upstream: 'app', public: true, when: [{ name: 'public-part', expr: 'request.path.startsWith("/path/public/")' }] },
        { name: 'pattern', match: { path: '/re/**' }, upstream: 'app', public: true, when: [{ name: 'order-ids', expr: 'request.path.matches("^/re/orders/[0-9]{1,8}$")' }] },
        { name: 'cidr', match: { path: '/cidr/**' }, upstream: 'app', public: true,
          when: [{ name: 'office-network', expr: 'inCidr(client.ip, "10.0.0.0/8") || inCidr(client.ip, "2001:db8::/32")' }] },
        { name: 'header', match: { path: '/header/**' }, upstream: 'app', public: true, when: [{ name: 'prod-only', expr: 'request.headers["x-env"] == "prod"' }] },
        { name: 'header-optional', match: { path: '/header-optional/**' }, upstream: 'app', public: true,
          when: [{ name: 'not-staging', expr: '!("x-env" in request.headers) || request.headers["x-env"] != "staging"' }] },
        { name: 'hours', match: { path: '/hours/**' }, upstream: 'app', public: true, when: [
          { name: 'office-hours', expr: 'request.time.getHours("Europe/Berlin") >= 8 && request.time.getHours("Europe/Berlin") < 18' },
          { name: 'weekday', expr: 'request.time.getDayOfWeek("Europe/Berlin") in [1, 2, 3, 4, 5]' },
        ] },
      ],
    }, { clock });
  });
  after(async () => {
    await gw.close();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  function token(claims: Record<string, unknown>): string {
    const now = Math.floor(clock.now() / 1000);
    return craft('{"alg":"HS256","typ":"JWT"}', JSON.stringify({ iss: ISS, aud: 'orders-api', iat: now, exp: now + 3600, ...claims }), { hmac: SECRET });
  }

  async function check(c: Case): Promise<void> {
    if (c.at !== undefined) clock.advance(c.at - clock.now());
    const headers: Record<string, string | string[]> = { ...c.headers };
    if (c.claims !== undefined) headers['authorization'] = `Bearer ${token(c.claims)}`;
    if (c.from !== undefined) headers['x-forwarded-for'] = c.from;
    const received = echo.received.length;
    const res = await request(`${gw.url}${c.path}`, { method: (c.method ?? 'GET') as 'GET', headers });
    const text = await res.body.text();
    const requestId = String(res.headers['x-request-id']);
    if (c.expect === 200) {
      assert.equal(res.statusCode, 200, `${c.what}: ${text}`);
      assert.equal(echo.received.length, received + 1, 'forwarded once');
      return;
    }
    assert.equal(res.statusCode, c.expect.status, `${c.what}: ${text}`);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const problem = JSON.parse(text) as { type: string; status: number; requestId: string; detail: string };
    assert.equal(problem.type.split(':').at(-1), c.expect.code);
    assert.equal(problem.status, c.expect.status);
    assert.equal(echo.received.length, received, 'nothing forwarded');
    const records = await gw.auditFor(requestId);
    assert.equal(records.length, 1, 'one audit record');
    const record = records[0] as unknown as Record<string, unknown>;
    assert.equal(record['reason'], c.expect.code);
    assert.equal(record['decision'], 'deny');
    if (c.expect.code === 'policy_denied') {
      assert.equal(record['stage'], 'rules');
      assert.equal(record['rule'], c.expect.rule);
      // The audit detail names the rule and where it is written; the client gets the catalogue's text only.
      assert.match(String(record['detail']), new RegExp(`^rule ${c.expect.rule ?? ''} \\(gateway\\.yaml:\\d+\\) `));
      if (c.expect.detail !== undefined) assert.match(String(record['detail']), c.expect.detail);
      assert.equal(problem.detail, DENIALS.policy_denied.detail);
    } else {
      assert.equal(record['rule'], undefined);
    }
  }

  const denied = (rule: string, detail?: RegExp) => ({ status: 403, code: 'policy_denied', rule, ...(detail === undefined ? {} : { detail }) });
  const notEvaluated = (rule: string) => denied(rule, /could not be evaluated/);

  const tables: Readonly<Record<string, readonly Case[]>> = {
    'identity.tenant against a path parameter': [
      { what: 'the caller\'s own tenant', path: '/t/acme/orders/1', claims: alice, expect: 200 },
      { what: 'the tenant percent-encoded (decoded before comparing)', path: '/t/%61cme/orders/1', claims: alice, expect: 200 },
      { what: 'another tenant', path: '/t/globex/orders/1', claims: alice, expect: denied('when', /does not hold/) },
      { what: 'the tenant in another case', path: '/t/ACME/orders/1', claims: alice, expect: denied('when') },
      { what: 'a tenant with a suffix', path: '/t/acme%20/orders/1', claims: alice, expect: denied('when') },
      { what: 'an identity without a tenant (fails closed)', path: '/t/acme/orders/1', claims: { sub: 'bob' }, expect: notEvaluated('when') },
      { what: 'no credential at all (authentication decides first)', path: '/t/acme/orders/1', expect: { status: 401, code: 'unauthenticated' } },
    ],
    'identity.roles': [
      { what: 'a caller with the role', path: '/roles/x', claims: alice, expect: 200 },
      { what: 'a caller with other roles', path: '/roles/x', claims: { ...alice, roles: ['reader', 'Admin'] }, expect: denied('admin-role') },
      { what: 'a caller with no roles', path: '/roles/x', claims: { sub: 'bob' }, expect: denied('admin-role') },
    ],
    'identity.scopes': [
      { what: 'a token with the scope', path: '/scopes/x', claims: alice, expect: 200 },
      { what: 'a token with a longer scope that starts alike', path: '/scopes/x', claims: { ...alice, scope: 'orders:read orders:writer' }, expect: denied('can-write') },
      { what: 'a token without scopes', path: '/scopes/x', claims: { sub: 'alice' }, expect: denied('can-write') },
    ],
    'identity.sub and identity.method': [
      { what: 'the subject', path: '/subject/x', claims: alice, expect: 200 },
      { what: 'another subject', path: '/subject/x', claims: { ...alice, sub: 'mallory' }, expect: denied('alice-by-jwt') },
      { what: 'a subject that differs by case', path: '/subject/x', claims: { ...alice, sub: 'Alice' }, expect: denied('alice-by-jwt') },
    ],
    'identity.tier (absent: has() is false)': [
      { what: 'the tier', path: '/tier/x', claims: { ...alice, tier: 'gold' }, expect: 200 },
      { what: 'another tier', path: '/tier/x', claims: { ...alice, tier: 'silver' }, expect: denied('gold') },
      { what: 'no tier', path: '/tier/x', claims: alice, expect: denied('gold', /does not hold/) },
    ],
    'request.method (the method the upstream acts on)': [
      { what: 'GET', path: '/method/x', claims: alice, expect: 200 },
      { what: 'HEAD', method: 'HEAD', path: '/method/x', claims: alice, expect: 200 },
      { what: 'DELETE', method: 'DELETE', path: '/method/x', claims: alice, expect: denied('read-only') },
      { what: 'a GET that a method override makes a DELETE', path: '/method/x', claims: alice, headers: { 'x-http-method-override': 'DELETE' }, expect: denied('read-only') },
    ],
    'claims (numbers, nesting, wrong types, missing keys, oversized lists)': [
      { what: 'an int claim and a nested claim that hold', path: '/claims/x', claims: { ...alice, level: 3, org: { name: 'acme' } }, expect: 200 },
      { what: 'a double claim above the bound', path: '/claims/x', claims: { ...alice, level: 3.5, org: { name: 'acme' } }, expect: 200 },
      { what: 'a level below', path: '/claims/x', claims: { ...alice, level: 2, org: { name: 'acme' } }, expect: denied('level', /does not hold/) },
      { what: 'the level as a string (ill-typed: fails closed)', path: '/claims/x', claims: { ...alice, level: '3', org: { name: 'acme' } }, expect: notEvaluated('level') },
      { what: 'the level as a list', path: '/claims/x', claims: { ...alice, level: [3], org: { name: 'acme' } }, expect: notEvaluated('level') },
      { what: 'no level claim', path: '/claims/x', claims: { ...alice, org: { name: 'acme' } }, expect: notEvaluated('level') },
      { what: 'the second rule failing', path: '/claims/x', claims: { ...alice, level: 5, org: { name: 'globex' } }, expect: denied('org') },
      { what: 'an org that is not an object', path: '/claims/x', claims: { ...alice, level: 5, org: 'acme' }, expect: notEvaluated('org') },
    ],
    'claims in a comprehension (bounded lists)': [
      { what: 'groups without the banned one', path: '/groups/x', claims: { ...alice, groups: ['a', 'b'] }, expect: 200 },
      { what: 'groups with the banned one', path: '/groups/x', claims: { ...alice, groups: ['a', 'banned'] }, expect: denied('not-banned') },
      { what: 'more groups than a rule is given (fails closed, not truncated)', path: '/groups/x', claims: { ...alice, groups: Array<string>(1001).fill('g') }, expect: notEvaluated('not-banned') },
      { what: 'no groups claim (an error, not "none banned")', path: '/groups/x', claims: alice, expect: notEvaluated('not-banned') },
    ],
    'a comprehension naming its element like a variable (identity, request)': [
      { what: 'the outer variables outside, the elements inside', path: '/shadow/acme/x', claims: alice, expect: 200 },
      { what: 'another tenant (the outer rule refuses; the inner ones still read their elements)', path: '/shadow/globex/x', claims: alice, expect: denied('own-tenant') },
      { what: 'no tenant (fails closed outside)', path: '/shadow/acme/x', claims: { sub: 'bob' }, expect: notEvaluated('own-tenant') },
    ],
    'matches: an RE2 pattern compiled at load, over the canonical path': [
      { what: 'a path the pattern takes', path: '/re/orders/42', expect: 200 },
      { what: 'a path with more than the pattern allows', path: '/re/orders/42/items', expect: denied('order-ids') },
      { what: 'digits percent-encoded (decoded before the rule reads the path)', path: '/re/orders/%34%32', expect: 200 },
      { what: 'a newline smuggled at the end (refused before routing)', path: '/re/orders/42%0A', expect: { status: 400, code: 'invalid_target' } },
      { what: 'an id too long', path: '/re/orders/123456789', expect: denied('order-ids') },
    ],
    'request.path (canonical: as matched and forwarded)': [
      { what: 'a path under the public part', path: '/path/public/a', expect: 200 },
      { what: 'a path outside it', path: '/path/private/a', expect: denied('public-part') },
      { what: 'dot segments resolved before the rule reads the path', path: '/path/public/../private/a', expect: denied('public-part') },
      { what: 'an unreserved escape decoded before the rule reads the path', path: '/path/%70ublic/a', expect: 200 },
      { what: 'an encoded slash (refused before routing)', path: '/path/public%2F..%2Fprivate', expect: { status: 400, code: 'ambiguous_path' } },
    ],
    'client.ip and inCidr (the address resolved through trusted proxies)': [
      { what: 'an IPv4 address in the range', path: '/cidr/x', from: '10.1.2.3', expect: 200 },
      { what: 'its IPv4-mapped IPv6 form', path: '/cidr/x', from: '::ffff:10.1.2.3', expect: 200 },
      { what: 'an IPv6 address in the range', path: '/cidr/x', from: '2001:db8::7', expect: 200 },
      { what: 'an IPv4 address outside', path: '/cidr/x', from: '11.0.0.1', expect: denied('office-network') },
      { what: 'the loopback peer itself', path: '/cidr/x', expect: denied('office-network') },
      { what: 'an IPv6 address outside', path: '/cidr/x', from: '2001:db9::1', expect: denied('office-network') },
      { what: 'a spoofed hop before the trusted proxy\'s (the nearest untrusted hop counts)', path: '/cidr/x', from: '10.1.2.3, 11.0.0.1', expect: denied('office-network') },
    ],
    'request.headers (only the ones a rule names; once each)': [
      { what: 'the header with the value', path: '/header/x', headers: { 'x-env': 'prod' }, expect: 200 },
      { what: 'another value', path: '/header/x', headers: { 'x-env': 'staging' }, expect: denied('prod-only') },
      { what: 'the value in another case', path: '/header/x', headers: { 'x-env': 'PROD' }, expect: denied('prod-only') },
      { what: 'no such header (fails closed)', path: '/header/x', expect: notEvaluated('prod-only') },
      { what: 'the header twice', path: '/header/x', headers: { 'x-env': ['prod', 'prod'] }, expect: { status: 400, code: 'ambiguous_header' } },
      { what: 'an underscore twin of the header', path: '/header/x', headers: { 'x-env': 'prod', x_env: 'staging' }, expect: { status: 400, code: 'ambiguous_header' } },
      { what: 'a rule that asks first: absent', path: '/header-optional/x', expect: 200 },
      { what: 'a rule that asks first: present and refused', path: '/header-optional/x', headers: { 'x-env': 'staging' }, expect: denied('not-staging') },
    ],
    'request.time in a zone (the gateway\'s clock)': [
      { what: 'Wednesday 12:00 in Berlin', path: '/hours/x', at: START, expect: 200 },
      { what: 'Wednesday 17:59 in Berlin (15:59 UTC)', path: '/hours/x', at: START + 5 * HOUR + 59 * 60_000, expect: 200 },
      { what: 'Wednesday 18:00 in Berlin (16:00 UTC, still before 18 UTC)', path: '/hours/x', at: START + 6 * HOUR, expect: denied('office-hours') },
      { what: 'Thursday 07:59 in Berlin (05:59 UTC)', path: '/hours/x', at: Date.UTC(2026, 5, 4, 5, 59), expect: denied('office-hours') },
      { what: 'Friday 22:30 UTC is Saturday 00:30 in Berlin: the zone decides the hour', path: '/hours/x', at: Date.UTC(2026, 5, 5, 22, 30), expect: denied('office-hours') },
      { what: 'Saturday noon in Berlin', path: '/hours/x', at: Date.UTC(2026, 5, 6, 10), expect: denied('weekday') },
      { what: 'winter (CET, UTC+1): 17:30 in Berlin is 16:30 UTC', path: '/hours/x', at: Date.UTC(2026, 11, 2, 16, 30), expect: 200 },
      { what: 'winter: 18:30 in Berlin is 17:30 UTC', path: '/hours/x', at: Date.UTC(2026, 11, 2, 17, 30), expect: denied('office-hours') },
    ],
  };

  for (const [attribute, cases] of Object.entries(tables)) {
    describe(attribute, () => {
      for (const c of cases) {
        const verdict = c.expect === 200 ? 'admits' : c.expect.code === 'policy_denied' ? 'refuses' : `answers ${c.expect.status} to`;
        it(`${verdict} ${c.what}`, () => check(c));
      }
    });
  }

  it('refuses a request naming a rule\'s header in Connection (it would be dropped after the check), forwarding nothing', async () => {
    const received = echo.received.length;
    const res = await rawRequest(gw.port, requestHead('GET', '/header/x', ['X-Env: prod', 'Connection: x-env']));
    assert.equal(res.status, 400);
    assert.equal((JSON.parse(res.body) as { type: string }).type.split(':').at(-1), 'ambiguous_header');
    assert.equal(echo.received.length, received);
  });

  it('writes a trail whose records naming rules verify (the chain hashes rule in its canonical place)', async () => {
    await gw.auditBarrier();
    const dir = join(gw.gateway.config.dataDir, 'audit');
    // The clock moved across days, so the trail has rotated: read every file of it.
    const lines = (await Promise.all((await readdir(dir)).filter((f) => f.endsWith('.log')).map((f) => readFile(join(dir, f), 'utf8')))).join('').split('\n');
    assert.ok(lines.filter((l) => l.includes('"rule":"')).length >= 30, 'records naming rules');
    const report = await verifyTrail([dir]);
    assert.deepEqual(report.chains.flatMap((c) => c.problems), []);
    assert.ok(report.chains.reduce((n, c) => n + c.records, 0) >= 60);
  });

  it('counts refusals by route and rule in the metrics', async () => {
    const res = await request(`${gw.adminUrl}/metrics`);
    const text = await res.body.text();
    assert.match(text, /portcullis_policy_denials_total\{route="hours",rule="office-hours"\} [1-9]/);
    assert.match(text, /portcullis_policy_denials_total\{route="tenant",rule="when"\} [1-9]/);
  });
});
