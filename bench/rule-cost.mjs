// What an attribute rule costs per request, in the two policy languages considered for `when`:
// CEL as the gateway runs it (compiled from a config by the gateway's own compile, evaluated by its
// `rules` stage, binding the request's variables included) and Cedar (@cedar-policy/cedar-wasm,
// its policy set preparsed once, the entity and context built per request as the gateway would
// have to). Both decide the same realistic rule set on the same requests, and must agree.
//
// `node bench/rule-cost.mjs` (after `npm run build`) prints one JSON line; bench/run.mjs imports
// `ruleCost`. Bounded: ROUNDS rounds of EVALUATIONS evaluations each per language and request,
// after a warm-up of 5 × EVALUATIONS; a single thread, no load generator. Environment:
// RULE_COST_ROUNDS (5), RULE_COST_EVALUATIONS (2000).
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { intEnv } from './env.mjs';
import { median, round } from './stats.mjs';

const DIST = new URL('../dist/src/', import.meta.url);

/** The rule set, once per language: tenant == path param, role in roles, client IP in CIDR, hour in a zone, a claim comparison, a header equality. */
const CEL_RULES = [
  { name: 'own-tenant', expr: 'identity.tenant == request.params.tenant' },
  { name: 'admin', expr: '"admin" in identity.roles' },
  { name: 'office-network', expr: 'inCidr(client.ip, "10.0.0.0/8")' },
  { name: 'office-hours', expr: 'request.time.getHours("Europe/Berlin") >= 8 && request.time.getHours("Europe/Berlin") < 18' },
  { name: 'level', expr: 'claims.level >= 3' },
  { name: 'prod', expr: 'request.headers["x-env"] == "prod"' },
];

// Cedar has no time zones (its datetime extension knows fixed offsets only), so the gateway would
// compute the hour in Berlin itself and pass it in the context; that work is counted below.
const CEDAR_POLICY = `permit (principal, action, resource)
when {
  principal.tenant == context.params.tenant &&
  principal.roles.contains("admin") &&
  ip(context.clientIp).isInRange(ip("10.0.0.0/8")) &&
  context.hourBerlin >= 8 && context.hourBerlin < 18 &&
  principal.claims.level >= 3 &&
  context.headers has "x-env" && context.headers["x-env"] == "prod"
};`;

/** Requests both languages decide: one every rule admits, and one refused by each rule. */
const BASE = { tenant: 'acme', pathTenant: 'acme', roles: ['admin', 'reader'], ip: '10.1.2.3', at: Date.UTC(2026, 5, 3, 10), level: 3, env: 'prod' };
const REQUESTS = [
  ['allowed', BASE],
  ['other tenant', { ...BASE, pathTenant: 'globex' }],
  ['no admin role', { ...BASE, roles: ['reader'] }],
  ['outside network', { ...BASE, ip: '192.0.2.1' }],
  ['after hours', { ...BASE, at: Date.UTC(2026, 5, 3, 18) }],
  ['low level', { ...BASE, level: 1 }],
  ['staging', { ...BASE, env: 'staging' }],
];

const CONFIG = {
  upstreams: { app: { targets: ['http://127.0.0.1:1'] } },
  authenticators: { users: { type: 'jwt', issuer: 'https://idp.example/', audience: 'a', secret: 'x'.repeat(32), algorithms: ['HS256'] } },
  routes: [{ name: 'orders', match: { path: '/t/{tenant}/orders/{id}' }, upstream: 'app', authenticate: ['users'], when: CEL_RULES }],
};

/** Just what the rules stage reads of an exchange. */
function exchange(r) {
  return {
    target: { path: `/t/${r.pathTenant}/orders/7`, segments: ['t', r.pathTenant, 'orders', '7'], query: '' },
    req: { method: 'GET', headers: { 'x-env': r.env, host: 'gw.example' } },
    methodOverride: null,
    fixedTime: r.at,
    clientIp: r.ip,
    identity: { subject: 'alice', method: 'jwt', authenticator: 'users', keyId: null, roles: r.roles, scopes: [], tenant: r.tenant, tier: null, claims: { sub: 'alice', level: r.level }, claimHeaders: [], bearerRealm: null },
    tally: null,
    rule: null,
  };
}

async function celEvaluator() {
  let started = performance.now();
  const { parse, plan } = await import('@bufbuild/cel');
  const importMs = performance.now() - started;
  const { checkExpression } = await import(new URL('policy/check-expression.js', DIST));
  const env = await import(new URL('policy/rule-environment.js', DIST));
  // Compiling the rules as the gateway does at load: parse, check against the declarations, plan.
  started = performance.now();
  const checked = CEL_RULES.map((r) => {
    const parsed = parse(r.expr);
    const rule = checkExpression(parsed, { variables: env.RULE_VARIABLES, params: new Set(['tenant', 'id']), headerProblem: () => null, checkCidr: env.cidrProblem, checkZone: env.zoneProblem, checkPattern: env.patternProblem }, env.RULE_BUDGET);
    return { parsed, rule };
  });
  const celEnv = env.ruleEnvironment(new Set(checked.flatMap((c) => [...c.rule.cidrs])), new Set(checked.flatMap((c) => [...c.rule.zones])), new Set(checked.flatMap((c) => [...c.rule.patterns])));
  for (const c of checked) plan(celEnv, c.parsed);
  const compileMs = performance.now() - started;
  // What runs per request is the gateway's own rules stage, compiled from a config.
  const { loadConfigText } = await import(new URL('config/load.js', DIST));
  const { compileConfig } = await import(new URL('config/compile.js', DIST));
  const { stringify } = await import('yaml');
  const config = compileConfig(loadConfigText(stringify(CONFIG), 'gateway.yaml', {}));
  const stage = config.routes[0].stages.find((s) => s.name === 'rules');
  return { importMs, compileMs, prepare: exchange, decide: (ex) => stage.run(ex) === undefined };
}

async function cedarEvaluator() {
  let started = performance.now();
  // Instantiates the WebAssembly module.
  const cedar = await import('@cedar-policy/cedar-wasm/nodejs');
  const importMs = performance.now() - started;
  started = performance.now();
  const parsed = cedar.preparsePolicySet('rules', { staticPolicies: CEDAR_POLICY });
  if (parsed.type !== 'success') throw new Error(`Cedar policy: ${JSON.stringify(parsed.errors)}`);
  const compileMs = performance.now() - started;
  const berlin = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Berlin', hourCycle: 'h23', hour: 'numeric' });
  const action = { type: 'Action', id: 'GET' };
  const resource = { type: 'Route', id: 'orders' };
  return {
    importMs,
    compileMs,
    prepare: exchange,
    decide(ex) {
      const id = ex.identity;
      const principal = { type: 'User', id: id.subject };
      const answer = cedar.statefulIsAuthorized({
        principal, action, resource,
        preparsedPolicySetId: 'rules',
        context: {
          params: { tenant: ex.target.segments[1] },
          clientIp: ex.clientIp,
          hourBerlin: Number(berlin.format(ex.fixedTime)),
          headers: { 'x-env': ex.req.headers['x-env'] },
        },
        entities: [{ uid: principal, attrs: { tenant: id.tenant, roles: id.roles, claims: { level: id.claims.level } }, parents: [] }],
      });
      if (answer.type !== 'success') throw new Error(`Cedar: ${JSON.stringify(answer.errors)}`);
      return answer.response.decision === 'allow';
    },
  };
}

/**
 * ns of CPU per evaluation of one request: the median over rounds, and the spread ((max − min) ÷
 * median). CPU time of the process (its JIT and GC threads included), not wall time: the figure
 * holds on a busy machine, where wall time mostly measures waiting for a core.
 */
function measure(evaluator, request, rounds, evaluations) {
  const ex = evaluator.prepare(request);
  // Warm up until the evaluation is compiled: a cold first round would be mostly JIT work.
  for (let i = 0; i < 5 * evaluations; i++) evaluator.decide(ex);
  const perRound = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < evaluations; i++) evaluator.decide(ex);
    const used = process.cpuUsage(t0);
    perRound.push(((used.user + used.system) * 1000) / evaluations);
  }
  const m = median(perRound);
  return { nsPerEvaluation: round(m, 0), spread: round((Math.max(...perRound) - Math.min(...perRound)) / m, 3) };
}

/**
 * Measures both languages on the rule set; throws if they disagree on any request. Returns the
 * figures bench/run.mjs folds into its report: per language, the time to import the library (for
 * Cedar, instantiating its WebAssembly), to compile the rule set (CEL: parse, check, plan; Cedar:
 * preparse), and ns of CPU per evaluation of an allowed and a refused request.
 */
export async function ruleCost({ rounds = intEnv('RULE_COST_ROUNDS', 5, 5), evaluations = intEnv('RULE_COST_EVALUATIONS', 2000, 100) } = {}) {
  const cel = await celEvaluator();
  const cedar = await cedarEvaluator();
  for (const [what, request] of REQUESTS) {
    const a = cel.decide(cel.prepare(request));
    const b = cedar.decide(cedar.prepare(request));
    if (a !== b) throw new Error(`CEL and Cedar disagree on "${what}": CEL ${a}, Cedar ${b}`);
    if (a !== (what === 'allowed')) throw new Error(`"${what}" was ${a ? 'allowed' : 'refused'}`);
  }
  const refused = REQUESTS[REQUESTS.length - 1][1];
  const figures = (e) => ({
    importMs: round(e.importMs, 1),
    compileMs: round(e.compileMs, 2),
    allowed: measure(e, BASE, rounds, evaluations),
    refused: measure(e, refused, rounds, evaluations),
  });
  return {
    bench: 'rule-cost',
    rules: CEL_RULES.length,
    rounds,
    evaluations,
    node: process.version,
    cel: figures(cel),
    cedar: figures(cedar),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(await ruleCost())}\n`);
}
