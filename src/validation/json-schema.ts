import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { RE2JS } from '@bufbuild/re2';
import type { BodyValidator } from './contract.js';
import { pointerSegment } from './json-body.js';

/**
 * `pattern` and `patternProperties` run on attacker input: they are matched by an RE2 engine
 * (linear time in the input, no backtracking), so no schema can be made into a ReDoS. RE2 has no
 * lookaround and no backreferences; a schema using them fails to compile at load.
 */
function re2(pattern: string, flags: string): { test(s: string): boolean; toString(): string } {
  // Ajv passes 'u' (unicode) only; RE2 is always Unicode-aware.
  const re = RE2JS.compile(pattern);
  // Ajv keys its compiled patterns by toString(): each pattern needs its own, as a RegExp has.
  const key = `/${pattern}/${flags}`;
  return { test: (s) => re.test(s), toString: () => key };
}
re2.code = 'linear-time RE2 (@bufbuild/re2)';

/** How many errors a schema may produce per request: one, the first (fail fast, bounded work). */
const OPTIONS = {
  strict: true,
  allErrors: false,
  allowUnionTypes: true,
  // Both are opt-in mutations of the request; a gateway validates and forwards the bytes as received.
  useDefaults: false,
  coerceTypes: false,
  removeAdditional: false,
  validateFormats: true,
  // No loadSchema: only what is in the document; a reference to anything else fails to compile.
  code: { regExp: re2 },
  logger: false,
} as const;

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
