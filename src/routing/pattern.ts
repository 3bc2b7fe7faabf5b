import { canonicalSegment } from '../http/target.js';

/** One segment of a route pattern. `param` covers both `{name}` and `*`; `glob` is a final `**`. */
export type PatternSegment =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'param'; readonly name: string | null }
  | { readonly kind: 'glob' };

export interface PathPattern {
  readonly source: string;
  readonly segments: readonly PatternSegment[];
  /**
   * Two patterns with the same shape have equal specificity and match exactly the same paths
   * (parameter names aside): `/a/{id}` and `/a/*` share the shape `/a/*`.
   */
  readonly shape: string;
}

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$/;

/**
 * Compiles a path pattern: `/exact`, `/a/*` (one non-empty segment), `/a/{id}` (one named
 * segment), `/a/**` (zero or more trailing segments). Literal segments are canonicalised with the
 * request rules. Throws an Error with a precise message on an invalid pattern.
 */
export function compilePattern(source: string, allowSemicolon: boolean): PathPattern {
  if (!source.startsWith('/')) throw new Error('a path pattern must start with "/"');
  if (source.includes('?')) throw new Error('a path pattern cannot contain a query');
  const parts = source === '/' ? [] : source.slice(1).split('/');
  const segments: PatternSegment[] = [];
  const names = new Set<string>();
  parts.forEach((part, index) => {
    const last = index === parts.length - 1;
    if (part === '**') {
      if (!last) throw new Error('"**" is only allowed as the last segment');
      segments.push({ kind: 'glob' });
    } else if (part === '*') {
      segments.push({ kind: 'param', name: null });
    } else if (PARAM.test(part)) {
      const name = part.slice(1, -1);
      if (names.has(name)) throw new Error(`parameter {${name}} appears twice`);
      names.add(name);
      segments.push({ kind: 'param', name });
    } else if (part === '' && last) {
      segments.push({ kind: 'literal', value: '' });
    } else {
      if (part.includes('*') || part.includes('{') || part.includes('}')) {
        throw new Error(`segment "${part}" mixes literal text with a wildcard; use a whole-segment "*", "**" or "{name}"`);
      }
      const canonical = canonicalSegment(part, allowSemicolon);
      if (!canonical.ok) throw new Error(`segment "${part}": ${canonical.message}`);
      segments.push({ kind: 'literal', value: canonical.value });
    }
  });
  const shape = '/' + segments.map((s) => (s.kind === 'literal' ? s.value : s.kind === 'param' ? '*' : '**')).join('/');
  return { source, segments, shape };
}

/** Whether a canonical path (as segments) matches a pattern on its own, whatever other routes exist. */
export function matchesPattern(pattern: PathPattern, segments: readonly string[]): boolean {
  const parts = pattern.segments;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as PatternSegment;
    if (p.kind === 'glob') return true;
    const s = segments[i];
    if (s === undefined || (p.kind === 'literal' ? p.value !== s : s === '')) return false;
  }
  return segments.length === parts.length;
}

/** Extracts `{name}` parameters from a path already matched by `pattern`. Values stay percent-encoded. */
export function extractParams(pattern: PathPattern, segments: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  pattern.segments.forEach((s, i) => {
    if (s.kind === 'param' && s.name !== null) params[s.name] = segments[i] ?? '';
  });
  return params;
}
