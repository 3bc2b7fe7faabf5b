import { isMap, isScalar, isSeq, Lexer, visit, type Document } from 'yaml';
import type { ErrorObject } from 'ajv';
import type { ConfigPath } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import { expected, instancePath } from './schema-problems.js';

/**
 * Environment references in gateway.yaml: `${NAME}`, `${NAME:-default}`, and `$${` for a literal
 * `${`. They are substituted in the values of the parsed document, never in its text, so a
 * variable's value cannot change the structure of the config. A value that is one whole reference
 * takes the type its option needs (`port: ${PORT}` is a number when PORT holds one); a reference
 * inside longer text (`http://${HOST}:8080`) stays text.
 */

type Locate = (path: ConfigPath, message: string, atKey?: boolean) => ConfigProblem;

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}$/;
const HOW = 'write ${NAME} or ${NAME:-default} (NAME: letters, digits and _, not starting with a digit), or $${ for a literal ${';

/** A value that was one whole reference, by its path: what to name when its type is wrong. */
export interface WholeReference {
  readonly variable: string;
  readonly path: readonly (string | number)[];
}

/** Values that were one whole `${NAME}`, keyed by `pathKey(path)`. */
export type WholeReferences = ReadonlyMap<string, WholeReference>;

export const pathKey = (path: readonly (string | number)[]): string => JSON.stringify(path.map(String));

/**
 * Substitutes references in every string scalar under the given top-level sections (all when
 * `sections` is null). Reports unset variables (each by name) and malformed references at their
 * option; returns the values that were one whole reference.
 */
export function interpolate(doc: Document, env: NodeJS.ProcessEnv, locate: Locate, problems: ConfigProblem[], sections: ReadonlySet<string> | null): WholeReferences {
  const whole = new Map<string, WholeReference>();
  visit(doc, {
    Scalar(_key, node, ancestry) {
      if (typeof node.value !== 'string' || !node.value.includes('$')) return;
      const path = pathOf(ancestry, node);
      if (sections !== null && !sections.has(String(path[0]))) return;
      const original = node.value;
      const malformed = /\$\{/.exec(original.replace(REFERENCE, ''));
      if (malformed !== null) {
        const rest = original.replace(REFERENCE, '');
        const snippet = rest.slice(malformed.index, malformed.index + 24);
        problems.push(locate(path, `"${snippet}" is not an environment reference: ${HOW}`));
        return;
      }
      // `${A:-${B}}` is not a nested reference: the default would end at the first `}` and the
      // value would hold a literal `${B}` that no validation catches in a free-text option.
      const nested = [...original.matchAll(REFERENCE)].find((m) => m[2]?.includes('${') === true);
      if (nested !== undefined) {
        problems.push(locate(path, `the default of \${${nested[1]}} holds another reference, which is not substituted: write the default out (\${${nested[1]}:-value})`));
        return;
      }
      const missing: string[] = [];
      const value = original.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
        if (name === undefined) return '${';
        const v = env[name];
        if (v !== undefined && (v !== '' || fallback === undefined)) return v;
        if (fallback !== undefined) return fallback;
        if (!missing.includes(name)) missing.push(name);
        return match;
      });
      if (missing.length > 0) {
        const [first] = missing;
        const names = missing.length === 1 ? `environment variable ${first} is not set` : `environment variables ${missing.join(', ')} are not set`;
        problems.push(locate(path, `${names} (set ${missing.length === 1 ? 'it' : 'them'}, or give a default: \${${first}:-default})`));
        return;
      }
      node.value = value;
      const ref = WHOLE.exec(original);
      if (ref?.[1] !== undefined) whole.set(pathKey(path), { variable: ref[1], path });
    },
  });
  return whole;
}

/** The option path of a node from the visitor's ancestry. */
function pathOf(ancestry: readonly unknown[], target: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  const chain = [...ancestry, target];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) path.push(parent.items.indexOf(child));
    else if (isMap(parent)) {
      const pair = child as { key?: unknown };
      if (isScalar(pair.key)) path.push(String(pair.key.value));
    }
  }
  return path;
}

/**
 * Converts whole-reference values that validation found to be text where the option needs a
 * number or a boolean. Returns whether anything changed (validate again then); a value that does
 * not read cleanly as the type is a problem naming the variable, the option and the type (its
 * path is in `failed`, so the type error itself is not reported again).
 */
export function convertReferences(
  raw: unknown, errors: readonly ErrorObject[], whole: WholeReferences, locate: Locate, problems: ConfigProblem[],
): { readonly changed: boolean; readonly failed: ReadonlySet<string> } {
  let changed = false;
  const failed = new Set<string>();
  const done = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== 'type' || typeof e.data !== 'string') continue;
    const path = instancePath(e);
    const key = pathKey(path);
    const ref = whole.get(key);
    if (ref === undefined || done.has(key)) continue;
    const wanted = (e.params as { type: string | string[] }).type;
    const types = typeof wanted === 'string' ? [wanted] : wanted;
    const value = convert(e.data, types);
    done.add(key);
    if (value === undefined) {
      const what = expected(e.parentSchema as never, path[path.length - 1]) ?? types.join(' or ');
      // A variable holds text: it can stand for a number or a boolean, never for a list or a mapping.
      const scalar = types.some((t) => t === 'integer' || t === 'number' || t === 'boolean');
      problems.push(locate(path, scalar
        ? `\${${ref.variable}} must be ${what}: set ${ref.variable} to such a value`
        : `must be ${what}, which one variable cannot hold: write it in YAML, with a reference for each value that varies ("\${${ref.variable}}" stands for text)`));
      failed.add(key);
      continue;
    }
    if (setAt(raw, path, value)) changed = true;
  }
  return { changed, failed };
}

/** The text as the first of `types` it reads cleanly as (no spaces, no signs or digits beyond the type), else undefined. */
function convert(text: string, types: readonly string[]): number | boolean | undefined {
  for (const type of types) {
    if (type === 'integer' && /^-?(0|[1-9][0-9]*)$/.test(text)) {
      const n = Number(text);
      if (Number.isSafeInteger(n)) return n;
    }
    if (type === 'number' && /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text)) {
      const n = Number(text);
      if (Number.isFinite(n)) return n;
    }
    if (type === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  }
  return undefined;
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): boolean {
  let node = root;
  for (const part of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return false;
    node = (node as Record<string, unknown>)[String(part)];
  }
  const last = path[path.length - 1];
  if (node === null || typeof node !== 'object' || last === undefined) return false;
  (node as Record<string, unknown>)[String(last)] = value;
  return true;
}

/** Where an unquoted reference sits inside a flow collection, and how to write it instead. */
export interface FlowReference {
  readonly offset: number;
  readonly message: string;
}

// Lexer tokens that mark structure without standing for source text.
const ZERO_WIDTH = new Set(['\u0002', '\u0018', '\u001f']);

/**
 * Unquoted `${…}` inside a flow collection (`{ port: ${PORT} }`, `[${URL}]`): YAML reads `{` there as
 * the start of a nested mapping, so the file fails to parse with errors about everything after it.
 * Found from the token stream (quoted and block values are single tokens, so they never match).
 */
export function flowReferences(text: string): FlowReference[] {
  const found: FlowReference[] = [];
  const tokens = [...new Lexer().lex(text)];
  let offset = 0;
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    const next = tokens[i + 1];
    if (token === '{' || token === '[') depth++;
    else if ((token === '}' || token === ']') && depth > 0) depth--;
    else if (depth > 0 && tokens[i - 1] === '\u001f' && token.endsWith('$') && next === '{') {
      const start = offset + token.length - 1;
      const reference = /^\$\{[^}\n]*\}?/.exec(text.slice(start))?.[0] ?? '${';
      const value = `${token.slice(0, -1)}${reference}`;
      found.push({
        offset: start,
        message: `${reference} inside a flow collection ({ … } or [ … ]) must be quoted: write "${value}" (a quoted reference still becomes the number or boolean the option needs), or write the collection in block style, one entry per line`,
      });
    }
    if (!ZERO_WIDTH.has(token)) offset += token.length;
  }
  return found;
}
