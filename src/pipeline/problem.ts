import type { ServerResponse } from 'node:http';
import { DENIALS, type Denial } from './denials.js';

/** Base of the `type` URI in problem documents: `urn:portcullis:error:<code>`, each code described in docs/errors.md. */
export const PROBLEM_TYPE_BASE = 'urn:portcullis:error:';

/** The RFC 9457 problem document for a denial. Public text only. */
export function problemBody(denial: Denial, requestId: string): string {
  const entry = DENIALS[denial.code];
  return JSON.stringify({
    type: PROBLEM_TYPE_BASE + denial.code,
    title: entry.title,
    status: entry.status,
    detail: entry.detail,
    requestId,
  });
}

/**
 * The one writer of gateway-generated error responses. Sets the status, the denial's own headers,
 * the request id, `extra` headers (rate-limit figures) and `application/problem+json`; never
 * includes private reason text.
 */
export function sendProblem(
  res: ServerResponse, denial: Denial, requestId: string, requestIdHeader: string, close = false, extra: readonly (readonly [string, string])[] = [],
): void {
  const body = problemBody(denial, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    [requestIdHeader]: requestId,
  };
  for (const [name, value] of extra) headers[name] = value;
  if (denial.headers !== undefined) Object.assign(headers, denial.headers);
  if (close) headers.connection = 'close';
  res.writeHead(DENIALS[denial.code].status, headers);
  res.end(body);
}
