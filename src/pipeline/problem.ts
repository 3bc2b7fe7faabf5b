import type { ServerResponse } from 'node:http';
import { DENIALS, type Denial } from './denials.js';

/** Base of the `type` URI in problem documents: `urn:portcullis:error:<code>`, each code described in docs/errors.md. */
export const PROBLEM_TYPE_BASE = 'urn:portcullis:error:';

/** One row of an error catalogue (the gateway's denials, the admin API's errors): status and public text. */
export interface ProblemEntry {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
}

/**
 * The RFC 9457 problem document of a catalogued code. Public text only; `errors` (admin refusals,
 * whose callers are operators) says what to fix.
 */
export function problemDocument(code: string, entry: ProblemEntry, requestId: string, errors?: readonly string[]): string {
  return JSON.stringify(errors === undefined
    ? { type: PROBLEM_TYPE_BASE + code, title: entry.title, status: entry.status, detail: entry.detail, requestId }
    : { type: PROBLEM_TYPE_BASE + code, title: entry.title, status: entry.status, detail: entry.detail, errors, requestId });
}

/** The RFC 9457 problem document for a denial. Public text only. */
export function problemBody(denial: Denial, requestId: string): string {
  if (denial.pointer === undefined) return problemDocument(denial.code, DENIALS[denial.code], requestId);
  const entry = DENIALS[denial.code];
  return JSON.stringify({ type: PROBLEM_TYPE_BASE + denial.code, title: entry.title, status: entry.status, detail: entry.detail, pointer: denial.pointer, requestId });
}

/** How one problem response is sent, beyond its code and catalogue entry. */
export interface ProblemResponse {
  readonly requestId: string;
  readonly requestIdHeader: string;
  /** Headers the status requires (`Allow`, `WWW-Authenticate`, `Retry-After`). */
  readonly headers?: Readonly<Record<string, string | string[]>> | undefined;
  /** Headers sent before the status's own (rate-limit figures). */
  readonly extra?: readonly (readonly [string, string])[];
  readonly close?: boolean;
  readonly errors?: readonly string[];
}

/**
 * The one writer of generated error responses, for any catalogue. Sets the status, the request id,
 * the headers and `application/problem+json`; never includes private reason text.
 */
export function writeProblem(res: ServerResponse, code: string, entry: ProblemEntry, how: ProblemResponse): void {
  const body = problemDocument(code, entry, how.requestId, how.errors);
  const headers: Record<string, string | string[] | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    [how.requestIdHeader]: how.requestId,
  };
  for (const [name, value] of how.extra ?? []) headers[name] = value;
  if (how.headers !== undefined) Object.assign(headers, how.headers);
  if (how.close === true) headers.connection = 'close';
  res.writeHead(entry.status, headers);
  res.end(body);
}

/**
 * Sends a denial of the gateway's catalogue. Sets the status, the denial's own headers, the request
 * id, `extra` headers (rate-limit figures) and `application/problem+json`.
 */
export function sendProblem(
  res: ServerResponse, denial: Denial, requestId: string, requestIdHeader: string, close = false, extra: readonly (readonly [string, string])[] = [],
): void {
  writeProblem(res, denial.code, DENIALS[denial.code], { requestId, requestIdHeader, headers: denial.headers, extra, close });
}
