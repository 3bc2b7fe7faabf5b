import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { jsonSchema } from '../src/config/schema.js';
import { configProblems } from './harness/config.js';
import { CLI } from './harness/gateway.js';

const GOOD = `upstreams:
  orders:
    targets: [http://127.0.0.1:3001]
routes:
  - name: health
    match: { methods: [GET], path: /health }
    upstream: orders
    public: true
`;

const problems = configProblems;

describe('config errors name file, line, column and option', () => {
  it('accepts a minimal valid config', () => {
    assert.deepEqual(problems(GOOD), []);
  });

  const CASES: [string, string, RegExp][] = [
    ['broken YAML', 'routes: [\n  - name: x\n', /^gateway\.yaml:\d+:\d+: /],
    ['duplicate key', GOOD + 'routes: []\n', /^gateway\.yaml:9:1: .*unique/i],
    ['unknown option', GOOD.replace('    public: true', '    public: true\n    pubic: true'), /^gateway\.yaml:9:5: routes\[0\]\.pubic: is not a known option; did you mean `public`\?$/],
    ['wrong type', GOOD.replace('[http://127.0.0.1:3001]', '[3001]'), /^gateway\.yaml:3:15: upstreams\.orders\.targets\[0\]: must be an origin URL like http:\/\/10\.0\.0\.5:3001 .*, not a number$/],
    ['bad format', GOOD.replace('[GET]', '[get]'), /^gateway\.yaml:6:24: routes\[0\]\.match\.methods\[0\]: must be an HTTP method in upper case, like GET or POST$/],
    ['missing required', GOOD.replace('  - name: health\n    match', '  - match'), /^gateway\.yaml:5:5: routes\[0\]\.name: is required: a name of letters, digits/],
    ['route with nowhere to send requests', GOOD.replace('    upstream: orders\n', ''), /^gateway\.yaml:5:11: routes\[0\]\.name: the route "health" says nowhere to send requests: add upstream: <name> \(one of orders\)/],
    ['unknown upstream', GOOD.replace('upstream: orders', 'upstream: ordrs'), /^gateway\.yaml:7:15: routes\[0\]\.upstream: unknown upstream "ordrs"; did you mean "orders"\? \(defined: orders\)$/],
    ['route without policy', GOOD.replace('    public: true\n', ''), /^gateway\.yaml:5:11: routes\[0\]\.name: the route declares no policy/],
    ['public: false is no policy', GOOD.replace('public: true', 'public: false'), /^gateway\.yaml:8:13: routes\[0\]\.public: the route declares no policy/],
    ['bad pattern', GOOD.replace('path: /health', 'path: /a/**/b'), /^gateway\.yaml:6:36: routes\[0\]\.match\.path: "\*\*" is only allowed as the last segment$/],
    ['bad CIDR', GOOD + 'trustedProxies: [10.0.0.0/33]\n', /^gateway\.yaml:9:18: trustedProxies\[0\]: "10\.0\.0\.0\/33" has an invalid prefix length: write an address or CIDR like 10\.0\.0\.0\/8/],
    ['admin exposed without token', GOOD + 'admin: { host: 0.0.0.0 }\n', /^gateway\.yaml:9:16: admin\.host: .*requires admin\.tokenHash$/],
    ['missing env var', GOOD.replace('[http://127.0.0.1:3001]', '\n      - ${ORDERS_URL}'), /^gateway\.yaml:4:9: upstreams\.orders\.targets\[0\]: environment variable ORDERS_URL is not set/],
    ['strip prefix not a prefix', GOOD.replace('    public: true', '    public: true\n    rewrite: { stripPrefix: /api }'), /^gateway\.yaml:9:29: routes\[0\]\.rewrite\.stripPrefix: "\/api" is not a literal prefix/],
    ['top level not a map', '- a\n- b\n', /^gateway\.yaml:1:1: the config must be a mapping/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`reports ${name}`, () => {
      const found = problems(text);
      assert.ok(found.some((p) => expected.test(p)), `expected ${expected} in:\n${found.join('\n')}`);
    });
  }

  it('reports every problem at once, not just the first', () => {
    const text = GOOD.replace('[GET]', '[get]').replace('/health', '42') + 'bogus: 1\n';
    assert.equal(problems(text).length, 3, problems(text).join('\n'));
  });

  it('reports overlapping routes of equal specificity with both locations', () => {
    const text = GOOD + `  - name: a
    match: { methods: [GET, POST], path: '/items/{id}' }
    upstream: orders
    public: true
  - name: b
    match: { methods: [POST], path: '/items/*' }
    upstream: orders
    public: true
  - name: c
    match: { methods: [PUT], path: '/items/*' }
    upstream: orders
    public: true
  - name: d
    match: { methods: [POST], path: '/items/*', host: other.example }
    upstream: orders
    public: true
`;
    const found = problems(text);
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0] ?? '', /^gateway\.yaml:14:12: routes\[2\]\.match: route "b" overlaps route "a" \(gateway\.yaml:10\)/);
  });

  it('reports a duplicate route name with the first definition', () => {
    const text = GOOD + (GOOD.split('routes:\n')[1] ?? '').replace('/health', '/other');
    assert.match(problems(text).join('\n'), /routes\[1\]\.name: duplicate route name "health" \(first defined at line 5\)/);
  });
});

describe('config interpolation', () => {
  it('substitutes ${VAR} and ${VAR:-default}, typing a bare plain reference', () => {
    const text = `listen: { http: { port: \${PORT} } }
upstreams:
  orders:
    targets: ["http://\${HOST:-127.0.0.1}:3001"]
    timeoutMs: \${TIMEOUT:-1500}
routes:
  - name: health
    match: { path: /health }
    upstream: orders
    public: true
`;
    const config = compileConfig(loadConfigText(text.replace('{ http: { port: ${PORT} } }', '\n  http:\n    port: ${PORT}'), 'g.yaml', { PORT: '9090' }));
    assert.equal(config.listen.http.port, 9090);
    assert.deepEqual(config.upstreams.get('orders')?.targets, ['http://127.0.0.1:3001']);
    assert.equal(config.upstreams.get('orders')?.timeoutMs, 1500);
  });

  it('keeps $${ as a literal ${', () => {
    const loaded = loadConfigText(GOOD + 'dataDir: "/tmp/$${HOME}"\n', 'g.yaml', { HOME: '/root' });
    assert.equal(loaded.raw.dataDir, '/tmp/${HOME}');
  });

  it('versions the config by content, so an env change is a new version', () => {
    const text = GOOD.replace('[http://127.0.0.1:3001]', '\n      - ${U}');
    const a = loadConfigText(text, 'g.yaml', { U: 'http://127.0.0.1:1' });
    const b = loadConfigText(text, 'g.yaml', { U: 'http://127.0.0.1:2' });
    const c = loadConfigText(text, 'g.yaml', { U: 'http://127.0.0.1:1' });
    assert.notEqual(a.version, b.version);
    assert.equal(a.version, c.version);
  });
});

describe('compiled config', () => {
  it('is frozen, so nothing on the request path can change it', () => {
    const config = compileConfig(loadConfigText(GOOD, 'g.yaml', {}));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.routes[0]));
    assert.ok(Object.isFrozen(config.limits));
    assert.throws(() => { (config.limits as { maxBodyBytes: number }).maxBodyBytes = 1; }, TypeError);
  });
});

describe('published JSON Schema', () => {
  it('schema/gateway.schema.json is the schema the gateway validates with', () => {
    const published = readFileSync(fileURLToPath(new URL('../../schema/gateway.schema.json', import.meta.url)), 'utf8');
    assert.deepEqual(JSON.parse(published), jsonSchema(), 'run `npm run schema` to regenerate');
  });
});

describe('portcullis check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-check-'));
  it('exits 0 and prints the version for a valid config', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, GOOD);
    const run = spawnSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /OK \(version [0-9a-f]{16}, 1 routes, 1 upstreams\)/);
  });
  it('exits 1 and prints the error with file:line:column and option', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, GOOD.replace('upstream: orders', 'upstream: ordrs').replace('127.0.0.1:3001', '127.0.0.1:3001, http://x:1'));
    const run = spawnSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.ok(run.stderr.includes(`${file}:7:15: routes[0].upstream: unknown upstream "ordrs"`), run.stderr);
    assert.match(run.stderr, /1 problem in config/);
  });
  it('prints every schema error at once', () => {
    const file = join(dir, 'bad2.yaml');
    writeFileSync(file, GOOD.replace('[GET]', '[get]') + 'bogus: 1\n');
    const run = spawnSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.ok(run.stderr.includes(`${file}:6:24: routes[0].match.methods[0]: must be an HTTP method in upper case`), run.stderr);
    assert.ok(run.stderr.includes(`${file}:9:1: bogus: is not a known option`), run.stderr);
    assert.match(run.stderr, /2 problems in config/);
  });
  it('start refuses an invalid config with the same errors', () => {
    const file = join(dir, 'bad.yaml');
    const run = spawnSync(process.execPath, [CLI, 'start', '-c', file], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(run.status, 1);
    assert.ok(run.stderr.includes(`${file}:7:15: routes[0].upstream: unknown upstream "ordrs"`), run.stderr);
  });
  it('reports a missing file', () => {
    const run = spawnSync(process.execPath, [CLI, 'check', '-c', join(dir, 'absent.yaml')], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /absent\.yaml: cannot read config/);
  });
  it.after?.(() => rmSync(dir, { recursive: true, force: true }));
});
