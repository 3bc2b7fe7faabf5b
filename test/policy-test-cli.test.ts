// `portcullis policy test` as users run it in CI: the example's cases beside its config, a failing
// case, coverage, and hostile test files by class (malformed, unknown keys, wrong types,
// duplicated, oversized), each refused with file:line and exit 2.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadTestFiles, TestFileError } from '../src/policy/test-file.js';
import { runCli } from './harness/cli.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/policy/orders.yaml', import.meta.url));
const EXAMPLE_TESTS = fileURLToPath(new URL('../../examples/policy/orders.tests.yaml', import.meta.url));
const RULES = fileURLToPath(new URL('../../examples/policy/gateway.yaml', import.meta.url));

interface RuleRef { route: string; rule: string; line: number | null }

interface JsonReport {
  cases: { name: string; passed: boolean; line: number; problems: string[]; actual: { decision: string; status: number | null; code: string | null; route: string | null; stage: string | null } }[];
  summary: { total: number; passed: number; failed: number };
  coverage?: {
    routes: { total: number; reached: number; unreached: { route: string; line: number | null }[] };
    rules: { total: number; unevaluated: RuleRef[]; neverFalse: RuleRef[]; neverTrue: RuleRef[] };
  };
}

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-test-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function testFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('portcullis policy test on examples/policy/orders.yaml', () => {
  it('finds orders.tests.yaml beside the config and passes every case (exit 0)', async () => {
    const run = await runCli(['policy', 'test', '-c', EXAMPLE]);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, /^RESULT +CASE +EXPECTED +ACTUAL +ROUTE +STAGE +RULE$/m);
    assert.match(run.stdout, /^15 cases: 15 passed, 0 failed$/m);
    assert.doesNotMatch(run.stdout, /FAIL/);
    assert.match(run.stdout, /^pass +a reader cannot read another tenant's orders +deny 403 tenant_mismatch +deny 403 tenant_mismatch +orders-read +authorize/m);
  });

  it('--json: each case with its actual decision, route and deciding stage', async () => {
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--json']);
    assert.equal(run.code, 0);
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.deepEqual(report.summary, { total: 15, passed: 15, failed: 0 });
    assert.equal(report.coverage, undefined, 'coverage only when asked');
    const spoofed = report.cases.find((c) => c.name === 'a spoofed X-Forwarded-For does not move a client into the office');
    assert.deepEqual(spoofed?.actual, { ...spoofed?.actual, decision: 'deny', status: 403, code: 'ip_denied', route: 'admin', stage: 'ip-rules' });
    const allowed = report.cases.find((c) => c.name === 'a clerk cancels an order');
    assert.deepEqual(allowed?.actual, { ...allowed?.actual, decision: 'allow', status: null, code: null, route: 'orders-write', stage: 'forward' });
  });

  it('--coverage: every route of the example is reached', async () => {
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--coverage']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Coverage: 5 of 5 routes reached; 0 of 0 rules evaluated$/m);
    assert.doesNotMatch(run.stdout, /Routes no case reaches/);
  });
});

describe('portcullis policy test on the attribute rules of examples/policy/gateway.yaml', () => {
  it('passes every case, and every rule is seen holding and refusing', async () => {
    const run = await runCli(['policy', 'test', '-c', RULES, '--coverage']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^17 cases: 17 passed, 0 failed$/m);
    assert.match(run.stdout, /^pass +no changes on a Saturday +deny 403 policy_denied +deny 403 policy_denied +orders-write +rules +office-hours$/m);
    assert.match(run.stdout, /^Coverage: 3 of 3 routes reached; 6 of 6 rules evaluated$/m);
    assert.doesNotMatch(run.stdout, /half-tested|no case evaluates/);
  });

  it('a rule seen one way only is half-tested; rules no case reaches are named at their lines', async () => {
    const file = await testFile('rules-half.tests.yaml', `tests:
  - name: a read from the office
    request: { method: GET, target: /api/acme/orders/7, from: 10.1.2.3 }
    identity: { sub: alice, scopes: [orders:read], tenant: acme }
    expect: { decision: allow }
  - name: the status without its header
    request: { method: GET, target: /status }
    expect: { decision: deny, rule: when }
`);
    const run = await runCli(['policy', 'test', '-c', RULES, '--tests', file, '--coverage', '--json']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const rules = (JSON.parse(run.stdout) as JsonReport).coverage?.rules;
    const names = (refs: RuleRef[] | undefined): string[] => (refs ?? []).map((r) => `${r.route}/${r.rule}`);
    assert.equal(rules?.total, 6);
    assert.deepEqual(names(rules?.unevaluated), ['orders-write/own-tenant', 'orders-write/senior-clerk', 'orders-write/office-hours']);
    assert.deepEqual(names(rules?.neverFalse), ['orders-read/own-tenant', 'orders-read/office-network']);
    assert.deepEqual(names(rules?.neverTrue), ['status/when']);
    // Each rule at its own line: the entries of a `when` list in order, a one-expression `when` at itself.
    const lines = [...(rules?.unevaluated ?? []), ...(rules?.neverFalse ?? []), ...(rules?.neverTrue ?? [])].map((r) => r.line ?? 0);
    const text = readFileSync(RULES, 'utf8').split('\n');
    for (const r of [...(rules?.unevaluated ?? []), ...(rules?.neverFalse ?? [])]) assert.match(text[(r.line ?? 0) - 1] ?? '', new RegExp(`name: ${r.rule}$`), r.rule);
    assert.match(text[(rules?.neverTrue[0]?.line ?? 0) - 1] ?? '', /^ {4}when: request\.headers/);
    assert.equal(new Set(lines).size, lines.length);
    const human = await runCli(['policy', 'test', '-c', RULES, '--tests', file, '--coverage']);
    assert.match(human.stdout, /^Coverage: 2 of 3 routes reached; 3 of 6 rules evaluated\nRoutes no case reaches:\n {2}orders-write \(line \d+\)$/m);
    assert.match(human.stdout, /^Rules no case evaluates:\n {2}orders-write: own-tenant \(line \d+\)\n {2}orders-write: senior-clerk \(line \d+\)\n {2}orders-write: office-hours \(line \d+\)$/m);
    assert.match(human.stdout, /^Rules no case sees refuse \(only seen holding: half-tested\):\n {2}orders-read: own-tenant \(line \d+\)\n {2}orders-read: office-network \(line \d+\)$/m);
    assert.match(human.stdout, /^Rules no case sees hold \(only seen refusing: half-tested\):\n {2}status: when \(line \d+\)$/m);
  });

  it('expect.rule: the rule that refused, or one that held; anything else fails the case', async () => {
    const file = await testFile('rules-expect.tests.yaml', `tests:
  - name: refused by another rule than expected
    request: { method: GET, target: /api/globex/orders/7, from: 10.1.2.3 }
    identity: { sub: alice, scopes: [orders:read], tenant: acme }
    expect: { decision: deny, rule: office-network }
  - name: a rule that was never evaluated
    request: { method: GET, target: /api/acme/orders/7, from: 10.1.2.3 }
    identity: { sub: alice, scopes: [profile], tenant: acme }
    expect: { decision: deny, rule: own-tenant }
  - name: a rule expected to hold that refused
    request: { method: GET, target: /status }
    expect: { decision: allow, rule: when }
  - name: the rule that held
    request: { method: GET, target: /api/acme/orders/7, from: 10.1.2.3 }
    identity: { sub: alice, scopes: [orders:read], tenant: acme }
    expect: { decision: allow, rule: own-tenant }
`);
    const run = await runCli(['policy', 'test', '-c', RULES, '--tests', file, '--json']);
    assert.equal(run.code, 1);
    assert.deepEqual((JSON.parse(run.stdout) as JsonReport).cases.map((c) => c.problems), [
      ['denied by rule own-tenant, expected denied by rule office-network'],
      ['denied by no rule, expected denied by rule own-tenant'],
      ['decision deny, expected allow', 'rule when did not hold, expected it to'],
      [],
    ]);
  });

  it('time rules are judged at the case\'s time, in any offset', async () => {
    const file = await testFile('rules-time.tests.yaml', ['2026-06-03T05:59:59Z', '2026-06-03T06:00:00Z', '2026-06-03T08:00:00+02:00', '2026-06-03T17:59:59+02:00', '2026-06-03T18:00:00+02:00', '2026-06-07T10:00:00+02:00']
      .reduce((text, at, i) => `${text}  - name: at ${at}
    request: { method: DELETE, target: /api/acme/orders/${i}, at: "${at}" }
    identity: { sub: bob, roles: [clerk], scopes: [orders:write], tenant: acme, claims: { level: 2 } }
    expect: { decision: ${[1, 2, 3].includes(i) ? 'allow' : 'deny'} }
`, 'tests:\n'));
    const run = await runCli(['policy', 'test', '-c', RULES, '--tests', file]);
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, /^6 cases: 6 passed, 0 failed$/m);
  });
});

describe('portcullis policy test: failures and coverage gaps', () => {
  it('a failing case: exit 1, a FAIL row, and what differs with the case\'s file:line', async () => {
    const file = await testFile('failing.tests.yaml', `tests:
  - name: health is public
    request: { method: GET, target: /health }
    expect: { decision: allow }
  - name: orders are public (wrong)
    request: { method: GET, target: /api/acme/orders/1 }
    expect: { decision: allow, route: orders-write }
`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^pass +health is public +allow +allow +health +forward/m);
    assert.match(run.stdout, /^FAIL +orders are public \(wrong\) +allow +deny 401 unauthenticated +orders-read +authenticate/m);
    assert.ok(run.stdout.includes(`orders are public (wrong) (${file}:5)`), run.stdout);
    assert.match(run.stdout, /^ {4}decision deny, expected allow$/m);
    assert.match(run.stdout, /^ {4}route orders-read, expected orders-write$/m);
    assert.match(run.stdout, /^2 cases: 1 passed, 1 failed$/m);
  });

  it('each expectation member can fail on its own: status, code, route', async () => {
    const file = await testFile('members.tests.yaml', `tests:
  - name: status
    request: { method: GET, target: /nowhere }
    expect: { decision: deny, status: 403 }
  - name: code
    request: { method: GET, target: /nowhere }
    expect: { decision: deny, code: ip_denied }
  - name: a forwarded request has no status of the gateway's
    request: { method: GET, target: /health }
    expect: { decision: allow, status: 200 }
`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file, '--json']);
    assert.equal(run.code, 1);
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.deepEqual(report.cases.map((c) => c.problems), [
      ['status 404, expected status 403'],
      ['code route_not_found, expected ip_denied'],
      ['forwarded (the upstream answers), expected status 200'],
    ]);
  });

  it('--coverage names the routes no case reaches, with their lines in the config', async () => {
    const file = await testFile('one.tests.yaml', 'tests:\n  - name: health\n    request: { method: GET, target: /health }\n    expect: { decision: allow }\n');
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file, '--coverage', '--json']);
    assert.equal(run.code, 0);
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.deepEqual(report.coverage?.routes.unreached.map((r) => r.route), ['catalog', 'orders-read', 'orders-write', 'admin']);
    assert.ok(report.coverage?.routes.unreached.every((r) => typeof r.line === 'number' && r.line > 20));
    const text = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file, '--coverage']);
    assert.match(text.stdout, /^Coverage: 1 of 5 routes reached/m);
    assert.match(text.stdout, /^Routes no case reaches:\n {2}catalog \(line \d+\)\n {2}orders-read \(line \d+\)/m);
  });

  it('several --tests files run in order; a case name used twice across them is refused at its line', async () => {
    const a = await testFile('a.tests.yaml', 'tests:\n  - name: health\n    request: { method: GET, target: /health }\n    expect: { decision: allow }\n');
    const b = await testFile('b.tests.yaml', 'tests:\n  - name: catalog\n    request: { method: GET, target: /catalog/x }\n    expect: { decision: allow }\n');
    const ok = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', a, '--tests', b]);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /^2 cases: 2 passed, 0 failed$/m);
    const twice = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', a, '--tests', a]);
    assert.equal(twice.code, 2);
    assert.ok(twice.stderr.includes(`${a}:2:1: name: "health" is already the name of a case (${a}:2)`), twice.stderr);
  });

  it('requests as a client sends them: a preflight the gateway answers is allow, a body gets its length, duplicated Host headers are judged', async () => {
    const config = await testFile('web.yaml', `upstreams: { app: { targets: ["http://127.0.0.1:9"] } }
cors:
  webapp: { origins: [https://app.example.com], methods: [GET, POST] }
routes:
  - name: api
    match: { methods: [GET, POST], path: /api/** }
    upstream: app
    public: true
    cors: webapp
    limits: { maxBodyBytes: 16, contentTypes: [application/json] }
`);
    const file = await testFile('web.tests.yaml', `tests:
  - name: a preflight from the application is answered by the gateway
    request: { method: OPTIONS, target: /api/x, headers: { Origin: "https://app.example.com", Access-Control-Request-Method: POST } }
    expect: { decision: allow, status: 204, code: cors_preflight, route: api }
  - name: a preflight from elsewhere is refused
    request: { method: OPTIONS, target: /api/x, headers: { Origin: "https://evil.example", Access-Control-Request-Method: POST } }
    expect: { decision: deny, status: 403, code: cors_preflight_refused }
  - name: a small JSON body is forwarded
    request: { method: POST, target: /api/x, headers: { Content-Type: application/json }, body: '{"a":1}' }
    expect: { decision: allow }
  - name: a body over the route's limit is refused before forwarding
    request: { method: POST, target: /api/x, headers: { Content-Type: application/json }, body: '{"padding":"0123456789"}' }
    expect: { decision: deny, status: 413, code: body_too_large }
  - name: two Host headers are ambiguous
    request: { method: GET, target: /api/x, headers: [[Host, a.example], [Host, b.example]] }
    expect: { decision: deny, status: 400, code: invalid_header }
`);
    const run = await runCli(['policy', 'test', '-c', config, '--tests', file, '--json']);
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.deepEqual(report.cases.filter((c) => !c.passed).map((c) => [c.name, c.problems]), []);
    assert.equal(run.code, 0);
  });

  it('a config error is the config\'s: exit 1 with its file:line', async () => {
    const config = await testFile('broken.yaml', 'upstreams: { app: { targets: ["http://127.0.0.1:9"] } }\nroutes:\n  - name: x\n    match: { path: /x }\n    upstream: nowhere\n    public: true\n');
    const run = await runCli(['policy', 'test', '-c', config, '--tests', EXAMPLE_TESTS]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: routes\\[0\\]\\.upstream`));
  });

  it('usage: no test file beside the config, an unknown option: exit 2', async () => {
    const config = await testFile('lonely.yaml', 'routes: []\n');
    const none = await runCli(['policy', 'test', '-c', config]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no test file: .*lonely\.tests\.yaml does not exist; write it beside the config, or give --tests FILE/);
    const unknown = await runCli(['policy', 'test', '-c', EXAMPLE, '--covrage']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option --covrage/);
  });
});

describe('portcullis policy test: hostile test files are refused with file:line (exit 2), never run', () => {
  const CASE = '  - name: ok\n    request: { method: GET, target: /health }\n    expect: { decision: allow }\n';
  const hostile: readonly (readonly [string, string, RegExp])[] = [
    // malformed
    ['an unclosed flow sequence', 'tests:\n  - name: x\n    request: { method: GET, target: [/health }\n', /:3:\d+: /],
    ['a tab where indentation is expected', 'tests:\n\t- name: x\n', /:2:\d+: /],
    ['a duplicated key in a case', 'tests:\n  - name: x\n    name: y\n    request: { method: GET, target: /health }\n    expect: { decision: allow }\n', /:3:\d+: Map keys must be unique/],
    ['a list at the top level', '- name: x\n', /:1:1: a test file is a mapping with one key, tests: a list of cases/],
    ['an empty file', '', /:1:1: a test file is a mapping with one key, tests/],
    ['a case without an expectation', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n', /:2:\d+: tests\[0\]\.expect: is required/],
    // unknown keys, at every level
    ['an unknown top-level key', `tests:\n${CASE}extra: 1\n`, /:5:1: extra: is not a known option/],
    ['an unknown key in a case', `tests:\n${CASE}    expected: { decision: deny }\n`, /:5:5: tests\[0\]\.expected: is not a known option; did you mean `expect`\?/],
    ['an unknown key in a request', 'tests:\n  - name: x\n    request: { method: GET, target: /health, query: a }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.query: is not a known option/],
    ['an unknown key in an identity', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    identity: { sub: a, group: admins }\n    expect: { decision: allow }\n', /:4:\d+: tests\[0\]\.identity\.group: is not a known option/],
    ['an unknown key in an expectation', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    expect: { decision: allow, reason: x }\n', /:4:\d+: tests\[0\]\.expect\.reason: is not a known option/],
    // wrong types and values
    ['a decision that is neither allow nor deny', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    expect: { decision: maybe }\n', /:4:\d+: tests\[0\]\.expect\.decision: /],
    ['a status as text', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    expect: { decision: deny, status: "403" }\n', /:4:\d+: tests\[0\]\.expect\.status: must be a whole number from 100 to 599, not text/],
    ['a status out of range', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    expect: { decision: deny, status: 999 }\n', /:4:\d+: tests\[0\]\.expect\.status: must be a whole number from 100 to 599/],
    ['a header value that is a number', 'tests:\n  - name: x\n    request: { method: GET, target: /health, headers: { Content-Length: 2 } }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.headers\.Content-Length: must be text without CR, LF or NUL/],
    ['a header value with CR LF (a smuggled header)', 'tests:\n  - name: x\n    request: { method: GET, target: /health, headers: { X-A: "b\\r\\nX-User-Id: admin" } }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.headers\.X-A: must be text without CR, LF or NUL/],
    ['a header pair with a name that is not a token', 'tests:\n  - name: x\n    request: { method: GET, target: /health, headers: [["X A", b]] }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.headers\[0\]\[0\]: must be an HTTP header name/],
    ['a header pair of three', 'tests:\n  - name: x\n    request: { method: GET, target: /health, headers: [[a, b, c]] }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.headers\[0\]: must list at most 2 items/],
    ['roles as text', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    identity: { sub: a, roles: admin }\n    expect: { decision: allow }\n', /:4:\d+: tests\[0\]\.identity\.roles: must be a list of text, not text/],
    ['an identity without a subject', 'tests:\n  - name: x\n    request: { method: GET, target: /health }\n    identity: { roles: [admin] }\n    expect: { decision: allow }\n', /:4:\d+: tests\[0\]\.identity\.sub: is required/],
    ['a from that is not an address (spoofed peer)', 'tests:\n  - name: x\n    request: { method: GET, target: /health, from: "10.0.0.1, 1.2.3.4" }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.from: must be an IP address/],
    ['a method with a space', 'tests:\n  - name: x\n    request: { method: "GET /x", target: /health }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.method: must be an HTTP method/],
    ['a time without a zone (ambiguous)', 'tests:\n  - name: x\n    request: { method: GET, target: /health, at: "2026-11-30T10:00:00" }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.at: must be an ISO 8601 time with Z or an offset/],
    ['a time that does not exist', 'tests:\n  - name: x\n    request: { method: GET, target: /health, at: "2026-13-45T10:00:00Z" }\n    expect: { decision: allow }\n', /:3:\d+: tests\[0\]\.request\.at: must be a real time/],
    // ambiguous framing no HTTP parser delivers to the stages (request smuggling)
    ['Content-Length with Transfer-Encoding', 'tests:\n  - name: x\n    request: { method: POST, target: /x, headers: [[Content-Length, "2"], [Transfer-Encoding, chunked]] }\n    expect: { decision: deny }\n', /:3:\d+: tests\[0\]\.request\.headers: Content-Length with Transfer-Encoding: the HTTP parser refuses such a request with 400 before any stage runs/],
    ['two Content-Length headers', 'tests:\n  - name: x\n    request: { method: POST, target: /x, headers: [[Content-Length, "2"], [content-length, "3"]] }\n    expect: { decision: deny }\n', /:3:\d+: tests\[0\]\.request\.headers: Content-Length given more than once/],
    ['a Content-Length that is not a number', 'tests:\n  - name: x\n    request: { method: POST, target: /x, headers: { Content-Length: "0x10" } }\n    expect: { decision: deny }\n', /:3:\d+: tests\[0\]\.request\.headers: a Content-Length that is not a decimal number/],
    // duplicated
    ['two cases of one name', `tests:\n${CASE}${CASE}`, /:5:\d+: tests\[1\]\.name: "ok" is already the name of the case at line 2/],
  ];
  // Each class is read in process by the reader the command uses (its message is what the
  // command prints); one run of the command shows the exit code and that no case runs.
  for (const [what, text, expected] of hostile) {
    it(`refuses ${what}`, async () => {
      const file = await testFile(`hostile-${what.replace(/[^a-z0-9]+/gi, '-')}.tests.yaml`, text);
      const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await assert.rejects(loadTestFiles([file]), (err: unknown) => {
        assert.ok(err instanceof TestFileError, String(err));
        assert.match(err.message, new RegExp(`^${escaped}${expected.source}`, 'm'));
        return true;
      });
    });
  }

  it('the command exits 2 on a hostile file, saying so, and runs no case', async () => {
    const [what, text, expected] = hostile[0] as (typeof hostile)[number];
    const file = await testFile(`hostile-cli-${what.replace(/[^a-z0-9]+/gi, '-')}.tests.yaml`, text);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 2, `${run.stdout}${run.stderr}`);
    assert.equal(run.stdout, '', 'no case runs');
    const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(run.stderr, new RegExp(`^${escaped}${expected.source}`, 'm'));
    assert.match(run.stderr, /problems? in test files\nportcullis policy test: the test files cannot be run as written/);
  });

  it('a case name with terminal escapes is printed escaped', async () => {
    const file = await testFile('escape.tests.yaml', 'tests:\n  - name: "evil \\e[2J\\rpass"\n    request: { method: GET, target: /nowhere }\n    expect: { decision: allow }\n');
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 1);
    assert.ok(run.stdout.includes('evil \\u001b[2J\\u000dpass'), run.stdout);
    assert.ok(!run.stdout.includes('\u001b') && !run.stdout.includes('\r'), 'no raw escape or carriage return');
  });

  it('oversized: a file over 4 MiB is refused before parsing', async () => {
    const file = await testFile('huge.tests.yaml', `tests:\n${'# padding\n'.repeat(440_000)}`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 2);
    assert.ok(run.stderr.includes(`${file}: cannot read test file: larger than 4194304 bytes`), run.stderr);
  });

  it('oversized: more than 10000 cases in one file', async () => {
    const file = await testFile('many.tests.yaml', `tests:\n${'  - { name: x, request: { method: GET, target: / }, expect: { decision: deny } }\n'.repeat(10_001)}`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /:2:\d+: tests: must list at most 10000 items/);
  });

  it('oversized: aliases that expand without bound ("billion laughs")', async () => {
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const file = await testFile('laughs.tests.yaml', `${laughs.join('\n')}\ntests: []\n`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /:1:1: cannot be read: Excessive alias count/);
  });

  it('a deeply nested value is refused, not a crash', async () => {
    const file = await testFile('deep.tests.yaml', `tests:\n  - name: x\n    request: { method: GET, target: /health }\n    identity: { sub: a, claims: { deep: ${'['.repeat(50_000)}${']'.repeat(50_000)} } }\n    expect: { decision: allow }\n`);
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', file]);
    assert.equal(run.code, 2, run.stderr.slice(0, 300));
    assert.ok(run.stderr.startsWith(`${file}:4:`), run.stderr.slice(0, 300));
    assert.doesNotMatch(run.stderr, /RangeError|at .*\.js:\d+/);
  });

  it('a test file that does not exist', async () => {
    const run = await runCli(['policy', 'test', '-c', EXAMPLE, '--tests', join(dir, 'missing.tests.yaml')]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /missing\.tests\.yaml: cannot read test file: ENOENT/);
  });
});
