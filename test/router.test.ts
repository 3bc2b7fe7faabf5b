import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePattern, extractParams } from '../src/routing/pattern.js';
import { Router, type Routable } from '../src/routing/router.js';
import { parseTarget } from '../src/http/target.js';

interface TestRoute extends Routable { readonly name: string }

function route(name: string, path: string, methods: string[] | null, host: string | null = null): TestRoute {
  return { name, pattern: compilePattern(path, false), methods: methods === null ? null : new Set(methods), host };
}

const routes = [
  route('orders-list', '/api/orders', ['GET']),
  route('orders-create', '/api/orders', ['POST']),
  route('order', '/api/orders/{id}', ['GET']),
  route('order-items', '/api/orders/*/items', ['GET']),
  route('api-any', '/api/**', null),
  route('root', '/', ['GET']),
  route('only-get', '/only', ['GET', 'HEAD']),
  route('cdn-exact', '/static/**', ['GET'], 'cdn.example.com'),
  route('cdn-wild', '/static/**', ['GET'], '*.example.com'),
  route('static', '/static/**', ['GET']),
  route('user-file', '/users/{user}/files/{file}', ['GET']),
  route('files-literal', '/users/me/files/{file}', ['GET']),
];
const router = new Router(routes);

function match(path: string, method = 'GET', host = 'api.test'): string {
  const target = parseTarget(path, { mergeSlashes: true, allowSemicolon: false, maxUrlBytes: 8192 });
  assert.ok(!('code' in target));
  const result = router.match(target.segments, method, host);
  if (result.kind === 'found') return result.route.name;
  if (result.kind === 'method_not_allowed') return `405 ${result.allow.join(',')}`;
  return '404';
}

// [method, path, host, expected route | 404 | 405 Allow]
const CASES: [string, string, string, string][] = [
  ['GET', '/api/orders', 'api.test', 'orders-list'],
  ['POST', '/api/orders', 'api.test', 'orders-create'],
  // The most specific path decides: no fall-through to the catch-all's other policy.
  ['DELETE', '/api/orders', 'api.test', '405 GET,POST'],
  ['GET', '/api/orders/42', 'api.test', 'order'],
  ['PUT', '/api/orders/42', 'api.test', '405 GET'],
  ['PUT', '/api/orders/42/items', 'api.test', '405 GET'],
  ['DELETE', '/static/app.js', 'cdn.example.com', '405 GET'],
  ['DELETE', '/static/app.js', 'evil.com', '405 GET'],
  ['GET', '/api/orders/42/items', 'api.test', 'order-items'],
  ['GET', '/api/orders/42/other', 'api.test', 'api-any'],
  ['GET', '/api/orders/', 'api.test', 'api-any'],
  ['GET', '/api', 'api.test', 'api-any'],
  ['GET', '/api/', 'api.test', 'api-any'],
  ['GET', '/API/orders', 'api.test', '404'],
  ['GET', '/', 'api.test', 'root'],
  ['POST', '/', 'api.test', '405 GET'],
  ['GET', '/nothing', 'api.test', '404'],
  ['GET', '/only', 'api.test', 'only-get'],
  ['POST', '/only', 'api.test', '405 GET,HEAD'],
  ['GET', '/only/', 'api.test', '404'],
  ['GET', '/static/app.js', 'cdn.example.com', 'cdn-exact'],
  ['GET', '/static/app.js', 'img.example.com', 'cdn-wild'],
  ['GET', '/static/app.js', 'example.com', 'static'],
  ['GET', '/static/app.js', 'evil.com', 'static'],
  ['GET', '/static/app.js', 'cdn.example.com.evil.com', 'static'],
  ['GET', '/users/me/files/a.txt', 'api.test', 'files-literal'],
  ['GET', '/users/bob/files/a.txt', 'api.test', 'user-file'],
  ['GET', '/users/bob/files/', 'api.test', '404'],
  ['GET', '/api/orders/%34%32', 'api.test', 'order'],
];

describe('route matching', () => {
  for (const [method, path, host, expected] of CASES) {
    it(`${method} ${path} on ${host} → ${expected}`, () => {
      assert.equal(match(path, method, host), expected);
    });
  }

  it('extracts {param} values from the canonical path', () => {
    const target = parseTarget('/users/b%C3%B6b/files/r%65port.pdf', { mergeSlashes: true, allowSemicolon: false, maxUrlBytes: 8192 });
    assert.ok(!('code' in target));
    const result = router.match(target.segments, 'GET', 'x');
    assert.equal(result.kind, 'found');
    if (result.kind !== 'found') return;
    assert.deepEqual(extractParams(result.route.pattern, target.segments), { user: 'b%C3%B6b', file: 'report.pdf' });
  });

  it('rejects invalid patterns with a precise message', () => {
    const bad: [string, RegExp][] = [
      ['api', /must start with/],
      ['/a/**/b', /last segment/],
      ['/a/{id}/{id}', /twice/],
      ['/a/x*', /mixes literal text/],
      ['/a/%2F', /encoded slash/],
      ['/a/../b', /dot segment/],
      ['/a?x', /query/],
      ['/a;b', /semicolon/],
    ];
    for (const [pattern, message] of bad) assert.throws(() => compilePattern(pattern, false), message, pattern);
  });

  it('canonicalises literal pattern segments like request paths', () => {
    assert.equal(compilePattern('/%61pi/%7e', false).shape, '/api/~');
    assert.equal(compilePattern('/a/{x}/*/**', false).shape, '/a/*/*/**');
  });
});
