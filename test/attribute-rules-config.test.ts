// Attribute rules are checked at load: every malformed, ill-typed, unsafe or too expensive
// expression is a config error at the expression's own file:line, saying what would be right.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse, plan } from '@bufbuild/cel';
import { RE2JS } from '@bufbuild/re2';
import { configProblems } from './harness/config.js';
import { ruleEnvironment } from '../src/policy/rule-environment.js';

/** A config whose second rule (line 12) is `expr`, on an authenticated route or, with `policy: 'public: true'`, a public one. */
function config(expr: string, policy = 'authenticate: [keys]', path = '/t/{tenant}/orders/{id}'): string {
  return [
    'upstreams: { app: { targets: ["http://127.0.0.1:1"] } }',
    'authenticators: { keys: { type: apiKey, header: X-API-Key } }',
    'routes:',
    '  - name: orders',
    `    match: { path: ${JSON.stringify(path)} }`,
    '    upstream: app',
    `    ${policy}`,
    '    when:',
    '      - name: first',
    '        expr: "true"',
    '      - name: checked',
    `        expr: ${JSON.stringify(expr)}`,
    '',
  ].join('\n');
}

/** Asserts exactly one problem, at line 12 (the expression), whose message matches `message`. */
function refusedAtLine12(expr: string, message: RegExp, policy?: string, path?: string): void {
  const problems = configProblems(config(expr, policy, path));
  assert.equal(problems.length, 1, problems.join('\n'));
  const [problem = ''] = problems;
  assert.match(problem, /^gateway\.yaml:12:\d+: routes\[0\]\.when\[1\]\.expr: rule checked: /);
  assert.match(problem, message);
}

const table = (name: string, cases: readonly (readonly [string, RegExp])[], policy?: string) => {
  describe(name, () => {
    for (const [expr, message] of cases) it(`refuses ${JSON.stringify(expr.length > 80 ? `${expr.slice(0, 77)}...` : expr)}`, () => refusedAtLine12(expr, message, policy));
  });
};

describe('attribute rules are checked at load', () => {
  it('accepts well-typed rules over every variable', () => {
    for (const expr of [
      'identity.tenant == request.params.tenant',
      '"admin" in identity.roles && identity.scopes.exists(s, s.startsWith("orders:"))',
      'identity.sub == "alice" && identity.method == "apiKey" && has(identity.keyId) && identity.tier != "free"',
      'claims.level >= 3 && claims.org.name == "acme" && int(claims.n) < 10',
      'inCidr(client.ip, "10.0.0.0/8") || inCidr(client.ip, "2001:db8::/32") || inCidr(client.ip, "192.0.2.7")',
      'request.time.getHours("Europe/Berlin") >= 8 && request.time.getDayOfWeek("+02:00") < 6 && request.time.getMinutes() >= 0',
      'request.headers["x-env"] == "prod" && request.headers.x == "y" && "x-trace" in request.headers && has(request.headers.z)',
      'request.method in ["GET", "HEAD"] && request.path.matches("^/t/[a-z]+/orders/[0-9]+$") && size(request.params.id) < 10',
      'request.params["id"] != "" ? true : false',
      'request.time > timestamp("2026-01-01T00:00:00Z") && request.time - timestamp("2026-01-01T00:00:00Z") < duration("720h")',
      'claims.level >= int("2") + 1 && identity.sub in [string(1), {"a": "b"}["a"]] && false || true',
    ]) assert.deepEqual(configProblems(config(expr)), [], expr);
  });

  table('syntax errors', [
    ['identity.tenant ==', /syntax error/],
    ['(identity.tenant == "a"', /syntax error/],
    ['identity.tenant == "a', /syntax error/],
    ['identity..tenant', /syntax error/],
    ['identity.tenant = "a"', /syntax error/],
    ['   ', /the expression is empty/],
  ]);

  table('unknown names', [
    ['user.tenant == "a"', /unknown variable "user": the variables are request, client, identity, claims/],
    ['identity.org == "a"', /identity has no field "org": it has sub, roles, scopes, tenant, method, keyId, tier/],
    ['request.query == "a"', /request has no field "query"/],
    ['request.params.tenantId == "a"', /no parameter \{tenantId\}; it has \{tenant\}, \{id\}/],
    ['request.params["nope"] == "a"', /no parameter \{nope\}/],
    ['isAdmin(identity)', /unknown function isAdmin/],
    ['identity.sub.lowerAscii() == "a"', /unknown method lowerAscii on string/],
    ['Foo{a: 1} == 1', /message types are not available/],
  ]);

  table('request, client and identity passed on as values (their fields would escape the checks by name)', [
    ['[request].exists(r, r.headers["authorization"] == "x")', /request is read by its fields \(like request\.method\), not passed on as a value/],
    ['dyn(request).params.nope == "x"', /request is read by its fields/],
    ['(identity.sub == "a" ? request : request).path == "/"', /request is read by its fields/],
    ['{"r": request}.r.headers["cookie"] == "x"', /request is read by its fields/],
    ['[identity][0].sub == "alice"', /identity is read by its fields/],
    ['client == client', /client is read by its fields/],
  ]);

  table('ill-typed expressions', [
    ['request.method == 1', /string and int are never equal/],
    ['identity.roles == "admin"', /list\(string\) and string are never equal/],
    ['identity.roles > 1', /no operator > takes \(list\(string\), int\)/],
    ['client.ip + 1 == "x"', /no operator \+ takes \(string, int\)/],
    ['request.method', /gives string, and a rule must give a bool/],
    ['size(identity.roles)', /gives int/],
    ['identity.tenant ? true : false', /the condition of \?: must be a bool/],
    ['!identity.sub', /no operator ! takes \(string\)/],
    ['identity.roles.exists(r, r)', /the loop condition must be a bool|no operator \|\| takes/],
    ['1 in identity.roles', /int is never in a list\(string\)/],
    ['request.time > 5', /no operator > takes \(timestamp, int\)/],
    ['identity.sub.startsWith(1)', /no startsWith on string taking \(int\)/],
    ['client.ip.exists(c, c == "1")', /string cannot be iterated/],
  ]);

  table('time zones', [
    ['request.time.getHours("Mars/Olympus") > 8', /"Mars\/Olympus" is not a time zone: write an IANA name like Europe\/Berlin/],
    ['request.time.getHours("") > 8', /"" is not a time zone/],
    ['request.time.getHours("Europe/Berlin ") > 8', /is not a time zone/],
    ['request.time.getHours(identity.tenant) > 8', /takes the time zone as a literal/],
  ]);

  table('CIDR ranges', [
    ['inCidr(client.ip, "10.0.0.0/33")', /invalid prefix length: write an address or CIDR like 10\.0\.0\.0\/8/],
    ['inCidr(client.ip, "10.0.0/8")', /is not an IP address or CIDR range/],
    ['inCidr(client.ip, "::ffff:10.0.0.0/104")', /IPv4-mapped or NAT64 \(64:ff9b::\/96\) IPv6 form: write the IPv4 address or range itself/],
    ['inCidr(client.ip, "10.0.0.0/-1")', /invalid prefix length/],
    ['inCidr(client.ip, claims.net)', /takes the range as a literal/],
    ['inCidr(client.ip)', /unknown function inCidr with 1 argument/],
  ]);

  table('regular expressions (matches): RE2 literals, compiled at load', [
    ['request.path.matches("(")', /"\(" is not an RE2 regular expression \(.*missing closing \)/],
    ['request.path.matches("^/t/(?=acme)")', /is not an RE2 regular expression .*no lookaround or backreferences/],
    ['request.path.matches("(a)\\1")', /is not an RE2 regular expression/],
    ['request.path.matches("a{1001}")', /is not an RE2 regular expression/],
    ['request.path.matches(request.headers["x-pattern"])', /matches takes the regular expression as a literal/],
    ['identity.scopes.exists(s, s.matches(claims.pattern))', /matches takes the regular expression as a literal/],
  ]);

  table('parts made of literals that cannot be evaluated (they would refuse every request)', [
    ['request.time > timestamp("2026-13-01T00:00:00Z")', /at character 16 .*made of literals only, and cannot be evaluated \(.*timestamp.*\): every request would be refused/],
    ['request.time - request.time < duration("1 hour")', /cannot be evaluated \(.*duration/],
    ['claims.level >= int("two")', /cannot be evaluated/],
    ['claims.level >= 1 / 0', /cannot be evaluated \(int divide by zero\)/],
    ['claims.level < 9223372036854775807 + 1', /cannot be evaluated \(int overflow/],
    ['identity.sub in [string(1), {"a": 1}["b"]]', /cannot be evaluated/],
    ['[1, 2][2] == claims.level', /cannot be evaluated/],
    ['identity.roles.exists(r, r == string(uint(-1)))', /cannot be evaluated/],
  ]);

  table('headers: by literal lower-case name only, never credentials or what the gateway asserts', [
    ['request.headers["authorization"] != ""', /carries credentials, and rules never read them/],
    ['request.headers["proxy-authorization"] != ""', /carries credentials/],
    ['request.headers["cookie"] != ""', /carries credentials/],
    ['"x-api-key" in request.headers', /carries credentials/],
    ['has(request.headers.cookie)', /carries credentials/],
    ['request.headers["x-user-id"] == "alice"', /the gateway asserts it itself and removes a client's copy/],
    ['request.headers["x-tenant-id"] == "acme"', /the gateway asserts it itself/],
    ['request.headers["x-forwarded-for"] == "10.0.0.1"', /only a proxy in front asserts .* rule on client\.ip/],
    ['request.headers["forwarded"] != ""', /only a proxy in front asserts/],
    ['request.headers["cf-connecting-ip"] != ""', /only a proxy in front asserts/],
    ['request.headers["x-remote-user"] == "admin"', /only a proxy in front asserts/],
    ['request.headers["host"] == "a"', /frames or routes the request/],
    ['request.headers["x-http-method-override"] == "GET"', /rule on request\.method/],
    ['request.headers["x_env"] == "prod"', /does not forward header names with `_`/],
    ['request.headers["X-Env"] == "prod"', /header names are read in lower case: request\.headers\["x-env"\]/],
    ['request.headers[identity.sub] == "x"', /only by a literal header name/],
    ['request.headers.exists(h, h == "x")', /not iterated/],
    ['size(request.headers) > 0', /can be read only by a header's name/],
    ['request.headers == {}', /can be read only by a header's name/],
    ['request.headers["bad header"] == "x"', /is not a header name/],
  ]);

  table('identity and claims on a public route (which has no identity)', [
    ['identity.sub == "alice"', /a public route has no identity, and the rule reads identity/],
    ['claims.level > 1', /reads claims/],
    ['request.method == "GET" && identity.roles.size() > 0', /reads identity/],
  ], 'public: true');

  table('the cost budget', [
    ['identity.roles.exists(r, identity.scopes.exists(s, s == r))', /comprehensions \(exists, all, exists_one, map, filter\) nest at most 1 deep/],
    ['claims.a.all(x, claims.b.map(y, y).size() > 0)', /nest at most 1 deep/],
    [Array.from({ length: 70 }, (_, i) => `identity.sub != "u${i}"`).join(' && '), /more than 200 nodes: split it into several named rules/],
    [`identity.roles.exists(r, ${Array.from({ length: 15 }, (_, i) => `r == "x${i}"`).join(' || ')})`, /worst case is \d+ steps .* above the budget of 50000/],
    [`identity.sub == "${'a'.repeat(2001)}"`, /is 2019 characters, above 2000: split it/],
    // Work that grows with a list's length, inside a comprehension: up to 1000 x 1000 steps.
    ['identity.roles.exists(r, r in claims.allowed)', /worst case is \d+ steps .*and so does `in` a list.* above the budget of 50000/],
    ['claims.allowed.all(a, !(a in identity.scopes))', /above the budget of 50000/],
    ['claims.a.exists(x, claims.a == claims.b)', /above the budget of 50000/],
    ['identity.scopes.exists(s, claims.a != identity.roles)', /above the budget of 50000/],
    ['claims.a.map(x, claims.a + identity.roles).size() > 0', /above the budget of 50000/],
  ]);

  it('prices list work inside a comprehension, not literal lists, single values or one pass', () => {
    for (const expr of [
      'identity.roles.exists(r, r in ["admin", "clerk"])',
      '!claims.groups.exists(g, g == "suspended") && claims.groups.exists(g, g != claims.primary.name + "")',
      '"clerk" in identity.roles && claims.x in claims.y && claims.a == claims.b && size(identity.roles + identity.scopes) > 0',
      'identity.scopes.exists(s, s == "orders:" + request.params.tenant)',
      'claims.org in {"acme": 1} && identity.roles.exists(r, r in {"admin": true})',
    ]) assert.deepEqual(configProblems(config(expr)), [], expr);
  });

  it('compiles a matches pattern once, when the rules are planned, never per evaluation', () => {
    const compile = RE2JS.compile.bind(RE2JS);
    let compiled = 0;
    RE2JS.compile = (...args: Parameters<typeof RE2JS.compile>) => { compiled++; return compile(...args); };
    try {
      const rule = plan(ruleEnvironment(new Set(), new Set(), new Set(['^orders:(read|write)$'])), parse('scopes.exists(s, s.matches("^orders:(read|write)$"))'));
      const before = compiled;
      const scopes = Array.from({ length: 1000 }, (_, i) => `other:${i}`);
      assert.equal(rule({ scopes }), false);
      assert.equal(rule({ scopes: [...scopes, 'orders:write'] }), true);
      assert.equal(compiled - before, 0, 'a pattern compiled during evaluation costs a compilation per list element');
    } finally {
      RE2JS.compile = compile;
    }
  });

  it('refuses a rule name used twice on a route, at the second name', () => {
    const text = config('true').replace('- name: checked', '- name: first');
    const problems = configProblems(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^gateway\.yaml:11:\d+: routes\[0\]\.when\[1\]\.name: rule "first" is named twice on this route \(first as when\[0\]\)/);
  });

  it('refuses a rule name that is not lower case, digits and dashes', () => {
    for (const name of ['Office', 'office_hours', '1st', '-x', 'a b']) {
      const problems = configProblems(config('true').replace('- name: checked', `- name: ${JSON.stringify(name)}`));
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0] ?? '', /^gateway\.yaml:11:\d+: routes\[0\]\.when\[1\]\.name: .*lower-case letters, digits and `-`/);
    }
  });

  it('reports a single-string rule as `when` at its own line', () => {
    const text = config('true').split('\n').slice(0, 7).concat(['    when: "identity.tenant == 1"', '']).join('\n');
    const problems = configProblems(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^gateway\.yaml:8:\d+: routes\[0\]\.when: rule when: .*string and int are never equal/);
  });

  it('reports every broken rule of every route in one pass', () => {
    const text = config('identity.sub == 1') + [
      '  - name: other',
      '    match: { path: /other }',
      '    upstream: app',
      '    public: true',
      '    when: "claims.x"',
      '',
    ].join('\n');
    const problems = configProblems(text);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems[0] ?? '', /^gateway\.yaml:12:/);
    assert.match(problems[1] ?? '', /^gateway\.yaml:17:\d+: routes\[1\]\.when: rule when: a public route has no identity/);
  });

  it('refuses more than 32 rules on a route', () => {
    const rules = Array.from({ length: 33 }, (_, i) => `      - { name: r${i}, expr: "true" }`);
    const text = config('true').split('\n').slice(0, 8).concat(rules, ['']).join('\n');
    const problems = configProblems(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^gateway\.yaml:9:\d+: routes\[0\]\.when: a route has at most 32 rules/);
  });
});
