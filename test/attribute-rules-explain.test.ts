// examples/policy/gateway.yaml compiles, and `explain` shows each attribute rule it evaluated and
// whether it held, at a time and for claims the caller gives (--at, --identity claims).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { explain, type ExplainIdentity, type ExplainRequest, type Explanation } from '../src/explain/explain.js';
import { configProblems } from './harness/config.js';
import { runCli } from './harness/cli.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/policy/gateway.yaml', import.meta.url));
const config = compileConfig(await loadConfigFile(EXAMPLE, {}));
/** Wednesday 3 June 2026, 10:00 in Berlin. */
const WEDNESDAY = Date.parse('2026-06-03T10:00:00+02:00');
const SATURDAY = Date.parse('2026-06-06T11:00:00+02:00');

const alice: ExplainIdentity = { sub: 'alice', scopes: ['orders:read'], tenant: 'acme' };
const bob: ExplainIdentity = { sub: 'bob', roles: ['clerk'], scopes: ['orders:write'], tenant: 'acme', claims: { level: 2 } };

function run(method: string, target: string, options: Partial<ExplainRequest>): Promise<Explanation> {
  return explain(config, { method, target, headers: [], from: '10.1.2.3', at: WEDNESDAY, ...options });
}

function rules(e: Explanation): string {
  const line = e.stages.find((s) => s.stage === 'rules');
  return (line?.rules ?? []).map((r) => `${r.rule}:${r.held ? 'holds' : 'fails'}`).join(' ');
}

describe('attribute rules in explain (examples/policy/gateway.yaml)', () => {
  it('compiles, and names each route\'s rules', () => {
    assert.deepEqual(configProblems(readFileSync(EXAMPLE, 'utf8'), {}, EXAMPLE), []);
    assert.deepEqual(config.routes.map((r) => [r.name, r.ruleNames ?? []]), [
      ['orders-read', ['own-tenant', 'office-network']],
      ['orders-write', ['own-tenant', 'senior-clerk', 'office-hours']],
      ['status', ['when']],
    ]);
  });

  const cases: readonly (readonly [string, () => Promise<Explanation>, string, string | null])[] = [
    ['a read of the caller\'s tenant from the office', () => run('GET', '/api/acme/orders/7', { identity: alice }), 'own-tenant:holds office-network:holds', null],
    ['a read of another tenant', () => run('GET', '/api/globex/orders/7', { identity: alice }), 'own-tenant:fails', 'own-tenant'],
    ['a read from outside the office networks', () => run('GET', '/api/acme/orders/7', { identity: alice, from: '203.0.113.9' }), 'own-tenant:holds office-network:fails', 'office-network'],
    ['a change by a senior clerk in office hours', () => run('DELETE', '/api/acme/orders/7', { identity: bob }), 'own-tenant:holds senior-clerk:holds office-hours:holds', null],
    ['a change on a Saturday', () => run('DELETE', '/api/acme/orders/7', { identity: bob, at: SATURDAY }), 'own-tenant:holds senior-clerk:holds office-hours:fails', 'office-hours'],
    ['a change by a junior clerk', () => run('DELETE', '/api/acme/orders/7', { identity: { ...bob, claims: { level: 1 } } }), 'own-tenant:holds senior-clerk:fails', 'senior-clerk'],
    ['a change by a caller without the level claim (cannot be evaluated)', () => run('DELETE', '/api/acme/orders/7', { identity: { ...bob, claims: {} } }), 'own-tenant:holds senior-clerk:fails', 'senior-clerk'],
    ['a caller with a claim over the bounds (the rule that reads claims fails, not the one before)', () => run('DELETE', '/api/acme/orders/7', { identity: { ...bob, claims: { level: 2, groups: Array<number>(1001).fill(1) } } }), 'own-tenant:holds senior-clerk:fails', 'senior-clerk'],
    ['a status probe without its header', () => run('GET', '/status', {}), 'when:fails', 'when'],
    ['a status probe with it', () => run('GET', '/status', { headers: [['X-Probe', 'monitor']] }), 'when:holds', null],
  ];
  for (const [what, go, outcomes, refusedBy] of cases) {
    it(`shows the rules of ${what}`, async () => {
      const e = await go();
      assert.equal(rules(e), outcomes);
      if (refusedBy === null) {
        assert.equal(e.result.forwarded, true);
      } else {
        assert.deepEqual([e.result.status, e.result.code], [403, 'policy_denied']);
        assert.match(e.stages.at(-1)?.note ?? '', new RegExp(`^rule ${refusedBy} \\(gateway\\.yaml:\\d+\\) `));
      }
    });
  }

  it('portcullis explain takes the time (--at) and claims (--identity) the rules read, and prints each rule', async () => {
    const args = ['explain', '-c', EXAMPLE, 'DELETE', '/api/acme/orders/7', '--from', '10.1.2.3', '--identity', JSON.stringify(bob)];
    const saturday = await runCli([...args, '--at', '2026-06-06T11:00:00+02:00']);
    assert.equal(saturday.code, 0, saturday.stderr);
    assert.match(saturday.stdout, /rules +deny 403 policy_denied +rule office-hours \(gateway\.yaml:\d+\) does not hold\n {4}holds {3}own-tenant\n {4}holds {3}senior-clerk\n {4}fails {3}office-hours\n/);
    const wednesday = await runCli([...args, '--at', '2026-06-03T08:00:00Z']);
    const leapDay = await runCli([...args, '--at', '2028-02-29T09:00:00.5+01:00']);
    assert.equal(leapDay.code, 0, leapDay.stderr);
    assert.equal(wednesday.code, 0, wednesday.stderr);
    assert.match(wednesday.stdout, /Result +forwarded/);
    // Each field in its range: Date.parse alone would judge 2 March for 30 February, and take hour 24.
    for (const at of ['2026-06-03T10:00:00', 'tomorrow', '2026-13-03T10:00:00Z', '2026-02-30T10:00:00Z', '2026-02-29T10:00:00Z', '2026-04-31T10:00:00+02:00',
      '2026-06-03T24:00:00Z', '2026-06-03T10:60:00Z', '2026-06-03T10:00:60Z', '2026-06-03T10:00:00+24:00', '0000-06-03T10:00:00Z', '2026-00-03T10:00:00Z', '2026-06-00T10:00:00Z']) {
      const bad = await runCli([...args, '--at', at]);
      assert.equal(bad.code, 2, at);
      assert.match(bad.stderr, /--at .*expected a date and time with its offset/);
    }
    const badClaims = await runCli([...args.slice(0, -1), JSON.stringify({ ...bob, claims: [1] }), '--at', '2026-06-03T08:00:00Z']);
    assert.equal(badClaims.code, 2);
    assert.match(badClaims.stderr, /"claims" must be a JSON object/);
  });
});
