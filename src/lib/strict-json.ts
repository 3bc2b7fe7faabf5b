/**
 * JSON for untrusted, security-relevant documents (JOSE headers and JWT claims). `JSON.parse`
 * silently keeps the last of duplicate keys, so `{"alg":"RS256","alg":"none"}` means different
 * things to different parsers (RFC 7515 §4 requires rejecting it); nesting is also bounded.
 * Returns undefined for anything that is not valid JSON, has a duplicate key (after unescaping:
 * `"a"` and `"\u0061"` are the same key) or nests deeper than `maxDepth`.
 */
export function parseStrictJson(text: string, maxDepth: number): unknown {
  let value: unknown;
  try { value = JSON.parse(text); } catch { return undefined; }
  return hasDuplicateKeysOrDepth(text, maxDepth) ? undefined : value;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Scans valid JSON text once, tracking the keys of every open object. */
function hasDuplicateKeysOrDepth(text: string, maxDepth: number): boolean {
  const open: (Set<string> | null)[] = []; // null for arrays
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(end);
        if (d === BACKSLASH) { escaped = true; end += 2; continue; }
        if (d === QUOTE) break;
        end++;
      }
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        const key = escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
        const keys = open[open.length - 1];
        if (keys === undefined || keys === null || keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      if (open.length > maxDepth) return true;
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push(null);
      if (open.length > maxDepth) return true;
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = open[open.length - 1] !== null && open.length > 0;
    }
  }
  return false;
}
