import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { isObject, pointerOf, type DocPath, type OpenApiDocument } from './openapi-document.js';
import { patternEngine } from './json-schema.js';
import { boundedPointer, pointerSegment } from './json-body.js';
import type { ValidationFailure } from './contract.js';
import { AJV_CODE } from '../lib/ajv-code.js';

/** OpenAPI's own keywords in a Schema Object: annotations, not assertions (OpenAPI 3.1 §4.8.24). */
const OPENAPI_SCHEMA_KEYWORDS = ['discriminator', 'xml', 'externalDocs', 'example'];
/** The top-level fields of an OpenAPI document: the document is the root every reference resolves in. */
const DOCUMENT_FIELDS = ['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags'];

/**
 * Compiles the schemas of one OpenAPI document with Ajv (JSON Schema 2020-12). The document itself
 * is the root schema, so every `#/components/…` reference, recursive ones included, resolves
 * inside it and Ajv handles cycles; each compiled validator is a `$ref` to one schema's location.
 * Strict on keywords (a misspelt keyword is a load error), OpenAPI's annotations and `x-`
 * extensions allowed; `pattern` runs on the same engine as `validate.jsonSchema` (RE2, linear time; see json-schema.ts); formats: those of ajv-formats and
 * OpenAPI's int32, int64, float, double, byte, binary and password; an unknown format is a load error.
 */
export class SchemaCompiler {
  private readonly ajv: Ajv2020;
  private readonly documentId: string;
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(readonly document: OpenApiDocument) {
    this.documentId = `urn:portcullis:openapi:${encodeURIComponent(document.file)}`;
    this.ajv = new Ajv2020({
      strictSchema: true, strictNumbers: true, strictTypes: false, strictTuples: false, strictRequired: false,
      allErrors: false, validateFormats: true, code: { ...AJV_CODE, regExp: patternEngine },
    });
    addFormats.default(this.ajv);
    this.ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647 });
    this.ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
    this.ajv.addFormat('float', { type: 'number', validate: () => true });
    this.ajv.addFormat('double', { type: 'number', validate: () => true });
    this.ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
    this.ajv.addFormat('binary', true);
    this.ajv.addFormat('password', true);
    const keywords = new Set([...OPENAPI_SCHEMA_KEYWORDS, ...DOCUMENT_FIELDS, ...extensionKeywords(document.root)]);
    for (const keyword of keywords) if (this.ajv.getKeyword(keyword) === false) this.ajv.addKeyword({ keyword });
    this.ajv.addSchema(document.root, this.documentId);
  }

  /** A validator of the schema at `path`; throws an Error saying why Ajv refused it. */
  compile(path: DocPath): ValidateFunction {
    const pointer = pointerOf(path);
    let validate = this.cache.get(pointer);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `${this.documentId}${pointer}` });
      this.cache.set(pointer, validate);
    }
    return validate;
  }
}

/** Every `x-…` key of the document: OpenAPI specification extensions, allowed in Schema Objects too. */
function extensionKeywords(root: unknown): Set<string> {
  const found = new Set<string>();
  const stack: unknown[] = [root];
  for (let value = stack.pop(); value !== undefined; value = stack.pop()) {
    if (Array.isArray(value)) { stack.push(...(value as unknown[])); continue; }
    if (!isObject(value)) continue;
    for (const [k, v] of Object.entries(value)) {
      if (k.startsWith('x-')) found.add(k);
      stack.push(v);
    }
  }
  return found;
}

/**
 * The first error of a failed validation as a failure: the pointer of the failing location in the
 * request (for a missing property, where it is missing) and a reason from the schema alone — Ajv's
 * messages name keywords and schema values, never the instance.
 */
export function failureOf(errors: readonly ErrorObject[] | null | undefined, base = ''): ValidationFailure {
  const error = errors?.[0];
  if (error === undefined) return { pointer: base === '' ? '' : base, reason: 'does not match the schema' };
  let pointer = base + error.instancePath;
  const missing = (error.params as { missingProperty?: unknown }).missingProperty;
  if (error.keyword === 'required' && typeof missing === 'string') pointer += `/${pointerSegment(missing)}`;
  // The document's internal URI is noise in a reason: the schema path within the document is what helps.
  const schemaPath = error.schemaPath.replace(/^urn:portcullis:openapi:[^#]*#/, '#');
  return { pointer: boundedPointer(pointer), reason: `${error.message ?? error.keyword} (schema ${schemaPath.length > 200 ? `${schemaPath.slice(0, 200)}…` : schemaPath})` };
}
