import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Identity } from '../src/authn/identity.js';
import type { KeySource } from '../src/authn/jwt/key-source.js';
import { MAX_CACHED_TOKEN_BYTES, VerifiedTokenCache } from '../src/authn/jwt/token-cache.js';

const identity = (subject: string): Identity => ({
  subject, method: 'jwt', authenticator: 'users', keyId: null, roles: [], scopes: [], tenant: null, tier: null, claims: null, claimHeaders: [], bearerRealm: 'portcullis',
});

/** A key source whose revision the test moves. */
class Source implements KeySource {
  revision = 1;
  keysFor(): never[] { return []; }
}

describe('verified-token cache', () => {
  it('never serves a token at or past its exp', () => {
    const cache = new VerifiedTokenCache(10);
    const source = new Source();
    cache.set('t', identity('a'), 1000, 0, source, source.revision);
    assert.equal(cache.get('t', 999_999)?.subject, 'a');
    assert.equal(cache.get('t', 1_000_000), undefined);
    assert.equal(cache.size, 0, 'the expired entry is dropped');
  });

  it('drops entries once the issuer key set changed', () => {
    const cache = new VerifiedTokenCache(10);
    const source = new Source();
    cache.set('t', identity('a'), 5000, 0, source, source.revision);
    assert.ok(cache.get('t', 1) !== undefined);
    source.revision++;
    assert.equal(cache.get('t', 1), undefined);
  });

  it('is bounded: the oldest entry goes first; 0 disables it; long tokens are not kept', () => {
    const cache = new VerifiedTokenCache(3);
    const source = new Source();
    for (const t of ['a', 'b', 'c', 'd']) cache.set(t, identity(t), 5000, 0, source, 1);
    assert.equal(cache.size, 3);
    assert.equal(cache.get('a', 1), undefined);
    assert.equal(cache.get('d', 1)?.subject, 'd');
    const off = new VerifiedTokenCache(0);
    off.set('a', identity('a'), 5000, 0, source, 1);
    assert.equal(off.size, 0);
    cache.set('x'.repeat(MAX_CACHED_TOKEN_BYTES + 1), identity('long'), 5000, 0, source, 1);
    assert.equal(cache.get('x'.repeat(MAX_CACHED_TOKEN_BYTES + 1), 1), undefined);
  });

  it('re-verifies a token without exp at least every minute', () => {
    const cache = new VerifiedTokenCache(10);
    const source = new Source();
    cache.set('t', identity('a'), null, 0, source, 1);
    assert.ok(cache.get('t', 59_999) !== undefined);
    assert.equal(cache.get('t', 60_000), undefined);
  });
});
