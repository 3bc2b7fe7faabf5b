import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it, before } from 'node:test';
import type { JwsAlgorithm, VerifyKey } from '../src/authn/jwt/algorithms.js';
import { importJwks, importPem, KeysUnavailableError, StaticKeys, type KeySource } from '../src/authn/jwt/key-source.js';
import { verifyIdToken, type IdTokenExpectations } from '../src/authn/oidc/id-token.js';
import { MAX_PROVIDER_TOKEN_BYTES } from '../src/authn/oidc/provider-jwt.js';
import { b64, craft, mint, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://idp.test/realms/main';
const CLIENT = 'gateway-client';
const NONCE = 'n-0S6_WzA2Mj-the-login-nonce';
const ACCESS_TOKEN = 'SlAV32hkKG.the-access-token';
const T = 1_800_000_000; // a fixed "now" in seconds; the clock is passed explicitly
const NOW_MS = T * 1000;
const SKEW_MS = 60_000;
const ALGORITHMS: readonly JwsAlgorithm[] = ['RS256', 'ES256', 'ES384', 'EdDSA'];

let rs: TestKey, rsOther: TestKey, es: TestKey, esImpostor: TestKey, es384: TestKey, ed: TestKey;
let keys: StaticKeys;

const expectations = (extra: Partial<IdTokenExpectations> = {}): IdTokenExpectations => ({
  issuer: ISS, clientId: CLIENT, nonce: NONCE, accessToken: ACCESS_TOKEN, maxAgeMs: null, maxIatAgeMs: 600_000, ...extra,
});

/** The claims of a valid ID token, with overrides; an `undefined` override removes the claim. */
function claims(extra: Record<string, unknown> = {}): string {
  const all: Record<string, unknown> = { iss: ISS, aud: CLIENT, sub: 'user-1', nonce: NONCE, iat: T - 5, exp: T + 300, auth_time: T - 30, ...extra };
  return JSON.stringify(Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)));
}

const header = (key: TestKey, extra: Record<string, unknown> = {}): string => JSON.stringify({ alg: key.alg, kid: key.kid, typ: 'JWT', ...extra });
const token = (key: TestKey, payload: string = claims(), head: string = header(key)): string => craft(head, payload, { key });

/** The at_hash of ACCESS_TOKEN with `hash` (OIDC Core §3.1.3.6). */
function atHash(hash: string, accessToken = ACCESS_TOKEN): string {
  const digest = createHash(hash).update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** "ok" or the check a refusal names (the reason up to its first colon). */
async function check(jwt: string, expect: IdTokenExpectations = expectations(), now = NOW_MS, source: KeySource = keys, algorithms = ALGORITHMS): Promise<string> {
  const result = await verifyIdToken(jwt, source, algorithms, expect, SKEW_MS, now);
  return result.ok ? 'ok' : result.reason.split(':', 1)[0] ?? '';
}

describe('ID token validation (OIDC Core 1.0 §3.1.3.7)', () => {
  before(async () => {
    [rs, rsOther, es, esImpostor, es384, ed] = await Promise.all([
      testKey('RS256', 'oidc-rs-1'), testKey('RS256', 'oidc-rs-2'), testKey('ES256', 'es-1'), testKey('ES256', 'es-1'), testKey('ES384', 'es384-1'), testKey('EdDSA', 'ed-1'),
    ]);
    const imported = importJwks({ keys: [rs.jwk, es.jwk, es384.jwk, ed.jwk] }, ALGORITHMS);
    assert.ok(typeof imported !== 'string');
    keys = new StaticKeys(imported.keys);
  });

  it('accepts valid ES256, RS256, ES384 and EdDSA ID tokens, crafted and minted with jose', async () => {
    for (const key of [es, rs, es384, ed]) {
      assert.equal(await check(token(key)), 'ok', key.alg);
      const minted = await mint(key, { iss: ISS, aud: CLIENT, nonce: NONCE, iat: T, exp: T + 300 });
      assert.equal(await check(minted), 'ok', `${key.alg} (jose)`);
    }
  });

  it('returns the verified claims', async () => {
    const result = await verifyIdToken(token(es, claims({ sid: 'provider-session', email: 'a@b.test' })), keys, ALGORITHMS, expectations(), SKEW_MS, NOW_MS);
    assert.ok(result.ok);
    assert.equal(result.claims.sub, 'user-1');
    assert.equal(result.claims.sid, 'provider-session');
  });

  const valid: readonly [string, () => string, Partial<IdTokenExpectations>?][] = [
    ['one audience in an array, no azp', () => token(es, claims({ aud: [CLIENT] }))],
    ['several audiences with azp naming this client', () => token(es, claims({ aud: [CLIENT, 'other-api'], azp: CLIENT }))],
    ['azp equal to the client with a single audience', () => token(es, claims({ azp: CLIENT }))],
    ['no typ header', () => token(es, claims(), JSON.stringify({ alg: 'ES256', kid: es.kid }))],
    ['typ application/jwt', () => token(es, claims(), header(es, { typ: 'application/jwt' }))],
    ['exp passed but within the skew', () => token(es, claims({ exp: T - 30 }))],
    ['iat ahead of the clock within the skew', () => token(es, claims({ iat: T + 30 }))],
    ['iat at the age limit', () => token(es, claims({ iat: T - 600 }))],
    ['sub of exactly 255 bytes', () => token(es, claims({ sub: 's'.repeat(255) }))],
    ['auth_time within max_age', () => token(es, claims({ auth_time: T - 100 })), { maxAgeMs: 300_000 }],
    ['no auth_time while max_age was not asked', () => token(es, claims({ auth_time: undefined }))],
    ['at_hash right for ES256 (SHA-256)', () => token(es, claims({ at_hash: atHash('sha256') }))],
    ['at_hash right for RS256 (SHA-256)', () => token(rs, claims({ at_hash: atHash('sha256') }))],
    ['at_hash right for ES384 (SHA-384)', () => token(es384, claims({ at_hash: atHash('sha384') }))],
    ['at_hash right for EdDSA with Ed25519 (SHA-512)', () => token(ed, claims({ at_hash: atHash('sha512') }))],
    ['no at_hash (optional in the code flow)', () => token(es)],
    ['at_hash present but no access token to check it against', () => token(es, claims({ at_hash: 'anything' })), { accessToken: null }],
  ];
  for (const [name, make, expect] of valid) {
    it(`accepts: ${name}`, async () => {
      assert.equal(await check(make(), expectations(expect)), 'ok');
    });
  }

  const tooLong = (): string => token(es, claims({ padding: 'x'.repeat(MAX_PROVIDER_TOKEN_BYTES) }));
  const hostile: readonly [string, () => string, string, Partial<IdTokenExpectations>?][] = [
    ['wrong nonce', () => token(es, claims({ nonce: 'another-login-nonce' })), 'nonce_mismatch'],
    ['nonce differing in its last character', () => token(es, claims({ nonce: `${NONCE.slice(0, -1)}X` })), 'nonce_mismatch'],
    ['nonce a prefix of the expected one', () => token(es, claims({ nonce: NONCE.slice(0, 5) })), 'nonce_mismatch'],
    ['missing nonce', () => token(es, claims({ nonce: undefined })), 'nonce_missing'],
    ['nonce not a string', () => token(es, claims({ nonce: 12345 })), 'nonce_missing'],
    ['nonce an array holding the right one', () => token(es, claims({ nonce: [NONCE] })), 'nonce_missing'],
    ['empty expected nonce (no nonce was bound)', () => token(es, claims({ nonce: '' })), 'nonce_mismatch', { nonce: '' }],
    ['wrong aud', () => token(es, claims({ aud: 'another-client' })), 'audience_mismatch'],
    ['aud absent', () => token(es, claims({ aud: undefined })), 'audience_invalid'],
    ['aud an empty array', () => token(es, claims({ aud: [] })), 'audience_invalid'],
    ['extra aud without azp', () => token(es, claims({ aud: [CLIENT, 'other-api'] })), 'azp_missing'],
    ['wrong azp with several audiences', () => token(es, claims({ aud: [CLIENT, 'other-api'], azp: 'other-api' })), 'azp_mismatch'],
    ['wrong azp with one audience', () => token(es, claims({ azp: 'other-api' })), 'azp_mismatch'],
    ['azp not a string', () => token(es, claims({ azp: [CLIENT] })), 'azp_mismatch'],
    ['wrong iss', () => token(es, claims({ iss: 'https://evil.test/realms/main' })), 'issuer_unknown'],
    ['iss with a trailing slash (no normalisation)', () => token(es, claims({ iss: `${ISS}/` })), 'issuer_unknown'],
    ['iss absent', () => token(es, claims({ iss: undefined })), 'issuer_invalid'],
    ['expired', () => token(es, claims({ iat: T - 400, exp: T - 120 })), 'expired'],
    ['exp absent', () => token(es, claims({ exp: undefined })), 'claim_invalid'],
    ['exp a string', () => token(es, claims({ exp: String(T + 300) })), 'claim_invalid'],
    ['iat in the future', () => token(es, claims({ iat: T + 120 })), 'issued_in_future'],
    ['iat too old', () => token(es, claims({ iat: T - 3600 })), 'iat_too_old'],
    ['iat absent', () => token(es, claims({ iat: undefined })), 'iat_invalid'],
    ['iat a string', () => token(es, claims({ iat: String(T) })), 'claim_invalid'],
    ['nbf in the future', () => token(es, claims({ nbf: T + 600 })), 'not_yet_valid'],
    ['signed by another key with the same kid (ES256)', () => craft(header(es), claims(), { key: esImpostor }), 'signature_invalid'],
    ['signed by another RSA key under the trusted kid', () => craft(header(rs), claims(), { key: rsOther }), 'signature_invalid'],
    ['a kid the provider does not have', () => token(rsOther), 'key_unknown'],
    ['payload changed after signing', () => { const [h, , s] = token(es).split('.'); return `${h ?? ''}.${b64(claims({ sub: 'admin' }))}.${s ?? ''}`; }, 'signature_invalid'],
    ['alg none without a signature', () => craft('{"alg":"none","typ":"JWT"}', claims(), { signature: '' }), 'alg_none'],
    ['alg none with a signature', () => craft('{"alg":"none"}', claims(), { key: es }), 'alg_none'],
    ['alg HS256 with the RSA public key as secret', () => craft(JSON.stringify({ alg: 'HS256', kid: rs.kid }), claims(), { hmac: rs.pem }), 'alg_not_allowed'],
    ['alg RS256 in the header of an ES256 key', () => craft(JSON.stringify({ alg: 'RS256', kid: es.kid }), claims(), { key: es }), 'key_unknown'],
    ['a key carried in the header', () => craft(JSON.stringify({ alg: 'ES256', jwk: esImpostor.jwk }), claims(), { key: esImpostor }), 'embedded_key'],
    ['at_hash wrong', () => token(es, claims({ at_hash: atHash('sha256', 'another-access-token') })), 'at_hash_mismatch'],
    ['at_hash for another alg (SHA-384 under ES256)', () => token(es, claims({ at_hash: atHash('sha384') })), 'at_hash_mismatch'],
    ['at_hash for another alg (SHA-256 under EdDSA)', () => token(ed, claims({ at_hash: atHash('sha256') })), 'at_hash_mismatch'],
    ['at_hash of the whole digest', () => token(es, claims({ at_hash: createHash('sha256').update(ACCESS_TOKEN).digest('base64url') })), 'at_hash_mismatch'],
    ['at_hash padded base64', () => token(es, claims({ at_hash: `${atHash('sha256')}=` })), 'at_hash_mismatch'],
    ['at_hash not a string', () => token(es, claims({ at_hash: 42 })), 'at_hash_invalid'],
    ['sub missing', () => token(es, claims({ sub: undefined })), 'sub_invalid'],
    ['sub empty', () => token(es, claims({ sub: '' })), 'sub_invalid'],
    ['sub too long', () => token(es, claims({ sub: 's'.repeat(256) })), 'sub_invalid'],
    ['sub too long in UTF-8 bytes', () => token(es, claims({ sub: 'é'.repeat(128) })), 'sub_invalid'],
    ['sub a number', () => token(es, claims({ sub: 42 })), 'sub_invalid'],
    ['sub an object', () => token(es, claims({ sub: { id: 'user-1' } })), 'sub_invalid'],
    ['auth_time older than max_age', () => token(es, claims({ auth_time: T - 3600 })), 'auth_time_too_old', { maxAgeMs: 300_000 }],
    ['auth_time missing while max_age was asked', () => token(es, claims({ auth_time: undefined })), 'auth_time_invalid', { maxAgeMs: 300_000 }],
    ['auth_time a string while max_age was asked', () => token(es, claims({ auth_time: String(T) })), 'auth_time_invalid', { maxAgeMs: 300_000 }],
    ['auth_time in the future', () => token(es, claims({ auth_time: T + 3600 })), 'auth_time_in_future', { maxAgeMs: 300_000 }],
    ['duplicated nonce member in the payload', () => token(es, claims().replace('{', `{"nonce":"attacker",`)), 'malformed'],
    ['duplicated sub member, escaped spelling', () => token(es, claims().replace('{', '{"s\\u0075b":"admin",')), 'malformed'],
    ['duplicated alg member in the header', () => token(es, claims(), '{"alg":"ES256","alg":"none","kid":"es-1"}'), 'malformed'],
    ['token too large', tooLong, 'token_too_large'],
    ['JWE (five segments)', () => `${token(es)}.AAAA.BBBB`, 'jwe_not_accepted'],
    ['typ logout+jwt (a logout token)', () => token(es, claims(), header(es, { typ: 'logout+jwt' })), 'typ_mismatch'],
    ['typ application/at+jwt (an access token)', () => token(es, claims(), header(es, { typ: 'application/at+JWT' })), 'typ_mismatch'],
    ['typ not a string', () => token(es, claims(), header(es, { typ: 1 })), 'typ_mismatch'],
    ['a logout token offered as ID token', () => token(es, JSON.stringify({
      iss: ISS, aud: CLIENT, sub: 'user-1', iat: T, jti: 'j-1', events: { 'http://schemas.openid.net/event/backchannel-logout': {} }, exp: T + 120,
    }), JSON.stringify({ alg: 'ES256', kid: es.kid })), 'nonce_missing'],
  ];
  for (const [name, make, reason, expect] of hostile) {
    it(`refuses: ${name}`, async () => {
      assert.equal(await check(make(), expectations(expect)), reason);
    });
  }

  it('takes HS256 only when listed, and then never with a public key as the secret', async () => {
    const forged = craft(JSON.stringify({ alg: 'HS256', kid: rs.kid }), claims(), { hmac: rs.pem });
    assert.equal(await check(forged, expectations(), NOW_MS, keys, [...ALGORITHMS, 'HS256']), 'key_unknown');
  });

  it('checks at_hash of an EdDSA token signed with Ed448 with SHAKE256 (114 bytes)', async () => {
    const pair = generateKeyPairSync('ed448', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const verifyKey = importPem(pair.publicKey, ['EdDSA'], 'ed448-1');
    assert.ok(typeof verifyKey !== 'string');
    const privateKey = createPrivateKey(pair.privateKey);
    assert.equal(createPublicKey(pair.publicKey).asymmetricKeyType, 'ed448');
    const signed = (payload: string): string => {
      const input = `${b64(JSON.stringify({ alg: 'EdDSA', kid: 'ed448-1' }))}.${b64(payload)}`;
      return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
    };
    const shake = createHash('shake256', { outputLength: 114 }).update(ACCESS_TOKEN).digest();
    const source = new StaticKeys([verifyKey]);
    assert.equal(await check(signed(claims({ at_hash: shake.subarray(0, 57).toString('base64url') })), expectations(), NOW_MS, source), 'ok');
    assert.equal(await check(signed(claims({ at_hash: atHash('sha512') })), expectations(), NOW_MS, source), 'at_hash_mismatch');
  });

  it('waits for a key set that has to refetch, and fails closed when keys cannot be had', async () => {
    const imported = importJwks({ keys: [es.jwk] }, ALGORITHMS);
    assert.ok(typeof imported !== 'string');
    const fetched = imported.keys;
    const refetching: KeySource = { revision: 1, keysFor: (alg, kid) => Promise.resolve(new StaticKeys(fetched).keysFor(alg, kid)) };
    assert.equal(await check(token(es, claims({ at_hash: atHash('sha256') })), expectations(), NOW_MS, refetching), 'ok');
    const down: KeySource = { revision: 1, keysFor: (): Promise<readonly VerifyKey[]> => Promise.reject(new KeysUnavailableError('jwks down', 5000)) };
    await assert.rejects(verifyIdToken(token(es), down, ALGORITHMS, expectations(), SKEW_MS, NOW_MS), KeysUnavailableError);
  });

  it('uses the clock it is given, not the wall clock', async () => {
    const jwt = token(es);
    assert.equal(await check(jwt, expectations(), NOW_MS + 400_000), 'expired');
    assert.equal(await check(jwt, expectations(), NOW_MS - 120_000), 'issued_in_future');
  });
});
