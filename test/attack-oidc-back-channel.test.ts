// Forged, replayed and misdirected logout tokens at the gateway's back-channel logout endpoint
// (OpenID Connect Back-Channel Logout 1.0): each is refused with 400 logout_token_invalid and ends
// no session; a genuine one ends exactly the sessions of its sid.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { LoginClient, type Hop } from './harness/login-client.js';
import { SESSION, loggedIn, nothingForwarded, partsOf, refusedOnce, signEs256 } from './harness/oidc-attack.js';
import { BOB, startOidcLogin, type OidcLoginSetup } from './harness/oidc-login.js';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

describe('back-channel logout under attack', () => {
  let setup: OidcLoginSetup;
  before(async () => { setup = await startOidcLogin(); });
  after(async () => { await setup.close(); });

  /** A login whose ID token the test keeps: the client and the token's claims. */
  async function session(sub?: string): Promise<{ client: LoginClient; idToken: string; sid: string; sub: string }> {
    let idToken = '';
    setup.idp.tamperIdToken((token) => { idToken = token; return token; });
    if (sub !== undefined) setup.idp.nextLogin(sub);
    try {
      const client = await loggedIn(setup);
      const claims = partsOf(idToken).claims;
      assert.equal(typeof claims.sid, 'string', 'the provider puts a sid in the ID token');
      return { client, idToken, sid: String(claims.sid), sub: String(claims.sub) };
    } finally {
      setup.idp.tamperIdToken(null);
      setup.idp.nextLogin('alice');
    }
  }

  /** Whether the client's session still admits an API call. */
  async function alive(client: LoginClient): Promise<boolean> {
    const hop = await client.send(`${setup.base}/app/check`, { navigate: false, headers: { accept: 'application/json' } });
    return hop.status === 200;
  }

  const claims = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    iss: setup.idp.issuer, aud: setup.idp.web.clientId, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), events: { [EVENT]: {} }, ...over,
  });
  const header = { typ: 'logout+jwt', kid: 'as-key-1' };
  const post = (body: string, contentType = 'application/x-www-form-urlencoded'): Promise<Hop> =>
    new LoginClient().send(`${setup.base}/oauth2/back-channel-logout`, { method: 'POST', navigate: false, body, headers: { 'content-type': contentType } });
  const postToken = (token: string): Promise<Hop> => post(new URLSearchParams({ logout_token: token }).toString());

  it('refuses forged, misdirected and malformed logout tokens (400 logout_token_invalid) and ends no session', async () => {
    const victim = await session();
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const key = setup.idp.signingKey;
    const noEvents = claims({ sid: victim.sid });
    delete noEvents.events;
    const cases: [string, string][] = [
      ['signed by another key (same kid)', signEs256(header, claims({ sid: victim.sid }), other)],
      ['an ID token posted as a logout token', victim.idToken],
      ['an ID token re-signed with typ logout+jwt (it has a nonce)', signEs256(header, { ...partsOf(victim.idToken).claims, events: { [EVENT]: {} }, jti: randomUUID() }, key)],
      ['no events', signEs256(header, noEvents, key)],
      ['events without the back-channel member', signEs256(header, claims({ sid: victim.sid, events: { 'http://example.com/other': {} } }), key)],
      ['the event not an object', signEs256(header, claims({ sid: victim.sid, events: { [EVENT]: true } }), key)],
      ['no jti', signEs256(header, { ...claims({ sid: victim.sid }), jti: undefined }, key)],
      ['neither sid nor sub', signEs256(header, claims(), key)],
      ['another audience', signEs256(header, claims({ sid: victim.sid, aud: 'another-client' }), key)],
      ['another issuer', signEs256(header, claims({ sid: victim.sid, iss: 'http://evil.example' }), key)],
      ['iat an hour old', signEs256(header, claims({ sid: victim.sid, iat: Math.floor(Date.now() / 1000) - 3600 }), key)],
      ['iat in the future', signEs256(header, claims({ sid: victim.sid, iat: Math.floor(Date.now() / 1000) + 3600 }), key)],
      ['expired', signEs256(header, claims({ sid: victim.sid, exp: Math.floor(Date.now() / 1000) - 120 }), key)],
      ['typ JWT', signEs256({ ...header, typ: 'JWT' }, claims({ sid: victim.sid }), key)],
      ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'logout+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims({ sid: victim.sid }))).toString('base64url')}.`],
      ['signature stripped', `${signEs256(header, claims({ sid: victim.sid }), key).split('.').slice(0, 2).join('.')}.`],
      ['not a JWT', 'not-a-jwt'],
      ['empty', ''],
      ['a 15 KB token', 'a'.repeat(15_000)],
    ];
    for (const [name, token] of cases) {
      const hop = await nothingForwarded(setup, () => postToken(token));
      await refusedOnce(setup, hop, 400, 'logout_token_invalid').catch((err: unknown) => { throw new Error(`${name}: ${(err as Error).message}`); });
    }
    assert.ok(await alive(victim.client), 'no forged token ended the session');
  });

  it('refuses a malformed request: two logout_token parameters (400), another content type (415), a body over 16 KiB (413)', async () => {
    const victim = await session();
    const token = signEs256(header, claims({ sid: victim.sid }), setup.idp.signingKey);
    await refusedOnce(setup, await post(`logout_token=${token}&logout_token=${token}`), 400, 'logout_token_invalid');
    await refusedOnce(setup, await post(JSON.stringify({ logout_token: token }), 'application/json'), 415, 'unsupported_media_type');
    await refusedOnce(setup, await post(`logout_token=${token}&pad=${'p'.repeat(17_000)}`), 413, 'body_too_large');
    assert.ok(await alive(victim.client));
  });

  it('a genuine logout token ends exactly the sessions of its sid; replayed, its jti is refused', async () => {
    const a = await session();
    const b = await session();
    const bob = await session(BOB.sub);
    assert.notEqual(a.sid, b.sid);
    const token = signEs256(header, claims({ sid: a.sid, sub: a.sub }), setup.idp.signingKey);
    const hop = await nothingForwarded(setup, () => postToken(token));
    await refusedOnce(setup, hop, 200, 'logout_accepted');
    assert.equal(await alive(a.client), false, 'the session of that sid ended');
    assert.equal(await alive(b.client), true, 'another session of the same user lives on');
    assert.equal(await alive(bob.client), true, 'another user\'s session lives on');
    const replay = await nothingForwarded(setup, () => postToken(token));
    await refusedOnce(setup, replay, 400, 'logout_token_invalid');
    assert.ok(b.client.cookie(setup.base, SESSION) !== undefined);
  });

  it('a genuine logout token with only a sub ends every session of that user, and no one else\'s', async () => {
    const a = await session(BOB.sub);
    const b = await session(BOB.sub);
    const alice = await session();
    const hop = await nothingForwarded(setup, () => postToken(signEs256(header, claims({ sub: BOB.sub }), setup.idp.signingKey)));
    await refusedOnce(setup, hop, 200, 'logout_accepted');
    assert.equal(await alive(a.client), false);
    assert.equal(await alive(b.client), false);
    assert.equal(await alive(alice.client), true);
  });

  it('a logout token naming a sid no session has ends nothing (200, nothing to end)', async () => {
    const a = await session();
    const hop = await postToken(signEs256(header, claims({ sid: 'no-such-sid' }), setup.idp.signingKey));
    await refusedOnce(setup, hop, 200, 'logout_accepted');
    assert.equal(await alive(a.client), true);
  });

  it('one browser\'s logout (local, at the provider, and the provider\'s back-channel notice) leaves the user\'s other sessions alone', async () => {
    const a = await session();
    const b = await session();
    const { final } = await a.client.follow(`${setup.base}/oauth2/logout`);
    assert.equal(final.url, `${setup.base}/`);
    assert.equal(await alive(a.client), false);
    assert.equal(await alive(b.client), true);
  });
});
