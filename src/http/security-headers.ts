/**
 * The security response headers one route sends (or every route, from the top-level
 * `responseHeaders`), compiled once: the values are final strings, the names lower case.
 */
export interface SecurityHeaderSet {
  /** Set on every response, generated or relayed: `X-Content-Type-Options`, `X-Frame-Options`, `Content-Security-Policy`, `Referrer-Policy`. */
  readonly headers: readonly (readonly [string, string])[];
  /** `Strict-Transport-Security`, set only on responses to requests that reached the gateway over TLS; null: never. */
  readonly strictTransportSecurity: string | null;
  /** Upstream response headers never relayed (`Server`, `X-Powered-By` by default). */
  readonly removeUpstream: readonly string[];
  /** Security headers whose upstream value, when the upstream sent one, is relayed instead of the gateway's. */
  readonly keepUpstream: ReadonlySet<string>;
}

/** The security headers the gateway sets, by the option that sets them; `keepUpstream` may name these only. */
export const SECURITY_HEADER_NAMES: readonly string[] = [
  'strict-transport-security', 'x-content-type-options', 'x-frame-options', 'content-security-policy', 'referrer-policy',
];
