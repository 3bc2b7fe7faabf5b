import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import type { RawRoute } from './schema.js';
import type { BodyValidator, JsonLimits, MediaTypeRule, RequestContract } from '../validation/contract.js';
import { compileJsonSchema, SchemaCompileError } from '../validation/json-schema.js';
import { isJsonMediaType } from '../validation/media-type.js';
import type { OperationRoute } from '../validation/openapi.js';
import { compileOpenApiOperation } from './compile-openapi.js';

type At = (...path: (string | number)[]) => (string | number)[];

/** Documented defaults of `routes[].validate`; docs/configuration.md lists the same values. */
export const VALIDATE_DEFAULTS = Object.freeze({
  contentTypes: Object.freeze(['application/json']),
  charsets: Object.freeze(['utf-8']),
  bodyRequired: false,
  json: Object.freeze({ maxDepth: 32, maxKeys: 1000, maxStringLength: 65536, maxArrayLength: 10000 }) satisfies JsonLimits,
});

/**
 * Compiles a route's `validate` into its request contract: media types with their charset rules,
 * the JSON limits, and the JSON Schema (read from its file and compiled here, once). Null when the
 * route has no `validate`, or when it has problems (each pushed, located at its option).
 *
 * One source of truth for media types: a route with `validate` takes them from
 * `validate.contentTypes`, and `limits.contentTypes` beside it is a load error.
 */
export function compileValidate(r: RawRoute, at: At, loaded: LoadedConfig, problems: ConfigProblem[], route: OperationRoute): RequestContract | null {
  const v = r.validate;
  if (v === undefined) return null;
  const before = problems.length;
  const here = (...path: (string | number)[]) => at('validate', ...path);
  if (r.serve !== undefined) {
    problems.push(loaded.problem(here(), `a route the gateway serves (${r.serve}) reads its own requests: remove validate`));
    return null;
  }
  if (r.limits?.contentTypes !== undefined) {
    problems.push(loaded.problem(at('limits', 'contentTypes'), 'on a route with validate, validate.contentTypes says which media types are accepted: move these types there and remove limits.contentTypes'));
  }
  if (v.openapi !== undefined) {
    for (const option of ['contentTypes', 'jsonSchema', 'bodyRequired'] as const) {
      if (v[option] !== undefined) problems.push(loaded.problem(here(option), `the OpenAPI operation (validate.openapi) gives the ${option === 'bodyRequired' ? 'requestBody\'s required' : option === 'jsonSchema' ? 'body\'s schema' : 'accepted media types'}: remove ${option}`));
    }
    const operation = compileOpenApiOperation(v.openapi, (...path) => here('openapi', ...path), route, loaded, problems);
    if (operation === null || problems.length > before) return null;
    const charsets = new Set(v.charsets ?? VALIDATE_DEFAULTS.charsets);
    const utf8 = new Set(['utf-8']);
    const mediaTypes = operation.mediaTypes === null ? null : new Map<string, MediaTypeRule>([...operation.mediaTypes].map(([t, rule]) => [t, Object.freeze({ json: rule.json, charsets: rule.json ? utf8 : charsets })]));
    return Object.freeze({ ...operation, mediaTypes, json: Object.freeze({ ...VALIDATE_DEFAULTS.json, ...v.json }) });
  }
  const types = v.contentTypes ?? VALIDATE_DEFAULTS.contentTypes;
  const charsets = new Set(v.charsets ?? VALIDATE_DEFAULTS.charsets);
  const utf8 = new Set(['utf-8']);
  if (v.charsets !== undefined && !types.some((t) => !isJsonMediaType(t)) && [...charsets].some((c) => c !== 'utf-8')) {
    problems.push(loaded.problem(here('charsets'), 'JSON bodies are read as UTF-8 only (RFC 8259 §8.1), and every type in contentTypes is JSON: remove charsets, or list a non-JSON type it applies to'));
  }
  const mediaTypes = new Map<string, MediaTypeRule>(types.map((t) => {
    const json = isJsonMediaType(t);
    return [t, Object.freeze({ json, charsets: json ? utf8 : charsets })];
  }));
  if (v.jsonSchema !== undefined && !types.some(isJsonMediaType)) {
    problems.push(loaded.problem(here('jsonSchema'), `checks JSON bodies, but contentTypes (${types.join(', ')}) has no JSON type: add application/json (or a +json type), or remove jsonSchema`));
  }
  const json: JsonLimits = Object.freeze({ ...VALIDATE_DEFAULTS.json, ...v.json });
  // `validate.openapi` (an OpenAPI 3.1 operation, compiled to the same RequestContract parts by
  // validation/openapi.ts) joins here: its media types, body validator and parameter check, with
  // problems located under here('openapi', …).
  const body = v.jsonSchema === undefined ? null : compileBodySchema(v.jsonSchema, here('jsonSchema'), loaded, problems);
  if (problems.length > before) return null;
  return Object.freeze({
    source: `routes[${at().at(-1) ?? ''}].validate`,
    mediaTypes,
    bodyRequired: v.bodyRequired ?? VALIDATE_DEFAULTS.bodyRequired,
    body,
    parameters: null,
    headers: [],
    json,
  });
}

/** The media types the request limits check early for a route with a contract (null: any). */
export function contractContentTypes(contract: RequestContract | null): ReadonlySet<string> | null {
  return contract?.mediaTypes == null ? null : new Set(contract.mediaTypes.keys());
}

/** Reads (from a file relative to the config) and compiles a JSON Schema; null with a problem pushed when it cannot be used. */
function compileBodySchema(option: string | Record<string, unknown>, path: (string | number)[], loaded: LoadedConfig, problems: ConfigProblem[]): BodyValidator | null {
  let schema: unknown = option;
  let where = 'the inline JSON Schema';
  if (typeof option === 'string') {
    where = `the JSON Schema in ${option}`;
    const read = loaded.files.readText(option);
    if (!read.ok) {
      problems.push(loaded.problem(path, `${read.message}: give a JSON or YAML file of a JSON Schema, relative to this config`));
      return null;
    }
    const ext = extname(option).toLowerCase();
    try {
      schema = ext === '.yaml' || ext === '.yml' ? parseYaml(read.text, { uniqueKeys: true }) : JSON.parse(read.text);
    } catch (err) {
      problems.push(loaded.problem(path, `${option} is not ${ext === '.yaml' || ext === '.yml' ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n', 1)[0] ?? ''}`));
      return null;
    }
  }
  try {
    return compileJsonSchema(schema);
  } catch (err) {
    if (!(err instanceof SchemaCompileError)) throw err;
    problems.push(loaded.problem(path, `${where} does not compile (draft 2020-12, strict): ${err.message}`));
    return null;
  }
}
