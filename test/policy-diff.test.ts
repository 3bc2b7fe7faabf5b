// `portcullis policy diff OLD NEW` on the example configs: exactly the cases whose decision changes,
// and a replay of an audit trail that a real gateway wrote in this test (real loopback upstream,
// real requests), sampled deterministically and bounded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { parse } from 'yaml';
import { runCli } from './harness/cli.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { mint, testKey } from './harness/jwt.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/policy/orders.yaml', import.meta.url));
const STRICT = fileURLToPath(new URL('../../examples/policy/orders.strict.yaml', import.meta.url));
const TESTS = fileURLToPath(new URL('../../examples/policy/orders.tests.yaml', import.meta.url));
const RULES = fileURLToPath(new URL('../../examples/policy/gateway.yaml', import.meta.url));
const RULES_TESTS = fileURLToPath(new URL('../../examples/policy/gateway.tests.yaml', import.meta.url));

interface Outcome { decision: string; status: number | null; code: string | null; route: string | null; rule?: string | null }
interface Change { source: string; label: string; count: number; old: Outcome; new: Outcome; changed: string[] }
interface DiffJson {
  cases: { total: number; changed: number };
  audit: { read: number; replayable: number; sampled: number; changed: number; truncated: boolean; skipped: number; agreeingWithRecord: number } | null;
  changes: Change[];
}

const pick = (o: Outcome): Outcome => ({ decision: o.decision, status: o.status, code: o.code, route: o.route });

describe('portcullis policy diff over the example test cases', () => {
  it('the stricter example changes exactly the two cases it should (exit 1)', async () => {
    const run = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--json']);
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(run.stdout) as DiffJson;
    assert.deepEqual(report.cases, { total: 15, changed: 2 });
    assert.equal(report.audit, null);
    assert.deepEqual(report.changes.map((c) => [c.source, c.label, pick(c.old), pick(c.new), c.changed]), [
      ['case', 'anyone browses the catalogue',
        { decision: 'allow', status: null, code: null, route: 'catalog' }, { decision: 'deny', status: 401, code: 'unauthenticated', route: 'catalog' }, ['decision', 'status', 'code']],
      ['case', 'a clerk cancels an order',
        { decision: 'allow', status: null, code: null, route: 'orders-write' }, { decision: 'deny', status: 403, code: 'insufficient_role', route: 'orders-write' }, ['decision', 'status', 'code']],
    ]);
  });

  it('the table names each change, old and new', async () => {
    const run = await runCli(['policy', 'diff', EXAMPLE, STRICT]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^case +anyone browses the catalogue +allow \(forwarded\) → catalog +deny 401 unauthenticated → catalog$/m);
    assert.match(run.stdout, /^case +a clerk cancels an order +allow \(forwarded\) → orders-write +deny 403 insufficient_role → orders-write$/m);
    assert.match(run.stdout, /^Test cases: 2 of 15 change$/m);
    assert.match(run.stdout, /^2 requests decide differently\.$/m);
  });

  it('a config against itself: nothing changes (exit 0); the other way round, the same two', async () => {
    const same = await runCli(['policy', 'diff', EXAMPLE, EXAMPLE]);
    assert.equal(same.code, 0, same.stdout);
    assert.match(same.stdout, /^Test cases: 0 of 15 change$/m);
    assert.match(same.stdout, /^No request decides differently\.$/m);
    const back = JSON.parse((await runCli(['policy', 'diff', STRICT, EXAMPLE, '--tests', TESTS, '--json'])).stdout) as DiffJson;
    assert.deepEqual(back.changes.map((c) => c.label), ['anyone browses the catalogue', 'a clerk cancels an order']);
  });

  it('usage and input errors: exit 2 (arguments, test files) or 3 (a config)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-diff-'));
    try {
      const lonely = join(dir, 'a.yaml');
      await writeFile(lonely, readFileSync(EXAMPLE));
      const broken = join(dir, 'broken.yaml');
      await writeFile(broken, 'routes: [}\n');
      const cases: readonly (readonly [readonly string[], number, RegExp])[] = [
        [[EXAMPLE], 2, /missing NEW/],
        [[lonely, lonely], 2, /nothing to compare: no .*a\.tests\.yaml or .*a\.tests\.yaml; give --tests FILE or --audit/],
        [[EXAMPLE, STRICT, '--sample', '5'], 2, /--since, --sample and --max-read choose recorded requests: give --audit/],
        [[EXAMPLE, STRICT, '--audit', dir, '--sample', '0'], 2, /--sample: a whole number from 1 to 100000/],
        [[EXAMPLE, STRICT, '--audit', dir, '--max-read', '-5'], 2, /--max-read/],
        [[EXAMPLE, STRICT, '--audit', 'https://example.com/trail'], 2, /--from: a path or a nats:\/\/ URL/],
        [[EXAMPLE, broken], 3, /broken\.yaml:1:\d+: .*\n1 problem in config/],
        [[EXAMPLE, STRICT, '--tests', broken], 2, /broken\.yaml:1:\d+: .*\n1 problem in test files/],
        [[EXAMPLE, STRICT, '--audit', join(dir, 'no-such-trail')], 3, /policy diff: .*no-such-trail/],
      ];
      for (const [args, code, message] of cases) {
        const run = await runCli(['policy', 'diff', ...args]);
        assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, message, args.join(' '));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('portcullis policy diff over attribute rules (examples/policy/gateway.yaml)', () => {
  it('a rule made stricter changes exactly the cases it now refuses, naming the rule', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-diff-rules-'));
    try {
      const later = join(dir, 'gateway.yaml');
      const text = readFileSync(RULES, 'utf8');
      assert.ok(text.includes('request.time.getHours("Europe/Berlin") >= 8'));
      // Office hours from 9 instead of 8.
      await writeFile(later, text.replace('request.time.getHours("Europe/Berlin") >= 8', 'request.time.getHours("Europe/Berlin") >= 9'));
      const run = await runCli(['policy', 'diff', RULES, later, '--tests', RULES_TESTS, '--json']);
      assert.equal(run.code, 1, run.stderr);
      const report = JSON.parse(run.stdout) as DiffJson;
      assert.deepEqual(report.cases, { total: 17, changed: 1 });
      assert.deepEqual(report.changes.map((c) => [c.label, pick(c.old), pick(c.new), c.new.rule]), [
        ['office hours start at 8 in Berlin', { decision: 'allow', status: null, code: null, route: 'orders-write' }, { decision: 'deny', status: 403, code: 'policy_denied', route: 'orders-write' }, 'office-hours'],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('portcullis policy diff over a trail a real gateway wrote', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let trail: string;

  before(async () => {
    echo = await startEchoUpstream();
    const key = await testKey('ES256', 'policy-diff');
    // The example as deployed: its routes and policy, a real upstream, a key the test signs with,
    // and the test client's loopback address as the load balancer that sets X-Forwarded-For.
    const example = parse(readFileSync(EXAMPLE, 'utf8')) as ConfigObject;
    gw = await startGateway({
      ...example,
      trustedProxies: ['127.0.0.1/32'],
      upstreams: { orders: { targets: [echo.url] } },
      authenticators: {
        users: {
          type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', publicKeys: [{ pem: key.pem }], algorithms: ['ES256'],
          claims: { subject: 'sub', roles: 'roles', scopes: 'scope', tenant: 'tenant' },
        },
      },
    });
    const alice = await mint(key, { sub: 'alice', scope: 'orders:read', tenant: 'acme' });
    const send = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
      const res = await request(`${gw.url}${path}`, { headers });
      await res.body.dump();
      return res.statusCode;
    };
    // What the trail will hold: 2 health checks, 3 catalogue requests from the load balancer's own
    // address, 1 from a client in 203.0.113.0/24 (through the balancer), 2 authenticated order reads.
    assert.equal(await send('/health'), 200);
    assert.equal(await send('/health'), 200);
    for (let i = 0; i < 3; i++) assert.equal(await send('/catalog/shoes'), 200);
    assert.equal(await send('/catalog/hats', { 'x-forwarded-for': '203.0.113.7' }), 200);
    assert.equal(await send('/api/acme/orders/1', { authorization: `Bearer ${alice}` }), 200);
    assert.equal(await send('/api/acme/orders/1', { authorization: `Bearer ${alice}` }), 200);
    assert.equal((await gw.audit(8)).filter((r) => r.kind === 'request').length, 8);
    trail = join(gw.gateway.config.dataDir, gw.gateway.config.audit.file);
  });

  after(async () => {
    await gw.close();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  it('replays the recorded requests through both configs and lists exactly those that change', async () => {
    const run = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--tests', TESTS, '--audit', trail, '--json']);
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(run.stdout) as DiffJson;
    assert.deepEqual({ ...report.audit, read: undefined, agreeingWithRecord: undefined }, {
      ...report.audit, read: undefined, agreeingWithRecord: undefined, replayable: 8, sampled: 4, changed: 2, truncated: false, skipped: 0,
    });
    const recorded = report.changes.filter((c) => c.source === 'audit');
    assert.deepEqual(recorded.map((c) => [c.label, c.count, pick(c.old), pick(c.new)]), [
      ['GET /catalog/shoes from 127.0.0.1', 3, { decision: 'allow', status: null, code: null, route: 'catalog' }, { decision: 'deny', status: 401, code: 'unauthenticated', route: 'catalog' }],
      ['GET /catalog/hats from 203.0.113.7', 1, { decision: 'allow', status: null, code: null, route: 'catalog' }, { decision: 'deny', status: 403, code: 'ip_denied', route: null }],
    ]);
    assert.equal(report.changes.filter((c) => c.source === 'case').length, 2, 'the test cases are compared too');
    // The orders reads are replayed as alice of acme (the trail has no scopes): denied under both, so not listed.
    assert.ok(!report.changes.some((c) => c.label.includes('/api/acme/orders')));
    assert.equal(report.audit?.agreeingWithRecord, 3, 'the health and catalogue requests replay under OLD as recorded; the orders reads lack their scopes');
  });

  it('says the limits of the replay in the output', async () => {
    const run = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--tests', TESTS, '--audit', trail]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^audit +GET \/catalog\/shoes from 127\.0\.0\.1 +×3 +allow \(forwarded\) → catalog +deny 401 unauthenticated → catalog$/m);
    assert.match(run.stdout, /^Recorded requests: 2 of 4 sampled change \(\d+ records read, 8 replayable, 4 distinct requests\)$/m);
    assert.match(run.stdout, /The trail holds no query, headers, body, roles, scopes or claims/);
  });

  it('the sample is deterministic and bounded: --sample and --max-read', async () => {
    const one = async (): Promise<DiffJson> => JSON.parse((await runCli(['policy', 'diff', EXAMPLE, EXAMPLE, '--audit', trail, '--sample', '1', '--json'])).stdout) as DiffJson;
    const [a, b] = [await one(), await one()];
    assert.equal(a.audit?.sampled, 1);
    assert.deepEqual(a, b, 'the same trail gives the same sample');
    const capped = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--audit', trail, '--max-read', '2', '--json']);
    const report = JSON.parse(capped.stdout) as DiffJson;
    assert.equal(report.audit?.read, 2);
    assert.equal(report.audit?.truncated, true);
    const text = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--audit', trail, '--max-read', '2']);
    assert.match(text.stdout, /stopped at the read limit: --since or --max-read choose another window/);
  });

  it('--since after every record: nothing sampled, nothing changes (exit 0)', async () => {
    const none = join(gw.dir, 'none.tests.yaml');
    await writeFile(none, 'tests: []\n');
    const run = await runCli(['policy', 'diff', EXAMPLE, STRICT, '--tests', none, '--audit', trail, '--since', '2999-01-01T00:00:00Z', '--json']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const report = JSON.parse(run.stdout) as DiffJson;
    assert.equal(report.audit?.sampled, 0);
  });
});
