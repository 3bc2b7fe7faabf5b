// Config errors say what would be right: a close option name, the expected format of every
// constrained value, types and ranges in words; and one mistake is reported once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { jsonSchema } from '../src/config/schema.js';
import { KEY_PATTERN_FORMATS, PATTERN_MESSAGE } from '../src/config/schema-parts.js';
import { closest } from '../src/config/suggest.js';
import { configProblems } from './harness/config.js';

const BASE = `upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
routes:
  - name: health
    match: { methods: [GET], path: /health }
    upstream: orders
    public: true
`;

type Node = Record<string, unknown>;

/** Every schema node with its JSON pointer. */
function nodes(node: unknown, at = '#'): [string, Node][] {
  if (node === null || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((n, i) => nodes(n, `${at}/${i}`));
  const self: [string, Node][] = [[at, node as Node]];
  return self.concat(Object.entries(node).flatMap(([k, v]) => (k === 'enum' || k === 'required' ? [] : nodes(v, `${at}/${k}`))));
}

describe('every constrained option describes its format', () => {
  const all = nodes(jsonSchema());

  it('every pattern has a description of what it accepts', () => {
    const patterns = all.filter(([, n]) => typeof n.pattern === 'string');
    assert.ok(patterns.length > 40, `found ${patterns.length} patterns`);
    const bare = patterns.filter(([, n]) => typeof n[PATTERN_MESSAGE] !== 'string' || !/^must be \S/.test(n[PATTERN_MESSAGE])).map(([at]) => at);
    assert.deepEqual(bare, [], 'patterns without a patternErrorMessage ("must be …")');
  });

  it('no option is constrained by a format keyword the messages cannot describe', () => {
    assert.deepEqual(all.filter(([, n]) => 'format' in n || 'not' in n || 'oneOf' in n).map(([at]) => at), []);
  });

  it('every named map describes its key format and refuses other keys', () => {
    const maps = all.filter(([, n]) => n.patternProperties !== undefined);
    assert.ok(maps.length >= 7, `found ${maps.length} named maps`);
    for (const [at, n] of maps) {
      for (const key of Object.keys(n.patternProperties as object)) assert.ok(KEY_PATTERN_FORMATS.has(key), `${at}: key pattern ${key} has no format in KEY_PATTERN_FORMATS`);
      assert.equal(n.additionalProperties, false, `${at}: a key outside the pattern must be refused, not passed over`);
    }
  });

  it('every enum lists at least one value', () => {
    for (const [at, n] of all) if ('enum' in n) assert.ok(Array.isArray(n.enum) && n.enum.length > 0, at);
  });
});

describe('unknown options get "did you mean"', () => {
  const CASES: [string, string, RegExp][] = [
    ['a different case', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], TimeoutMS: 5 }'), /upstreams\.orders\.TimeoutMS: is not a known option; did you mean `timeoutMs`\?$/],
    ['snake case', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], timeout_ms: 5 }'), /upstreams\.orders\.timeout_ms: is not a known option; did you mean `timeoutMs`\?$/],
    ['kebab case', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], connect-timeout-ms: 5 }'), /did you mean `connectTimeoutMs`\?$/],
    ['a typo', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], timeotMs: 5 }'), /did you mean `timeoutMs`\?$/],
    ['two letters swapped', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], tiemoutMs: 5 }'), /did you mean `timeoutMs`\?$/],
    ['a top-level typo', BASE + 'upstream: {}\n', /^gateway\.yaml:8:1: upstream: is not a known option; did you mean `upstreams`\?$/],
    ['a kind\'s option', BASE + 'authenticators:\n  u: { type: jwt, issuer: i, secret: "0123456789abcdef0123456789abcdef", audience: a, algorithms: [HS256], clockSkew: 5 }\n', /authenticators\.u\.clockSkew: is not a known option; did you mean `clockSkewMs`\?$/],
    ['an option of another place', BASE.replace('    public: true', '    public: true\n    timeoutMs: 5'),
      /^gateway\.yaml:8:5: routes\[0\]\.timeoutMs: is not a known option \((options here: name, match, upstream, .*|see docs\/configuration\.md for the options here)\); `timeoutMs` is an option of .*`upstreams\.<name>`/],
    ['nothing close, few options', BASE + 'paths: { collapse: true }\n', /^gateway\.yaml:8:10: paths\.collapse: is not a known option \(options here: mergeSlashes, allowSemicolon\)$/],
    ['a bad name in a named map', BASE + 'rateLimits:\n  "per caller": { algorithm: gcra, limit: 1, per: 1s, by: [ip] }\n',
      /^gateway\.yaml:9:3: rateLimits\.per caller: "per caller" is not a valid name: it must be a name of letters, digits, `_`, `\.` and `-`/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`for ${name}`, () => {
      const found = configProblems(text);
      assert.ok(found.some((p) => expected.test(p)), `expected ${expected} in:\n${found.join('\n')}`);
    });
  }

  it('suggests nothing for a name far from every candidate', () => {
    assert.equal(closest('bogus', ['listen', 'admin', 'routes', 'upstreams']), null);
    assert.equal(closest('id', ['ip']), 'ip');
    assert.equal(closest('x', ['ip']), null);
  });
});

describe('bad values name the expected format', () => {
  const CASES: [string, string, RegExp][] = [
    ['a duration with a space', BASE + 'rateLimits:\n  r: { algorithm: gcra, limit: 1, per: "10 sec", by: [ip] }\n',
      /^gateway\.yaml:9:40: rateLimits\.r\.per: must be a duration like 30s, 15m, 1h or 1d: a whole number, then s, m, h or d$/],
    ['a duration as a number', BASE + 'rateLimits:\n  r: { algorithm: gcra, limit: 1, per: 10, by: [ip] }\n', /rateLimits\.r\.per: must be a duration like 30s, .*, not a number$/],
    ['an enum, with the nearest value', BASE + 'rateLimits:\n  r: { algorithm: token_bucket, limit: 1, per: 1s, by: [ip] }\n',
      /rateLimits\.r\.algorithm: must be one of: fixed-window, sliding-window, token-bucket, gcra \(did you mean token-bucket\?\)$/],
    ['a log level', BASE + 'log: { level: verbose }\n', /log\.level: must be one of: fatal, error, warn, info, debug, trace, silent$/],
    ['a token hash', BASE + 'admin: { tokenHash: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 }\n',
      /admin\.tokenHash: must be `sha256:` and 64 lower-case hex digits/],
    ['a target with a path', BASE.replace('http://127.0.0.1:3001', 'http://127.0.0.1:3001/api'), /upstreams\.orders\.targets\[0\]: must be an origin URL like http:\/\/10\.0\.0\.5:3001/],
    ['a header name with a colon', BASE + 'headers: { requestId: "X-Id:" }\n', /headers\.requestId: must be an HTTP header name/],
    ['a limit dimension', BASE + 'rateLimits:\n  r: { algorithm: gcra, limit: 1, per: 1s, by: [header] }\n', /rateLimits\.r\.by\[0\]: must be ip, subject, keyId, tenant, route, header:<header name> or claim:<claim path>$/],
    ['a redis url', BASE + 'rateLimiting: { redis: { url: "localhost:6379" } }\n', /rateLimiting\.redis\.url: must be a Redis URL like redis:\/\/redis:6379/],
    ['a port out of range', BASE + 'listen: { http: { port: 70000 } }\n', /listen\.http\.port: must be a whole number from 0 to 65535$/],
    ['a port as text', BASE + 'listen: { http: { port: "8080" } }\n', /listen\.http\.port: must be a whole number from 0 to 65535, not text$/],
    ['a timeout of zero', BASE.replace('[http://127.0.0.1:3001] }', '[http://127.0.0.1:3001], timeoutMs: 0 }'), /upstreams\.orders\.timeoutMs: must be a whole number from 1 to 86400000 \(milliseconds\)$/],
    ['a boolean as text', BASE + 'paths: { mergeSlashes: "yes" }\n', /paths\.mergeSlashes: must be true or false, not text$/],
    ['a list given one value', BASE.replace('methods: [GET]', 'methods: GET'), /routes\[0\]\.match\.methods: must be a list of an HTTP method in upper case, like GET or POST, not text$/],
    ['an empty list', BASE.replace('methods: [GET]', 'methods: []'), /routes\[0\]\.match\.methods: must list at least 1 item$/],
    ['a repeated value', BASE.replace('methods: [GET]', 'methods: [GET, POST, GET]'), /routes\[0\]\.match\.methods: lists the same value twice \(items 0 and 2\); list each once$/],
    ['a rate limit name, as a name', BASE.replace('    public: true', '    public: true\n    rateLimit: "per caller"'), /routes\[0\]\.rateLimit: must be a name of letters/],
    ['a rate limit name, in a list', BASE.replace('    public: true', '    public: true\n    rateLimit: [ok, "per caller"]'), /routes\[0\]\.rateLimit\[1\]: must be a name of letters/],
    ['a rate limit name, as a number', BASE.replace('    public: true', '    public: true\n    rateLimit: 5'), /routes\[0\]\.rateLimit: must be a name of letters.*, or a list of a name of letters/],
    ['a missing option', BASE.replace('    upstream: orders\n', ''), /routes\[0\]\.upstream: is required: a name of letters/],
    ['an empty host', BASE + 'listen: { http: { host: "" } }\n', /listen\.http\.host: must not be empty$/],
    ['a short secret', BASE + 'authenticators:\n  u: { type: jwt, issuer: i, secret: short, audience: a, algorithms: [HS256] }\n', /authenticators\.u\.secret: must be at least 32 characters long$/],
    ['a CIDR', BASE + 'trustedProxies: [10.0.0.0/40]\n', /trustedProxies\[0\]: .*: write an address or CIDR like 10\.0\.0\.0\/8, 192\.0\.2\.7 or 2001:db8::\/32$/],
    ['a JWKS URL that is not one', BASE + 'authenticators:\n  u: { type: jwt, issuer: i, jwksUri: "http://[x", audience: a, algorithms: [RS256] }\n',
      /authenticators\.u\.jwksUri: is not a valid URL: write one like https:\/\/idp\.example\.com\/\.well-known\/jwks\.json$/],
    ['a time zone', BASE + 'quotas:\n  q: { limit: 1, period: day, timeZone: Mars/Olympus, by: [ip] }\n', /quotas\.q\.timeZone: "Mars\/Olympus" is not a time zone .*\(IANA names, e\.g\. Europe\/Berlin\)$/],
    ['a strip prefix that is not one', BASE.replace('    public: true', '    public: true\n    rewrite: { stripPrefix: /api }'),
      /routes\[0\]\.rewrite\.stripPrefix: "\/api" is not a literal prefix of the path pattern "\/health": strip whole literal segments it starts with, such as \/health$/],
    ['an unknown upstream', BASE.replace('upstream: orders', 'upstream: order'), /routes\[0\]\.upstream: unknown upstream "order"; did you mean "orders"\? \(defined: orders\)$/],
    ['an unknown rate limit', BASE.replace('    public: true', '    public: true\n    rateLimit: perIP') + 'rateLimits:\n  perIp: { algorithm: gcra, limit: 1, per: 1s, by: [ip] }\n',
      /routes\[0\]\.rateLimit: unknown rate limit "perIP"; did you mean "perIp"\? \(defined: perIp\)$/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`for ${name}`, () => {
      const found = configProblems(text);
      assert.ok(found.some((p) => expected.test(p)), `expected ${expected} in:\n${found.join('\n')}`);
    });
  }

  it('never repeats the value, which may be a secret', () => {
    const text = BASE + [
      'authenticators:',
      '  u: { type: jwt, issuer: i, secret: hunter2hunter2, audience: a, algorithms: [HS256] }',
      'apiKeys: { store: { type: postgres, url: "mysql://app:s3cr3t-pw@db/x" } }',
      'rateLimiting: { redis: { url: "http://:r3dis-pw@redis" } }',
    ].join('\n') + '\n';
    const found = configProblems(text).join('\n');
    assert.equal(configProblems(text).length, 3, found);
    for (const secret of ['hunter2', 's3cr3t', 'r3dis']) assert.ok(!found.includes(secret), found);
  });
});

describe('one mistake is reported once', () => {
  const routes = (policy: string, n = 3) => Array.from({ length: n }, (_, i) => `  - { name: r${i}, match: { path: /r${i} }, upstream: orders, ${policy} }\n`).join('');
  const CASES: [string, string, RegExp][] = [
    ['an authenticator with a bad jwksUri', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\nauthenticators:\n  users: { type: jwt, issuer: https://idp/, jwksUri: "http://idp.example/jwks", audience: a, algorithms: [RS256] }\nroutes:\n${routes('authenticate: [users]')}`,
      /^gateway\.yaml:4:54: authenticators\.users\.jwksUri: must be https/],
    ['an authenticator whose keys cannot be read', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\nauthenticators:\n  users: { type: jwt, issuer: i, jwksFile: absent.json, audience: a, algorithms: [RS256] }\nroutes:\n${routes('authenticate: [users]')}`,
      /authenticators\.users\.jwksFile: cannot read absent\.json/],
    ['an apiKeys section that API key authenticators share', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\napiKeys: { maxLifetime: 1d, expiryWarning: 2d }\nauthenticators:\n  a: { type: apiKey }\n  b: { type: apiKey, header: X-Other-Key }\nroutes:\n${routes('authenticate: [a]')}${routes('authenticate: [b]').replace(/r(\d)/g, 's$1')}`,
      /apiKeys\.expiryWarning: must be shorter than maxLifetime/],
    ['a rate limit, also global', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\nrateLimits:\n  r: { algorithm: gcra, limit: 1, per: 2d, by: [ip] }\nrateLimiting: { global: [r] }\nroutes:\n${routes('public: true, rateLimit: r')}`,
      /rateLimits\.r\.per: at most 1d/],
    ['a rate limit tier', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\nrateLimits:\n  r: { algorithm: gcra, limit: 1, per: 1s, by: [ip], tiers: { gold: { limit: 5, per: 2d } } }\nroutes:\n${routes('public: true, rateLimit: [r]')}`,
      /rateLimits\.r\.tiers\.gold\.per: at most 1d/],
    ['a quota', `upstreams:\n  orders: { targets: [http://127.0.0.1:3001] }\nquotas:\n  q: { limit: 1, period: day, timeZone: Nowhere/Land, by: [ip] }\nroutes:\n${routes('public: true, quota: q')}`,
      /quotas\.q\.timeZone: "Nowhere\/Land" is not a time zone/],
    ['an upstream', `upstreams:\n  orders: { targets: [] }\nroutes:\n${routes('public: true')}`, /upstreams\.orders\.targets: must list at least 1 item$/],
  ];
  for (const [name, text, expected] of CASES) {
    it(`for ${name} used by several routes`, () => {
      const found = configProblems(text);
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0] ?? '', expected);
    });
  }
});

describe('the tokenHash recipes of docs/configuration.md', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');
  const section = doc.slice(doc.indexOf('### Admin token'), doc.indexOf('## Data directory'));
  const recipes = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');

  it('has the recipes', () => {
    assert.equal(recipes.length, 3, section);
  });

  for (const [i, recipe] of recipes.entries()) {
    it(`recipe ${i + 1} prints a tokenHash the schema accepts, the SHA-256 of the token`, () => {
      const given = 'a-token-already-made';
      const run = spawnSync('sh', ['-c', recipe], { encoding: 'utf8', env: { ...process.env, TOKEN: given } });
      assert.equal(run.status, 0, run.stderr);
      const lines = run.stdout.trim().split('\n');
      const token = /^token: (\S+)$/.exec(lines[0] ?? '')?.[1] ?? given;
      const hash = lines.length === 1 ? lines[0] : /^tokenHash: (\S+)$/.exec(lines[1] ?? '')?.[1];
      assert.equal(hash, `sha256:${createHash('sha256').update(token).digest('hex')}`, run.stdout);
      assert.deepEqual(configProblems(`${BASE}admin: { tokenHash: "${hash ?? ''}" }\n`), []);
    });
  }
});
