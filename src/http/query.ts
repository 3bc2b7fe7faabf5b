/** The query parameter frameworks read as a method override (Laravel, Symfony, Express method-override). */
export const METHOD_OVERRIDE_PARAM = '_method';

/**
 * Whether a query holds one of the named parameters, by its name as the most lenient server
 * reads it (see paramName); `&` and `;` both separate (some servers split on either).
 */
export function hasParam(query: string, names: ReadonlySet<string>): boolean {
  for (const part of query.slice(1).split(/[&;]/)) if (names.has(paramName(part))) return true;
  return false;
}

/** The decoded values of every parameter of a query read as `name`. */
export function paramValues(query: string, name: string): string[] {
  const values: string[] = [];
  for (const part of query.slice(1).split(/[&;]/)) {
    if (paramName(part) !== name) continue;
    const eq = part.indexOf('=');
    const raw = eq === -1 ? '' : part.slice(eq + 1).replace(/\+/g, ' ');
    try { values.push(decodeURIComponent(raw)); } catch { values.push(raw); }
  }
  return values;
}

/** The query without any `&`-separated part that holds one of the named parameters. */
export function withoutParams(query: string, names: ReadonlySet<string>): string {
  if (query.length < 2) return '';
  const kept = query.slice(1).split('&').filter((part) => !part.split(';').some((p) => names.has(paramName(p))));
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
}

/**
 * A parameter's name as the most lenient server reads it: decoded, lower case, cut at a NUL, an
 * array suffix dropped (`a[]`, `a[x]` are `a` to PHP and Rack), and — as PHP does — `.`, space and
 * an unmatched `[` read as `_`.
 */
function paramName(part: string): string {
  const eq = part.indexOf('=');
  const raw = (eq === -1 ? part : part.slice(0, eq)).replace(/\+/g, ' ');
  let name: string;
  try { name = decodeURIComponent(raw); } catch { name = raw; }
  const nul = name.indexOf('\0');
  if (nul !== -1) name = name.slice(0, nul);
  const bracket = name.indexOf('[');
  if (bracket > 0 && name.indexOf(']', bracket) !== -1) name = name.slice(0, bracket);
  return name.trim().toLowerCase().replace(/[. []/g, '_');
}
