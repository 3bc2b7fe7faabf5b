import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayPrefix, hashKey, isKeyId, MAX_KEY_LENGTH, newKey, newKeyId, parseKey } from '../src/authn/api-key/key-format.js';
import { formatDuration, parseDuration } from '../src/lib/duration.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

describe('API key format', () => {
  it('is pk_<env>_<id>_<secret+checksum> and parses back to its id', () => {
    const id = newKeyId();
    const key = newKey('live', id);
    assert.match(key, /^pk_live_[0-9a-z]{16}_[0-9A-Za-z]{49}$/);
    assert.ok(key.length <= MAX_KEY_LENGTH);
    assert.deepEqual(parseKey(key, 'live'), { ok: true, id, environment: 'live' });
    assert.equal(displayPrefix('live', id), `pk_live_${id}`);
    assert.ok(isKeyId(id));
  });

  it('draws secrets uniformly: every base62 character appears, at about the expected rate', () => {
    const counts = new Map<string, number>();
    const keys = 2000;
    for (let i = 0; i < keys; i++) {
      const secret = newKey('test').split('_')[3]?.slice(0, 43) ?? '';
      for (const ch of secret) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    }
    assert.equal(counts.size, 62, 'all 62 characters occur');
    const expected = (keys * 43) / 62;
    for (const ch of BASE62) {
      const n = counts.get(ch) ?? 0;
      // ±25 % of ~1387: a modulo-biased generator (256 % 62 = 8 favoured characters) sits ~+23 % on those.
      assert.ok(Math.abs(n - expected) < expected * 0.25, `${ch}: ${n} vs ${expected.toFixed(0)}`);
    }
    assert.notEqual(newKey('test', 'aaaaaaaaaaaaaaaa'), newKey('test', 'aaaaaaaaaaaaaaaa'));
  });

  it('rejects every single-character change by checksum or shape, before any lookup', () => {
    const key = newKey('live');
    for (let i = 0; i < key.length; i++) {
      const original = key[i] as string;
      const replacement = original === 'a' ? 'b' : original === '_' ? 'x' : 'a';
      const mutated = key.slice(0, i) + replacement + key.slice(i + 1);
      const parsed = parseKey(mutated, 'live');
      assert.equal(parsed.ok, false, `position ${i}`);
      if (!parsed.ok && parsed.reason === 'api_key_wrong_environment') assert.ok(i < 8, 'only an environment change can look like another environment');
    }
  });

  it('names what is wrong: malformed (shape, checksum, length, case) or another environment', () => {
    const key = newKey('live');
    const reason = (k: string, env = 'live') => { const p = parseKey(k, env); return p.ok ? 'ok' : `${p.reason}: ${p.detail}`; };
    assert.match(reason(key.slice(0, -1)), /^api_key_malformed: not of the form/);
    assert.match(reason(key.toUpperCase()), /^api_key_malformed/);
    const swapped = key.slice(0, 25) + key.slice(25).replace(/[a-zA-Z]/g, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
    if (swapped !== key) assert.match(reason(swapped), /^api_key_malformed: checksum mismatch/);
    assert.match(reason(` ${key}`), /^api_key_malformed/);
    assert.match(reason(`${key} `), /^api_key_malformed/);
    assert.match(reason('x'.repeat(10_000)), /^api_key_malformed: longer than/);
    assert.match(reason(key.slice(0, -6) + 'AAAAAA'), /^api_key_malformed: checksum mismatch/);
    assert.match(reason(key.replace('pk_live_', 'pk_lïve_')), /^api_key_malformed/);
    assert.match(reason(key, 'test'), /^api_key_wrong_environment: key of environment "live"/);
    assert.match(reason(newKey('test')), /^api_key_wrong_environment/);
  });

  it('hashes the whole key with SHA-256', () => {
    const key = newKey('live');
    assert.equal(hashKey(key).length, 32);
    assert.ok(!hashKey(key).equals(hashKey(newKey('live'))));
  });

  it('refuses to build keys with a bad environment or id', () => {
    assert.throws(() => newKey('Live'));
    assert.throws(() => newKey('live', 'short'));
  });
});

describe('durations', () => {
  it('reads 45s, 30m, 24h, 90d and nothing else', () => {
    assert.equal(parseDuration('45s'), 45_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration('90d'), 7_776_000_000);
    assert.equal(parseDuration('0s'), 0);
    for (const bad of ['', '00d', '1', 'd', '1w', '1.5h', '-1d', '1d ', '01d', '9999999d']) assert.equal(parseDuration(bad), null, bad);
    assert.equal(formatDuration(7_776_000_000), '90d');
    assert.equal(formatDuration(5_400_000), '90m');
  });
});
