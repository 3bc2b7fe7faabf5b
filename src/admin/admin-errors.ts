import { DENIALS, isDenialCode, refusal, type DenialCode, type Refusal } from '../pipeline/denials.js';
import type { ProblemEntry } from '../pipeline/problem.js';

/**
 * The admin API's own error codes, beside the gateway's catalogue (`DENIALS`) whose generic codes
 * (`route_not_found`, `method_not_allowed`, `bad_request`, …) it also answers with. Public text,
 * as problem+json; `docs/errors.md` is checked against both catalogues by a test.
 */
export const ADMIN_ERRORS = {
  invalid_admin_request: { status: 400, title: 'Bad Request', detail: 'The admin request is invalid; see errors.' },
  admin_unauthorized: { status: 401, title: 'Unauthorized', detail: 'A valid admin token is required.' },
  admin_origin_refused: { status: 403, title: 'Forbidden', detail: 'The admin API accepts requests only for its own host names and from no browser origin.' },
  admin_disabled: { status: 403, title: 'Forbidden', detail: 'This admin operation needs an admin token: set admin.tokenHash.' },
  key_not_found: { status: 404, title: 'Not Found', detail: 'No API key has this id.' },
  key_conflict: { status: 409, title: 'Conflict', detail: 'The key\'s state does not allow this operation.' },
  revocations_unavailable: { status: 503, title: 'Service Unavailable', detail: 'The revocation was not shared with every gateway (the shared list is unreachable); the gateway that answered refuses the token.' },
  reload_rejected: { status: 422, title: 'Unprocessable Content', detail: 'The config file has problems; the running config keeps serving.' },
} as const satisfies Record<string, ProblemEntry>;

export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

/** Every code an admin response or audit record can carry. */
export type AdminCode = AdminErrorCode | DenialCode;

/** The catalogue entry of an admin code, from whichever catalogue holds it. */
export function adminEntry(code: AdminCode): ProblemEntry {
  return isDenialCode(code) ? DENIALS[code] : ADMIN_ERRORS[code];
}

/** An admin request refused: the code, the precise reason (audit only) and the headers its status requires. */
export type AdminDenial = Refusal<AdminCode>;

export const adminDeny: (code: AdminCode, reason: string, headers?: Readonly<Record<string, string>>) => AdminDenial = refusal;
