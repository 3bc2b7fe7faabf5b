/** A verified set of claims: a JWT payload or a token introspection response (RFC 7662). */
export type Claims = Readonly<Record<string, unknown>>;

/**
 * Where a claim is, compiled once from its config text. Two spellings:
 * - a JSON pointer (RFC 6901): starts with `/`, one segment per `/`, `~1` for `/` and `~0` for
 *   `~` inside a segment: `/resource_access/orders.api/roles`, `/https:~1~1acme.example~1tenant`.
 *   A segment of decimal digits also indexes an array (`/groups/0`).
 * - a claim name or dot-separated path (`realm_access.roles`): the literal top-level name wins,
 *   so `https://acme.example/roles` works as written; otherwise each dot descends one object.
 */
export interface ClaimPath {
  /** The path as configured: what config problems, audit reasons and `explain` show. */
  readonly text: string;
  /** The unescaped segments of a JSON pointer, or null for a name or dotted path. */
  readonly pointer: readonly string[] | null;
  /** The dot-separated parts of a name or dotted path (unused for a pointer). */
  readonly dotted: readonly string[];
}

const ARRAY_INDEX = /^(?:0|[1-9][0-9]{0,5})$/;

/**
 * Compiles a claim path, or says why it is malformed: a pointer whose `~` is not followed by `0`
 * or `1` (RFC 6901 §3) is refused at config load rather than silently matching nothing.
 */
export function compileClaimPath(text: string): ClaimPath | string {
  if (!text.startsWith('/')) return Object.freeze({ text, pointer: null, dotted: Object.freeze(text.split('.')) });
  const segments: string[] = [];
  for (const raw of text.slice(1).split('/')) {
    if (/~(?![01])/.test(raw)) {
      return `"${text}" is not a valid JSON pointer: "~" must be followed by 0 (for ~) or 1 (for /), as in /https:~1~1example.com~1roles (RFC 6901)`;
    }
    // ~1 first, then ~0: "~01" is the segment "~1", not "/" (RFC 6901 §4).
    segments.push(raw.replaceAll('~1', '/').replaceAll('~0', '~'));
  }
  return Object.freeze({ text, pointer: Object.freeze(segments), dotted: Object.freeze([]) });
}

/**
 * The value at `path`, or undefined. Only own properties are read, so `__proto__`,
 * `constructor` or `toString` never resolve to what an object inherits; a pointer's length is
 * bounded by the config, so a deeply nested document costs no more than the path is long.
 */
export function readClaim(node: unknown, path: ClaimPath): unknown {
  if (path.pointer !== null) {
    let at: unknown = node;
    for (const segment of path.pointer) {
      if (Array.isArray(at)) {
        if (!ARRAY_INDEX.test(segment)) return undefined;
        at = at[Number(segment)];
      } else if (isObject(at) && Object.hasOwn(at, segment)) {
        at = at[segment];
      } else return undefined;
      if (at === undefined) return undefined;
    }
    return at;
  }
  if (!isObject(node)) return undefined;
  if (Object.hasOwn(node, path.text)) return node[path.text];
  let at: unknown = node;
  for (const part of path.dotted) {
    if (!isObject(at) || !Object.hasOwn(at, part)) return undefined;
    at = at[part];
  }
  return at;
}

/**
 * A claim by path text (compiled on each call): for callers holding a path that was not compiled
 * with the config. A malformed pointer finds nothing.
 */
export function claimAt(claims: Claims, path: string): unknown {
  const compiled = compileClaimPath(path);
  return typeof compiled === 'string' ? undefined : readClaim(claims, compiled);
}

/** A JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
