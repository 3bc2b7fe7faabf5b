import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import type { JwsAlgorithm } from '../src/authn/jwt/algorithms.js';
import { importJwks, StaticKeys } from '../src/authn/jwt/key-source.js';
import { verifyIdToken } from '../src/authn/oidc/id-token.js';
import { BACKCHANNEL_LOGOUT_EVENT, verifyLogoutToken, type LogoutTokenExpectations } from '../src/authn/oidc/logout-token.js';
import { MAX_PROVIDER_TOKEN_BYTES } from '../src/authn/oidc/provider-jwt.js';
import { b64, craft, mint, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://idp.test/realms/main';
const CLIENT = 'gateway-client';
const T = 1_800_000_000; // a fixed "now" in seconds; the clock is passed explicitly
const NOW_MS = T * 1000;
const SKEW_MS = 60_000;
const MAX_IAT_AGE_MS = 120_000;
const ALGORITHMS: readonly JwsAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];
const EXPECT: LogoutTokenExpectations = { issuer: ISS, clientId: CLIENT, maxIatAgeMs: MAX_IAT_AGE_MS };

let rs: TestKey, es: TestKey, esImpostor: TestKey, ed: TestKey;
let keys: StaticKeys;

/** The claims of a valid logout token, with overrides; an `undefined` override removes the claim. */
function claims(extra: Record<string, unknown> = {}): string {
  const all: Record<string, unknown> = { iss: ISS, aud: CLIENT, iat: T - 5, jti: 'jti-1', sid: 'provider-session-1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra };
  return JSON.stringify(Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)));
}

const header = (key: TestKey, extra: Record<string, unknown> = {}): string => JSON.stringify({ alg: key.alg, kid: key.kid, typ: 'logout+jwt', ...extra });
const token = (key: TestKey, payload: string = claims(), head: string = header(key)): string => craft(head, payload, { key });

async function check(jwt: string, now = NOW_MS, algorithms = ALGORITHMS): Promise<string> {
  const result = await verifyLogoutToken(jwt, keys, algorithms, EXPECT, SKEW_MS, now);
  return result.ok ? 'ok' : result.reason.split(':', 1)[0] ?? '';
}

describe('logout token validation (OIDC Back-Channel Logout 1.0 §2.6)', () => {
  before(async () => {
    [rs, es, esImpostor, ed] = await Promise.all([testKey('RS256', 'oidc-rs-1'), testKey('ES256', 'es-1'), testKey('ES256', 'es-1'), testKey('EdDSA', 'ed-1')]);
    const imported = importJwks({ keys: [rs.jwk, es.jwk, ed.jwk] }, ALGORITHMS);
    assert.ok(typeof imported !== 'string');
    keys = new StaticKeys(imported.keys);
  });

  it('accepts valid ES256, RS256 and EdDSA logout tokens, crafted and minted with jose', async () => {
    for (const key of [es, rs, ed]) {
      assert.equal(await check(token(key)), 'ok', key.alg);
      const minted = await mint(key, { iss: ISS, aud: CLIENT, sub: 'user-2', iat: T, exp: T + 60, jti: 'j-2', sid: 's-2', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { typ: 'logout+jwt' });
      assert.equal(await check(minted), 'ok', `${key.alg} (jose)`);
    }
  });

  it('returns sid, subject, jti and when the jti may be forgotten', async () => {
    const bySid = await verifyLogoutToken(token(es), keys, ALGORITHMS, EXPECT, SKEW_MS, NOW_MS);
    assert.deepEqual(bySid, { ok: true, sid: 'provider-session-1', subject: null, jti: 'jti-1', until: (T - 5) * 1000 + MAX_IAT_AGE_MS + SKEW_MS });
    const bySub = await verifyLogoutToken(token(es, claims({ sid: undefined, sub: 'user-1', jti: 'jti-2' })), keys, ALGORITHMS, EXPECT, SKEW_MS, NOW_MS);
    assert.deepEqual(bySub, { ok: true, sid: null, subject: 'user-1', jti: 'jti-2', until: (T - 5) * 1000 + MAX_IAT_AGE_MS + SKEW_MS });
    // exp sooner than the iat bound: the token is refused after exp anyway, so its jti is forgotten then.
    const soon = await verifyLogoutToken(token(es, claims({ sub: 'user-1', exp: T + 30 })), keys, ALGORITHMS, EXPECT, SKEW_MS, NOW_MS);
    assert.ok(soon.ok);
    assert.equal(soon.until, (T + 30) * 1000 + SKEW_MS);
    assert.equal(soon.subject, 'user-1');
    const late = await verifyLogoutToken(token(es, claims({ exp: T + 3600 })), keys, ALGORITHMS, EXPECT, SKEW_MS, NOW_MS);
    assert.ok(late.ok);
    assert.equal(late.until, (T - 5) * 1000 + MAX_IAT_AGE_MS + SKEW_MS);
  });

  it('refuses the same token once past `until` (so forgetting its jti then is safe)', async () => {
    for (const extra of [{}, { exp: T + 30 }]) {
      const jwt = token(es, claims(extra));
      const result = await verifyLogoutToken(jwt, keys, ALGORITHMS, EXPECT, SKEW_MS, NOW_MS);
      assert.ok(result.ok);
      assert.notEqual(await check(jwt, result.until + 1000), 'ok', JSON.stringify(extra));
    }
  });

  const valid: readonly [string, () => string][] = [
    ['typ absent', () => token(es, claims(), JSON.stringify({ alg: 'ES256', kid: es.kid }))],
    ['typ application/logout+jwt', () => token(es, claims(), header(es, { typ: 'application/logout+jwt' }))],
    ['typ in mixed case', () => token(es, claims(), header(es, { typ: 'Logout+JWT' }))],
    ['sub only', () => token(es, claims({ sid: undefined, sub: 'user-1' }))],
    ['sid and sub', () => token(es, claims({ sub: 'user-1' }))],
    ['exp in the future', () => token(es, claims({ exp: T + 120 }))],
    ['several audiences with azp naming this client', () => token(es, claims({ aud: [CLIENT, 'other'], azp: CLIENT }))],
    ['an event object with members', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: { reason: 'x' }, 'https://other.test/event': {} } }))],
    ['jti of 256 bytes', () => token(es, claims({ jti: 'j'.repeat(256) }))],
  ];
  for (const [name, make] of valid) {
    it(`accepts: ${name}`, async () => {
      assert.equal(await check(make()), 'ok');
    });
  }

  const idToken = (head: Record<string, unknown>): string => token(es, JSON.stringify({
    iss: ISS, aud: CLIENT, sub: 'user-1', sid: 'provider-session-1', nonce: 'login-nonce', iat: T - 5, exp: T + 300, auth_time: T - 30,
  }), JSON.stringify({ alg: 'ES256', kid: es.kid, ...head }));
  const hostile: readonly [string, () => string, string][] = [
    ['a nonce (an ID token?)', () => token(es, claims({ nonce: 'n' })), 'nonce_present'],
    ['a nonce of null', () => token(es, claims({ nonce: null })), 'nonce_present'],
    ['an actual ID token (typ JWT)', () => idToken({ typ: 'JWT' }), 'typ_mismatch'],
    ['an actual ID token without typ', () => idToken({}), 'nonce_present'],
    ['typ JWT', () => token(es, claims(), header(es, { typ: 'JWT' })), 'typ_mismatch'],
    ['typ at+jwt', () => token(es, claims(), header(es, { typ: 'at+jwt' })), 'typ_mismatch'],
    ['typ secevent+jwt', () => token(es, claims(), header(es, { typ: 'secevent+jwt' })), 'typ_mismatch'],
    ['typ not a string', () => token(es, claims(), header(es, { typ: ['logout+jwt'] })), 'typ_mismatch'],
    ['without events', () => token(es, claims({ events: undefined })), 'events_invalid'],
    ['events a string', () => token(es, claims({ events: BACKCHANNEL_LOGOUT_EVENT })), 'events_invalid'],
    ['events an array', () => token(es, claims({ events: [BACKCHANNEL_LOGOUT_EVENT] })), 'events_invalid'],
    ['events without the back-channel logout member', () => token(es, claims({ events: { 'https://other.test/event': {} } })), 'events_invalid'],
    ['the event member a string', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } })), 'events_invalid'],
    ['the event member null', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: null } })), 'events_invalid'],
    ['the event member an array', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: [] } })), 'events_invalid'],
    ['the event member true', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: true } })), 'events_invalid'],
    ['the event URI in another case', () => token(es, claims({ events: { [BACKCHANNEL_LOGOUT_EVENT.toUpperCase()]: {} } })), 'events_invalid'],
    ['without sid and sub', () => token(es, claims({ sid: undefined })), 'subject_missing'],
    ['sid empty', () => token(es, claims({ sid: '' })), 'sid_invalid'],
    ['sid a number', () => token(es, claims({ sid: 7 })), 'sid_invalid'],
    ['sid null, sub valid', () => token(es, claims({ sid: null, sub: 'user-1' })), 'sid_invalid'],
    ['sid too long', () => token(es, claims({ sid: 's'.repeat(256) })), 'sid_invalid'],
    ['sub too long', () => token(es, claims({ sub: 's'.repeat(256) })), 'sub_invalid'],
    ['sub an object', () => token(es, claims({ sub: { id: 'u' } })), 'sub_invalid'],
    ['without jti', () => token(es, claims({ jti: undefined })), 'jti_invalid'],
    ['jti empty', () => token(es, claims({ jti: '' })), 'jti_invalid'],
    ['jti a number', () => token(es, claims({ jti: 1 })), 'jti_invalid'],
    ['jti too long', () => token(es, claims({ jti: 'j'.repeat(257) })), 'jti_invalid'],
    ['wrong aud', () => token(es, claims({ aud: 'another-client' })), 'audience_mismatch'],
    ['extra aud without azp', () => token(es, claims({ aud: [CLIENT, 'other'] })), 'azp_missing'],
    ['wrong azp', () => token(es, claims({ azp: 'other' })), 'azp_mismatch'],
    ['wrong iss', () => token(es, claims({ iss: 'https://evil.test/' })), 'issuer_unknown'],
    ['iat in the future', () => token(es, claims({ iat: T + 120 })), 'issued_in_future'],
    ['iat too old', () => token(es, claims({ iat: T - 600 })), 'iat_too_old'],
    ['iat absent', () => token(es, claims({ iat: undefined })), 'iat_invalid'],
    ['expired', () => token(es, claims({ exp: T - 120 })), 'expired'],
    ['exp a string', () => token(es, claims({ exp: 'never' })), 'claim_invalid'],
    ['signed by another key with the same kid', () => craft(header(es), claims(), { key: esImpostor }), 'signature_invalid'],
    ['sid changed after signing', () => { const [h, , s] = token(es).split('.'); return `${h ?? ''}.${b64(claims({ sid: 'another-session' }))}.${s ?? ''}`; }, 'signature_invalid'],
    ['alg none', () => craft('{"alg":"none","typ":"logout+jwt"}', claims(), { signature: '' }), 'alg_none'],
    ['alg HS256 with the RSA public key as secret', () => craft(JSON.stringify({ alg: 'HS256', kid: rs.kid, typ: 'logout+jwt' }), claims(), { hmac: rs.pem }), 'alg_not_allowed'],
    ['duplicated events member', () => token(es, claims().replace('{', '{"events":{},')), 'malformed'],
    ['duplicated sid member', () => token(es, claims().replace('{', '{"sid":"every-session",')), 'malformed'],
    ['token too large', () => token(es, claims({ padding: 'x'.repeat(MAX_PROVIDER_TOKEN_BYTES) })), 'token_too_large'],
  ];
  for (const [name, make, reason] of hostile) {
    it(`refuses: ${name}`, async () => {
      assert.equal(await check(make()), reason);
    });
  }

  it('takes HS256 only when listed, and then never with a public key as the secret', async () => {
    const forged = craft(JSON.stringify({ alg: 'HS256', kid: rs.kid, typ: 'logout+jwt' }), claims(), { hmac: rs.pem });
    assert.equal(await check(forged, NOW_MS, [...ALGORITHMS, 'HS256']), 'key_unknown');
  });

  it('a logout token is never an ID token, and an ID token never a logout token', async () => {
    const logout = token(es, claims({ sub: 'user-1', exp: T + 60 }));
    assert.equal(await check(logout), 'ok');
    const asIdToken = await verifyIdToken(logout, keys, ALGORITHMS, { issuer: ISS, clientId: CLIENT, nonce: 'login-nonce', accessToken: null, maxAgeMs: null, maxIatAgeMs: 600_000 }, SKEW_MS, NOW_MS);
    assert.ok(!asIdToken.ok);
    assert.match(asIdToken.reason, /^typ_mismatch/);
    const id = idToken({});
    const asId = await verifyIdToken(id, keys, ALGORITHMS, { issuer: ISS, clientId: CLIENT, nonce: 'login-nonce', accessToken: null, maxAgeMs: null, maxIatAgeMs: 600_000 }, SKEW_MS, NOW_MS);
    assert.ok(asId.ok, 'the ID token itself is valid');
    assert.equal(await check(id), 'nonce_present');
  });
});
