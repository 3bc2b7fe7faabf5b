// Return URLs after login and logout: only a same-origin path reaches `Location`, whatever
// spelling an open redirect (CWE-601) is tried with.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_RETURN_PATH_LENGTH, safeReturnPath } from '../src/authn/oidc/return-path.js';

const HOSTILE: readonly (readonly [string, string | null | undefined])[] = [
  ['scheme-relative', '//evil.com'],
  ['three slashes', '///evil.com'],
  ['slash backslash', '/\\evil.com'],
  ['backslash slash', '\\/evil.com'],
  ['two backslashes', '\\\\evil.com'],
  ['backslash later in the path', '/ok/\\evil.com'],
  ['tab between slashes (browsers strip it)', '/\t/evil.com'],
  ['newline between slashes', '/\n/evil.com'],
  ['carriage return between slashes', '/\r/evil.com'],
  ['NUL', '/ok\u0000'],
  ['DEL', '/ok\u007f'],
  ['tab later in the query', '/ok?a=\tb'],
  ['encoded tab between slashes', '/%09/evil.com'],
  ['encoded newline', '/%0a/evil.com'],
  ['encoded carriage return, upper case', '/%0D/evil.com'],
  ['encoded NUL', '/ok%00'],
  ['encoded slashes', '/%2F%2Fevil.com'],
  ['encoded slashes, lower case', '/%2f%2fevil.com'],
  ['only encoded slashes', '%2F%2Fevil.com'],
  ['encoded slash in the query', '/ok?next=%2F%2Fevil.com'],
  ['encoded backslash', '/%5Cevil.com'],
  ['double-encoded backslash', '/%255Cevil.com'],
  ['double-encoded slash', '/%252F%252Fevil.com'],
  ['triple-encoded slash', '/%25252fevil.com'],
  ['double-encoded tab', '/%2509/evil.com'],
  ['encoded dots', '/%2e%2e//evil.com'],
  ['encoded dot, upper case', '/%2E/ok'],
  ['bare percent', '/ok%'],
  ['percent with one hex digit', '/ok%2'],
  ['percent with non-hex', '/ok%zz'],
  ['absolute https', 'https://evil.com'],
  ['absolute http without slashes', 'http:evil.com'],
  ['upper-case scheme', 'HTTPS://evil.com'],
  ['javascript', 'javascript:alert(1)'],
  ['data', 'data:text/html,x'],
  ['leading space', ' /ok'],
  ['leading tab', '\t/ok'],
  ['dot segment then scheme-relative', '/.//evil.com'],
  ['dot-dot segment then scheme-relative', '/..//evil.com'],
  ['deeper dot-dot then scheme-relative', '/a/../..//evil.com'],
  ['dot segment then backslash', '/./\\evil.com'],
  ['fullwidth solidus', '\uff0f\uff0fevil.com'],
  ['slash then fullwidth solidus', '/\uff0fevil.com'],
  ['non-ASCII in the path', '/caf\u00e9'],
  ['right-to-left override', '/ok\u202e'],
  ['too long', `/${'a'.repeat(2999)}`],
  ['one over the bound', `/${'a'.repeat(MAX_RETURN_PATH_LENGTH)}`],
  ['empty', ''],
  ['query only', '?a=b'],
  ['fragment only', '#x'],
  ['relative path', 'ok'],
  ['dot-relative path', './ok'],
  ['null', null],
  ['undefined', undefined],
];

const ACCEPTED: readonly (readonly [string, string, string])[] = [
  ['root', '/', '/'],
  ['a path', '/app', '/app'],
  ['a query with an escape', '/app?x=1&y=%20', '/app?x=1&y=%20'],
  ['nested path', '/a/b/c', '/a/b/c'],
  ['a fragment is dropped', '/ok#frag', '/ok'],
  ['a percent-encoded percent followed by a harmless escape', '/search?q=100%2520', '/search?q=100%2520'],
  ['an at sign is a path segment here, not user information', '/@evil.com', '/@evil.com'],
  ['a colon in a later segment', '/a/http://evil.com', '/a/http://evil.com'],
  ['dot segments that stay on a single slash', '/a/./b/../c', '/a/c'],
  ['dot-dot above the root', '/../ok', '/ok'],
  ['an empty query is dropped', '/app?', '/app'],
  ['a space is encoded', '/a b?c d', '/a%20b?c%20d'],
  ['quotes and angle brackets are encoded', '/"<x>"?\'', '/%22%3Cx%3E%22?%27'],
  ['a path at the bound', `/${'a'.repeat(MAX_RETURN_PATH_LENGTH - 1)}`, `/${'a'.repeat(MAX_RETURN_PATH_LENGTH - 1)}`],
];

describe('safeReturnPath', () => {
  for (const [label, raw] of HOSTILE) {
    it(`refuses ${label}: ${JSON.stringify(raw)}`, () => {
      assert.equal(safeReturnPath(raw), null);
    });
  }

  for (const [label, raw, emitted] of ACCEPTED) {
    it(`accepts ${label}: ${JSON.stringify(raw).slice(0, 60)}`, () => {
      assert.equal(safeReturnPath(raw), emitted);
    });
  }

  it('emits a form that is itself accepted unchanged, and that stays on the origin in a browser URL parser', () => {
    for (const [, raw] of ACCEPTED) {
      const emitted = safeReturnPath(raw);
      assert.ok(emitted !== null);
      assert.equal(safeReturnPath(emitted), emitted);
      const base = 'https://gateway.example';
      const resolved = new URL(emitted, base);
      assert.equal(resolved.origin, base);
      assert.ok(!resolved.pathname.startsWith('//'));
    }
  });

  it('never emits a value that leaves the origin, for every two-character prefix of hostile characters', () => {
    const pieces = ['/', '\\', '\t', '\n', '.', '%2f', '%5c', '%09', '%2e', '%25', '@', ':', '?', '#', ' ', 'e'];
    const base = 'https://gateway.example';
    for (const a of pieces) for (const b of pieces) for (const c of pieces) {
      const raw = `/${a}${b}${c}evil.com`;
      const emitted = safeReturnPath(raw);
      if (emitted === null) continue;
      assert.equal(new URL(emitted, base).origin, base, raw);
      assert.ok(emitted.startsWith('/') && !emitted.startsWith('//'), raw);
      assert.ok(!/[\\\t\n\r]/.test(emitted), raw);
    }
  });
});
