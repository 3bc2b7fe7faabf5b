// `portcullis import openapi`: the generated config loads, every route in it is refused until it is
// given a policy (through a real gateway, with and without a valid credential), operations the
// gateway cannot take are skipped with their reason, and bad arguments exit 2.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { parse } from 'yaml';
import { runCli, type CliRun } from './harness/cli.js';
import { configProblems } from './harness/config.js';
import { startBodyUpstream, type BodyUpstream } from './harness/body-upstream.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { ADMIN_TOKEN_HASH, admin, createKey } from './harness/api-keys.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/openapi/', import.meta.url));
const PETSTORE = join(EXAMPLES, 'petstore.yaml');

/** Runs the CLI in `cwd`, so documents are named as given. */
const runIn = (cwd: string, args: readonly string[]): Promise<CliRun> => runCli(args, {}, cwd);

const doc = (body: string): string => `openapi: 3.1.0\ninfo: { title: t, version: '1' }\n${body}`;

describe('portcullis import openapi', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-import-'));
    await copyFile(PETSTORE, join(dir, 'petstore.yaml'));
  });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('writes a config that loads, with one route per operation, each validated against it', async () => {
    const out = join(dir, 'gateway.yaml');
    const run = await runCli(['import', 'openapi', join(dir, 'petstore.yaml'), '--out', out, '--upstream', 'petstore']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /5 routes written to .*gateway\.yaml, each refused until given a policy/);
    const text = await readFile(out, 'utf8');
    assert.deepEqual(configProblems(text, {}, out), []);
    const config = parse(text) as { routes: { name: string; match: { path: string; methods: string[] }; validate: unknown; authorize: unknown; public?: boolean }[] };
    assert.deepEqual(config.routes.map((r) => `${r.name} ${r.match.methods.join(',')} ${r.match.path}`), [
      'listPets GET /pets', 'createPet POST /pets', 'showPetById GET /pets/{petId}', 'deletePet DELETE /pets/{petId}', 'updatePet PATCH /pets/{petId}',
    ]);
    for (const r of config.routes) {
      assert.deepEqual(r.validate, { openapi: { document: 'petstore.yaml', operation: r.name } });
      assert.deepEqual(r.authorize, { roles: { anyOf: ['openapi-no-policy-yet'] } });
      assert.equal(r.public, undefined);
    }
    assert.match(text, /^# Every route below is refused \(403\) until it is given a policy/m);
    assert.match(text, /# No policy yet: replace with what this operation requires\./);
  });

  it('keeps the example config in examples/openapi what the command generates from the example document', async () => {
    const run = await runIn(EXAMPLES, ['import', 'openapi', 'petstore.yaml', '--upstream', 'petstore']);
    assert.equal(run.code, 0, run.stderr);
    const example = await readFile(join(EXAMPLES, 'gateway.yaml'), 'utf8');
    assert.equal(example, run.stdout);
    assert.deepEqual(configProblems(example, {}, join(EXAMPLES, 'gateway.yaml')), []);
  });

  it('matches under --prefix and strips it before forwarding', async () => {
    const run = await runCli(['import', 'openapi', PETSTORE, '--prefix', '/api/v1']);
    assert.equal(run.code, 0, run.stderr);
    const config = parse(run.stdout) as { routes: { match: { path: string }; rewrite: unknown }[] };
    assert.deepEqual(config.routes.map((r) => r.match.path), ['/api/v1/pets', '/api/v1/pets', '/api/v1/pets/{petId}', '/api/v1/pets/{petId}', '/api/v1/pets/{petId}']);
    for (const r of config.routes) assert.deepEqual(r.rewrite, { stripPrefix: '/api/v1' });
    const file = join(dir, 'prefixed.yaml');
    await writeFile(file, run.stdout.replace(/document: \S*petstore\.yaml/g, 'document: petstore.yaml'));
    assert.deepEqual(configProblems(await readFile(file, 'utf8'), {}, file), []);
  });

  it('skips what the gateway cannot take, naming each with its line and reason, and keeps the rest', async () => {
    const spec = join(dir, 'mixed.yaml');
    await writeFile(spec, doc([
      'paths:',
      '  /files/{name}.{ext}:',
      '    get: { operationId: getFile, parameters: [{ name: name, in: path, required: true }, { name: ext, in: path, required: true }] }',
      '  /things/{id}:',
      '    get: { operationId: "get thing!", parameters: [{ name: id, in: path, required: true }] }',
      '  /things/{name}:',
      '    get: { operationId: getThingByName, parameters: [{ name: name, in: path, required: true }] }',
      '  /search:',
      '    get: { operationId: search, parameters: [{ name: filter, in: query, style: deepObject, schema: { type: object } }] }',
      '  /items/{item-id}:',
      '    get: { parameters: [{ name: item-id, in: path, required: true, schema: { type: integer } }] }',
      '    put: { operationId: "get thing!", parameters: [{ name: item-id, in: path, required: true }], requestBody: { content: { application/json: { schema: { type: object } } } } }',
      '',
    ].join('\n')));
    const run = await runCli(['import', 'openapi', spec]);
    assert.equal(run.code, 0, run.stderr);
    const warnings = run.stderr.split('\n').filter((l) => l.includes(': skipped '));
    assert.equal(warnings.length, 3, run.stderr + run.stdout);
    assert.match(warnings[0] ?? '', /mixed\.yaml:5: skipped getFile \(GET \/files\/\{name\}\.\{ext\}\): segment "\{name\}\.\{ext\}" mixes text and a parameter/);
    assert.match(warnings[1] ?? '', /mixed\.yaml:9: skipped getThingByName \(GET \/things\/\{name\}\): the router cannot tell it from GET \/things\/\{id\}/);
    assert.match(warnings[2] ?? '', /mixed\.yaml:11: skipped search \(GET \/search\): query parameter filter: style deepObject is not supported/);
    const config = parse(run.stdout) as { routes: { name: string; match: { path: string }; validate: { openapi: { operation: string } } }[] };
    // Names made valid and unique; a template name the router cannot name becomes `*`; an operationId
    // given twice is referred to by method and path.
    assert.deepEqual(config.routes.map((r) => [r.name, r.match.path, r.validate.openapi.operation]), [
      ['get-thing', '/things/{id}', 'GET /things/{id}'],
      ['get-items-item-id', '/items/*', 'GET /items/{item-id}'],
      ['get-thing-2', '/items/*', 'PUT /items/{item-id}'],
    ]);
    const file = join(dir, 'mixed-gateway.yaml');
    await writeFile(file, run.stdout.replace(/document: \S*mixed\.yaml/g, 'document: mixed.yaml'));
    assert.deepEqual(configProblems(await readFile(file, 'utf8'), {}, file), []);
  });

  const bad: readonly (readonly [string, readonly string[], number, RegExp])[] = [
    ['no SPEC', [], 2, /missing SPEC/],
    ['two SPECs', ['a.yaml', 'b.yaml'], 2, /unexpected argument "b\.yaml"/],
    ['an unknown option', ['x.yaml', '--upstreams', 'a'], 2, /unknown option --upstreams/],
    ['an upstream name with a space', ['x.yaml', '--upstream', 'my api'], 2, /--upstream "my api": a name of letters/],
    ['an upstream URL with credentials', ['x.yaml', '--upstream-url', 'http://u:p@127.0.0.1:1'], 2, /--upstream-url .*without credentials/],
    ['an upstream URL of another scheme', ['x.yaml', '--upstream-url', 'ftp://127.0.0.1/'], 2, /--upstream-url "ftp:\/\/127\.0\.0\.1\/": an http:\/\/ or https:\/\//],
    ['a prefix with a wildcard', ['x.yaml', '--prefix', '/api/*'], 2, /--prefix "\/api\/\*": a path of whole literal segments/],
    ['a prefix with a dot segment', ['x.yaml', '--prefix', '/api/..'], 2, /--prefix/],
    ['a prefix without a leading slash', ['x.yaml', '--prefix', 'api'], 2, /--prefix/],
    ['--out given twice', ['x.yaml', '--out', 'a', '--out', 'b'], 2, /--out given twice/],
    ['a SPEC that does not exist', ['missing-spec.yaml'], 1, /cannot read missing-spec\.yaml: ENOENT/],
  ];
  for (const [what, args, code, message] of bad) {
    it(`exits ${code} on ${what}, saying why`, async () => {
      const run = await runCli(['import', 'openapi', ...args]);
      assert.equal(run.code, code, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    });
  }

  it('exits 1 naming the file and line of an unusable document', async () => {
    const cases: readonly (readonly [string, string, RegExp])[] = [
      ['v30.yaml', 'openapi: 3.0.3\ninfo: { title: t, version: "1" }\npaths: {}\n', /^v30\.yaml:1: openapi is "3\.0\.3"; only OpenAPI 3\.1\.x/],
      ['remote.yaml', doc("paths:\n  /a:\n    get:\n      parameters:\n        - $ref: 'other.yaml#/p'\n"), /^remote\.yaml:7: \$ref "other\.yaml#\/p" is not a local reference/],
      ['broken.yaml', 'openapi: 3.1.0\npaths: [\n', /^broken\.yaml:3: /],
      ['empty.yaml', doc('paths: {}\n'), /no operation of empty\.yaml can be a route/],
    ];
    for (const [name, text, message] of cases) {
      await writeFile(join(dir, name), text);
      const run = await runIn(dir, ['import', 'openapi', name]);
      assert.equal(run.code, 1, `${name}: ${run.stderr}`);
      assert.match(run.stderr, message, name);
      assert.equal(run.stdout, '');
    }
  });

  it('refuses to replace --out without --force, and replaces it with --force', async () => {
    const out = join(dir, 'exists.yaml');
    await writeFile(out, 'keep me\n');
    const refused = await runCli(['import', 'openapi', PETSTORE, '--out', out]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /exists; give --force to replace it/);
    assert.equal(await readFile(out, 'utf8'), 'keep me\n');
    const forced = await runCli(['import', 'openapi', PETSTORE, '--out', out, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(await readFile(out, 'utf8'), /openapi-no-policy-yet/);
  });
});

describe('a generated config on a real gateway: every route denies until given a policy', () => {
  let up: BodyUpstream;
  let gw: TestGateway;
  let key: string;
  before(async () => {
    up = await startBodyUpstream();
    const run = await runCli(['import', 'openapi', PETSTORE, '--upstream', 'petstore', '--upstream-url', up.url]);
    assert.equal(run.code, 0, run.stderr);
    const config = parse(run.stdout.replace(/document: \S*petstore\.yaml/g, 'document: petstore.yaml')) as ConfigObject;
    gw = await startGateway({ ...config, admin: { tokenHash: ADMIN_TOKEN_HASH } }, { beforeStart: (d) => copyFile(PETSTORE, join(d, 'petstore.yaml')) });
    key = (await createKey(gw.adminUrl, { name: 'caller', roles: ['pets:admin'], scopes: ['pets:write'] })).key;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  const requests: readonly (readonly [string, string, Record<string, string>, string | undefined])[] = [
    ['GET', '/pets?limit=5', {}, undefined],
    ['GET', '/pets?limit=5000', {}, undefined],
    ['POST', '/pets', { 'content-type': 'application/json', 'idempotency-key': 'a1b2c3d4e5f6a7b8' }, '{"name":"Rex"}'],
    ['GET', '/pets/1', {}, undefined],
    ['DELETE', '/pets/1', { 'x-confirm': 'delete' }, undefined],
    ['PATCH', '/pets/1', { 'content-type': 'application/merge-patch+json' }, '{"name":"Rex"}'],
  ];
  for (const [method, path, headers, body] of requests) {
    for (const withKey of [false, true]) {
      const status = withKey ? 403 : 401;
      it(`refuses ${method} ${path} ${withKey ? 'with a valid API key (403: no policy yet)' : 'without a credential (401)'}, forwarding nothing`, async () => {
        const before = up.started;
        const res = await request(`${gw.url}${path}`, { method, headers: { ...headers, ...(withKey ? { 'x-api-key': key } : {}) }, ...(body === undefined ? {} : { body }) });
        const text = await res.body.text();
        assert.equal(res.statusCode, status, text);
        assert.equal(up.started, before, 'nothing forwarded');
        const records = await gw.auditFor(String(res.headers['x-request-id']));
        assert.equal(records.length, 1);
        assert.equal(records[0]?.decision, 'deny');
        assert.equal(records[0]?.status, status);
      });
    }
  }

  it('forwards once an operator gives a route its policy', async () => {
    const config = parse(await readFile(gw.configFile, 'utf8')) as { routes: Record<string, unknown>[] };
    const list = config.routes[0] as Record<string, unknown>;
    list.authorize = { roles: { anyOf: ['pets:admin'] } };
    await gw.writeConfig(config);
    const reload = await admin(gw.adminUrl, 'POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
    const ok = await request(`${gw.url}/pets?limit=5`, { headers: { 'x-api-key': key } });
    await ok.body.text();
    assert.equal(ok.statusCode, 200);
    const invalid = await request(`${gw.url}/pets?limit=5000`, { headers: { 'x-api-key': key } });
    assert.equal(invalid.statusCode, 400);
    assert.equal((JSON.parse(await invalid.body.text()) as { pointer?: string }).pointer, '/query/limit');
  });
});
