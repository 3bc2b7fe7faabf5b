/**
 * "Did you mean …?" for config names: the option keys of one place, and the names of upstreams,
 * authenticators, limits and quotas that routes refer to.
 */

/** Case and separators (`_`, `-`, `.`, spaces) do not tell names apart for a suggestion: `timeout_ms` is `timeoutMs`. */
const fold = (name: string): string => name.toLowerCase().replace(/[-_.\s]/g, '');

/**
 * The candidate `name` most likely meant, or null: one equal but for case and separators, else the
 * nearest by edit distance (a swap of two neighbours counts once) within a third of its length.
 */
export function closest(name: string, candidates: Iterable<string>): string | null {
  const folded = fold(name);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const other = fold(candidate);
    if (other === folded) return candidate;
    const d = distance(folded, other);
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  const allowed = Math.max(1, Math.floor(Math.max(folded.length, 3) / 3));
  return bestDistance <= allowed ? best : null;
}

/** The ` (did you mean "x"?)` clause for `name`, or an empty string. */
export function didYouMean(name: string, candidates: Iterable<string>, quote = '"'): string {
  const guess = closest(name, candidates);
  return guess === null ? '' : `; did you mean ${quote}${guess}${quote}?`;
}

/** Optimal string alignment distance; names are short (at most 64 characters), so the table is small. */
function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Infinity;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...new Array<number>(b.length).fill(0)]);
  const row0 = rows[0] as number[];
  for (let j = 0; j <= b.length; j++) row0[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    const up = rows[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = d;
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/** `unknown upstream "ordrs"; did you mean "orders"? (defined: orders, users)`: a reference to a name nothing defines. */
export function unknownName(what: string, name: string, defined: readonly string[]): string {
  const list = defined.length === 0 ? 'none' : defined.length <= 20 ? defined.join(', ') : `${defined.slice(0, 20).join(', ')}, …`;
  return `unknown ${what} "${name}"${didYouMean(name, defined)} (defined: ${list})`;
}
