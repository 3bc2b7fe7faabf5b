import type { Static } from '@sinclair/typebox';
import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { ResponseHeadersSchema } from './schema-edge.js';
import { SECURITY_HEADER_NAMES, type SecurityHeaderSet } from '../http/security-headers.js';

export type RawResponseHeaders = Static<typeof ResponseHeadersSchema>;

/** Documented defaults of `responseHeaders`; docs/configuration.md lists the same values. */
export const RESPONSE_HEADER_DEFAULTS = Object.freeze({
  maxAgeSeconds: 31_536_000,
  contentTypeOptions: true,
  frameOptions: 'DENY',
  referrerPolicy: 'no-referrer',
  removeUpstream: Object.freeze(['server', 'x-powered-by']),
});

/** Upstream headers that frame or encode the response body: removing one would corrupt what is relayed. */
const FRAMING: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'connection', 'trailer', 'keep-alive', 'upgrade']);

const FRAME_ANCESTORS_DIRECTIVE = /(?:^|;)\s*frame-ancestors(?:\s|;|$)/i;

/**
 * The security headers of the top-level `responseHeaders` merged with a route's own (member by
 * member: a member the route sets replaces the top-level one; `at` locates the route's members),
 * defaults applied. Problems are reported where the effective value was written.
 */
export function compileResponseHeaders(
  global: RawResponseHeaders | undefined, route: RawResponseHeaders | undefined, at: (string | number)[], loaded: LoadedConfig, problems: ConfigProblem[],
): SecurityHeaderSet {
  const g = global ?? {};
  const r = route ?? {};
  type Key = keyof RawResponseHeaders;
  const pick = <K extends Key>(key: K): { value: RawResponseHeaders[K]; path: (string | number)[] } =>
    r[key] !== undefined ? { value: r[key], path: [...at, key] } : { value: g[key], path: ['responseHeaders', key] };
  // Merged into a route, the top-level members were checked already: only the route's own are reported.
  const problem = (path: (string | number)[], message: string): void => {
    if (route === undefined || path[0] !== 'responseHeaders') problems.push(loaded.problem(path, message));
  };

  const headers: [string, string][] = [];
  if (pick('contentTypeOptions').value ?? RESPONSE_HEADER_DEFAULTS.contentTypeOptions) headers.push(['x-content-type-options', 'nosniff']);
  const frameOptions = pick('frameOptions').value ?? RESPONSE_HEADER_DEFAULTS.frameOptions;
  if (frameOptions !== false) headers.push(['x-frame-options', frameOptions]);

  const ancestors = pick('frameAncestors');
  const csp = pick('contentSecurityPolicy');
  const policy = csp.value === undefined || csp.value === false ? '' : csp.value.trim().replace(/;\s*$/, '');
  let sources: readonly string[] | null;
  if (ancestors.value === undefined) sources = frameOptions === 'DENY' ? ["'none'"] : frameOptions === 'SAMEORIGIN' ? ["'self'"] : null;
  else sources = ancestors.value === false ? null : ancestors.value;
  if (sources !== null && sources.length > 1 && sources.includes("'none'")) problem(ancestors.path, "'none' allows no ancestor at all: list it alone, or only the sources to allow");
  if (sources !== null && FRAME_ANCESTORS_DIRECTIVE.test(policy)) {
    // The policy's own directive stands; an explicit frameAncestors beside it is a contradiction.
    if (ancestors.value !== undefined) problem(ancestors.path, 'contentSecurityPolicy has a frame-ancestors directive already: set the sources in one place (drop frameAncestors, or the directive)');
    sources = null;
  }
  const directives = [policy, sources === null ? '' : `frame-ancestors ${sources.join(' ')}`].filter((d) => d !== '');
  if (directives.length > 0) headers.push(['content-security-policy', directives.join('; ')]);

  const referrer = pick('referrerPolicy').value ?? RESPONSE_HEADER_DEFAULTS.referrerPolicy;
  if (referrer !== false) headers.push(['referrer-policy', referrer]);

  const sts = pick('strictTransportSecurity');
  let strictTransportSecurity: string | null = null;
  if (sts.value !== false) {
    const { maxAgeSeconds = RESPONSE_HEADER_DEFAULTS.maxAgeSeconds, includeSubDomains = false, preload = false } = sts.value ?? {};
    if (preload && (!includeSubDomains || maxAgeSeconds < 31_536_000)) {
      problem([...sts.path, 'preload'], 'browsers preload only with includeSubDomains: true and maxAgeSeconds of at least 31536000 (one year): set both, or leave preload out');
    }
    strictTransportSecurity = `max-age=${maxAgeSeconds}${includeSubDomains ? '; includeSubDomains' : ''}${preload ? '; preload' : ''}`;
  }

  const remove = pick('removeUpstream');
  const removeUpstream = (remove.value ?? RESPONSE_HEADER_DEFAULTS.removeUpstream).map((n) => n.toLowerCase());
  removeUpstream.forEach((name, i) => {
    if (FRAMING.has(name)) problem([...remove.path, i], `${name} frames or encodes the response body: relaying the body without it would corrupt it; leave it out of removeUpstream`);
  });
  const keep = pick('keepUpstream');
  const keepUpstream = new Set((keep.value ?? []).map((n) => n.toLowerCase()));
  (keep.value ?? []).forEach((raw, i) => {
    const name = raw.toLowerCase();
    if (!SECURITY_HEADER_NAMES.includes(name)) problem([...keep.path, i], `${name} is not a security header the gateway sets; keepUpstream takes ${SECURITY_HEADER_NAMES.join(', ')} (other upstream headers are relayed as they are)`);
  });
  return { headers, strictTransportSecurity, removeUpstream, keepUpstream };
}
