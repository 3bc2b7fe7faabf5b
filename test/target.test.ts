import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget, type TargetOptions } from '../src/http/target.js';

const STRICT: TargetOptions = { mergeSlashes: true, allowSemicolon: false, maxUrlBytes: 8192 };

// [raw target, canonical path, query] — accepted and normalised once.
const ACCEPTED: [string, string, string][] = [
  ['/', '/', ''],
  ['/a/b', '/a/b', ''],
  ['/a/b/', '/a/b/', ''],
  ['/A/B', '/A/B', ''],
  ['/a/./b', '/a/b', ''],
  ['/a/../b', '/b', ''],
  ['/a/b/..', '/a/', ''],
  ['/a/b/.', '/a/b/', ''],
  ['/./a', '/a', ''],
  ['/a/%2e/b', '/a/b', ''],
  ['/a/%2E%2e/b', '/b', ''],
  ['/a/.%2E/b', '/b', ''],
  ['/a/%2e%2E', '/', ''],
  ['//a///b', '/a/b', ''],
  ['/a//', '/a/', ''],
  ['/%61%62c', '/abc', ''],
  ['/a%7e%7E', '/a~~', ''],
  ['/a%20b', '/a%20b', ''],
  ['/a%2a%2A', '/a%2A%2A', ''],
  ['/%252e%252e/x', '/%252e%252e/x', ''],
  ['/%252F', '/%252F', ''],
  ['/caf%C3%A9', '/caf%C3%A9', ''],
  ['/caf%c3%a9', '/caf%C3%A9', ''],
  ['/a...', '/a...', ''],
  ['/a/...', '/a/...', ''],
  ['/a.', '/a.', ''],
  ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ''],
  ['/a?x=1&y=%2F..', '/a', '?x=1&y=%2F..'],
  ['/a?', '/a', '?'],
  ['/a/../b?q=/../', '/b', '?q=/../'],
  ['/a?x=[1]|{2}', '/a', '?x=[1]|{2}'],
];

// [raw target, reason code] — rejected before routing.
const REJECTED: [string, string][] = [
  ['', 'invalid_target'],
  ['http://evil.example/a', 'invalid_target'],
  ['HTTP://evil.example/a', 'invalid_target'],
  ['evil.example:443', 'invalid_target'],
  ['*', 'invalid_target'],
  ['a/b', 'invalid_target'],
  ['/a%2Fb', 'ambiguous_path'],
  ['/a%2fb', 'ambiguous_path'],
  ['/a%5Cb', 'ambiguous_path'],
  ['/adm%3B/x', 'ambiguous_path'], // `;` once a hop decodes it: a matrix parameter to Tomcat or Spring
  ['/adm%3bjsessionid=1/users', 'ambiguous_path'],
  ['/a%5cb', 'ambiguous_path'],
  ['/a\\b', 'ambiguous_path'],
  ['/..', 'ambiguous_path'],
  ['/a/../../b', 'ambiguous_path'],
  ['/%2e%2e/x', 'ambiguous_path'],
  ['/%2E%2E/etc/passwd', 'ambiguous_path'],
  ['/a;b', 'ambiguous_path'],
  ['/public/..;/admin', 'ambiguous_path'],
  ['/admin;jsessionid=1', 'ambiguous_path'],
  ['/a%00b', 'invalid_target'],
  ['/a\u0000b', 'invalid_target'],
  ['/a%0d%0aX-Injected:%201', 'invalid_target'],
  ['/a%0A', 'invalid_target'],
  ['/a%09', 'invalid_target'],
  ['/a%7F', 'invalid_target'],
  ['/a\tb', 'invalid_target'],
  ['/a\rb', 'invalid_target'],
  ['/a b', 'invalid_target'],
  ['/a#frag', 'invalid_target'],
  ['/a"b', 'invalid_target'],
  ['/a<b>', 'invalid_target'],
  ['/a{b}', 'invalid_target'],
  ['/é', 'invalid_target'],
  ['/a%', 'invalid_target'],
  ['/a%2', 'invalid_target'],
  ['/a%zz', 'invalid_target'],
  ['/a%G0', 'invalid_target'],
  ['/a%%32%65', 'invalid_target'],
  ['/%C0%AF', 'invalid_target'],
  ['/%C0%AE%C0%AE/etc', 'invalid_target'],
  ['/%E0%80%AF', 'invalid_target'],
  ['/%ED%A0%80', 'invalid_target'],
  ['/%FF', 'invalid_target'],
  ['/%E2%82', 'invalid_target'],
  ['/%C3', 'invalid_target'],
  ['/a?b c', 'invalid_target'],
  ['/a?b\u0000', 'invalid_target'],
  ['/a?b#c', 'invalid_target'],
  ['/a?b\\c', 'invalid_target'],
  ['/a?é', 'invalid_target'],
];

describe('target parsing', () => {
  for (const [raw, path, query] of ACCEPTED) {
    it(`accepts ${JSON.stringify(raw)} as ${path}`, () => {
      const target = parseTarget(raw, STRICT);
      assert.ok(!('code' in target), `rejected: ${JSON.stringify(target)}`);
      assert.equal(target.path, path);
      assert.equal(target.query, query);
      assert.equal('/' + target.segments.join('/'), path, 'segments spell the same path');
    });
  }
  for (const [raw, code] of REJECTED) {
    it(`rejects ${JSON.stringify(raw)} with ${code}`, () => {
      const target = parseTarget(raw, STRICT);
      assert.ok('code' in target, `accepted as ${JSON.stringify(target)}`);
      assert.equal(target.code, code);
      assert.ok(target.reason.length > 0, 'a private reason is recorded');
    });
  }

  it('never decodes twice: the canonical path is a fixed point', () => {
    for (const [raw] of ACCEPTED) {
      const once = parseTarget(raw, STRICT);
      assert.ok(!('code' in once));
      const twice = parseTarget(once.path, STRICT);
      assert.ok(!('code' in twice));
      assert.equal(twice.path, once.path, `re-parsing ${once.path} changed it`);
    }
  });

  it('keeps empty segments when mergeSlashes is off', () => {
    const target = parseTarget('//a//b', { ...STRICT, mergeSlashes: false });
    assert.ok(!('code' in target));
    assert.equal(target.path, '//a//b');
  });

  it('accepts matrix parameters only when allowSemicolon is on, and still rejects dot segments with parameters', () => {
    const lax = { ...STRICT, allowSemicolon: true };
    const ok = parseTarget('/a;b=c/d', lax);
    assert.ok(!('code' in ok));
    assert.equal(ok.path, '/a;b=c/d');
    for (const raw of ['/public/..;/admin', '/x/.;a/y', '/x/..%3B/y', '/x/..%3b']) {
      const target = parseTarget(raw, lax);
      assert.ok('code' in target, raw);
      assert.equal(target.code, 'ambiguous_path');
    }
  });

  it('answers 414 past maxUrlBytes, counting the query', () => {
    const long = '/a?' + 'x'.repeat(100);
    const target = parseTarget(long, { ...STRICT, maxUrlBytes: 50 });
    assert.ok('code' in target);
    assert.equal(target.code, 'uri_too_long');
    assert.ok(!('code' in parseTarget(long, { ...STRICT, maxUrlBytes: long.length })));
  });
});
