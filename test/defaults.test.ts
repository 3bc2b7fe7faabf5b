import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../src/config/compile.js';
import { AUDIT_DEFAULTS } from '../src/config/compile-audit.js';
import { CORS_DEFAULTS } from '../src/config/compile-cors.js';
import { VALIDATE_DEFAULTS } from '../src/config/compile-validate.js';
import { RESPONSE_HEADER_DEFAULTS } from '../src/config/compile-response-headers.js';
import { HTTP2_DEFAULTS } from '../src/config/compile-http2.js';
import { CLIENT_CREDENTIALS_DEFAULTS } from '../src/config/compile-upstream-auth.js';
import { jsonSchema } from '../src/config/schema.js';
import { ASSERTION_DEFAULTS } from '../src/assertion/identity-assertion-section.js';
import { TRACING_DEFAULTS } from '../src/config/compile-tracing.js';

// One source of truth for each default: the code. The schema's descriptions (what editors show)
// and docs/configuration.md (the reference) must say the same value.

const read = (path: string): string => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), 'utf8');

/**
 * The default column of every option row in docs/configuration.md: `| \`path\` | type | \`default\` | … |`.
 * Rows under a `### \`type: <kind>\`` heading of the Authenticators section are also an
 * authenticator kind's own, keyed `authenticators.<name>[<kind>].<option>`: two kinds may give one
 * option name different defaults (`timeoutMs`). A kind's option without a row of its own reads
 * the option's untyped row (a kind section may say its option reads as another kind's).
 */
function documentedDefaults(): Map<string, string> {
  const rows = new Map<string, string>();
  let kind: string | null = null;
  for (const line of read('docs/configuration.md').split('\n')) {
    if (line.startsWith('## ')) kind = null;
    const heading = /^### `type: ([A-Za-z]+)`/.exec(line);
    if (heading !== null) kind = heading[1] ?? null;
    const m = /^\| `([^`]+)` \| [^|]+ \| ([^|]*) \|/.exec(line);
    if (m?.[1] === undefined) continue;
    const value = (m[2] ?? '').trim().replace(/^`(.*)`$/, '$1');
    rows.set(m[1], value);
    if (kind !== null && m[1].startsWith(AUTHENTICATOR)) rows.set(`authenticators.<name>[${kind}].${m[1].slice(AUTHENTICATOR.length)}`, value);
  }
  return rows;
}

const AUTHENTICATOR = 'authenticators.<name>.';

interface Node { description?: string; default?: unknown; properties?: Record<string, Node>; items?: Node; patternProperties?: Record<string, Node>; additionalProperties?: Node | boolean; allOf?: { if?: { properties?: { type?: { const?: string } } }; then?: Node }[] }

/**
 * Every option path (as docs spell it) with the default its schema description states: `Default <value>.`
 * The options of one authenticator kind (a variant selected by `type`) are keyed by kind, as in documentedDefaults.
 */
function schemaDefaults(node: Node, prefix: string, out: Map<string, string>): Map<string, string> {
  const variants: [Node, string][] = [[node, prefix], ...(node.allOf ?? []).flatMap((v): [Node, string][] => {
    if (v.then === undefined) return [];
    const kind = v.if?.properties?.type?.const;
    return [[v.then, kind !== undefined && prefix === 'authenticators.<name>' ? `${prefix}[${kind}]` : prefix]];
  })];
  for (const [variant, base] of variants) {
    for (const [key, child] of Object.entries(variant.properties ?? {})) {
      const path = base === '' ? key : `${base}.${key}`;
      const leaf = child.properties === undefined && child.allOf === undefined && child.patternProperties === undefined;
      // `Default <value>` up to a sentence end, a colon, a semicolon or a parenthesis.
      const stated = /(?:^|\. )Default (.+?)(?:\.(?:\s|$)|:\s|[;(]|$)/.exec(child.description ?? '')?.[1];
      if (leaf && stated !== undefined) out.set(path, stated.replace(/`/g, '').trim());
      if (child.properties !== undefined || child.allOf !== undefined) schemaDefaults(child, path, out);
      for (const inner of Object.values(child.patternProperties ?? {})) schemaDefaults(inner, `${path}.<name>`, out);
      if (typeof child.additionalProperties === 'object') schemaDefaults(child.additionalProperties, `${path}.<name>`, out);
      if (child.items !== undefined) schemaDefaults(child.items, `${path}[]`, out);
    }
  }
  return out;
}

/** Where each gateway-level default applies. */
const OPTION_OF: Record<keyof typeof DEFAULTS, string> = {
  httpPort: 'listen.http.port',
  httpHost: 'listen.http.host',
  httpsPort: 'listen.https.port',
  httpsHost: 'listen.https.host',
  httpMode: 'listen.http.mode',
  handshakeTimeoutMs: 'listen.https.handshakeTimeoutMs',
  expiryWarningDays: 'tls.expiryWarningDays',
  watchFiles: 'reload.watchFiles',
  watchIntervalMs: 'reload.watchIntervalMs',
  adminPort: 'admin.port',
  adminHost: 'admin.host',
  maxHeaderBytes: 'limits.maxHeaderBytes',
  maxHeaderCount: 'limits.maxHeaderCount',
  maxUrlBytes: 'limits.maxUrlBytes',
  maxBodyBytes: 'limits.maxBodyBytes',
  headersTimeoutMs: 'limits.headersTimeoutMs',
  requestTimeoutMs: 'limits.requestTimeoutMs',
  keepAliveTimeoutMs: 'limits.keepAliveTimeoutMs',
  maxConnections: 'limits.maxConnections',
  upstreamTimeoutMs: 'upstreams.<name>.timeoutMs',
  upstreamConnectTimeoutMs: 'upstreams.<name>.connectTimeoutMs',
  upstreamBodyTimeoutMs: 'upstreams.<name>.bodyTimeoutMs',
  upstreamKeepAliveTimeoutMs: 'upstreams.<name>.keepAliveTimeoutMs',
  upstreamConnections: 'upstreams.<name>.connections',
  upstreamQueueTimeoutMs: 'upstreams.<name>.queueTimeoutMs',
  upstreamMaxQueued: 'upstreams.<name>.maxQueued',
  upstreamTlsMinVersion: 'upstreams.<name>.tls.minVersion',
  bodyIdleTimeoutMs: 'limits.bodyIdleTimeoutMs',
  writeIdleTimeoutMs: 'limits.writeIdleTimeoutMs',
  minBodyBytesPerSecond: 'limits.minBodyBytesPerSecond',
  bufferBodyBytes: 'limits.bufferBodyBytes',
  drainTimeoutMs: 'shutdown.drainTimeoutMs',
};

describe('defaults agree between the code, the schema and the configuration reference', () => {
  const documented = documentedDefaults();
  const stated = schemaDefaults(jsonSchema(), '', new Map());

  it('every gateway-level default in the code is the one docs/configuration.md shows', () => {
    const wrong = Object.entries(OPTION_OF)
      .map(([key, path]) => ({ path, code: String(DEFAULTS[key as keyof typeof DEFAULTS]), docs: documented.get(path) }))
      .filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every audit default in the code is the one docs/configuration.md shows', () => {
    const wrong = Object.entries(AUDIT_DEFAULTS)
      .map(([key, value]) => ({ path: `audit.${key}`, code: String(value), docs: documented.get(`audit.${key}`) }))
      .filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every response-header and CORS default in the code is the one docs/configuration.md shows', () => {
    const list = (names: readonly string[]): string => `[${names.join(', ')}]`;
    const code: Record<string, string> = {
      'responseHeaders.strictTransportSecurity': `max-age=${RESPONSE_HEADER_DEFAULTS.maxAgeSeconds}`,
      'responseHeaders.strictTransportSecurity.maxAgeSeconds': String(RESPONSE_HEADER_DEFAULTS.maxAgeSeconds),
      'responseHeaders.contentTypeOptions': String(RESPONSE_HEADER_DEFAULTS.contentTypeOptions),
      'responseHeaders.frameOptions': RESPONSE_HEADER_DEFAULTS.frameOptions,
      'responseHeaders.referrerPolicy': RESPONSE_HEADER_DEFAULTS.referrerPolicy,
      'responseHeaders.removeUpstream': list(RESPONSE_HEADER_DEFAULTS.removeUpstream),
      'cors.<name>.methods': list(CORS_DEFAULTS.methods),
      'cors.<name>.requestHeaders': list(CORS_DEFAULTS.requestHeaders),
      'cors.<name>.exposeHeaders': list(CORS_DEFAULTS.exposeHeaders),
      'cors.<name>.exposeGatewayHeaders': String(CORS_DEFAULTS.exposeGatewayHeaders),
      'cors.<name>.credentials': String(CORS_DEFAULTS.credentials),
      'cors.<name>.maxAgeSeconds': String(CORS_DEFAULTS.maxAgeSeconds),
    };
    const wrong = Object.entries(code).map(([path, value]) => ({ path, code: value, docs: documented.get(path) })).filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every HTTP/2 default in the code is the one docs/configuration.md shows', () => {
    const wrong = Object.entries(HTTP2_DEFAULTS)
      .map(([key, value]) => ({ path: `listen.https.http2.${key}`, code: String(value), docs: documented.get(`listen.https.http2.${key}`) }))
      .filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every client credentials default in the code is the one docs/configuration.md shows', () => {
    const wrong = Object.entries(CLIENT_CREDENTIALS_DEFAULTS)
      .map(([key, value]) => ({ path: `upstreams.<name>.auth.clientCredentials.${key}`, code: String(value), docs: documented.get(`upstreams.<name>.auth.clientCredentials.${key}`) }))
      .filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every identity assertion default in the code is the one docs/configuration.md shows', () => {
    const code: Record<string, string> = {
      'identityAssertion.algorithm': ASSERTION_DEFAULTS.algorithm,
      'identityAssertion.ttlSeconds': String(ASSERTION_DEFAULTS.ttlSeconds),
      'routes[].assertIdentity.header': ASSERTION_DEFAULTS.header,
    };
    const wrong = Object.entries(code).map(([path, value]) => ({ path, code: value, docs: documented.get(path) })).filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every tracing default in the code is the one docs/configuration.md shows', () => {
    const wrong = Object.entries(TRACING_DEFAULTS)
      .map(([key, value]) => ({ path: `tracing.${key}`, code: String(value), docs: documented.get(`tracing.${key}`) }))
      .filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every request validation default in the code is the one docs/configuration.md shows', () => {
    const code: Record<string, string> = {
      'routes[].validate.contentTypes': `[${VALIDATE_DEFAULTS.contentTypes.join(', ')}]`,
      'routes[].validate.charsets': `[${VALIDATE_DEFAULTS.charsets.join(', ')}]`,
      'routes[].validate.bodyRequired': String(VALIDATE_DEFAULTS.bodyRequired),
      ...Object.fromEntries(Object.entries(VALIDATE_DEFAULTS.json).map(([key, value]) => [`routes[].validate.json.${key}`, String(value)])),
    };
    const wrong = Object.entries(code).map(([path, value]) => ({ path, code: value, docs: documented.get(path) })).filter((d) => d.docs !== d.code);
    assert.deepEqual(wrong, []);
  });

  it('every default the schema states is the one docs/configuration.md shows', () => {
    assert.ok(stated.size > 40, `the schema states ${stated.size} defaults`);
    // The reference may say more than the schema's short form (`redis` when …, else `embedded`).
    const agrees = (docs: string | undefined, schema: string): boolean => {
      if (docs === undefined) return false;
      const plain = docs.replace(/`/g, '');
      return plain === schema || plain.startsWith(`${schema} `) || schema.startsWith(`${plain}, `);
    };
    const wrong = [...stated].map(([path, value]) => ({ path, schema: value, docs: documented.get(path) ?? documented.get(path.replace(/\[[A-Za-z]+\]/, '')) })).filter((d) => !agrees(d.docs, d.schema));
    assert.deepEqual(wrong, []);
  });
});
