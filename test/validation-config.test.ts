// Config errors of `routes[].validate`: each names file:line, the option, and what would be right.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configProblems } from './harness/config.js';

function config(route: string): string {
  return `upstreams:
  app: { targets: [http://127.0.0.1:3001] }
routes:
  - name: orders
    match: { path: /orders, methods: [POST] }
    upstream: app
    public: true
${route}`;
}

describe('validate config errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-validate-config-'));
    await writeFile(join(dir, 'order.schema.json'), JSON.stringify({ type: 'object', properties: { qty: { type: 'integer' } } }));
    await writeFile(join(dir, 'broken.json'), '{ "type": "object", ');
    await writeFile(join(dir, 'order.schema.yaml'), 'type: object\nrequired: [qty]\nproperties:\n  qty: { type: integer }\n');
    await writeFile(join(dir, 'remote.json'), JSON.stringify({ $ref: 'https://schemas.example/order.json' }));
  });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  const check = (route: string): string[] => configProblems(config(route), {}, join(dir, 'gateway.yaml'));

  it('accepts a schema file (JSON or YAML) relative to the config, and an inline schema', () => {
    assert.deepEqual(check('    validate: { jsonSchema: order.schema.json }\n'), []);
    assert.deepEqual(check('    validate: { jsonSchema: order.schema.yaml, bodyRequired: true }\n'), []);
    assert.deepEqual(check('    validate:\n      jsonSchema: { type: object, properties: { qty: { type: integer, minimum: 1 } } }\n      json: { maxDepth: 8, maxKeys: 50 }\n'), []);
  });

  const cases: readonly (readonly [string, string, RegExp])[] = [
    ['an unreadable schema file', '    validate: { jsonSchema: missing.json }\n', /gateway\.yaml:8:\d+: routes\[0\]\.validate\.jsonSchema.*cannot read missing\.json: ENOENT.*relative to this config/],
    ['a schema file that is not JSON', '    validate: { jsonSchema: broken.json }\n', /gateway\.yaml:8:\d+: routes\[0\]\.validate\.jsonSchema.*broken\.json is not JSON/],
    ['an unknown schema keyword (strict)', '    validate:\n      jsonSchema: { type: object, requird: [qty] }\n', /gateway\.yaml:9:\d+: routes\[0\]\.validate\.jsonSchema.*does not compile.*unknown keyword: "requird"/],
    ['a wrong type in the schema', '    validate:\n      jsonSchema: { type: objekt }\n', /gateway\.yaml:9:\d+: routes\[0\]\.validate\.jsonSchema.*does not compile/],
    ['a $ref outside the document', '    validate: { jsonSchema: remote.json }\n', /routes\[0\]\.validate\.jsonSchema.*does not compile.*can't resolve reference https:\/\/schemas\.example\/order\.json/],
    ['a pattern RE2 cannot run in linear time (backreference)', '    validate:\n      jsonSchema: { type: string, pattern: "^(a)\\\\1$" }\n', /routes\[0\]\.validate\.jsonSchema.*does not compile/],
    ['a lookahead pattern', '    validate:\n      jsonSchema: { type: string, pattern: "^(?=a)" }\n', /routes\[0\]\.validate\.jsonSchema.*does not compile.*\(\?=/],
    ['maxDepth 0', '    validate: { json: { maxDepth: 0 } }\n', /gateway\.yaml:8:\d+: routes\[0\]\.validate\.json\.maxDepth/],
    ['a negative maxKeys', '    validate: { json: { maxKeys: -1 } }\n', /routes\[0\]\.validate\.json\.maxKeys/],
    ['a fractional maxStringLength', '    validate: { json: { maxStringLength: 1.5 } }\n', /routes\[0\]\.validate\.json\.maxStringLength/],
    ['an unknown json limit', '    validate: { json: { maxDepht: 3 } }\n', /routes\[0\]\.validate\.json.*maxDepht/],
    ['a media type with a wildcard', '    validate: { contentTypes: ["application/*"] }\n', /routes\[0\]\.validate\.contentTypes\[0\].*without parameters or wildcards/],
    ['a media type with a parameter', '    validate: { contentTypes: ["application/json; charset=utf-8"] }\n', /routes\[0\]\.validate\.contentTypes\[0\]/],
    ['a non-UTF-8 charset for JSON only', '    validate: { charsets: [utf-16] }\n', /routes\[0\]\.validate\.charsets.*JSON bodies are read as UTF-8 only/],
    ['a schema without a JSON type', '    validate: { contentTypes: [text/plain], jsonSchema: { type: string } }\n', /routes\[0\]\.validate\.jsonSchema.*no JSON type/],
    ['limits.contentTypes beside validate', '    limits: { contentTypes: [application/json] }\n    validate: {}\n', /gateway\.yaml:8:\d+: routes\[0\]\.limits\.contentTypes.*validate\.contentTypes/],
  ];
  for (const [what, route, expected] of cases) {
    it(`reports ${what} with file:line and the option`, () => {
      const problems = check(route);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0] ?? '', expected);
    });
  }
});
