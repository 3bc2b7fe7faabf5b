// OpenAPI 3.1 operations as request contracts: the document read (version, local references only,
// lines in errors), an operation fitted to its route, and the compiled checks of its parameters
// and JSON body, driven with hostile input as classes: malformed, oversized, ambiguous, duplicated.
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { startBodyUpstream, type BodyUpstream } from './harness/body-upstream.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead } from './harness/raw-client.js';
import { configProblems } from './harness/config.js';
import { Exchange } from '../src/pipeline/exchange.js';
import { compilePattern } from '../src/routing/pattern.js';
import { parseTarget } from '../src/http/target.js';
import type { Route } from '../src/pipeline/exchange.js';
import type { Denial } from '../src/pipeline/denials.js';
import { findOperation, listOperations, operationContract, OpenApiError, parseOpenApiDocument, SchemaCompiler, type OperationContract } from '../src/validation/openapi.js';
import { MAX_PARAMETER_VALUES } from '../src/validation/openapi-parameters.js';

const PETSTORE = fileURLToPath(new URL('../../examples/openapi/petstore.yaml', import.meta.url));

/** The contract of `selector` in `text` on a route matching `path` with `methods`. */
function contractOf(text: string, selector: string, path: string, methods: readonly string[] | null): OperationContract {
  const doc = parseOpenApiDocument(text, 'api.yaml');
  return operationContract(doc, new SchemaCompiler(doc), findOperation(doc, selector), { pattern: compilePattern(path, false), methods: methods === null ? null : new Set(methods), allowSemicolon: false });
}

/** The load error `fn` throws: its message and `file:line`. */
function loadError(fn: () => unknown): { message: string; at: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OpenApiError, `an OpenApiError, got ${String(err)}`);
    return { message: err.message, at: err.at };
  }
  assert.fail('expected a load error');
}

/** An exchange for `target` with raw header fields, as the server would have opened it, on a route with `pattern`. */
function exchange(target: string, headers: readonly (readonly [string, string])[] = [], pattern = '/pets'): Exchange {
  const req = new IncomingMessage(new Socket());
  req.method = 'GET';
  req.url = target;
  for (const [n, v] of headers) req.rawHeaders.push(n, v);
  const ex = new Exchange(req, new ServerResponse(req), [], 'req-1', '127.0.0.1', '127.0.0.1', false);
  const parsed = parseTarget(target, { mergeSlashes: false, allowSemicolon: false, maxUrlBytes: 8192 });
  assert.ok('segments' in parsed, `target ${target} parses`);
  ex.target = parsed;
  ex.route = { pattern: compilePattern(pattern, false) } as Route;
  return ex;
}

function check(contract: OperationContract, ex: Exchange): Denial | undefined {
  assert.ok(contract.parameters !== null);
  return contract.parameters(ex);
}

const doc = (body: string): string => `openapi: 3.1.0\ninfo: { title: t, version: '1' }\n${body}`;

describe('reading an OpenAPI document', () => {
  it('reads the example pet store and lists its operations in document order', () => {
    const d = parseOpenApiDocument(readFileSync(PETSTORE, 'utf8'), 'petstore.yaml');
    assert.deepEqual(listOperations(d).map((o) => `${o.method} ${o.template} ${o.operationId ?? ''}`), [
      'GET /pets listPets', 'POST /pets createPet', 'GET /pets/{petId} showPetById', 'DELETE /pets/{petId} deletePet', 'PATCH /pets/{petId} updatePet',
    ]);
  });

  const versions: readonly (readonly [string, string])[] = [
    ['OpenAPI 3.0', 'openapi: 3.0.3\n'],
    ['Swagger 2.0', 'swagger: "2.0"\n'],
    ['a number instead of a string', 'openapi: 3.1\n'],
    ['3.1 with a suffix', 'openapi: 3.1.0-rc1\n'],
    ['OpenAPI 3.2', 'openapi: 3.2.0\n'],
  ];
  for (const [what, text] of versions) {
    it(`refuses ${what}, naming the version line`, () => {
      const e = loadError(() => parseOpenApiDocument(`info: { title: t }\n${text}paths: {}\n`, 'api.yaml'));
      assert.match(e.message, /only OpenAPI 3\.1\.x/);
      assert.equal(e.at, text.startsWith('openapi') ? 'api.yaml:2' : 'api.yaml:1');
    });
  }

  const refs: readonly (readonly [string, string, RegExp])[] = [
    ['a URL', 'https://evil.example/schemas.yaml#/Pet', /not a local reference/],
    ['a file beside it', 'common.yaml#/components/schemas/Pet', /not a local reference/],
    ['a file path', './pet.json', /not a local reference/],
    ['a protocol-relative URL', '//evil.example/x', /not a local reference/],
    ['a pointer to nothing', '#/components/schemas/Missing', /names nothing/],
    ['a pointer with a bad escape', '#/components/schemas/%E0%A4%A', /not a local reference/],
  ];
  for (const [what, ref, message] of refs) {
    it(`refuses a $ref to ${what}, naming its line`, () => {
      const text = doc(`paths:\n  /pets:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              $ref: '${ref}'\ncomponents:\n  schemas:\n    Pet: { type: object }\n`);
      const e = loadError(() => parseOpenApiDocument(text, 'api.yaml'));
      assert.match(e.message, message);
      assert.equal(e.at, 'api.yaml:10');
    });
  }

  it('refuses $id (references resolve in this document only)', () => {
    const e = loadError(() => parseOpenApiDocument(doc('components:\n  schemas:\n    Pet:\n      $id: https://evil.example/pet\n      type: object\n'), 'api.yaml'));
    assert.match(e.message, /\$id is not supported/);
    assert.equal(e.at, 'api.yaml:6');
  });

  it('takes a property named $ref or $id as a property, not a reference', () => {
    parseOpenApiDocument(doc('components:\n  schemas:\n    Odd:\n      type: object\n      properties:\n        $ref: { type: string }\n        $id: { type: string }\n'), 'api.yaml');
  });

  const malformed: readonly (readonly [string, string, RegExp, string])[] = [
    ['a YAML syntax error', 'openapi: 3.1.0\npaths: {\n', /./, 'api.yaml:3'],
    ['a duplicate key (two readers could take either value)', 'openapi: 3.1.0\nopenapi: 3.1.0\n', /unique/i, 'api.yaml:2'],
    ['a list at the top level', '- openapi: 3.1.0\n', /mapping at the top level/, 'api.yaml:1'],
    ['a scalar document', '42\n', /mapping at the top level/, 'api.yaml:1'],
    ['an alias bomb', `openapi: 3.1.0\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`, /alias/i, 'api.yaml:1'],
    ['another JSON Schema dialect', 'openapi: 3.1.0\njsonSchemaDialect: https://spec.openapis.org/oas/3.1/dialect/base\n', /jsonSchemaDialect/, 'api.yaml:2'],
  ];
  for (const [what, text, message, at] of malformed) {
    it(`refuses ${what}`, () => {
      const e = loadError(() => parseOpenApiDocument(text, 'api.yaml'));
      assert.match(e.message, message);
      assert.equal(e.at, at);
    });
  }

  it('reads a JSON document, and resolves recursive schemas without expanding them', () => {
    const json = JSON.stringify({
      openapi: '3.1.1', info: { title: 't', version: '1' },
      paths: { '/trees': { post: { operationId: 'plant', requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Tree' } } } } } } },
      components: { schemas: { Tree: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#/components/schemas/Tree' } } } } } },
    }, null, 2);
    const c = contractOf(json, 'plant', '/trees', ['POST']);
    assert.ok(c.body !== null);
    let deep: Record<string, unknown> = { name: 'leaf' };
    for (let i = 0; i < 50; i++) deep = { name: `n${i}`, children: [deep] };
    assert.equal(c.body(deep), null);
    (((deep.children as unknown[])[0] as Record<string, unknown>).children as unknown[]).push({ children: [] });
    assert.deepEqual(c.body(deep), { pointer: '/children/0/children/1/name', reason: "must have required property 'name' (schema #/required)" });
  });
});

describe('finding an operation and fitting it to its route', () => {
  const text = readFileSync(PETSTORE, 'utf8');

  it('finds an operation by operationId and by METHOD /path alike', () => {
    const d = parseOpenApiDocument(text, 'petstore.yaml');
    assert.deepEqual(findOperation(d, 'showPetById'), findOperation(d, 'GET /pets/{petId}'));
    assert.deepEqual(findOperation(d, 'deletePet'), findOperation(d, 'delete /pets/{petId}'));
  });

  it('names the operations there are when the operationId is unknown', () => {
    const e = loadError(() => contractOf(text, 'listPet', '/pets', ['GET']));
    assert.match(e.message, /no operation with operationId "listPet" \(there are: listPets, createPet/);
    assert.equal(e.at, 'api.yaml:8');
  });

  it('refuses a METHOD /path that is not in paths', () => {
    assert.match(loadError(() => contractOf(text, 'PUT /pets', '/pets', ['PUT'])).message, /no operation PUT \/pets/);
  });

  it('refuses an operationId given to two operations', () => {
    const twice = doc('paths:\n  /a:\n    get: { operationId: same }\n  /b:\n    get: { operationId: same }\n');
    const e = loadError(() => contractOf(twice, 'same', '/a', ['GET']));
    assert.match(e.message, /given to two operations/);
    assert.equal(e.at, 'api.yaml:7');
  });

  it('accepts the route path with a fixed prefix and {name} or * for the template parameters', () => {
    contractOf(text, 'showPetById', '/api/v1/pets/{id}', ['GET']);
    contractOf(text, 'showPetById', '/pets/*', ['GET', 'HEAD']);
  });

  const misfits: readonly (readonly [string, string, readonly string[] | null, RegExp])[] = [
    ['another literal segment', '/animals/{petId}', ['GET'], /segment 1 differs/],
    ['a literal where the template has a parameter', '/pets/latest', ['GET'], /\{petId\} is a literal segment/],
    ['fewer segments', '/{petId}', ['GET'], /fewer segments/],
    ['a trailing **', '/pets/**', ['GET'], /"\*\*" matches paths/],
    ['a prefix with a parameter before a **-free path, but one more segment after', '/pets/{petId}/x', ['GET'], /differs/],
    ['any method', '/pets/{petId}', null, /takes any method/],
    ['another method too', '/pets/{petId}', ['GET', 'DELETE'], /takes GET \(and HEAD\) only/],
  ];
  for (const [what, path, methods, message] of misfits) {
    it(`refuses a route with ${what} (${path})`, () => {
      assert.match(loadError(() => contractOf(text, 'showPetById', path, methods)).message, message);
    });
  }

  const unsupported: readonly (readonly [string, string, RegExp, string])[] = [
    ['a deepObject query parameter', "parameters:\n        - { name: filter, in: query, style: deepObject, schema: { type: object } }", /style deepObject is not supported/, 'api.yaml:8'],
    ['an object query parameter', "parameters:\n        - { name: filter, in: query, schema: { type: object } }", /object parameters are not supported/, 'api.yaml:8'],
    ['a parameter described by content', "parameters:\n        - { name: q, in: query, content: { application/json: { schema: { type: object } } } }", /described by content/, 'api.yaml:8'],
    ['an array of objects', "parameters:\n        - { name: q, in: query, schema: { type: array, items: { type: object } } }", /arrays of object items/, 'api.yaml:8'],
    ['a matrix path parameter', "parameters:\n        - { name: id, in: path, required: true, style: matrix, schema: { type: string } }", /style matrix/, 'api.yaml:8'],
    ['a path parameter that is not required', "parameters:\n        - { name: id, in: path, schema: { type: string } }", /must have required: true/, 'api.yaml:8'],
    ['a path parameter not in the path', "parameters:\n        - { name: id, in: path, required: true }\n        - { name: other, in: path, required: true }", /other is not in the path/, 'api.yaml:9'],
    ['a parameter with two types', "parameters:\n        - { name: q, in: query, schema: { type: [string, integer] } }", /several types/, 'api.yaml:8'],
    ['a misspelt schema keyword (strict)', "parameters:\n        - { name: q, in: query, schema: { type: string, maxLenght: 3 } }", /unknown keyword: "maxLenght"/, 'api.yaml:8'],
    ['an unknown format', "parameters:\n        - { name: q, in: query, schema: { type: string, format: colour } }", /unknown format "colour"/, 'api.yaml:8'],
    ['a pattern with a lookahead (no linear-time match)', "parameters:\n        - { name: q, in: query, schema: { type: string, pattern: '^(?=a)a+$' } }", /unsupported Perl syntax/, 'api.yaml:8'],
    ['a pattern with a backreference', "parameters:\n        - { name: q, in: query, schema: { type: string, pattern: '^(a)\\1$' } }", /invalid escape sequence|unsupported/, 'api.yaml:8'],
    ['a media range', "requestBody:\n        content:\n          '*/*': { schema: { type: string } }", /media range|range/, 'api.yaml:9'],
    ['JSON media types with different schemas', "requestBody:\n        content:\n          application/json: { schema: { type: object } }\n          application/merge-patch+json: { schema: { type: array } }", /different schemas/, 'api.yaml:10'],
    ['a requestBody without content', "requestBody: { required: true }", /needs content/, 'api.yaml:7'],
    ['an undeclared path parameter', 'summary: x', /\{id\} of \/things\/\{id\} is not declared/, 'api.yaml:5'],
  ];
  for (const [what, body, message, at] of unsupported) {
    it(`refuses ${what}, naming the line`, () => {
      const text = doc(`paths:\n  /things/{id}:\n    post:\n      operationId: op\n      ${body}\n`);
      const e = loadError(() => contractOf(text, 'op', '/things/{id}', ['POST']));
      assert.match(e.message, message);
      assert.equal(e.at, at);
    });
  }
});

describe('query parameters', () => {
  const text = readFileSync(PETSTORE, 'utf8');
  const listPets = contractOf(text, 'listPets', '/pets', ['GET']);
  const denied = (target: string): string | null => {
    const d = check(listPets, exchange(target));
    if (d === undefined) return null;
    assert.equal(d.code, 'invalid_parameter');
    return d.pointer ?? '(no pointer)';
  };

  const table: readonly (readonly [string, string, string | null])[] = [
    ['no query at all', '/pets', null],
    ['a valid limit', '/pets?limit=20', null],
    ['the bounds', '/pets?limit=1&sort=age', null],
    ['unknown parameters (allowed)', '/pets?page=2&x=%00', null],
    ['an exploded array', '/pets?tag=dog&tag=small-dogs', null],
    ['an empty array item list', '/pets?limit=5', null],
    ['a limit above the maximum', '/pets?limit=101', '/query/limit'],
    ['a limit of zero', '/pets?limit=0', '/query/limit'],
    ['a negative limit', '/pets?limit=-1', '/query/limit'],
    ['a decimal limit', '/pets?limit=1.5', '/query/limit'],
    ['an exponent limit', '/pets?limit=1e1', '/query/limit'],
    ['a plus-signed limit', '/pets?limit=%2B5', '/query/limit'],
    ['a hex limit', '/pets?limit=0x10', '/query/limit'],
    ['a leading zero', '/pets?limit=05', '/query/limit'],
    ['a space-padded limit (+ is a space)', '/pets?limit=5+', '/query/limit'],
    ['a %20-padded limit', '/pets?limit=%205', '/query/limit'],
    ['an empty limit', '/pets?limit=', '/query/limit'],
    ['a limit without =', '/pets?limit', '/query/limit'],
    ['a huge integer', `/pets?limit=${'9'.repeat(400)}`, '/query/limit'],
    ['Infinity', '/pets?limit=Infinity', '/query/limit'],
    ['a repeated limit (which one would the upstream use?)', '/pets?limit=5&limit=500', '/query/limit'],
    ['a repeated limit, both valid', '/pets?limit=5&limit=6', '/query/limit'],
    ['a limit spelt in another case', '/pets?limit=5&LIMIT=500', '/query/limit'],
    ['a limit with an array suffix', '/pets?limit=5&limit[]=500', '/query/limit'],
    ['a limit with an encoded name', '/pets?li%6Dit=500', '/query/limit'],
    ['a limit after a ";" in an unknown parameter', '/pets?page=2;limit=500', '/query/limit'],
    ['a limit after a ";" in a declared parameter', '/pets?sort=age;limit=500', '/query/sort'],
    ['a limit with a ";" in its value', '/pets?limit=5;limit=500', '/query/limit'],
    ['a limit with a leading space (trimmed by lenient readers)', '/pets?%20limit=500', '/query/limit'],
    ['a limit cut at an encoded NUL', '/pets?limit%00x=500', '/query/limit'],
    ['a NUL in a value', '/pets?sort=age%00name', '/query/sort'],
    ['a control character in a value', '/pets?sort=age%0Aname', '/query/sort'],
    ['an overlong UTF-8 encoding', '/pets?sort=%C0%AE', '/query/sort'],
    ['a lone surrogate encoding', '/pets?sort=%ED%A0%80', '/query/sort'],
    ['a truncated escape', '/pets?sort=%4', '/query/sort'],
    ['a value outside the enum', '/pets?sort=price', '/query/sort'],
    ['an enum value in another case', '/pets?sort=Name', '/query/sort'],
    ['an array item failing the shared Tag pattern', '/pets?tag=dog&tag=Dog', '/query/tag'],
    ['too many array items for maxItems', `/pets?${Array.from({ length: 11 }, (_, i) => `tag=t${i}`).join('&')}`, '/query/tag'],
    ['more repetitions than are ever read', `/pets?${'tag=a&'.repeat(MAX_PARAMETER_VALUES + 1)}`, '/query/tag'],
  ];
  for (const [what, target, pointer] of table) {
    it(`${pointer === null ? 'admits' : 'refuses'} ${what}`, () => assert.equal(denied(target), pointer));
  }

  it('reads + as a space and %2B as a plus, decoding exactly once', () => {
    const t = doc("paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: q, in: query, required: true, schema: { type: string, enum: ['a b', 'a+b', '%41'] } }\n");
    const c = contractOf(t, 's', '/s', ['GET']);
    for (const ok of ['/s?q=a+b', '/s?q=a%20b', '/s?q=a%2Bb', '/s?q=%2541']) assert.equal(check(c, exchange(ok, [], '/s')), undefined, ok);
    for (const bad of ['/s?q=A', '/s?q=%252541', '/s?q=a%2520b']) assert.equal(check(c, exchange(bad, [], '/s'))?.pointer, '/query/q', bad);
  });

  it('reads non-exploded, space- and pipe-delimited arrays, and refuses them repeated', () => {
    const t = doc(`paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: ids, in: query, explode: false, schema: { type: array, items: { type: integer } } }\n        - { name: sp, in: query, style: spaceDelimited, explode: false, schema: { type: array, items: { type: boolean } } }\n        - { name: pp, in: query, style: pipeDelimited, explode: false, schema: { type: array, items: { type: number }, minItems: 2 } }\n`);
    const c = contractOf(t, 's', '/s', ['GET']);
    assert.equal(check(c, exchange('/s?ids=1,2,3&sp=true%20false&pp=1.5|2', [], '/s')), undefined);
    assert.equal(check(c, exchange('/s?ids=1,2&ids=3', [], '/s'))?.pointer, '/query/ids');
    assert.equal(check(c, exchange('/s?ids=1,x', [], '/s'))?.pointer, '/query/ids');
    assert.equal(check(c, exchange('/s?sp=true+yes', [], '/s'))?.pointer, '/query/sp');
    assert.equal(check(c, exchange('/s?pp=1', [], '/s'))?.pointer, '/query/pp');
  });

  it('refuses a number parameter that passes its bounds only once rounded to a double', () => {
    const t = doc('paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: price, in: query, schema: { type: number, minimum: 0, maximum: 100 } }\n');
    const c = contractOf(t, 's', '/s', ['GET']);
    for (const ok of ['100', '99.5', '1e2', '0.1', '5e-324', '0']) assert.equal(check(c, exchange(`/s?price=${ok}`, [], '/s')), undefined, ok);
    // Each is outside the bounds as written, and inside once rounded (to 100, or to -0).
    for (const bad of ['100.0000000000000001', '100.00000000000000000001e0', '-1e-400', '-2e-324']) {
      assert.equal(check(c, exchange(`/s?price=${bad}`, [], '/s'))?.pointer, '/query/price', bad);
    }
  });

  it('refuses a missing required query parameter, with the name escaped in the pointer (RFC 6901)', () => {
    const t = doc("paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: 'a/b~c', in: query, required: true, schema: { type: string } }\n");
    const c = contractOf(t, 's', '/s', ['GET']);
    const d = check(c, exchange('/s?other=1', [], '/s'));
    assert.equal(d?.pointer, '/query/a~1b~0c');
    assert.match(d?.reason ?? '', /missing/);
    assert.equal(check(c, exchange('/s?a%2Fb~c=x', [], '/s')), undefined);
  });
});

describe('path, header and cookie parameters', () => {
  const text = readFileSync(PETSTORE, 'utf8');

  it('checks a path parameter at its segment, after a route prefix too', () => {
    const c = contractOf(text, 'showPetById', '/api/pets/{id}', ['GET']);
    assert.equal(check(c, exchange('/api/pets/12', [], '/api/pets/{id}')), undefined);
    for (const bad of ['/api/pets/0', '/api/pets/abc', '/api/pets/1.0', '/api/pets/%31%20', '/api/pets/-3', `/api/pets/${'1'.repeat(30)}`, '/api/pets/1%20']) {
      const d = check(c, exchange(bad, [], '/api/pets/{id}'));
      assert.equal(d?.code, 'invalid_parameter', bad);
      assert.equal(d.pointer, '/path/petId', bad);
    }
  });

  it('requires a declared header, case-insensitively, and refuses it repeated', () => {
    const c = contractOf(text, 'deletePet', '/pets/{petId}', ['DELETE']);
    assert.equal(check(c, exchange('/pets/1', [['x-confirm', 'delete']], '/pets/{petId}')), undefined);
    assert.equal(check(c, exchange('/pets/1', [['X-CONFIRM', 'delete']], '/pets/{petId}')), undefined);
    for (const headers of [[], [['X-Confirm', 'yes']], [['X-Confirm', 'delete'], ['x-confirm', 'delete']], [['X-Confirm', 'DELETE']]] as const) {
      assert.equal(check(c, exchange('/pets/1', headers, '/pets/{petId}'))?.pointer, '/header/X-Confirm', JSON.stringify(headers));
    }
  });

  it('checks a header parameter from components with a pattern', () => {
    const c = contractOf(text, 'createPet', '/pets', ['POST']);
    assert.equal(check(c, exchange('/pets', [['Idempotency-Key', 'a1b2c3d4e5f6a7b8']])), undefined);
    for (const key of ['short', 'a1b2c3d4e5f6a7b8!', 'x'.repeat(65)]) assert.equal(check(c, exchange('/pets', [['Idempotency-Key', key]]))?.pointer, '/header/Idempotency-Key', key);
  });

  it('reads header arrays as one comma-separated list, repeated fields folded', () => {
    const t = doc("paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: X-Ids, in: header, schema: { type: array, items: { type: integer }, maxItems: 3 } }\n");
    const c = contractOf(t, 's', '/s', ['GET']);
    assert.equal(check(c, exchange('/s', [['X-Ids', '1, 2'], ['X-Ids', '3']], '/s')), undefined);
    assert.equal(check(c, exchange('/s', [['X-Ids', '1, 2'], ['X-Ids', '3,4']], '/s'))?.pointer, '/header/X-Ids');
  });

  it('ignores Accept, Content-Type and Authorization header parameters (the gateway owns them)', () => {
    const t = doc("paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: Authorization, in: header, required: true, schema: { type: string } }\n");
    assert.equal(contractOf(t, 's', '/s', ['GET']).parameters, null);
  });

  it('checks cookies: required, typed, and refused when given twice', () => {
    const t = doc("paths:\n  /s:\n    get:\n      operationId: s\n      parameters:\n        - { name: session_kind, in: cookie, required: true, schema: { type: string, enum: [a, b] } }\n        - { name: page, in: cookie, schema: { type: integer } }\n");
    const c = contractOf(t, 's', '/s', ['GET']);
    assert.equal(check(c, exchange('/s', [['Cookie', 'x=1; session_kind=a; page=2']], '/s')), undefined);
    assert.equal(check(c, exchange('/s', [['Cookie', 'x=1']], '/s'))?.pointer, '/cookie/session_kind');
    assert.equal(check(c, exchange('/s', [['Cookie', 'session_kind=a; session_kind=b']], '/s'))?.pointer, '/cookie/session_kind');
    assert.equal(check(c, exchange('/s', [['Cookie', 'session_kind=a'], ['Cookie', 'session_kind=a']], '/s'))?.pointer, '/cookie/session_kind');
    assert.equal(check(c, exchange('/s', [['Cookie', 'session_kind=a; page=x']], '/s'))?.pointer, '/cookie/page');
  });

  it('lets operation parameters override path item parameters of the same name and location', () => {
    const t = doc("paths:\n  /s/{id}:\n    parameters:\n      - { name: id, in: path, required: true, schema: { type: integer } }\n    get:\n      operationId: s\n      parameters:\n        - { name: id, in: path, required: true, schema: { type: string, maxLength: 3 } }\n");
    const c = contractOf(t, 's', '/s/{id}', ['GET']);
    assert.equal(check(c, exchange('/s/abc', [], '/s/{id}')), undefined);
    assert.equal(check(c, exchange('/s/abcd', [], '/s/{id}'))?.pointer, '/path/id');
  });
});

describe('JSON bodies', () => {
  const text = readFileSync(PETSTORE, 'utf8');
  const create = contractOf(text, 'createPet', '/pets', ['POST']);
  const body = create.body;
  assert.ok(body !== null);

  it('gives the media types, JSON ones marked, and whether a body is required', () => {
    assert.deepEqual([...(create.mediaTypes ?? new Map()).entries()], [['application/json', { json: true, charsets: null }]]);
    assert.equal(create.bodyRequired, true);
    assert.equal(create.source, 'api.yaml#createPet');
    const update = contractOf(text, 'updatePet', '/pets/{petId}', ['PATCH']);
    assert.deepEqual([...(update.mediaTypes ?? new Map()).keys()], ['application/merge-patch+json']);
  });

  it('takes no body on an operation without requestBody (an empty set of media types)', () => {
    const list = contractOf(text, 'listPets', '/pets', ['GET']);
    assert.equal(list.mediaTypes?.size, 0);
    assert.equal(list.body, null);
    assert.equal(list.bodyRequired, false);
  });

  it('accepts other media types without parsing them', () => {
    const t = doc("paths:\n  /s:\n    post:\n      operationId: s\n      requestBody:\n        content:\n          application/json: { schema: { type: object } }\n          Application/Octet-Stream: {}\n          application/x-www-form-urlencoded: { schema: { type: object } }\n");
    const c = contractOf(t, 's', '/s', ['POST']);
    assert.deepEqual([...(c.mediaTypes ?? new Map()).entries()], [
      ['application/json', { json: true, charsets: null }], ['application/octet-stream', { json: false, charsets: null }], ['application/x-www-form-urlencoded', { json: false, charsets: null }],
    ]);
  });

  const bodies: readonly (readonly [string, unknown, string | null])[] = [
    ['a valid pet', { name: 'Rex', tags: ['dog'], birthDate: '2020-02-29', category: { name: 'dogs', parent: { name: 'mammals' } } }, null],
    ['a missing name', { tags: ['dog'] }, '/name'],
    ['an extra property', { name: 'Rex', owner: 'x' }, ''],
    ['a wrong type', { name: 7 }, '/name'],
    ['an empty name', { name: '' }, '/name'],
    ['an impossible date', { name: 'Rex', birthDate: '2021-02-29' }, '/birthDate'],
    ['a tag failing the shared pattern', { name: 'Rex', tags: ['ok', 'NOT OK'] }, '/tags/1'],
    ['a nested recursive failure', { name: 'Rex', category: { name: 'a', parent: { name: 'b', parent: { name: '' } } } }, '/category/parent/parent/name'],
    ['an array instead of an object', [{ name: 'Rex' }], ''],
    ['null', null, ''],
  ];
  for (const [what, value, pointer] of bodies) {
    it(`${pointer === null ? 'accepts' : 'refuses'} ${what}${pointer === null ? '' : ` at "${pointer}"`}`, () => {
      const failure = body(value);
      assert.equal(failure === null ? null : failure.pointer, pointer);
    });
  }

  it('escapes keys in pointers (RFC 6901) and bounds their length', () => {
    const t = doc("paths:\n  /s:\n    post:\n      operationId: s\n      requestBody:\n        content:\n          application/json:\n            schema: { type: object, additionalProperties: { type: object, additionalProperties: { type: integer } } }\n");
    const c = contractOf(t, 's', '/s', ['POST']);
    assert.equal(c.body?.({ 'a/b': { 'c~d': 'x' } })?.pointer, '/a~1b/c~0d');
    const long = 'k'.repeat(1100);
    const p = c.body?.({ [long]: { x: 'y' } })?.pointer;
    assert.equal(p, '', 'a pointer past the bound is cut to an enclosing location');
  });

  it('never puts a value of the request in a reason', () => {
    const marker = 'SECRET-VALUE-7f3kq9';
    const t = doc("paths:\n  /s/{id}:\n    post:\n      operationId: s\n      parameters:\n        - { name: id, in: path, required: true, schema: { type: string, pattern: '^[0-9]+$' } }\n        - { name: q, in: query, schema: { type: string, enum: [a], maxLength: 3 } }\n        - { name: X-H, in: header, schema: { type: string, format: email } }\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              propertyNames: { maxLength: 3 }\n              properties: { a: { const: 1 }, b: { type: string, format: uuid }, c: { type: string, pattern: '^x$' }, d: { not: { type: string } } }\n              dependentRequired: { a: [b] }\n");
    const c = contractOf(t, 's', '/s/{id}', ['POST']);
    const reasons = [
      check(c, exchange(`/s/${marker}`, [], '/s/{id}'))?.reason,
      check(c, exchange(`/s/1?q=${marker}`, [], '/s/{id}'))?.reason,
      check(c, exchange('/s/1', [['X-H', marker]], '/s/{id}'))?.reason,
      ...[{ [marker]: 1 }, { a: marker }, { b: marker }, { c: marker }, { d: marker }, { a: 1 }].map((v) => c.body?.(v)?.reason),
    ];
    for (const reason of reasons) {
      assert.ok(reason !== undefined && reason !== '', 'each input is refused');
      assert.ok(!reason.includes(marker), `no value in "${reason}"`);
    }
  });

  it('matches patterns in linear time: a catastrophic-backtracking pattern on a long input ends', { timeout: 20_000 }, () => {
    const t = doc("paths:\n  /s:\n    post:\n      operationId: s\n      requestBody:\n        content:\n          application/json:\n            schema: { type: string, pattern: '^(a+)+$' }\n");
    const c = contractOf(t, 's', '/s', ['POST']);
    assert.equal(c.body?.(`${'a'.repeat(50_000)}!`)?.pointer, '');
    assert.equal(c.body?.('a'.repeat(50_000)), null);
  });
});

/** A value planted in hostile requests: it must never come back in a response or a reason. */
const MARKER = 'MRK-91zq';

describe('validate.openapi through a real gateway and a loopback upstream', () => {
  let up: BodyUpstream;
  let gw: TestGateway;
  const route = (name: string, path: string, method: string, operation: string): Record<string, unknown> => ({
    name, match: { path, methods: [method] }, upstream: 'app', public: true, validate: { openapi: { document: 'petstore.yaml', operation } },
  });
  before(async () => {
    up = await startBodyUpstream();
    gw = await startGateway({
      upstreams: { app: { targets: [up.url] } },
      routes: [
        route('list', '/pets', 'GET', 'listPets'),
        route('create', '/pets', 'POST', 'createPet'),
        route('show', '/pets/{id}', 'GET', 'GET /pets/{petId}'),
        route('update', '/pets/{id}', 'PATCH', 'updatePet'),
        { ...route('remove', '/api/pets/*', 'DELETE', 'deletePet'), rewrite: { stripPrefix: '/api' } },
      ],
    }, { beforeStart: (dir) => copyFile(PETSTORE, join(dir, 'petstore.yaml')) });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  interface Answer { status: number; code: string | null; pointer: string | undefined; text: string; requestId: string }
  async function send(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
    const res = await request(`${gw.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.body.text();
    let code: string | null = null;
    let pointer: string | undefined;
    if (res.statusCode >= 400) {
      const problem = JSON.parse(text) as { type?: string; pointer?: string };
      code = problem.type?.split(':').at(-1) ?? null;
      pointer = problem.pointer;
    }
    return { status: res.statusCode, code, pointer, text, requestId: String(res.headers['x-request-id']) };
  }

  const KEY = { 'idempotency-key': 'a1b2c3d4e5f6a7b8' };
  const JSON_TYPE = { 'content-type': 'application/json' };
  /** [what, method, path, headers, body, status, code, pointer] */
  const refused: readonly (readonly [string, string, string, Record<string, string>, string | undefined, number, string, string | undefined])[] = [
    ['a query value above its maximum', 'GET', `/pets?limit=500&sort=${MARKER}`, {}, undefined, 400, 'invalid_parameter', '/query/limit'],
    ['a repeated query parameter', 'GET', '/pets?limit=5&limit=6', {}, undefined, 400, 'invalid_parameter', '/query/limit'],
    ['a query parameter spelt for a lenient server', 'GET', '/pets?limit=5&Limit=5000', {}, undefined, 400, 'invalid_parameter', '/query/limit'],
    ['an enum value outside the list', 'GET', `/pets?sort=${MARKER}`, {}, undefined, 400, 'invalid_parameter', '/query/sort'],
    ['an encoded NUL in a query value', 'GET', '/pets?sort=name%00', {}, undefined, 400, 'invalid_parameter', '/query/sort'],
    ['a path parameter that is not an integer', 'GET', `/pets/${MARKER}`, {}, undefined, 400, 'invalid_parameter', '/path/petId'],
    ['a missing required header', 'DELETE', '/api/pets/7', {}, undefined, 400, 'invalid_parameter', '/header/X-Confirm'],
    ['a required header with another value', 'DELETE', '/api/pets/7', { 'x-confirm': MARKER }, undefined, 400, 'invalid_parameter', '/header/X-Confirm'],
    ['a header failing its pattern', 'POST', '/pets', { 'idempotency-key': `${MARKER}!`, ...JSON_TYPE }, '{"name":"Rex"}', 400, 'invalid_parameter', '/header/Idempotency-Key'],
    ['a body missing a required member', 'POST', '/pets', { ...KEY, ...JSON_TYPE }, `{"tags":["${MARKER.toLowerCase()}"]}`, 422, 'schema_violation', '/name'],
    ['a body with an unknown member', 'POST', '/pets', { ...KEY, ...JSON_TYPE }, `{"name":"Rex","owner":"${MARKER}"}`, 422, 'schema_violation', ''],
    ['a nested recursive schema failure', 'POST', '/pets', { ...KEY, ...JSON_TYPE }, `{"name":"Rex","category":{"name":"a","parent":{"name":"${'x'.repeat(65)}"}}}`, 422, 'schema_violation', '/category/parent/name'],
    ['a body of a media type the operation does not take', 'POST', '/pets', { ...KEY, 'content-type': 'text/plain' }, MARKER, 415, 'unsupported_media_type', undefined],
    ['JSON where the operation takes merge-patch', 'PATCH', '/pets/3', JSON_TYPE, '{"name":"Rex"}', 415, 'unsupported_media_type', undefined],
    ['an empty merge patch', 'PATCH', '/pets/3', { 'content-type': 'application/merge-patch+json' }, '{}', 422, 'schema_violation', ''],
    ['no body where one is required', 'POST', '/pets', KEY, undefined, 400, 'invalid_body', ''],
    ['malformed JSON', 'POST', '/pets', { ...KEY, ...JSON_TYPE }, `{"name":"${MARKER}",}`, 400, 'invalid_body', ''],
  ];
  for (const [what, method, path, headers, body, status, code, pointer] of refused) {
    it(`refuses ${what} with ${status} ${code}${pointer === undefined ? '' : ` at "${pointer}"`}, forwarding nothing`, async () => {
      const before = up.received.length;
      const got = await send(method, path, headers, body);
      assert.equal(got.status, status, got.text);
      assert.equal(got.code, code);
      assert.equal(got.pointer, pointer);
      assert.ok(!got.text.includes(MARKER), 'no value of the request in the response');
      assert.equal(up.received.length, before, 'nothing forwarded');
      const records = await gw.auditFor(got.requestId);
      assert.equal(records.length, 1, 'one audit record');
      assert.equal(records[0]?.reason, code);
      assert.equal(records[0]?.decision, 'deny');
      assert.ok(!(records[0]?.detail ?? '').includes(MARKER), 'no value of the request in the audit detail');
    });
  }

  it('reads a header parameter once: a repeat, a _ twin or a Connection naming it is 400 ambiguous_header, forwarding nothing', async () => {
    // Each would have the upstream read another value than the one checked, or none at all.
    const cases: readonly (readonly string[])[] = [
      ['X-Confirm: delete', 'Connection: X-Confirm'],
      ['X-Confirm: delete', 'Connection: keep-alive, x-confirm'],
      ['X-Confirm: delete', `X_Confirm: ${MARKER}`],
      [`x_confirm: ${MARKER}`, 'X-Confirm: delete'],
      ['X-Confirm: delete', `X-Confirm: ${MARKER}`],
    ];
    for (const lines of cases) {
      const before = up.received.length;
      const got = await rawRequest(gw.port, requestHead('DELETE', '/api/pets/7', [...lines]));
      assert.equal(got.status, 400, `${lines.join(' | ')}: ${got.body}`);
      assert.equal((JSON.parse(got.body) as { type?: string }).type, 'urn:portcullis:error:ambiguous_header');
      assert.ok(!got.body.includes(MARKER));
      assert.equal(up.received.length, before, 'nothing forwarded');
      const records = await gw.auditFor(got.headers['x-request-id'] ?? '');
      assert.equal(records.length, 1, 'one audit record');
    }
    const ok = await rawRequest(gw.port, requestHead('DELETE', '/api/pets/7', ['X-Confirm: delete', 'Connection: close']));
    assert.equal(ok.status, 200, ok.body);
    assert.equal(up.received.at(-1)?.headers['x-confirm'], 'delete');
  });

  it('forwards conforming requests, the body byte for byte and the path as matched', async () => {
    const body = '{"name":"Rex","tags":["dog"],"category":{"name":"dogs","parent":{"name":"mammals"}}}';
    const created = await send('POST', '/pets', { ...KEY, ...JSON_TYPE }, body);
    assert.equal(created.status, 200, created.text);
    assert.equal(up.received.at(-1)?.body.toString('utf8'), body);
    for (const [method, path, headers] of [['GET', '/pets?limit=10&tag=dog&tag=cat&sort=age', {}], ['GET', '/pets/42', {}], ['DELETE', '/api/pets/42', { 'x-confirm': 'delete' }]] as const) {
      const got = await send(method, path, headers);
      assert.equal(got.status, 200, `${method} ${path}: ${got.text}`);
      assert.equal(up.received.at(-1)?.url, path.replace(/^\/api/, ''));
    }
    const patched = await send('PATCH', '/pets/3', { 'content-type': 'application/merge-patch+json' }, '{"tags":[]}');
    assert.equal(patched.status, 200, patched.text);
  });
});

describe('validate.openapi config errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-openapi-config-'));
    await copyFile(PETSTORE, join(dir, 'petstore.yaml'));
    await writeFile(join(dir, 'v30.yaml'), 'openapi: 3.0.3\ninfo: { title: t, version: "1" }\npaths: {}\n');
    await writeFile(join(dir, 'remote.yaml'), doc("paths:\n  /pets:\n    get:\n      operationId: listPets\n      parameters:\n        - $ref: 'https://evil.example/params.yaml#/limit'\n"));
    await writeFile(join(dir, 'big.yaml'), `openapi: 3.1.0\n#${'x'.repeat(4 * 1024 * 1024)}\n`);
  });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  const config = (validate: string, path = '/pets', methods = '[GET]'): string => `upstreams:
  app: { targets: [http://127.0.0.1:3001] }
routes:
  - name: pets
    match: { path: "${path}", methods: ${methods} }
    upstream: app
    public: true
    validate:
${validate}`;
  const problems = (validate: string, path?: string, methods?: string): string[] => configProblems(config(validate, path, methods), {}, join(dir, 'gateway.yaml'));

  it('loads a route validated against an operation', () => {
    assert.deepEqual(problems('      openapi: { document: petstore.yaml, operation: listPets }\n'), []);
    assert.deepEqual(problems('      openapi: { document: petstore.yaml, operation: "GET /pets/{petId}" }\n      json: { maxDepth: 8 }\n', '/v1/pets/{id}'), []);
  });

  const cases: readonly (readonly [string, string, string | undefined, string | undefined, RegExp])[] = [
    ['a missing document', '      openapi: { document: missing.yaml, operation: listPets }\n', undefined, undefined, /gateway\.yaml:9:\d+: routes\[0\]\.validate\.openapi\.document: cannot read missing\.yaml: ENOENT.*relative to this config/],
    ['a document over 4 MiB', '      openapi: { document: big.yaml, operation: listPets }\n', undefined, undefined, /validate\.openapi\.document: cannot read big\.yaml: EFBIG/],
    ['an OpenAPI 3.0 document', '      openapi: { document: v30.yaml, operation: listPets }\n', undefined, undefined, /validate\.openapi\.document: v30\.yaml:1: openapi is "3\.0\.3"; only OpenAPI 3\.1\.x/],
    ['a remote reference', '      openapi: { document: remote.yaml, operation: listPets }\n', undefined, undefined, /validate\.openapi\.document: remote\.yaml:8: \$ref "https:\/\/evil\.example\/params\.yaml#\/limit" is not a local reference/],
    ['an unknown operation', '      openapi: { document: petstore.yaml, operation: listCats }\n', undefined, undefined, /validate\.openapi\.operation: petstore\.yaml:8: no operation with operationId "listCats"/],
    ['a route path that does not fit', '      openapi: { document: petstore.yaml, operation: showPetById }\n', '/pets/{id}/photos', undefined, /validate\.openapi\.operation: petstore\.yaml:\d+: the route's path \/pets\/\{id\}\/photos does not fit/],
    ['route methods that are not the operation\'s', '      openapi: { document: petstore.yaml, operation: listPets }\n', undefined, '[GET, POST]', /validate\.openapi\.operation: .*takes GET \(and HEAD\) only/],
    ['contentTypes beside openapi', '      openapi: { document: petstore.yaml, operation: listPets }\n      contentTypes: [application/json]\n', undefined, undefined, /validate\.contentTypes: the OpenAPI operation .* gives the accepted media types: remove contentTypes/],
    ['jsonSchema beside openapi', '      openapi: { document: petstore.yaml, operation: listPets }\n      jsonSchema: { type: object }\n', undefined, undefined, /validate\.jsonSchema: .*remove jsonSchema/],
    ['an unknown option under openapi', '      openapi: { document: petstore.yaml, operation: listPets, strict: false }\n', undefined, undefined, /validate\.openapi/],
  ];
  for (const [what, validate, path, methods, message] of cases) {
    it(`refuses ${what}, naming the option and the document's line`, () => {
      const got = problems(validate, path, methods);
      assert.ok(got.some((p) => message.test(p)), got.join('\n'));
    });
  }
});
