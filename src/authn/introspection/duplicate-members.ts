/** Deepest nesting of objects and arrays an answer may have: real claims nest a few levels; thousands would overflow JSON.stringify (the shared cache writes answers again). */
export const MAX_JSON_DEPTH = 64;

/**
 * Why a JSON text is not one to read, or null (also for text that is not JSON: the parser
 * refuses that later): a member name twice in one object (see duplicateMember), or objects and
 * arrays nested deeper than MAX_JSON_DEPTH (JSON.parse reads any depth, but JSON.stringify and
 * anything else that recurses over the value cannot).
 */
export function jsonShapeProblem(text: string): string | null {
  const found = scan(text);
  if (found === null) return null;
  return found.deep ? `nested deeper than ${MAX_JSON_DEPTH} levels` : `the member "${found.name.slice(0, 64)}" twice`;
}

/**
 * The first member name that appears twice in one object of a JSON text, or null (also for text
 * that is not JSON: the parser refuses that later). RFC 8259 §4 says names SHOULD be unique and
 * leaves duplicates to the implementation; JSON.parse keeps the last, other parsers the first, so
 * an answer with a duplicated name means different things to different readers and is refused.
 * One pass over the text, no allocation beyond the names of the objects being read.
 */
export function duplicateMember(text: string): string | null {
  const found = scan(text);
  return found === null || found.deep ? null : found.name;
}

/** One pass: the first duplicated member name, or the first opening past MAX_JSON_DEPTH, or null. */
function scan(text: string): { readonly deep: false; readonly name: string } | { readonly deep: true } | null {
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      if (end === -1) return null;
      const top = stack[stack.length - 1];
      // A string directly followed by `:` inside an object is a member name.
      let j = end + 1;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (top !== undefined && top !== null && text.charCodeAt(j) === 0x3a) {
        let name: string;
        try { name = JSON.parse(text.slice(i, end + 1)) as string; } catch { return null; }
        if (top.has(name)) return { deep: false, name };
        top.add(name);
      }
      i = end + 1;
      continue;
    }
    if ((c === 0x7b || c === 0x5b) && stack.length === MAX_JSON_DEPTH) return { deep: true };
    if (c === 0x7b) stack.push(new Set());
    else if (c === 0x5b) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
    i++;
  }
  return null;
}

/** Index of the quote closing the string that opens at `start`, or -1. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i;
  }
  return -1;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
