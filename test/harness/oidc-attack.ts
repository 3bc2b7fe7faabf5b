// What the hostile OIDC login tests share: a gateway whose token hash key the test knows (so it
// seals pre-login cookies of its own), a login driven up to the callback, authorization requests
// the test makes itself, ID tokens re-signed as a hostile provider would, and the one-audit-record
// check every refusal must pass.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, sign, type KeyObject } from 'node:crypto';
import { LOGIN_STATE_KEY_LABEL, sealLoginState } from '../../src/authn/oidc/login-state-cookie.js';
import type { AuditRecord } from '../../src/audit/audit-log.js';
import { LoginClient, type Hop } from './login-client.js';
import type { OidcLoginSetup } from './oidc-login.js';

export const SESSION = '__Host-portcullis-session-web';
/** oauth.tokenHashKey of the attacked gateways. */
export const TOKEN_HASH_KEY = 'attack-oidc-token-hash-key-0123456789abcdef';
/** The key pre-login cookies are sealed under: HMAC-SHA256(tokenHashKey, label), as the gateway derives it. */
export const LOGIN_KEY = createHmac('sha256', Buffer.from(TOKEN_HASH_KEY, 'utf8')).update(LOGIN_STATE_KEY_LABEL, 'utf8').digest();

/** The Set-Cookie lines of a response. */
export function setCookies(hop: Hop): string[] {
  const v = hop.headers['set-cookie'];
  return v === undefined ? [] : typeof v === 'string' ? [v] : v;
}

/** Whether a response sets a (non-empty) session cookie. */
export function setsSession(hop: Hop): boolean {
  return setCookies(hop).some((c) => c.startsWith(`${SESSION}=`) && !c.startsWith(`${SESSION}=;`));
}

/**
 * Asserts the status, then that the request has exactly one audit record with `code` as its
 * reason; returns that record.
 */
export async function refusedOnce(setup: OidcLoginSetup, hop: Pick<Hop, 'status' | 'headers' | 'body'>, status: number, code: string): Promise<AuditRecord> {
  assert.equal(hop.status, status, `status ${hop.status}, expected ${status}: ${hop.body.slice(0, 300)}`);
  const id = hop.headers['x-request-id'];
  assert.equal(typeof id, 'string', 'the response has an x-request-id');
  await setup.gateway.auditFor(String(id));
  const all = (await setup.gateway.audit()).filter((r) => r.requestId === id);
  assert.equal(all.length, 1, `exactly one audit record for ${String(id)}: ${JSON.stringify(all)}`);
  const record = all[0] as AuditRecord;
  assert.equal(record.reason, code, `audit reason ${String(record.reason)} (${String(record.detail)}), expected ${code}`);
  return record;
}

/** Runs `fn` and asserts the upstream received nothing meanwhile. */
export async function nothingForwarded<T>(setup: OidcLoginSetup, fn: () => Promise<T>): Promise<T> {
  const before = setup.echo.received.length;
  const out = await fn();
  assert.equal(setup.echo.received.length, before, `the upstream received ${JSON.stringify(setup.echo.received.slice(before).map((r) => r.url))}`);
  return out;
}

/** Starts a login at `path` and follows it to the provider and back, stopping before the callback: its URL. */
export async function toCallback(setup: OidcLoginSetup, client: LoginClient, path = '/app/page'): Promise<string> {
  const { stoppedAt, hops } = await client.follow(`${setup.base}${path}`, {}, (url) => url.startsWith(`${setup.base}/oauth2/callback`));
  assert.ok(stoppedAt !== null, `no callback reached: ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`);
  return stoppedAt;
}

/** A login completed end to end; the client holds its session cookie. */
export async function loggedIn(setup: OidcLoginSetup, client = new LoginClient()): Promise<LoginClient> {
  const { final } = await client.follow(`${setup.base}/app/page`);
  assert.equal(final.status, 200);
  assert.ok(client.cookie(setup.base, SESSION) !== undefined);
  return client;
}

export const random = (): string => randomBytes(32).toString('base64url');
export const challengeOf = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');

/**
 * An authorization request the test makes itself (its own state, nonce and code challenge, or
 * none with `challenge: null`), followed through the provider to the gateway's callback: its URL.
 */
export async function ownAuthorization(setup: OidcLoginSetup, client: LoginClient, p: { state: string; nonce: string; challenge: string | null }): Promise<string> {
  const auth = new URL(`${setup.idp.issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: setup.idp.web.clientId, response_type: 'code', scope: 'openid profile email', redirect_uri: `${setup.base}/oauth2/callback`,
    state: p.state, nonce: p.nonce, ...(p.challenge === null ? {} : { code_challenge: p.challenge, code_challenge_method: 'S256' }),
  }).toString();
  const { stoppedAt, hops } = await client.follow(auth.href, {}, (url) => url.startsWith(`${setup.base}/oauth2/callback`));
  assert.ok(stoppedAt !== null, `no callback reached: ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`);
  return stoppedAt;
}

/** Puts a pre-login cookie the test sealed itself into the client's jar. */
export function plantLoginState(setup: OidcLoginSetup, client: LoginClient, s: { state: string; nonce: string; verifier: string; returnTo?: string; expiresAt?: number; key?: Buffer; authenticator?: string }): void {
  const sealed = sealLoginState(s.key ?? LOGIN_KEY, {
    authenticator: s.authenticator ?? 'web', state: s.state, nonce: s.nonce, verifier: s.verifier, returnTo: s.returnTo ?? '/app/page', expiresAt: s.expiresAt ?? Date.now() + 600_000,
  });
  client.setCookie(setup.base, sealed.name, sealed.value);
}

/** A compact JWS, ES256 (signed synchronously: the provider's tamper hook is synchronous). */
export function signEs256(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(JSON.stringify({ ...header, alg: 'ES256' }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

/** The header and claims of a compact JWS (no verification). */
export function partsOf(jwt: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [h = '', c = ''] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>, claims: JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as Record<string, unknown> };
}

/** Re-signs the claims of `idToken`, changed by `edit`, with `key` under the same header (kid included). */
export function resign(idToken: string, key: KeyObject, edit: (claims: Record<string, unknown>) => Record<string, unknown>): string {
  const { header, claims } = partsOf(idToken);
  return signEs256(header, edit({ ...claims }), key);
}
