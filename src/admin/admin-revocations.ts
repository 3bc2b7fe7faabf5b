import type { IncomingMessage, ServerResponse } from 'node:http';
import { hashOfToken, checkedHash, revocationEnd, RevocationRequestError } from '../authn/oauth/revocation-request.js';
import type { Clock } from '../lib/clock.js';
import { parseStrictJson } from '../lib/strict-json.js';
import { writeProblem } from '../pipeline/problem.js';
import { adminEntry, type AdminCode } from './admin-errors.js';
import type { AdminHost, AdminOutcome } from './admin-host.js';
import type { RequestId } from './admin-keys.js';

/** Largest body of POST /admin/revocations: one token of at most 16 KiB, in JSON. */
export const MAX_REVOCATION_BODY_BYTES = 32_768;
const FIELDS = new Set(['token', 'tokenHash', 'expiresAt']);

function problem(res: ServerResponse, code: AdminCode, errors: readonly string[], id: RequestId): AdminOutcome {
  const entry = adminEntry(code);
  writeProblem(res, code, entry, { requestId: id.value, requestIdHeader: id.header, errors });
  return { status: entry.status, code, detail: errors.join('; '), keyId: null };
}

/** The body as a JSON object; throws RevocationRequestError saying what is wrong with it. */
async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REVOCATION_BODY_BYTES) {
      throw new RevocationRequestError(`body larger than ${MAX_REVOCATION_BODY_BYTES} bytes; send one token or token hash per request`);
    }
    chunks.push(chunk);
  }
  const value = parseStrictJson(Buffer.concat(chunks).toString('utf8'), 2);
  if (value === undefined) throw new RevocationRequestError('body is not JSON (or has a duplicate key, or nests objects): send {"token": "..."} or {"tokenHash": "..."}');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RevocationRequestError('body must be a JSON object: {"token": "..."} or {"tokenHash": "..."}');
  const unknown = Object.keys(value).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) throw new RevocationRequestError(`unknown field ${unknown.map((k) => k.slice(0, 40)).join(', ')} (allowed: token, tokenHash, expiresAt)`);
  return value as Record<string, unknown>;
}

/**
 * POST /admin/revocations: revokes one bearer token, named by the token (`token`) or by its
 * SHA-256 (`tokenHash`, base64url), exactly one of them; `expiresAt` (epoch seconds) bounds how
 * long the revocation is kept, else the token's own `exp` (a JWT) or oauth.revocations.defaultTtl.
 * Answers 200 `{tokenHash, expiresAt}` once every gateway sharing the list will refuse it (the
 * token itself is never echoed, logged or audited), 503 when the shared list did not take it.
 */
export async function serveRevocations(host: AdminHost, clock: Clock, req: IncomingMessage, res: ServerResponse, id: RequestId): Promise<AdminOutcome> {
  let hash: string;
  let until: number;
  try {
    const body = await readBody(req);
    const hasToken = body.token !== undefined;
    if (hasToken === (body.tokenHash !== undefined)) throw new RevocationRequestError('give exactly one of token and tokenHash');
    hash = hasToken ? hashOfToken(body.token, 'token') : checkedHash(body.tokenHash, 'tokenHash');
    until = revocationEnd(body.expiresAt, hasToken ? body.token as string : null, clock.now(), host.config.oauth.revocationTtlMs);
  } catch (err) {
    if (err instanceof RevocationRequestError) return problem(res, 'invalid_admin_request', [err.message], id);
    throw err;
  }
  const failure = await host.revokeToken(hash, until);
  const expiresAt = Math.ceil(until / 1000);
  if (failure !== null) return problem(res, 'revocations_unavailable', [`token ${hash} is refused here but was not shared: ${failure}`], id);
  const text = JSON.stringify({ tokenHash: hash, expiresAt });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
  return { status: 200, code: null, detail: `revoked token ${hash} until ${new Date(until).toISOString()}`, keyId: null };
}
