// The gateway's cookies: read exactly (a tossed duplicate is ambiguous, never picked), removed
// before a request goes upstream with everything else byte for byte, and written only as __Host-
// cookies with base64url values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expiredCookie, MAX_COOKIE_HEADER_LENGTH, MAX_COOKIE_VALUE_LENGTH, readCookie, setCookie, withoutCookies } from '../src/http/cookies.js';

const NAME = '__Host-portcullis-session';
const V = 'abcDEF012_-';

describe('readCookie', () => {
  const table: readonly (readonly [string, string | string[] | undefined, ReturnType<typeof readCookie>])[] = [
    ['no header', undefined, 'absent'],
    ['an empty header', '', 'absent'],
    ['an empty list of fields', [], 'absent'],
    ['only other cookies', 'a=1; b=2', 'absent'],
    ['the one cookie', `${NAME}=${V}`, { value: V }],
    ['among others', `a=1; ${NAME}=${V}; b=2`, { value: V }],
    ['without the space after ;', `a=1;${NAME}=${V};b=2`, { value: V }],
    ['with spaces and tabs around name and value', `a=1;  \t${NAME} \t= ${V}\t ; b=2`, { value: V }],
    ['an empty value', `${NAME}=`, { value: '' }],
    ['a value containing =', `${NAME}=a=b`, { value: 'a=b' }],
    ['a quoted value is returned as sent', `${NAME}="${V}"`, { value: `"${V}"` }],
    ['split over HTTP/2 fields', ['a=1', `${NAME}=${V}`], { value: V }],
    ['duplicated in one header (cookie tossing)', `${NAME}=${V}; ${NAME}=evil`, 'ambiguous'],
    ['duplicated with the same value', `${NAME}=${V}; ${NAME}=${V}`, 'ambiguous'],
    ['duplicated across HTTP/2 fields', [`${NAME}=${V}`, `${NAME}=evil`], 'ambiguous'],
    ['duplicated with an empty second value', `${NAME}=${V}; ${NAME}=`, 'ambiguous'],
    ['duplicated with whitespace before the name', `${NAME}=${V};   ${NAME}=x`, 'ambiguous'],
    ['another case is another cookie', `__host-portcullis-session=${V}`, 'absent'],
    ['upper-case prefix is another cookie', `__HOST-portcullis-session=${V}`, 'absent'],
    ['a longer name is another cookie', `${NAME}x=${V}`, 'absent'],
    ['a shorter name is another cookie', `${NAME.slice(0, -1)}=${V}`, 'absent'],
    ['a percent-encoded name is another cookie', `__Host-portcullis%2Dsession=${V}`, 'absent'],
    ['the name without = (a nameless value)', NAME, 'absent'],
    ['the name as another cookie\'s value', `x=${NAME}`, 'absent'],
    ['the value at the bound', `${NAME}=${'a'.repeat(MAX_COOKIE_VALUE_LENGTH)}`, { value: 'a'.repeat(MAX_COOKIE_VALUE_LENGTH) }],
    ['a value past the bound', `${NAME}=${'a'.repeat(MAX_COOKIE_VALUE_LENGTH + 1)}`, 'ambiguous'],
    ['a header past the bound holding the name', `${NAME}=${V}; x=${'a'.repeat(MAX_COOKIE_HEADER_LENGTH)}`, 'ambiguous'],
    ['a header past the bound without the name', `x=${'a'.repeat(MAX_COOKIE_HEADER_LENGTH)}`, 'absent'],
    ['empty pairs around it', `;;; ${NAME}=${V} ;;`, { value: V }],
  ];
  for (const [label, header, expected] of table) {
    it(label, () => {
      assert.deepEqual(readCookie(header, NAME), expected);
    });
  }

  it('parses a header of many cookies in linear time', () => {
    const header = Array.from({ length: 2000 }, (_, i) => `c${i}=${'v'.repeat(20)}`).join('; ');
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) assert.equal(readCookie(header, NAME), 'absent');
    // Generous on a loaded machine: 50 parses of 50 KB take a few milliseconds.
    assert.ok(process.hrtime.bigint() - started < 2_000_000_000n);
  });
});

describe('withoutCookies', () => {
  const ours = (name: string): boolean => name === NAME || name.startsWith('__Host-portcullis-login-');
  const table: readonly (readonly [string, string | string[] | undefined, string | null])[] = [
    ['no header', undefined, null],
    ['an empty header', '', null],
    ['no gateway cookie: the header as it came', 'a=1;b=2;  c = 3 ', 'a=1;b=2;  c = 3 '],
    ['HTTP/2 fields without a gateway cookie are joined', ['a=1', 'b=2'], 'a=1; b=2'],
    ['only the session cookie', `${NAME}=${V}`, null],
    ['the session cookie among others', `a=1; ${NAME}=${V}; b="x y"`, 'a=1; b="x y"'],
    ['a login state cookie and the session cookie', `__Host-portcullis-login-abc=${V}; ${NAME}=${V}; z=9`, 'z=9'],
    ['duplicates of the session cookie all go', `${NAME}=1; a=1; ${NAME}=2`, 'a=1'],
    ['the session cookie with spaces around its name', `a=1;  ${NAME} =${V}`, 'a=1'],
    ['another __Host- cookie stays', `__Host-app=1; ${NAME}=${V}`, '__Host-app=1'],
    ['another case of our name stays (not ours)', `__host-portcullis-session=1; ${NAME}=${V}`, '__host-portcullis-session=1'],
    ['a nameless value stays', `lonely; ${NAME}=${V}`, 'lonely'],
    ['our name as another cookie\'s value stays', `x=${NAME}; ${NAME}=${V}`, `x=${NAME}`],
    ['other cookies keep their bytes', `a=%20x; b==; c=\u00e9; ${NAME}=${V}`, 'a=%20x; b==; c=\u00e9'],
    ['split over HTTP/2 fields', ['a=1', `${NAME}=${V}`, 'b=2'], 'a=1; b=2'],
    ['empty pairs vanish', `;a=1;;${NAME}=${V};;`, 'a=1'],
  ];
  for (const [label, header, expected] of table) {
    it(label, () => {
      assert.equal(withoutCookies(header, ours), expected);
    });
  }

  it('returns the very input string when the prefix does not occur, and asks nothing', () => {
    const header = 'session=abc; theme=dark';
    let asked = 0;
    assert.equal(withoutCookies(header, () => { asked++; return true; }), header);
    assert.equal(asked, 0);
  });

  it('asks about names with the common prefix only', () => {
    const asked: string[] = [];
    withoutCookies(`a=1; __Host-x=2; ${NAME}=3`, (n) => { asked.push(n); return false; }, '__Host-portcullis-');
    assert.deepEqual(asked, [NAME]);
  });
});

describe('setCookie and expiredCookie', () => {
  it('writes a __Host- cookie: Path=/, Secure, HttpOnly, SameSite=Lax, optional Max-Age', () => {
    assert.equal(setCookie(NAME, V, null), `${NAME}=${V}; Path=/; Secure; HttpOnly; SameSite=Lax`);
    assert.equal(setCookie(NAME, V, 600), `${NAME}=${V}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600`);
    assert.equal(expiredCookie(NAME), `${NAME}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`);
    assert.doesNotMatch(setCookie(NAME, V, 1), /Domain/i);
  });

  const badNames = ['portcullis-session', '__host-session', '__Secure-session', '__Host-', '__Host-a b', '__Host-a;b', '__Host-a=b', '__Host-\u00e9', ''];
  for (const name of badNames) {
    it(`throws on the name ${JSON.stringify(name)}`, () => {
      assert.throws(() => setCookie(name, V, null));
    });
  }
  const badValues = ['a b', 'a;b', 'a=b', 'a+b/c', '"abc"', 'a,b', 'x\r\nSet-Cookie: evil=1', 'é', 'a'.repeat(MAX_COOKIE_VALUE_LENGTH + 1)];
  for (const value of badValues) {
    it(`throws on the value ${JSON.stringify(value).slice(0, 40)}`, () => {
      assert.throws(() => setCookie(NAME, value, null));
    });
  }
  for (const maxAge of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    it(`throws on Max-Age ${maxAge}`, () => {
      assert.throws(() => setCookie(NAME, V, maxAge));
    });
  }
});
