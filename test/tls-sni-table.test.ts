// The SNI lookup: exact names first, then a wildcard of the parent; one label only, never the apex.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSecureContext } from 'node:tls';
import { isServerName, normaliseServerName, SniTable } from '../src/tls/sni-table.js';

describe('SNI table', () => {
  const exact = createSecureContext();
  const wild = createSecureContext();
  const table = new SniTable();
  table.add('api.example.com', exact);
  table.add('*.example.com', wild);

  const cases: [string | undefined, unknown][] = [
    ['api.example.com', exact],
    ['API.Example.COM', exact],
    ['api.example.com.', exact],
    ['www.example.com', wild],
    ['example.com', null],
    ['a.b.example.com', null],
    ['example.com.evil.test', null],
    ['xexample.com', null],
    ['', null],
    [undefined, null],
  ];
  for (const [name, expected] of cases) {
    it(`${JSON.stringify(name)} → ${expected === exact ? 'exact' : expected === wild ? 'wildcard' : 'default'}`, () => {
      assert.equal(table.lookup(name), expected);
    });
  }

  it('refuses a name it holds already', () => {
    assert.equal(table.add('api.example.com', wild), false);
    assert.equal(table.add('*.example.com', exact), false);
    assert.equal(table.lookup('api.example.com'), exact);
  });

  it('accepts DNS names and one-label wildcards only', () => {
    for (const ok of ['a.example', 'x-1.example.com', '*.example.com', 'localhost']) assert.ok(isServerName(normaliseServerName(ok)), ok);
    for (const bad of ['*.com', '*', 'a.*.example.com', '*a.example.com', 'a..b', '-a.example', 'a b.example', 'a/b', 'x'.repeat(64) + '.example']) {
      assert.equal(isServerName(normaliseServerName(bad)), false, bad);
    }
  });
});
