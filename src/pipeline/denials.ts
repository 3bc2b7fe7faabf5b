/**
 * The catalogue of reason codes. Every request the gateway ends itself ends with one of these;
 * `DenialCode` is derived from this table, and `docs/errors.md` is checked against it by a test.
 * The admin API keeps its own codes beside these (`src/admin/admin-errors.ts`).
 *
 * `title` and `detail` are public text sent to the client. The precise reason (which header, which
 * byte) goes to the audit record and logs only, never to the client (Envoy's `sendLocalReply` split).
 */
export const DENIALS = {
  https_required: { status: 308, title: 'Permanent Redirect', detail: 'This gateway serves HTTPS only; repeat the request at the Location given.' },
  login_required: { status: 302, title: 'Found', detail: 'Log in to continue: follow the Location to the identity provider.' },
  bad_request: { status: 400, title: 'Bad Request', detail: 'The request could not be parsed.' },
  tls_handshake_failed: { status: 400, title: 'Bad Request', detail: 'The TLS handshake failed; no HTTP exchange took place.' },
  invalid_target: { status: 400, title: 'Bad Request', detail: 'The request target is not in origin form or contains forbidden characters.' },
  ambiguous_path: { status: 400, title: 'Bad Request', detail: 'The request path is ambiguous and was rejected.' },
  invalid_header: { status: 400, title: 'Bad Request', detail: 'A request header is malformed.' },
  ambiguous_header: { status: 400, title: 'Bad Request', detail: 'A header the gateway decides on is repeated or ambiguous.' },
  invalid_body: { status: 400, title: 'Bad Request', detail: 'The request body is not well-formed, or exceeds a structural limit, at the location given.' },
  invalid_parameter: { status: 400, title: 'Bad Request', detail: 'A path, query or header parameter does not match the contract of this operation.' },
  body_not_allowed: { status: 400, title: 'Bad Request', detail: 'This method does not take a request body on this route.' },
  logout_token_invalid: { status: 400, title: 'Bad Request', detail: 'The logout token is not one this gateway accepts.' },
  webhook_event_invalid: { status: 400, title: 'Bad Request', detail: 'The event is not a revocation event this gateway understands.' },
  upgrade_refused: { status: 400, title: 'Bad Request', detail: 'Protocol upgrades are not accepted on this route.' },
  unauthenticated: { status: 401, title: 'Unauthorized', detail: 'Authentication is required.' },
  invalid_credential: { status: 401, title: 'Unauthorized', detail: 'The credential is invalid or expired.' },
  webhook_signature_invalid: { status: 401, title: 'Unauthorized', detail: 'The event\'s signature is missing, malformed, outside the time tolerance or does not match.' },
  client_certificate_invalid: { status: 401, title: 'Unauthorized', detail: 'The client certificate is not accepted.' },
  token_certificate_mismatch: { status: 401, title: 'Unauthorized', detail: 'The token is not bound to the client certificate of this connection.' },
  client_certificate_unmapped: { status: 403, title: 'Forbidden', detail: 'The client certificate is valid but maps to no identity allowed here.' },
  insufficient_role: { status: 403, title: 'Forbidden', detail: 'The caller lacks a role this route requires.' },
  insufficient_scope: { status: 403, title: 'Forbidden', detail: 'The token lacks a scope this route requires.' },
  ip_not_allowed: { status: 403, title: 'Forbidden', detail: 'The credential may not be used from this address.' },
  policy_denied: { status: 403, title: 'Forbidden', detail: 'A policy rule of this route does not admit the request.' },
  tenant_mismatch: { status: 403, title: 'Forbidden', detail: "The resource belongs to another tenant than the caller's." },
  ip_denied: { status: 403, title: 'Forbidden', detail: 'Requests from this address are not accepted here.' },
  cross_site_request_refused: { status: 403, title: 'Forbidden', detail: 'A state-changing request authenticated by a session cookie must come from this site.' },
  cors_preflight_refused: { status: 403, title: 'Forbidden', detail: 'This cross-origin request is not allowed from this origin, or with this method or these headers.' },
  route_not_found: { status: 404, title: 'Not Found', detail: 'No route matches this request.' },
  method_not_allowed: { status: 405, title: 'Method Not Allowed', detail: 'The route does not accept this method.' },
  webhook_replayed: { status: 409, title: 'Conflict', detail: 'This signed event was delivered before; sign each delivery anew.' },
  request_timeout: { status: 408, title: 'Request Timeout', detail: 'The request was not received in time.' },
  body_too_large: { status: 413, title: 'Content Too Large', detail: 'The request body exceeds the size limit.' },
  uri_too_long: { status: 414, title: 'URI Too Long', detail: 'The request target exceeds the length limit.' },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type', detail: 'The request content type is not accepted on this route.' },
  schema_violation: { status: 422, title: 'Unprocessable Content', detail: 'The request body does not match the schema of this operation at the location given.' },
  expectation_failed: { status: 417, title: 'Expectation Failed', detail: 'The Expect header is not supported.' },
  rate_limited: { status: 429, title: 'Too Many Requests', detail: 'A rate limit for this caller is exhausted; retry after the time given.' },
  quota_exceeded: { status: 429, title: 'Too Many Requests', detail: 'The quota for this period is used up; retry after the time given.' },
  too_many_failures: { status: 429, title: 'Too Many Requests', detail: 'Too many failed authentication attempts from this source; retry after the time given.' },
  headers_too_large: { status: 431, title: 'Request Header Fields Too Large', detail: 'The request headers exceed the size or count limit.' },
  internal_error: { status: 500, title: 'Internal Server Error', detail: 'The gateway failed to handle the request.' },
  upstream_unreachable: { status: 502, title: 'Bad Gateway', detail: 'The upstream service could not be reached.' },
  upstream_error: { status: 502, title: 'Bad Gateway', detail: 'The upstream service returned an invalid response.' },
  upstream_tls_untrusted: { status: 502, title: 'Bad Gateway', detail: 'The upstream service presented a certificate the gateway does not trust.' },
  upstream_tls_pin_mismatch: { status: 502, title: 'Bad Gateway', detail: 'The upstream service presented a public key the gateway does not accept.' },
  upstream_tls_handshake: { status: 502, title: 'Bad Gateway', detail: 'A secure connection to the upstream service could not be established.' },
  audit_unavailable: { status: 503, title: 'Service Unavailable', detail: 'The gateway cannot record requests right now.' },
  authentication_unavailable: { status: 503, title: 'Service Unavailable', detail: 'Credentials cannot be verified right now.' },
  rate_limit_unavailable: { status: 503, title: 'Service Unavailable', detail: 'Rate limits cannot be checked right now.' },
  upstream_credentials_unavailable: { status: 503, title: 'Service Unavailable', detail: 'The gateway cannot obtain its credentials for the upstream service right now.' },
  upstream_busy: { status: 503, title: 'Service Unavailable', detail: 'The upstream service has no free capacity for this request right now.' },
  upstream_timeout: { status: 504, title: 'Gateway Timeout', detail: 'The upstream service did not respond in time.' },
} as const satisfies Record<string, { status: number; title: string; detail: string }>;

export type DenialCode = keyof typeof DENIALS;

/**
 * A request ended with a code of some catalogue. `reason` is the precise, private explanation
 * (audit and logs); the client sees only the catalogue's public text. `headers` carries response
 * headers the status requires (`Allow` for 405, `WWW-Authenticate` for 401, `Retry-After` for 429).
 */
export interface Refusal<C extends string> {
  readonly code: C;
  readonly reason: string;
  readonly headers?: Readonly<Record<string, string | string[]>>;
  /**
   * The RFC 6901 JSON pointer of what failed validation (`/items/3/price`, `#/query/limit`), sent to
   * the client as the problem's `pointer` member. Names a location in the client's own request,
   * never a value from it.
   */
  readonly pointer?: string;
}

export function refusal<C extends string>(code: C, reason: string, headers?: Readonly<Record<string, string | string[]>>): Refusal<C> {
  return headers === undefined ? { code, reason } : { code, reason, headers };
}

/** A request the gateway's request path ended. */
export type Denial = Refusal<DenialCode>;

export const deny: (code: DenialCode, reason: string, headers?: Readonly<Record<string, string | string[]>>) => Denial = refusal;

export function isDenialCode(value: string): value is DenialCode {
  return Object.hasOwn(DENIALS, value);
}
