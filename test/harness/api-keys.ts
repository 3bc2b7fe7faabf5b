// Helpers for API key tests: the admin token, admin API calls and plain GETs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'undici';

export const ADMIN_TOKEN = 'test-admin-token-2f6c1a9e4b7d';
export const ADMIN_TOKEN_HASH = `sha256:${createHash('sha256').update(ADMIN_TOKEN).digest('hex')}`;

export interface Reply { status: number; headers: Record<string, string>; body: string; complete: true }

/** A request with string headers; the reply with flattened headers. */
export async function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const res = await request(url, {
    method: (options.method ?? (body === undefined ? 'GET' : 'POST')) as 'GET',
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
    ...(body === undefined ? {} : { body }),
  });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v ?? '';
  return { status: res.statusCode, headers: flat, body: await res.body.text(), complete: true };
}

/** An admin API call with the admin token; a POST says `Content-Type: application/json` even without a body, as the admin API requires. */
export function admin(adminUrl: string, method: string, path: string, body?: unknown, token = ADMIN_TOKEN): Promise<Reply> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (method === 'POST') headers['content-type'] = 'application/json';
  return call(`${adminUrl}${path}`, { method, headers, body });
}

export interface IssuedKeyReply { key: string; id: string; name: string; status: string; expiresAt: string | null; graceUntil: string | null; previous?: { id: string; graceUntil: string } }

/** Creates a key through the admin API; fails the test unless it is 201. */
export async function createKey(adminUrl: string, body: Record<string, unknown>): Promise<IssuedKeyReply> {
  const res = await admin(adminUrl, 'POST', '/admin/keys', body);
  assert.equal(res.status, 201, res.body);
  return JSON.parse(res.body) as IssuedKeyReply;
}

/** GET with an X-API-Key header (or none). */
export function withKey(url: string, key: string | null, headers: Record<string, string> = {}): Promise<Reply> {
  return call(url, { headers: { ...(key === null ? {} : { 'x-api-key': key }), ...headers } });
}
