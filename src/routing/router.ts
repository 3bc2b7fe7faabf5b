import type { PathPattern } from './pattern.js';

/** What the router needs from a route. */
export interface Routable {
  readonly pattern: PathPattern;
  /** Upper-case methods, or null for any method. */
  readonly methods: ReadonlySet<string> | null;
  /** Lower-case host or `*.suffix`, or null for any host. */
  readonly host: string | null;
}

export type RouteMatch<R> =
  | { readonly kind: 'found'; readonly route: R }
  | { readonly kind: 'method_not_allowed'; readonly allow: readonly string[] }
  | { readonly kind: 'not_found' };

interface Node<R> {
  readonly literal: Map<string, Node<R>>;
  param: Node<R> | null;
  /** Routes whose pattern ends here. Within a node: exact host, then wildcard host, then any host. */
  readonly end: R[];
  /** Routes whose pattern ends here with a trailing `**`. Same host order. */
  readonly glob: R[];
}

function node<R>(): Node<R> {
  return { literal: new Map(), param: null, end: [], glob: [] };
}

function hostRank(host: string | null): number {
  return host === null ? 2 : host.startsWith('*.') ? 1 : 0;
}

/** Whether a route's host (exact, `*.suffix`, or null for any) takes a request's normalised host. */
export function hostMatches(pattern: string | null, host: string): boolean {
  if (pattern === null) return true;
  if (pattern.startsWith('*.')) return host.length > pattern.length - 1 && host.endsWith(pattern.slice(1));
  return pattern === host;
}

/**
 * A segment trie. Depth-first search visits candidates in specificity order — at the first
 * position where two patterns differ a literal beats a parameter, which beats `**`; an exact end
 * beats a `**` matching zero segments — so the first candidate whose method and host fit wins.
 * Equal-specificity overlaps are rejected when the config is compiled, so the order is total.
 */
export class Router<R extends Routable> {
  private readonly root: Node<R> = node();

  constructor(routes: readonly R[]) {
    for (const route of routes) this.insert(route);
    const sort = (n: Node<R>): void => {
      n.end.sort((a, b) => hostRank(a.host) - hostRank(b.host));
      n.glob.sort((a, b) => hostRank(a.host) - hostRank(b.host));
      for (const child of n.literal.values()) sort(child);
      if (n.param !== null) sort(n.param);
    };
    sort(this.root);
  }

  private insert(route: R): void {
    let current = this.root;
    for (const segment of route.pattern.segments) {
      if (segment.kind === 'glob') { current.glob.push(route); return; }
      if (segment.kind === 'param') {
        current.param ??= node();
        current = current.param;
      } else {
        let next = current.literal.get(segment.value);
        if (next === undefined) { next = node(); current.literal.set(segment.value, next); }
        current = next;
      }
    }
    current.end.push(route);
  }

  /**
   * Finds the most specific route for a canonical path (as segments), method and lower-case host.
   * The most specific routes whose path and host match decide: if none of them accepts the method
   * the answer is 405 with their methods, never a less specific route with another policy (a
   * `DELETE` on a GET-only `/api/admin/**` must not fall through to a public `/api/**`).
   */
  match(segments: readonly string[], method: string, host: string): RouteMatch<R> {
    let result: RouteMatch<R> | null = null;
    // Candidates are sorted by host rank; the first rank with a host match is the deciding group.
    const consider = (candidates: readonly R[]): boolean => {
      let rank = -1;
      let allow: Set<string> | null = null;
      for (const route of candidates) {
        if (!hostMatches(route.host, host)) continue;
        const r = hostRank(route.host);
        if (rank !== -1 && r !== rank) break;
        rank = r;
        if (route.methods === null || route.methods.has(method)) { result = { kind: 'found', route }; return true; }
        allow ??= new Set();
        for (const m of route.methods) allow.add(m);
      }
      if (allow === null) return false;
      result = { kind: 'method_not_allowed', allow: [...allow].sort() };
      return true;
    };
    const visit = (n: Node<R>, i: number): boolean => {
      if (i === segments.length) return consider(n.end) || consider(n.glob);
      const segment = segments[i] ?? '';
      const literal = n.literal.get(segment);
      if (literal !== undefined && visit(literal, i + 1)) return true;
      if (n.param !== null && segment !== '' && visit(n.param, i + 1)) return true;
      return consider(n.glob);
    };
    visit(this.root, 0);
    return result ?? { kind: 'not_found' };
  }
}
