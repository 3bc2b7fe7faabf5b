import { spiffeIdProblem } from './certificate-facts.js';

/** What an `identities[].match` entry compares: the SPIFFE ID, a URI SAN, a DNS SAN or a subject common name. */
export type MatchKind = 'spiffe' | 'uri' | 'dns' | 'cn';

/** A compiled `match` value: exact, or with whole-segment wildcards. */
export interface IdentityPattern {
  readonly kind: MatchKind;
  readonly source: string;
  test(value: string): boolean;
}

/**
 * Compiles a match value, or says why it is not one. Wildcards stand for whole parts only, as in
 * route paths: in a SPIFFE ID or URI, `*` is one path segment and a final `**` one or more; in a
 * DNS name or common name, `*` is one label and a leading `**` one or more labels. The trust
 * domain, scheme and authority are always literal. DNS names compare case-insensitively; all
 * else exactly.
 */
export function compileIdentityPattern(kind: MatchKind, source: string): IdentityPattern | string {
  switch (kind) {
    case 'spiffe': {
      const sample = source.split('/').map((part, i) => (i >= 3 && (part === '*' || part === '**') ? 'x' : part)).join('/');
      const problem = spiffeIdProblem(sample);
      if (problem !== null) return `is not a SPIFFE ID pattern (${problem}); write one like spiffe://example.org/ns/payments/sa/*`;
      return pathPattern(kind, source);
    }
    case 'uri': {
      if (source.length > 2048 || !/^[a-z][a-z0-9+.-]*:[\x21-\x7e]+$/.test(source)) return 'is not an absolute URI: write one like https://example.org/services/billing (lower-case scheme, no spaces)';
      if (source.includes('*') && (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#*]+\//.test(source) || /[?#]/.test(source))) {
        return 'has wildcards outside the path: * and a final ** stand only for whole path segments of a scheme://authority/path URI without query or fragment';
      }
      return pathPattern(kind, source);
    }
    case 'dns':
      return labelPattern(kind, source.toLowerCase(), true);
    case 'cn':
      return labelPattern(kind, source, false);
  }
}

/** `scheme://authority/a/*\/b/**`: the part before the path literal, then segments. */
function pathPattern(kind: MatchKind, source: string): IdentityPattern | string {
  if (!source.includes('*')) return { kind, source, test: (value) => value === source };
  const start = source.indexOf('/', source.indexOf('//') + 2);
  if (start === -1) return 'has a wildcard outside the path: the scheme and authority are literal';
  const prefix = source.slice(0, start + 1);
  const parts = source.slice(start + 1).split('/');
  for (const [i, part] of parts.entries()) {
    if (part.includes('*') && part !== '*' && part !== '**') return `segment "${part}" mixes text with a wildcard; use a whole-segment * or **`;
    if (part === '**' && i !== parts.length - 1) return '** is only allowed as the last segment';
  }
  return {
    kind, source,
    test: (value) => {
      if (!value.startsWith(prefix) || value.includes('?') || value.includes('#')) return false;
      return segmentsMatch(parts, value.slice(prefix.length).split('/'));
    },
  };
}

function segmentsMatch(pattern: readonly string[], segments: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    if (p === '**') return segments.length > i && segments.slice(i).every((s) => s !== '');
    const s = segments[i];
    if (s === undefined || s === '' || (p !== '*' && p !== s)) return false;
  }
  return segments.length === pattern.length;
}

const LABEL = /^[A-Za-z0-9_-]+$/;

/** `*.example.com`, `**.example.com`, `api.*.example.com`: labels separated by dots. */
function labelPattern(kind: MatchKind, source: string, dns: boolean): IdentityPattern | string {
  if (source === '' || source.length > 253) return 'must be 1 to 253 characters';
  if (!source.includes('*')) return { kind, source, test: dns ? (value) => value.toLowerCase() === source : (value) => value === source };
  const labels = source.split('.');
  for (const [i, label] of labels.entries()) {
    if (label === '**' && i !== 0) return '** is only allowed as the first label (**.example.com)';
    if (label !== '*' && label !== '**' && !LABEL.test(label)) return `label "${label}" must be letters, digits, "-" or "_", or a whole-label * or leading **`;
  }
  if (labels.every((l) => l === '*' || l === '**')) return 'needs at least one literal label (a pattern of wildcards alone matches any name)';
  return {
    kind, source,
    test: (value) => {
      const names = (dns ? value.toLowerCase() : value).split('.');
      if (labels[0] === '**') {
        const tail = labels.length - 1;
        if (names.length <= tail) return false;
        const head = names.slice(0, names.length - tail);
        return head.every((l) => l !== '') && labelsMatch(labels.slice(1), names.slice(names.length - tail));
      }
      return labelsMatch(labels, names);
    },
  };
}

function labelsMatch(pattern: readonly string[], names: readonly string[]): boolean {
  return names.length === pattern.length && pattern.every((p, i) => {
    const name = names[i] as string;
    return name !== '' && (p === '*' || p === name);
  });
}
