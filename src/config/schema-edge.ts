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

export const ResponseHeadersSchema = strict({
  strictTransportSecurity: Type.Optional(Type.Union([StrictTransportSecuritySchema, Off], { description: 'Strict-Transport-Security on responses to requests that arrived over TLS (or from a trusted proxy with X-Forwarded-Proto: https); false sends none. Default max-age=31536000.' })),
  contentTypeOptions: Type.Optional(Type.Boolean({ description: 'X-Content-Type-Options: nosniff on every response. Default true.' })),
  frameOptions: Type.Optional(Type.Union([Type.Literal('DENY'), Type.Literal('SAMEORIGIN'), Off], { description: 'X-Frame-Options; false sends none. Default DENY.' })),
  frameAncestors: Type.Optional(Type.Union([Type.Array(FrameSource, { minItems: 1, maxItems: 32, uniqueItems: true }), Off], { description: "Sources in a Content-Security-Policy frame-ancestors directive; false sends none. Absent: follows frameOptions ('none' for DENY, 'self' for SAMEORIGIN)." })),
  referrerPolicy: Type.Optional(Type.Union([Type.Unsafe<ReferrerPolicy>({ type: 'string', enum: [...REFERRER_POLICIES] }), Off], { description: 'Referrer-Policy; false sends none. Default no-referrer.' })),
  contentSecurityPolicy: Type.Optional(Type.Union([formatted('^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,4094}[\\x21-\\x7e])?$', 'a Content-Security-Policy of up to 4096 printable ASCII characters (no line breaks), like "default-src \'none\'"'), Off], { description: 'A whole Content-Security-Policy value (frameAncestors is added to it); false sends none. Default none.' })),
  removeUpstream: Type.Optional(Type.Array(HeaderName(), { maxItems: 100, uniqueItems: true, description: 'Upstream response headers never relayed; an empty list keeps them. Default [server, x-powered-by].' })),
  keepUpstream: Type.Optional(Type.Array(HeaderName(), { maxItems: 5, uniqueItems: true, description: 'Security headers (of the ones above) whose value an upstream sent is relayed instead of the gateway\'s. Default [].' })),
}, 'Security response headers. Top level for every response; a route\'s own override member by member.');

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
