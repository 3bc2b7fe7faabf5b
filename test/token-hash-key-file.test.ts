// The token hash key without oauth.tokenHashKey: made once in dataDir (0700 directory, 0600 file),
// the same for every process of the host and every restart, and a damaged file is an operator
// error naming the path, never a silently new key (which would forget every revocation).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TokenDigester } from '../src/authn/oauth/token-digest.js';
import { readOrCreate, TokenHashKeyFile, tokenHashKeyPath } from '../src/authn/oauth/token-hash-key-file.js';
import { OperatorError } from '../src/lib/operator-error.js';

describe('the token hash key file', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-key-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('is made at first start, private, and read alike by every later start', async () => {
    const path = tokenHashKeyPath(dataDir);
    const first = new TokenHashKeyFile(path);
    const second = new TokenHashKeyFile(path);
    const before = new TokenDigester(first).ofToken('t');
    await first.start();
    await second.start();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(path)).mode & 0o777, 0o700);
    assert.deepEqual(first.tokenHashKey, second.tokenHashKey);
    assert.equal(new TokenDigester(first).ofToken('t'), new TokenDigester(second).ofToken('t'));
    assert.notEqual(new TokenDigester(first).ofToken('t'), before, 'the key of an unstarted file is a throwaway one');
    assert.equal(readFileSync(path, 'utf8').trim(), first.tokenHashKey.toString('utf8'));
  });

  it('refuses a damaged key file, naming it, instead of making a new key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-key-'));
    try {
      const path = tokenHashKeyPath(dir);
      readOrCreate(path);
      writeFileSync(path, 'short\n');
      assert.throws(() => readOrCreate(path), (err: unknown) => err instanceof OperatorError && err.message.includes(path) && /does not hold a key/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the path and the fix when dataDir cannot be written', () => {
    const blocker = join(dataDir, 'not-a-dir');
    writeFileSync(blocker, '');
    assert.throws(() => readOrCreate(tokenHashKeyPath(blocker)), (err: unknown) => err instanceof OperatorError && /cannot be used/.test(err.message) && /oauth\.tokenHashKey/.test(err.message));
  });
});

describe('token digests', () => {
  it('are HMAC-SHA256(key, token hash) for keys shorter than, equal to and longer than a block, and for any token', async () => {
    const { createHmac, randomBytes } = await import('node:crypto');
    const { tokenHash } = await import('../src/authn/oauth/token-digest.js');
    for (const keyLength of [1, 32, 63, 64, 65, 200, 512]) {
      const key = randomBytes(keyLength);
      const digester = new TokenDigester(key);
      for (const token of ['a', 'opaque-token', 'x'.repeat(5000), 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln', 'ünïcödé']) {
        const expected = createHmac('sha256', key).update(tokenHash(token), 'ascii').digest('base64url');
        assert.equal(digester.ofToken(token), expected, `key of ${keyLength} bytes, token ${token.slice(0, 10)}`);
        assert.equal(digester.ofToken(token), expected, 'the same the second time (pads reused)');
        assert.equal(digester.ofHash(tokenHash(token)), expected);
      }
      // Not a token hash (another length): still the HMAC of what was given.
      assert.equal(digester.ofHash('short'), createHmac('sha256', key).update('short').digest('base64url'));
    }
  });
});
