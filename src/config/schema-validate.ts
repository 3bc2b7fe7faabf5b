import { Type } from '@sinclair/typebox';
import { formatted, strict } from './schema-parts.js';

/**
 * `routes[].validate`: request validation on a route. Defaults are applied in compile-validate.ts
 * (VALIDATE_DEFAULTS); docs/validation.md explains each option.
 */

const MediaType = formatted('^[a-z0-9!#$&^_.+-]{1,127}/[a-z0-9!#$&^_.+-]{1,127}$', 'a media type in lower case without parameters or wildcards, like application/json');
const Charset = formatted('^[a-z0-9!#$%&\'+.^_`|~-]{1,40}$', 'a charset name in lower case, like utf-8');

export const JsonLimitsSchema = strict({
  maxDepth: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Deepest nesting of objects and arrays (the top-level value is depth 1). Default 32.' })),
  maxKeys: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most members in any one object. Default 1000.' })),
  maxStringLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 1 << 30, description: 'Longest string or member name, in UTF-16 code units after unescaping (and longest number, in characters). Default 65536.' })),
  maxArrayLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000, description: 'Most elements in any one array. Default 10000.' })),
}, 'Structural limits on a JSON body, enforced while it is read (400 invalid_body past any of them).');

export const ValidateSchema = strict({
  contentTypes: Type.Optional(Type.Array(MediaType, { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Media types a request body may have (415 unsupported_media_type otherwise). JSON types (application/json, */*+json) are read and checked; others pass unread. Default [application/json].' })),
  charsets: Type.Optional(Type.Array(Charset, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'Charsets accepted in the Content-Type charset parameter of non-JSON types. JSON bodies are UTF-8 only (RFC 8259 §8.1): charset absent or utf-8. Default [utf-8].' })),
  jsonSchema: Type.Optional(Type.Unsafe<string | Record<string, unknown>>({
    anyOf: [
      { type: 'string', minLength: 1, maxLength: 1024 },
      { type: 'object' },
    ],
    description: 'The JSON Schema (draft 2020-12) of a JSON body: a file (JSON or YAML) relative to this config, or the schema inline. Compiled at load; 422 schema_violation when a body does not conform.',
  })),
  bodyRequired: Type.Optional(Type.Boolean({ description: 'Whether a request must carry a body (400 invalid_body when it has none). Default false.' })),
  json: Type.Optional(JsonLimitsSchema),
  openapi: Type.Optional(strict({
    document: Type.String({ minLength: 1, maxLength: 1024, description: 'The OpenAPI 3.1.x document (YAML or JSON, at most 4 MiB, local $refs only), relative to this config.' }),
    operation: Type.String({ minLength: 1, maxLength: 1024, description: 'The operation: its operationId, or METHOD /path/template as in the document (GET /pets/{petId}).' }),
  }, 'Validate against an OpenAPI 3.1 operation (see docs/openapi.md): its path, query, header and cookie parameters (400 invalid_parameter), its requestBody media types (415) and JSON schema (422). The route\'s path must be the operation\'s path (after an optional literal prefix) and its methods the operation\'s. Not with contentTypes, jsonSchema or bodyRequired, which the operation gives.')),
}, 'Request validation (see docs/validation.md): the body\'s media type and charset, its JSON structure within limits, and its JSON Schema. Runs after authorization.');
