import { Type } from '@sinclair/typebox';
import { formatted, HeaderName, strict } from './schema-parts.js';

/**
 * The options of what browsers see at the edge: security response headers (top level and per
 * route) and CORS policies. Defaults are applied in compile-response-headers.ts and compile-cors.ts.
 */

export const REFERRER_POLICIES = [
  'no-referrer', 'no-referrer-when-downgrade', 'origin', 'origin-when-cross-origin', 'same-origin', 'strict-origin',
  'strict-origin-when-cross-origin', 'unsafe-url',
] as const;
export type ReferrerPolicy = (typeof REFERRER_POLICIES)[number];

const Off = Type.Literal(false);

export const StrictTransportSecuritySchema = strict({
  maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 63_072_000, description: 'How long browsers remember to use HTTPS only, in seconds (max-age). Default 31536000.' })),
  includeSubDomains: Type.Optional(Type.Boolean({ description: 'Apply to every subdomain too. Default false.' })),
  preload: Type.Optional(Type.Boolean({ description: 'Ask to be in browsers\' preload lists; needs includeSubDomains and maxAgeSeconds of at least 31536000. Default false.' })),
}, 'Strict-Transport-Security (RFC 6797), sent only on responses to requests that reached the gateway over TLS.');

const FrameSource = formatted("^(?:'none'|'self'|[a-z][a-z0-9+.-]{0,15}:|(?:[a-z][a-z0-9+.-]{0,15}://)?(?:\\*\\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::(?:[0-9]{1,5}|\\*))?)$",
  "a frame-ancestors source: 'none', 'self', a scheme like https:, or a host like https://app.example.com or https://*.example.com");

/** The members of `responseHeaders`, each with what it says at the top level. */
const RESPONSE_HEADER_MEMBERS = {
  strictTransportSecurity: (d: string) => Type.Optional(Type.Union([StrictTransportSecuritySchema, Off], { description: d })),
  contentTypeOptions: (d: string) => Type.Optional(Type.Boolean({ description: d })),
  frameOptions: (d: string) => Type.Optional(Type.Union([Type.Literal('DENY'), Type.Literal('SAMEORIGIN'), Off], { description: d })),
  frameAncestors: (d: string) => Type.Optional(Type.Union([Type.Array(FrameSource, { minItems: 1, maxItems: 32, uniqueItems: true }), Off], { description: d })),
  referrerPolicy: (d: string) => Type.Optional(Type.Union([Type.Unsafe<ReferrerPolicy>({ type: 'string', enum: [...REFERRER_POLICIES] }), Off], { description: d })),
  contentSecurityPolicy: (d: string) => Type.Optional(Type.Union([formatted('^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,4094}[\\x21-\\x7e])?$', 'a Content-Security-Policy of up to 4096 printable ASCII characters (no line breaks), like "default-src \'none\'"'), Off], { description: d })),
  removeUpstream: (d: string) => Type.Optional(Type.Array(HeaderName(), { maxItems: 100, uniqueItems: true, description: d })),
  keepUpstream: (d: string) => Type.Optional(Type.Array(HeaderName(), { maxItems: 5, uniqueItems: true, description: d })),
};

export const ResponseHeadersSchema = strict({
  strictTransportSecurity: RESPONSE_HEADER_MEMBERS.strictTransportSecurity('Strict-Transport-Security on responses to requests that arrived over TLS (or from a trusted proxy with X-Forwarded-Proto: https); false sends none. Default max-age=31536000.'),
  contentTypeOptions: RESPONSE_HEADER_MEMBERS.contentTypeOptions('X-Content-Type-Options: nosniff on every response. Default true.'),
  frameOptions: RESPONSE_HEADER_MEMBERS.frameOptions('X-Frame-Options; false sends none. Default DENY.'),
  frameAncestors: RESPONSE_HEADER_MEMBERS.frameAncestors("Sources in a Content-Security-Policy frame-ancestors directive; false sends none. Absent: follows frameOptions ('none' for DENY, 'self' for SAMEORIGIN)."),
  referrerPolicy: RESPONSE_HEADER_MEMBERS.referrerPolicy('Referrer-Policy; false sends none. Default no-referrer.'),
  contentSecurityPolicy: RESPONSE_HEADER_MEMBERS.contentSecurityPolicy('A whole Content-Security-Policy value (frameAncestors is added to it); false sends none. Default none.'),
  removeUpstream: RESPONSE_HEADER_MEMBERS.removeUpstream('Upstream response headers never relayed; an empty list keeps them. Default [server, x-powered-by].'),
  keepUpstream: RESPONSE_HEADER_MEMBERS.keepUpstream('Security headers (of the ones above) whose value an upstream sent is relayed instead of the gateway\'s. Default [].'),
}, 'Security response headers on every response; routes may override members.');

/** A route's `responseHeaders`: each member it sets replaces the top-level one. */
export const RouteResponseHeadersSchema = strict(
  Object.fromEntries(Object.entries(RESPONSE_HEADER_MEMBERS).map(([name, member]) => [name, member(`responseHeaders.${name} for this route.`)])) as {
    [K in keyof typeof RESPONSE_HEADER_MEMBERS]: ReturnType<(typeof RESPONSE_HEADER_MEMBERS)[K]>
  },
  'Security response headers of this route: each member set here replaces the top-level one.',
);

const Method = formatted('^[A-Z]{1,16}$', 'an HTTP method in upper case, like GET or PUT');

export const CorsPolicySchema = strict({
  origins: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'Origins whose pages may read responses: exact (https://app.example.com, with a port when not the default), patterns with "*" as one whole first label (https://*.example.com), or "*" alone for any origin (not with credentials).' }),
  methods: Type.Optional(Type.Array(Method, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'Methods a preflight may ask for, within those of the route. Default [GET, HEAD, POST].' })),
  requestHeaders: Type.Optional(Type.Array(HeaderName(), { maxItems: 100, uniqueItems: true, description: 'Request headers a preflight may ask for (Authorization, Content-Type, …). Default [].' })),
  exposeHeaders: Type.Optional(Type.Array(HeaderName(), { maxItems: 100, uniqueItems: true, description: 'Response headers browser code may read, besides the gateway\'s own. Default [].' })),
  exposeGatewayHeaders: Type.Optional(Type.Boolean({ description: 'Also expose the request id, RateLimit, RateLimit-Policy, X-RateLimit-*, Retry-After and WWW-Authenticate. Default true.' })),
  credentials: Type.Optional(Type.Boolean({ description: 'Let pages send cookies and HTTP authentication and read the responses (Access-Control-Allow-Credentials). Default false.' })),
  maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description: 'How long browsers may cache a preflight answer (Access-Control-Max-Age). Default 600.' })),
}, 'A named CORS policy; routes name it under cors.');
