// The pre-login cookie: it opens only under the gateway's key, under the name of the state it was
// made for, unexpired, unaltered, and exactly once in the request.
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { TokenDigester } from '../src/authn/oauth/token-digest.js';
import { LOGIN_STATE_COOKIE_PREFIX, LOGIN_STATE_KEY_LABEL, loginStateCookieName, MAX_LOGIN_STATE_VALUE_LENGTH, openLoginState, sealLoginState, type LoginState } from '../src/authn/oidc/login-state-cookie.js';

/** The key the gateway seals login states under, from its token hash key. */
const loginKey = (tokenHashKey: Buffer): Buffer => new TokenDigester(tokenHashKey).derivedKey(LOGIN_STATE_KEY_LABEL);
const KEY = loginKey(Buffer.alloc(32, 7));
const NOW = 1_800_000_000_000;
const random = (): string => randomBytes(32).toString('base64url');

function login(overrides: Partial<LoginState> = {}): LoginState {
  return { authenticator: 'users', state: random(), nonce: random(), verifier: random(), returnTo: '/app?x=1', expiresAt: NOW + 600_000, ...overrides };
}

function sealed(s: LoginState = login()): { s: LoginState; name: string; value: string; header: string } {
  const { name, value } = sealLoginState(KEY, s);
  return { s, name, value, header: `other=1; ${name}=${value}; more=2` };
}

/** Seals any text the way sealLoginState does: what a holder of the key could make, to test the shape checks. */
function sealText(name: string, text: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', KEY, iv);
  cipher.setAAD(Buffer.from(name, 'latin1'));
  const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

function refusal(result: LoginState | string): string {
  assert.equal(typeof result, 'string', 'refused with a reason');
  return result as string;
}

describe('login state cookie', () => {
  it('round-trips: sealed, sent back among other cookies, opened for its state', () => {
    const { s, name, header } = sealed();
    assert.ok(name.startsWith(LOGIN_STATE_COOKIE_PREFIX));
    assert.equal(name, loginStateCookieName(s.state));
    assert.match(name, /^__Host-portcullis-login-[A-Za-z0-9_-]{16}$/);
    assert.deepEqual(openLoginState(KEY, header, s.state, NOW), s);
    assert.deepEqual(openLoginState(KEY, ['other=1', header], s.state, NOW), s, 'split over HTTP/2 fields');
  });

  it('gives two logins in flight two cookies, both opening', () => {
    const a = sealed();
    const b = sealed();
    assert.notEqual(a.name, b.name);
    const header = `${a.name}=${a.value}; ${b.name}=${b.value}`;
    assert.deepEqual(openLoginState(KEY, header, a.s.state, NOW), a.s);
    assert.deepEqual(openLoginState(KEY, header, b.s.state, NOW), b.s);
  });

  it('seals with a fresh IV each time', () => {
    const s = login();
    assert.notEqual(sealLoginState(KEY, s).value, sealLoginState(KEY, s).value);
  });

  it('refuses a value with any one byte flipped', () => {
    const { s, name, value } = sealed();
    const bytes = Buffer.from(value, 'base64url');
    for (let i = 0; i < bytes.length; i++) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] ?? 0) ^ 0x01;
      refusal(openLoginState(KEY, `${name}=${copy.toString('base64url')}`, s.state, NOW));
    }
  });

  it('refuses a value moved under another login\'s cookie name (the name is authenticated data)', () => {
    const a = sealed();
    const b = sealed();
    assert.match(refusal(openLoginState(KEY, `${b.name}=${a.value}`, b.s.state, NOW)), /does not open/);
  });

  it('refuses an expired login state, and takes it until its last millisecond', () => {
    const { s, header } = sealed();
    assert.deepEqual(openLoginState(KEY, header, s.state, s.expiresAt - 1), s);
    assert.match(refusal(openLoginState(KEY, header, s.state, s.expiresAt)), /expired/);
    assert.match(refusal(openLoginState(KEY, header, s.state, s.expiresAt + 86_400_000)), /expired/);
  });

  it('refuses another state (a forged or replayed callback)', () => {
    const { header } = sealed();
    assert.match(refusal(openLoginState(KEY, header, random(), NOW)), /no login state cookie/);
  });

  it('refuses a value sealed under another key, and keys come from the token hash key alone', () => {
    const { s, header } = sealed();
    refusal(openLoginState(loginKey(Buffer.alloc(32, 8)), header, s.state, NOW));
    refusal(openLoginState(randomBytes(32), header, s.state, NOW));
    assert.deepEqual(loginKey(Buffer.alloc(32, 7)), KEY, 'the same on every gateway sharing the key');
    assert.equal(KEY.length, 32);
    assert.notDeepEqual(KEY, Buffer.alloc(32, 7));
  });

  it('refuses a duplicated cookie, even when both copies are genuine', () => {
    const { s, name, value } = sealed();
    const other = sealLoginState(KEY, s).value;
    assert.match(refusal(openLoginState(KEY, `${name}=${value}; ${name}=${value}`, s.state, NOW)), /more than once/);
    assert.match(refusal(openLoginState(KEY, [`${name}=${value}`, `${name}=${other}`], s.state, NOW)), /more than once/);
  });

  const malformed: readonly (readonly [string, (name: string, value: string) => string])[] = [
    ['no Cookie header', () => ''],
    ['an empty value', (n) => `${n}=`],
    ['garbage base64', (n) => `${n}=!!!not*base64$$`],
    ['standard base64 characters', (n, v) => `${n}=${v.replace(/-/g, '+').replace(/_/g, '/')}+/=`],
    ['a quoted value', (n, v) => `${n}="${v}"`],
    ['too short to hold an IV and a tag', (n) => `${n}=${Buffer.alloc(28).toString('base64url')}`],
    ['truncated', (n, v) => `${n}=${v.slice(0, -4)}`],
    ['extended', (n, v) => `${n}=${v}AAAA`],
    ['oversized', (n) => `${n}=${'A'.repeat(MAX_LOGIN_STATE_VALUE_LENGTH + 1)}`],
    ['past the cookie value bound', (n) => `${n}=${'A'.repeat(5000)}`],
    ['random bytes of the right size', (n, v) => `${n}=${randomBytes(Buffer.from(v, 'base64url').length).toString('base64url')}`],
  ];
  for (const [label, header] of malformed) {
    it(`refuses ${label}`, () => {
      const { s, name, value } = sealed();
      refusal(openLoginState(KEY, header(name, value), s.state, NOW));
    });
  }

  const badStates = ['', 'short', 'a'.repeat(129), 'abc def ghi jkl mno pqr stu', `${'a'.repeat(30)}/`, `${'a'.repeat(30)}\u00e9`];
  for (const state of badStates) {
    it(`refuses the state parameter ${JSON.stringify(state).slice(0, 40)} before looking at cookies`, () => {
      assert.match(refusal(openLoginState(KEY, undefined, state, NOW)), /state parameter malformed/);
    });
  }

  it('seals the largest valid login state under the browser cookie limit', () => {
    const s = login({
      authenticator: `a${'b'.repeat(63)}`,
      state: 'S'.repeat(128), nonce: 'N'.repeat(128), verifier: '~'.repeat(128),
      returnTo: `/${'r'.repeat(2047)}`, expiresAt: Number.MAX_SAFE_INTEGER,
    });
    const { name, value } = sealLoginState(KEY, s);
    assert.ok(name.length + 1 + value.length <= 4096);
    assert.deepEqual(openLoginState(KEY, `${name}=${value}`, s.state, NOW), s);
  });

  const badShapes: readonly (readonly [string, Partial<LoginState> | Record<string, unknown>])[] = [
    ['an unsafe return path', { returnTo: '//evil.com' }],
    ['a return path not in its emitted form', { returnTo: '/a b' }],
    ['an empty authenticator', { authenticator: '' }],
    ['an authenticator name the config would refuse', { authenticator: 'users"' }],
    ['a short nonce', { nonce: 'abc' }],
    ['a short verifier', { verifier: 'a'.repeat(42) }],
    ['a verifier with a character outside RFC 7636', { verifier: `${'a'.repeat(43)}+` }],
    ['a fractional expiry', { expiresAt: NOW + 0.5 }],
    ['a negative expiry', { expiresAt: -1 }],
    ['an expiry that is not a number', { expiresAt: '1' as unknown as number }],
  ];
  for (const [label, overrides] of badShapes) {
    it(`will not seal ${label}`, () => {
      assert.throws(() => sealLoginState(KEY, { ...login(), ...overrides }));
    });
  }

  it('will not seal with a key that is not 32 bytes, nor an extra field', () => {
    assert.throws(() => sealLoginState(Buffer.alloc(16), login()));
    // An extra property is not copied into the sealed JSON: only the six fields are sealed.
    const s = { ...login(), extra: 'x' };
    const { name, value } = sealLoginState(KEY, s);
    const opened = openLoginState(KEY, `${name}=${value}`, s.state, NOW);
    assert.ok(typeof opened !== 'string' && !('extra' in opened));
  });

  const sealedShapes: readonly (readonly [string, (s: LoginState) => string])[] = [
    ['not JSON', () => 'not json'],
    ['a JSON array', (s) => JSON.stringify([s])],
    ['a JSON string', () => '"x"'],
    ['null', () => 'null'],
    ['an extra field', (s) => JSON.stringify({ ...s, admin: true })],
    ['a missing field', (s) => JSON.stringify({ ...s, nonce: undefined })],
    ['a duplicated key (the last would win in JSON.parse)', (s) => JSON.stringify(s).replace('{', `{"returnTo":"//evil.com",`)],
    ['a nested object', (s) => JSON.stringify({ ...s, nonce: { v: s.nonce } })],
    ['an expiry as a string', (s) => JSON.stringify({ ...s, expiresAt: String(s.expiresAt) })],
    ['an unsafe return path', (s) => JSON.stringify({ ...s, returnTo: '/\\evil.com' })],
    ['another state inside', (s) => JSON.stringify({ ...s, state: random() })],
    ['a __proto__ key', (s) => JSON.stringify(s).replace('{', '{"__proto__":{"x":1},')],
  ];
  for (const [label, text] of sealedShapes) {
    it(`refuses a genuinely sealed value holding ${label}`, () => {
      const s = login();
      const name = loginStateCookieName(s.state);
      refusal(openLoginState(KEY, `${name}=${sealText(name, text(s))}`, s.state, NOW));
    });
  }

  it('opens a value sealed by hand in the same format (the format is as documented)', () => {
    const s = login();
    const name = loginStateCookieName(s.state);
    assert.deepEqual(openLoginState(KEY, `${name}=${sealText(name, JSON.stringify(s))}`, s.state, NOW), s);
  });
});
