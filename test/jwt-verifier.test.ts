import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import type { JwsAlgorithm } from '../src/authn/jwt/algorithms.js';
import { verifyJwt, type JwtPolicy, type VerifyResult } from '../src/authn/jwt/jwt-verifier.js';
import { importJwks, importPem, importSecret, StaticKeys } from '../src/authn/jwt/key-source.js';
import { b64, craft, mint, signatureFor, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://issuer.test/';
const T = 1_800_000_000; // a fixed "now" in seconds; tests pass the clock explicitly
const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';

let rsa: TestKey, rsaOther: TestKey, es: TestKey, ed: TestKey, ps: TestKey;
let policy: JwtPolicy;

function policyWith(overrides: Partial<JwtPolicy> = {}): JwtPolicy {
  return { ...policy, ...overrides };
}

function reasonOf(result: VerifyResult | Promise<VerifyResult>): string {
  assert.ok(!(result instanceof Promise), 'static keys answer synchronously');
  return result.ok ? 'ok' : result.reason.split(':', 1)[0] ?? '';
}

/** Verifies at `now` seconds (default T) against the shared policy. */
function check(token: string, now = T, p: JwtPolicy = policy): string {
  return reasonOf(verifyJwt(token, p, now * 1000));
}

const claims = (extra: Record<string, unknown> = {}) => JSON.stringify({ iss: ISS, aud: 'orders-api', sub: 'user-1', iat: T, exp: T + 300, ...extra });
const header = (extra: Record<string, unknown> = {}, key: TestKey = rsa) => JSON.stringify({ alg: key.alg, kid: key.kid, ...extra });

describe('JWT verification', () => {
  before(async () => {
    [rsa, rsaOther, es, ed, ps] = await Promise.all([
      testKey('RS256', 'rsa-1'), testKey('RS256', 'rsa-2'), testKey('ES256', 'ec-1'), testKey('EdDSA', 'ed-1'), testKey('PS256', 'ps-1'),
    ]);
    const algorithms: JwsAlgorithm[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];
    const imported = importJwks({ keys: [rsa.jwk, es.jwk, ed.jwk, ps.jwk] }, algorithms);
    assert.ok(typeof imported !== 'string');
    const hmac = importSecret(SECRET, ['HS256']);
    assert.ok(typeof hmac !== 'string');
    policy = {
      algorithms: new Set([...algorithms, 'HS256']),
      issuers: new Map([
        [ISS, { source: new StaticKeys(imported.keys), algorithms: new Set(algorithms) }],
        ['https://hmac.test/', { source: new StaticKeys([hmac]), algorithms: new Set<JwsAlgorithm>(['HS256']) }],
      ]),
      audiences: new Set(['orders-api', 'other-api']),
      clockSkewSec: 30,
      requireExp: true,
      typ: null,
      maxTokenBytes: 8192,
    };
  });

  it('accepts valid RS256, PS256, ES256 and EdDSA tokens minted with jose, and HS256 with the configured secret', async () => {
    for (const key of [rsa, ps, es, ed]) {
      const token = await mint(key, { iat: T - 10, exp: T + 300 });
      assert.equal(check(token), 'ok', key.alg);
    }
    assert.equal(check(craft('{"alg":"HS256"}', claims({ iss: 'https://hmac.test/' }), { hmac: SECRET })), 'ok');
  });

  it('rejects alg "none" in every casing, with or without a signature', () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      assert.equal(check(craft(JSON.stringify({ alg }), claims(), { signature: '' })), 'alg_none', alg);
      assert.equal(check(craft(JSON.stringify({ alg }), claims(), { key: rsa })), 'alg_none', alg);
    }
  });

  it('rejects HS256 signed with the RSA public key (PEM with and without trailing newline)', () => {
    for (const pem of [rsa.pem, rsa.pem.trimEnd()]) {
      assert.equal(check(craft(header({ alg: 'HS256' }), claims(), { hmac: pem })), 'alg_not_allowed');
    }
    // Even where HS256 is allowed (for another issuer), an RSA issuer's token may not use it.
    assert.equal(check(craft('{"alg":"HS256"}', claims(), { hmac: rsa.pem })), 'alg_not_allowed');
  });

  it('rejects an ECDSA signature of zeros (CVE-2022-21449) and signatures of the wrong length', () => {
    const h = header({}, es);
    assert.equal(check(craft(h, claims(), { signature: b64(Buffer.alloc(64)) })), 'signature_invalid');
    assert.equal(check(craft(h, claims(), { signature: b64(Buffer.alloc(63, 1)) })), 'signature_invalid');
    const good = craft(h, claims(), { key: es });
    const der = Buffer.from(good.split('.')[2] ?? '', 'base64url');
    assert.equal(check(craft(h, claims(), { signature: b64(Buffer.concat([der, Buffer.from([0])])) })), 'signature_invalid');
  });

  it('rejects tokens carrying their own key (jwk, jku, x5u, x5c), even when signed by that key', async () => {
    const attacker = await testKey('ES256', 'ec-1');
    for (const extra of [{ jwk: attacker.jwk }, { jku: 'http://127.0.0.1:1/jwks' }, { x5u: 'http://127.0.0.1:1/cert' }, { x5c: ['MIIB'] }]) {
      assert.equal(check(craft(header(extra, attacker), claims(), { key: attacker })), 'embedded_key', Object.keys(extra)[0]);
    }
  });

  it('rejects any crit header, and b64', () => {
    assert.equal(check(craft(header({ crit: ['exp'], exp: 1 }), claims(), { key: rsa })), 'crit_unsupported');
    assert.equal(check(craft(header({ crit: [] }), claims(), { key: rsa })), 'crit_unsupported');
    assert.equal(check(craft(header({ b64: false, crit: ['b64'] }), claims(), { key: rsa })), 'crit_unsupported');
  });

  it('rejects duplicate JSON keys in the header or the payload, escaped or not', () => {
    assert.equal(check(craft(`{"alg":"RS256","kid":"rsa-1","alg":"RS256"}`, claims(), { key: rsa })), 'malformed');
    const dupSub = claims().replace('"sub":"user-1"', '"sub":"user-1","sub":"admin"');
    assert.equal(check(craft(header(), dupSub, { key: rsa })), 'malformed');
    const escaped = claims().replace('"sub":"user-1"', '"sub":"user-1","\\u0073ub":"admin"');
    assert.equal(check(craft(header(), escaped, { key: rsa })), 'malformed');
    const nested = claims({ realm_access: { roles: ['a'] } }).replace('{"roles":["a"]}', '{"roles":["a"],"roles":["admin"]}');
    assert.equal(check(craft(header(), nested, { key: rsa })), 'malformed');
  });

  it('rejects non-canonical base64url: padding, the standard alphabet, spare bits, whitespace', () => {
    const good = craft(header(), claims(), { key: rsa });
    assert.equal(check(good), 'ok');
    const [h, p, s] = good.split('.') as [string, string, string];
    const variants = [
      `${h}=.${p}.${s}`, // padding
      `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}${s.includes('-') || s.includes('_') ? '' : '+'}`,
      `${h}.${p} .${s}`,
      `${h}.${p}.${s.slice(0, -1)}${String.fromCharCode(s.charCodeAt(s.length - 1) ^ 1)}`,
    ];
    for (const token of variants) assert.notEqual(check(token), 'ok', token.slice(-20));
    // A signature whose last character only differs in unused bits decodes to the same bytes: still refused.
    const sig = Buffer.from(s, 'base64url');
    const sloppy = `${h}.${p}.${sig.toString('base64url').slice(0, -1)}${nextWithSameBits(s.slice(-1))}`;
    if (sloppy !== good) assert.equal(check(sloppy), 'malformed');
  });

  it('rejects two-, four- and five-segment tokens (five is JWE)', () => {
    const good = craft(header(), claims(), { key: rsa });
    assert.equal(check(good.split('.').slice(0, 2).join('.')), 'malformed');
    assert.equal(check(`${good}.x`), 'malformed');
    assert.equal(check(`${b64('{"alg":"RSA-OAEP","enc":"A256GCM"}')}.a.b.c.d`), 'jwe_not_accepted');
    assert.equal(check(craft('{"alg":"RS256","enc":"A256GCM"}', claims(), { key: rsa })), 'jwe_not_accepted');
  });

  it('matches iss exactly: wrong, array, trailing-slash variants are refused', () => {
    assert.equal(check(craft(header(), claims({ iss: 'https://evil.test/' }), { key: rsa })), 'issuer_unknown');
    assert.equal(check(craft(header(), claims({ iss: 'https://issuer.test' }), { key: rsa })), 'issuer_unknown');
    assert.equal(check(craft(header(), claims({ iss: 'https://issuer.test//' }), { key: rsa })), 'issuer_unknown');
    assert.equal(check(craft(header(), claims({ iss: [ISS] }), { key: rsa })), 'issuer_invalid');
    assert.equal(check(craft(header(), claims({ iss: undefined }), { key: rsa })), 'issuer_invalid');
  });

  it('requires aud to contain an accepted audience: empty, array, wrong and typed wrong', () => {
    const cases: [unknown, string][] = [
      ['orders-api', 'ok'], [['x', 'other-api'], 'ok'], ['', 'audience_invalid'], [[], 'audience_invalid'],
      ['billing-api', 'audience_mismatch'], [['billing-api'], 'audience_mismatch'], [42, 'audience_invalid'],
      [['orders-api', 7], 'audience_invalid'], [undefined, 'audience_invalid'], ['Orders-API', 'audience_mismatch'],
    ];
    for (const [aud, expected] of cases) assert.equal(check(craft(header(), claims({ aud }), { key: rsa })), expected, JSON.stringify(aud));
  });

  it('applies exp, nbf and iat at the leeway boundaries with an injected clock', () => {
    const token = (extra: Record<string, unknown>) => craft(header(), claims({ iat: undefined, ...extra }), { key: rsa });
    const exp = token({ exp: T });
    assert.equal(check(exp, T + 29), 'ok');
    assert.equal(check(exp, T + 30), 'expired');
    const nbf = token({ nbf: T, exp: T + 1000 });
    assert.equal(check(nbf, T - 30), 'ok');
    assert.equal(check(nbf, T - 31), 'not_yet_valid');
    const iat = token({ iat: T, exp: T + 1000 });
    assert.equal(check(iat, T - 30), 'ok');
    assert.equal(check(iat, T - 31), 'issued_in_future');
    assert.equal(check(exp, T + 1, policyWith({ clockSkewSec: 0 })), 'expired');
    assert.equal(check(exp, T - 1, policyWith({ clockSkewSec: 0 })), 'ok');
  });

  it('treats claims of the wrong type as invalid, not absent', () => {
    assert.equal(check(craft(header(), claims({ exp: String(T + 300) }), { key: rsa })), 'claim_invalid');
    assert.equal(check(craft(header(), claims({ nbf: 'now' }), { key: rsa })), 'claim_invalid');
    assert.equal(check(craft(header(), claims({ iat: true }), { key: rsa })), 'claim_invalid');
    assert.equal(check(craft(header(), claims({ exp: undefined }), { key: rsa })), 'claim_invalid');
    assert.equal(check(craft(header(), claims({ exp: undefined }), { key: rsa }), T, policyWith({ requireExp: false })), 'ok');
    assert.equal(check(craft(header({ kid: 7 }), claims(), { key: rsa })), 'malformed');
  });

  it('caps the token size, and bounds claim nesting', () => {
    const big = craft(header(), claims({ pad: 'x'.repeat(9000) }), { key: rsa });
    assert.equal(check(big), 'token_too_large');
    let deep: unknown = 'x';
    for (let i = 0; i < 40; i++) deep = { d: deep };
    assert.equal(check(craft(header(), claims({ deep }), { key: rsa })), 'malformed');
    const wide = craft(header(), claims({ roles: Array.from({ length: 300 }, (_, i) => `r${i}`) }), { key: rsa });
    assert.equal(check(wide), 'ok', 'large claims within the size cap verify; the identity mapping bounds them');
  });

  it('uses only keys of the token\'s kid and the issuer\'s key types', () => {
    assert.equal(check(craft(header({ kid: 'nope' }), claims(), { key: rsa })), 'key_unknown');
    assert.equal(check(craft(header({ kid: undefined }), claims(), { key: rsa })), 'ok');
    assert.equal(check(craft(header({ kid: 'rsa-1' }), claims(), { key: rsaOther })), 'signature_invalid');
    assert.equal(check(craft(header({ kid: 'ec-1' }), claims(), { key: rsa })), 'key_unknown', 'RS256 never verified with an EC key');
  });

  it('a key configured without a kid serves tokens with any kid; a key with one only its own', () => {
    const pemKey = importPem(rsa.pem, ['RS256'], null);
    assert.ok(typeof pemKey !== 'string');
    const issuers = new Map([[ISS, { source: new StaticKeys([pemKey]), algorithms: new Set<JwsAlgorithm>(['RS256']) }]]);
    const p = policyWith({ issuers });
    assert.equal(check(craft(header({ kid: 'whatever' }), claims(), { key: rsa }), T, p), 'ok');
    assert.equal(check(craft(header({ kid: undefined }), claims(), { key: rsa }), T, p), 'ok');
    const withKid = importPem(rsa.pem, ['RS256'], 'pinned');
    assert.ok(typeof withKid !== 'string');
    const pinned = policyWith({ issuers: new Map([[ISS, { source: new StaticKeys([withKid]), algorithms: new Set<JwsAlgorithm>(['RS256']) }]]) });
    assert.equal(check(craft(header({ kid: 'whatever' }), claims(), { key: rsa }), T, pinned), 'key_unknown');
    assert.equal(check(craft(header({ kid: 'pinned' }), claims(), { key: rsa }), T, pinned), 'ok');
  });

  it('requires typ when configured (RFC 9068 at+jwt, application/ prefix optional)', () => {
    const p = policyWith({ typ: 'at+jwt' });
    assert.equal(check(craft(header({ typ: 'at+jwt' }), claims(), { key: rsa }), T, p), 'ok');
    assert.equal(check(craft(header({ typ: 'application/AT+JWT' }), claims(), { key: rsa }), T, p), 'ok');
    assert.equal(check(craft(header({ typ: 'JWT' }), claims(), { key: rsa }), T, p), 'typ_mismatch');
    assert.equal(check(craft(header(), claims(), { key: rsa }), T, p), 'typ_mismatch');
  });

  it('rejects invalid UTF-8, a BOM and non-object JSON in segments', () => {
    const sig = (h: string, p: string) => `${h}.${p}.${signatureFor(`${h}.${p}`, { key: rsa })}`;
    assert.equal(check(sig(b64(header()), b64(Buffer.from([0x7b, 0xff, 0x7d])))), 'malformed');
    assert.equal(check(sig(b64(`\ufeff${header()}`), b64(claims()))), 'malformed');
    assert.equal(check(sig(b64('[1]'), b64(claims()))), 'malformed');
    assert.equal(check(sig(b64(header()), b64('"just a string"'))), 'malformed');
  });
});

/** A base64url character with the same high bits as `c` (differs only in bits the decoder drops). */
function nextWithSameBits(c: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const i = alphabet.indexOf(c);
  return alphabet[i ^ 1] ?? c;
}
