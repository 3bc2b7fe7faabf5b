import type { IncomingMessage, ServerResponse } from 'node:http';
import { KeyRequestError, keyRequest, type KeyRequest } from '../authn/api-key/key-service.js';
import { isKeyId } from '../authn/api-key/key-format.js';
import { KeyConflictError, StoreUnavailableError } from '../authn/api-key/store.js';
import { parseDuration } from '../lib/duration.js';
import { parseStrictJson } from '../lib/strict-json.js';
import { writeProblem } from '../pipeline/problem.js';
import { adminEntry, type AdminCode } from './admin-errors.js';
import type { AdminOutcome, KeyAdmin } from './admin-host.js';

/** Largest admin request body. */
const MAX_BODY_BYTES = 65_536;

/** The request id of an admin call and the header it is sent in. */
export interface RequestId {
  readonly value: string;
  readonly header: string;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** A problem document with an `errors` member saying what to fix (admin callers are operators, not attackers). */
function problem(res: ServerResponse, code: AdminCode, errors: readonly string[], id: RequestId, headers: Record<string, string> = {}): AdminOutcome {
  const entry = adminEntry(code);
  writeProblem(res, code, entry, { requestId: id.value, requestIdHeader: id.header, headers, errors });
  return { status: entry.status, code, detail: errors.join('; '), keyId: null };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new KeyRequestError('send the body as application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new KeyRequestError(`body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  const value = parseStrictJson(text, 8);
  if (value === undefined) throw new KeyRequestError('body is not JSON (or has a duplicate key)');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KeyRequestError('body must be a JSON object');
  return value;
}

const CREATE_FIELDS = new Set(['name', 'tenant', 'roles', 'scopes', 'allowedCidrs', 'rateLimitTier', 'metadata', 'expires']);
const ROTATE_FIELDS = new Set(['grace', 'expires']);

function fields(body: object, allowed: ReadonlySet<string>): Record<string, unknown> {
  const unknown = Object.keys(body).filter((k) => !allowed.has(k));
  if (unknown.length > 0) throw new KeyRequestError(`unknown field ${unknown.join(', ')} (allowed: ${[...allowed].join(', ')})`);
  return body as Record<string, unknown>;
}

function duration(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'string' ? parseDuration(value) : null;
  if (ms === null) throw new KeyRequestError(`${field}: a duration such as 90d, 24h, 30m`);
  return ms;
}

function strings(value: unknown, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new KeyRequestError(`${field}: an array of strings`);
  return value;
}

function optionalString(value: unknown, field: string): string | null | undefined {
  if (value === undefined || value === null) return value;
  if (typeof value !== 'string') throw new KeyRequestError(`${field}: a string`);
  return value;
}

/** Turns a create body into a key request; throws KeyRequestError naming the field. */
export function createRequest(body: object): KeyRequest {
  const f = fields(body, CREATE_FIELDS);
  if (typeof f.name !== 'string') throw new KeyRequestError('name: required, a string');
  const metadata = f.metadata;
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) throw new KeyRequestError('metadata: an object of strings');
  return keyRequest({
    name: f.name,
    tenant: optionalString(f.tenant, 'tenant'),
    roles: strings(f.roles, 'roles'),
    scopes: strings(f.scopes, 'scopes'),
    allowedCidrs: strings(f.allowedCidrs, 'allowedCidrs'),
    rateLimitTier: optionalString(f.rateLimitTier, 'rateLimitTier'),
    metadata: metadata as Record<string, string> | undefined,
    expiresInMs: duration(f.expires, 'expires'),
  });
}

/**
 * `/admin/keys`: list (GET), create (POST), one key (GET /admin/keys/{id}), revoke
 * (POST …/{id}/revoke), rotate (POST …/{id}/rotate with `{"grace":"24h"}`). The caller has
 * already checked the admin token. Secrets appear only in the create and rotate responses.
 */
export async function serveKeys(keys: KeyAdmin, req: IncomingMessage, res: ServerResponse, path: string, requestId: RequestId): Promise<AdminOutcome> {
  const service = keys.service;
  const parts = path.split('/').slice(3); // ['', 'admin', 'keys', ...]
  const method = req.method ?? '';
  const notAllowed = (allow: string): AdminOutcome => problem(res, 'method_not_allowed', [`${path} accepts ${allow}`], requestId, { allow });
  try {
    if (parts.length === 0 || (parts.length === 1 && parts[0] === '')) {
      if (method === 'GET') {
        send(res, 200, { keys: await service.list() });
        return { status: 200, code: null, detail: 'listed keys', keyId: null };
      }
      if (method !== 'POST') return notAllowed('GET, POST');
      const issued = await service.create(createRequest(await readJson(req) as object));
      send(res, 201, { key: issued.key, ...issued.view });
      return { status: 201, code: null, detail: `created key ${issued.view.id} (${issued.view.name})`, keyId: issued.view.id };
    }
    const [id = '', action, ...extra] = parts;
    if (!isKeyId(id) || extra.length > 0) return problem(res, 'key_not_found', [`no key ${id.slice(0, 40)}`], requestId);
    if (action === undefined) {
      if (method !== 'GET') return notAllowed('GET');
      const view = await service.get(id);
      if (view === null) return problem(res, 'key_not_found', [`no key ${id}`], requestId);
      send(res, 200, view);
      return { status: 200, code: null, detail: `read key ${id}`, keyId: id };
    }
    if (action === 'revoke') {
      if (method !== 'POST') return notAllowed('POST');
      const view = await service.revoke(id);
      if (view === null) return problem(res, 'key_not_found', [`no key ${id}`], requestId);
      keys.forget(id);
      send(res, 200, view);
      return { status: 200, code: null, detail: `revoked key ${id}`, keyId: id };
    }
    if (action === 'rotate') {
      if (method !== 'POST') return notAllowed('POST');
      const f = fields(await readJson(req) as object, ROTATE_FIELDS);
      const grace = duration(f.grace, 'grace');
      if (grace === undefined) throw new KeyRequestError('grace: required, e.g. "24h" (how long the old key keeps working)');
      const rotated = await service.rotate(id, grace, duration(f.expires, 'expires'));
      if (rotated === null) return problem(res, 'key_not_found', [`no key ${id}`], requestId);
      keys.forget(id);
      send(res, 201, { key: rotated.key, ...rotated.view, previous: rotated.previous });
      return { status: 201, code: null, detail: `rotated key ${id} to ${rotated.view.id}`, keyId: id };
    }
    return problem(res, 'key_not_found', [`unknown key operation ${action.slice(0, 40)}`], requestId);
  } catch (err) {
    if (err instanceof KeyRequestError) return problem(res, 'invalid_admin_request', [err.message], requestId);
    if (err instanceof KeyConflictError) return problem(res, 'key_conflict', [err.message], requestId);
    if (err instanceof StoreUnavailableError) return problem(res, 'authentication_unavailable', ['the key store is unreachable'], requestId);
    throw err;
  }
}

/** Used when the config has no apiKeys section. */
export function keysDisabled(res: ServerResponse, requestId: RequestId, why: string): AdminOutcome {
  return problem(res, 'admin_disabled', [why], requestId);
}

