import { Ajv2020, _, str, type KeywordCxt, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { RE2JS } from '@bufbuild/re2';
import type { BodyValidator } from './contract.js';
import { pointerSegment } from './json-body.js';
import { AJV_CODE } from '../lib/ajv-code.js';

/**
 * `pattern` and `patternProperties` run on attacker input, so no schema may turn into a ReDoS: every
 * pattern is compiled for RE2 (linear time in the input, no backtracking; a pattern RE2 cannot run,
 * with lookaround or backreferences, fails at load), and RE2 matches every string longer than
 * NATIVE_MAX_CHARS. Shorter strings are matched by the JavaScript engine (the ECMA-262 semantics
 * JSON Schema specifies, and some 50 times faster) when the pattern is one whose backtracking is
 * bounded (`boundedBacktracking`): no quantified group, at most two unbounded quantifiers, so the
 * worst case is quadratic in at most NATIVE_MAX_CHARS characters.
 */
export function patternEngine(pattern: string, flags: string): { test(s: string): boolean; toString(): string } {
  const linear = RE2JS.compile(pattern);
  const native = boundedBacktracking(pattern) ? nativeRegExp(pattern, flags) : null;
  // Ajv keys its compiled patterns by toString(): each pattern needs its own, as a RegExp has.
  const key = `/${pattern}/${flags}`;
  return {
    test: native === null ? (s) => linear.test(s) : (s) => (s.length <= NATIVE_MAX_CHARS ? native.test(s) : linear.test(s)),
    toString: () => key,
  };
}
patternEngine.code = 'RE2 (@bufbuild/re2), or RegExp on short strings for patterns with bounded backtracking';

/** The JavaScript engine's RegExp, or null when it reads the pattern otherwise than RE2 (RE2 then matches every string). */
function nativeRegExp(pattern: string, flags: string): RegExp | null {
  try {
    return new RegExp(pattern, flags);
  } catch {
    return null;
  }
}

/** Longest string a pattern with bounded backtracking is matched on by the JavaScript engine. */
export const NATIVE_MAX_CHARS = 256;

/** A repetition counts as unbounded above this many (`a{0,1000}` backtracks like `a*`). */
const SMALL_REPEAT = 16;

/**
 * Whether backtracking on `pattern` is bounded by a low polynomial: no quantifier applies to a
 * group (nested or alternated repetition is where exponential time comes from), no backreference
 * or lookaround, and at most two unbounded quantifiers (`*`, `+`, `{n,}`, `{n,m}` with m above
 * SMALL_REPEAT). Conservative: anything it cannot read is "not bounded" (RE2 then matches).
 */
export function boundedBacktracking(pattern: string): boolean {
  let unbounded = 0;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9k]/.test(next)) return false; // backreference
      i++;
      continue;
    }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; continue; }
    if (c === '(' && pattern[i + 1] === '?' && /[=!<]/.test(pattern[i + 2] ?? '')) {
      if (pattern[i + 2] !== '<' || /[=!]/.test(pattern[i + 3] ?? '')) return false; // lookaround
    }
    const quantifier = c === '*' || c === '+' || c === '?' || c === '{';
    if (!quantifier) continue;
    if (pattern[i - 1] === ')') return false; // a quantified group
    if (c === '*' || c === '+') unbounded++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m === null) return false;
      if (m[2] !== undefined && (m[3] === '' || Number(m[3]) > SMALL_REPEAT)) unbounded++;
      i += m[0].length - 1;
    }
    // A lazy or possessive marker after a quantifier is not one itself.
    if (pattern[i + 1] === '?') i++;
    if (unbounded > 2) return false;
  }
  return !inClass;
}

/** How many errors a schema may produce per request: one, the first (fail fast, bounded work). */
const OPTIONS = {
  strict: true,
  // `required` naming a member `properties` does not define is ordinary JSON Schema (OpenAPI's
  // allOf compositions are full of it): only that part of strict mode is off.
  strictRequired: false,
  allErrors: false,
  allowUnionTypes: true,
  // Both are opt-in mutations of the request; a gateway validates and forwards the bytes as received.
  useDefaults: false,
  coerceTypes: false,
  removeAdditional: false,
  validateFormats: true,
  // No loadSchema: only what is in the document; a reference to anything else fails to compile.
  code: { ...AJV_CODE, regExp: patternEngine },
  logger: false,
} as const;

/**
 * `maxLength` and `minLength` as JSON Schema defines them (code points), in place of Ajv's own,
 * which counts every string character by character: the UTF-16 length decides whenever it can
 * (code points are at most the length, and at least half of it), and only a string it cannot
 * decide is counted, by the engine's search for surrogates.
 */
function lengthsInCodePoints(ajv: Ajv2020): void {
  for (const keyword of ['maxLength', 'minLength']) ajv.removeKeyword(keyword);
  ajv.addKeyword({
    keyword: ['maxLength', 'minLength'],
    type: 'string',
    schemaType: 'number',
    error: { message: ({ keyword, schemaCode }) => str`must NOT have ${keyword === 'maxLength' ? 'more' : 'fewer'} than ${schemaCode} characters` },
    code(cxt: KeywordCxt) {
      const { keyword, data, schemaCode, gen } = cxt;
      const count = gen.scopeValue('func', { ref: codePoints, code: _`codePoints` });
      cxt.fail(keyword === 'maxLength'
        ? _`${data}.length > ${schemaCode} && ${count}(${data}) > ${schemaCode}`
        : _`${data}.length < ${schemaCode} || (${data}.length < 2 * ${schemaCode} && ${count}(${data}) < ${schemaCode})`);
    },
  });
}

const SURROGATE_PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;

/** Code points in a string: its UTF-16 length less one per surrogate pair (a lone surrogate is one code point, as Ajv counts it). */
function codePoints(s: string): number {
  SURROGATE_PAIR.lastIndex = 0;
  let pairs = 0;
  while (SURROGATE_PAIR.test(s)) pairs++;
  return s.length - pairs;
}

/** A schema that does not compile: the message names what is wrong (for the config error). */
export class SchemaCompileError extends Error {}

/**
 * Compiles a JSON Schema (draft 2020-12) at load into a body validator. `$ref` resolves within
 * the document only (`#/$defs/…`, its own `$id`); anything else fails here, at load. The validator
 * returns the first failure: the instance location as a JSON pointer (the client's own) and a
 * private reason naming the keyword and the schema location, never the value.
 */
export function compileJsonSchema(schema: unknown): BodyValidator {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    if (typeof schema !== 'boolean') throw new SchemaCompileError('a JSON Schema is an object (or true/false)');
  }
  const ajv = new Ajv2020(OPTIONS);
  formats.default(ajv);
  lengthsInCodePoints(ajv);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw new SchemaCompileError(firstLine((err as Error).message));
  }
  return (value) => {
    if (validate(value)) return null;
    const error = (validate.errors ?? [])[0];
    if (error === undefined) return { pointer: '', reason: 'schema: the body does not conform' };
    // A missing member is located where it should be; its name comes from the schema, not the body.
    const missing = error.keyword === 'required' ? (error.params as { missingProperty?: unknown }).missingProperty : undefined;
    const pointer = typeof missing === 'string' ? `${error.instancePath}/${pointerSegment(missing)}` : error.instancePath;
    return { pointer, reason: `schema: ${error.keyword} failed at ${error.schemaPath.slice(0, 200)}` };
  };
}

function firstLine(message: string): string {
  const line = message.split('\n', 1)[0] ?? message;
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
