import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** `Authorization: Bearer <token>` whose SHA-256 equals admin.tokenHash, compared in constant time. */
export function hasAdminToken(req: IncomingMessage, tokenHash: string): boolean {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ') || header.length > 4096) return false;
  const presented = createHash('sha256').update(header.slice(7)).digest();
  return timingSafeEqual(presented, Buffer.from(tokenHash, 'hex'));
}

/**
 * A request a browser can send cross-site without a CORS preflight (a form post, `text/plain`,
 * no content type) must never mutate (the CSRF defence of the Fetch standard's "CORS-safelisted
 * request-header" rules): mutations need `Content-Type: application/json`, which forces a
 * preflight the admin listener never grants.
 */
export function isJson(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase() === 'application/json';
}
