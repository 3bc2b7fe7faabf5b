import type { PathPattern } from '../routing/pattern.js';
import { canonicalSegment } from '../http/target.js';
import type { BodyValidator, MediaTypeRule, RequestContract } from './contract.js';
import { clip, isObject, OpenApiError, refPath, valueAt, type DocPath, type OpenApiDocument } from './openapi-document.js';
import { parameterCheck, type ParameterLocation, type ParameterSpec, type ScalarKind, type ValueShape } from './openapi-parameters.js';
import { failureOf, SchemaCompiler } from './openapi-schemas.js';

export { OpenApiError, parseOpenApiDocument, MAX_OPENAPI_DOCUMENT_BYTES, type OpenApiDocument } from './openapi-document.js';
export { SchemaCompiler } from './openapi-schemas.js';

/** The HTTP methods a Path Item Object can hold an operation for, in the order they are listed. */
export const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Most `$ref` hops followed to reach a parameter, request body or path item. */
const MAX_REF_HOPS = 32;

/** One operation of a document: its method (upper case), path template and where it is. */
export interface OpenApiOperation {
  readonly method: string;
  readonly template: string;
  readonly operationId: string | null;
  /** Where the Operation Object is (after its path item's `$ref`, if any). */
  readonly path: DocPath;
  /** Where its Path Item Object is. */
  readonly itemPath: DocPath;
}

/** What an OpenAPI operation contributes to a route's request contract. */
export type OperationContract = Pick<RequestContract, 'source' | 'mediaTypes' | 'bodyRequired' | 'body' | 'parameters' | 'headers'>;

/** The route an operation is checked on: what it matches. */
export interface OperationRoute {
  readonly pattern: PathPattern;
  /** Upper-case methods, or null for any. */
  readonly methods: ReadonlySet<string> | null;
  readonly allowSemicolon: boolean;
}

/** A template segment: literal text, or a whole-segment `{name}`. */
type TemplateSegment = { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'param'; readonly name: string };

/** Follows `$ref`s from `path` to a value that is not a reference; throws on a cycle or too many hops. */
function resolve(doc: OpenApiDocument, path: DocPath): { readonly value: unknown; readonly path: DocPath } {
  let current: DocPath = path;
  for (let hop = 0; hop <= MAX_REF_HOPS; hop++) {
    const value = valueAt(doc.root, current);
    if (!isObject(value) || typeof value.$ref !== 'string') return { value, path: current };
    const next = refPath(value.$ref);
    if (next === null) throw new OpenApiError(`$ref "${clip(value.$ref)}" is not a local reference`, doc.where(current));
    current = next;
  }
  throw new OpenApiError(`more than ${MAX_REF_HOPS} $ref hops (a reference cycle?)`, doc.where(path));
}

/** Every operation of the document, in document order. */
export function listOperations(doc: OpenApiDocument): OpenApiOperation[] {
  const paths = doc.root.paths;
  if (paths === undefined) return [];
  if (!isObject(paths)) throw new OpenApiError('paths must be a mapping', doc.where(['paths']));
  const operations: OpenApiOperation[] = [];
  for (const template of Object.keys(paths)) {
    if (template.startsWith('x-')) continue;
    const item = resolve(doc, ['paths', template]);
    if (!isObject(item.value)) throw new OpenApiError(`path item ${clip(template)} must be a mapping`, doc.where(['paths', template]));
    for (const method of OPERATION_METHODS) {
      const op = item.value[method];
      if (op === undefined) continue;
      if (!isObject(op)) throw new OpenApiError(`${method} of ${clip(template)} must be a mapping`, doc.where([...item.path, method]));
      const id = op.operationId;
      operations.push({ method: method.toUpperCase(), template, operationId: typeof id === 'string' ? id : null, path: [...item.path, method], itemPath: item.path });
    }
  }
  return operations;
}

/**
 * The operation `selector` names: an `operationId`, or `METHOD /path/template` (`GET /pets/{petId}`).
 * Throws OpenApiError when there is none, or when an operationId is given twice in the document.
 */
export function findOperation(doc: OpenApiDocument, selector: string): OpenApiOperation {
  const operations = listOperations(doc);
  const spaced = /^([A-Za-z]+) (\/.*)$/.exec(selector);
  if (spaced !== null) {
    const method = (spaced[1] ?? '').toUpperCase();
    const found = operations.find((o) => o.method === method && o.template === spaced[2]);
    if (found === undefined) throw new OpenApiError(`no operation ${clip(method)} ${clip(spaced[2] ?? '')} in paths`, doc.where(['paths']));
    return found;
  }
  const matches = operations.filter((o) => o.operationId === selector);
  const [first, second] = matches;
  if (first === undefined) {
    const known = operations.map((o) => o.operationId).filter((id): id is string => id !== null);
    throw new OpenApiError(`no operation with operationId "${clip(selector)}"${known.length > 0 ? ` (there are: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''})` : ''}`, doc.where(['paths']));
  }
  if (second !== undefined) throw new OpenApiError(`operationId "${clip(selector)}" is given to two operations; name one as "METHOD /path"`, doc.where(second.path));
  return first;
}

/** The segments of a path template, or a message saying why the router cannot express it. */
export function templateSegments(template: string): TemplateSegment[] | string {
  if (!template.startsWith('/')) return 'a path template must start with "/"';
  if (template.includes('?') || template.includes('#')) return 'a path template cannot hold a query or fragment';
  const parts = template === '/' ? [] : template.slice(1).split('/');
  const segments: TemplateSegment[] = [];
  for (const part of parts) {
    const param = /^\{([^{}]+)\}$/.exec(part);
    if (param !== null) segments.push({ kind: 'param', name: param[1] ?? '' });
    else if (part.includes('{') || part.includes('}')) return `segment "${clip(part)}" mixes text and a parameter; routes match whole segments`;
    else if (part === '*' || part === '**') return `segment "${part}" would be a wildcard in a route pattern`;
    else segments.push({ kind: 'literal', value: part });
  }
  return segments;
}

/** The first type of a schema that is not "null", following `$ref`s; null when none is declared. */
function schemaType(doc: OpenApiDocument, path: DocPath): { readonly type: string | null; readonly path: DocPath } {
  const r = resolve(doc, path);
  if (!isObject(r.value)) return { type: null, path: r.path };
  const t = r.value.type;
  if (typeof t === 'string') return { type: t, path: r.path };
  if (Array.isArray(t)) {
    const named = t.filter((x): x is string => typeof x === 'string' && x !== 'null');
    if (named.length > 1) throw new OpenApiError(`a parameter's schema has several types (${named.join(', ')}); give it one`, doc.where([...r.path, 'type']));
    return { type: named[0] ?? null, path: r.path };
  }
  return { type: null, path: r.path };
}

function scalarKind(type: string | null): ScalarKind | null {
  return type === null ? 'string' : type === 'string' || type === 'integer' || type === 'number' || type === 'boolean' ? type : null;
}

/** A declared parameter, resolved. */
interface Declared { readonly value: Record<string, unknown>; readonly path: DocPath; readonly name: string; readonly in: ParameterLocation }

/** The path item's parameters overridden by the operation's (same name and location), OpenAPI 3.1 §4.8.10. */
function declaredParameters(doc: OpenApiDocument, op: OpenApiOperation): Declared[] {
  const byKey = new Map<string, Declared>();
  for (const owner of [op.itemPath, op.path]) {
    const list = valueAt(doc.root, [...owner, 'parameters']);
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new OpenApiError('parameters must be a list', doc.where([...owner, 'parameters']));
    list.forEach((_, i) => {
      const r = resolve(doc, [...owner, 'parameters', i]);
      const p = r.value;
      if (!isObject(p) || typeof p.name !== 'string' || p.name === '') throw new OpenApiError('a parameter needs a name', doc.where(r.path));
      const where = p.in;
      if (where !== 'path' && where !== 'query' && where !== 'header' && where !== 'cookie') throw new OpenApiError(`parameter ${clip(p.name)}: in must be path, query, header or cookie`, doc.where([...r.path, 'in']));
      const key = `${where}:${where === 'header' ? p.name.toLowerCase() : p.name}`;
      byKey.set(key, { value: p, path: r.path, name: p.name, in: where });
    });
  }
  return [...byKey.values()];
}

/** Header parameters OpenAPI says are ignored: the gateway and content negotiation own them (3.1 §4.8.12.1). */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

/** How a declared parameter is read: its shape from its schema's type, style and explode. */
function shapeOf(doc: OpenApiDocument, p: Declared): ValueShape {
  const label = `${p.in} parameter ${clip(p.name)}`;
  if (p.value.content !== undefined) throw new OpenApiError(`${label}: parameters described by content (not schema) are not supported`, doc.where([...p.path, 'content']));
  if (p.value.schema === undefined) return { kind: 'string' };
  const style = p.value.style ?? (p.in === 'query' || p.in === 'cookie' ? 'form' : 'simple');
  const allowed: Record<ParameterLocation, readonly string[]> = { path: ['simple'], query: ['form', 'spaceDelimited', 'pipeDelimited'], header: ['simple'], cookie: ['form'] };
  if (typeof style !== 'string' || !allowed[p.in].includes(style)) {
    throw new OpenApiError(`${label}: style ${typeof style === 'string' ? clip(style) : '?'} is not supported (supported for ${p.in}: ${allowed[p.in].join(', ')})`, doc.where([...p.path, 'style']));
  }
  const explode = p.value.explode ?? style === 'form';
  if (typeof explode !== 'boolean') throw new OpenApiError(`${label}: explode must be true or false`, doc.where([...p.path, 'explode']));
  const { type, path } = schemaType(doc, [...p.path, 'schema']);
  const scalar = scalarKind(type);
  if (scalar !== null) {
    if (style !== 'form' && style !== 'simple') throw new OpenApiError(`${label}: style ${style} applies to arrays only`, doc.where([...p.path, 'style']));
    return { kind: scalar };
  }
  if (type === 'array') {
    const items = valueAt(doc.root, [...path, 'items']) === undefined ? { type: null } : schemaType(doc, [...path, 'items']);
    const itemKind = scalarKind(items.type);
    if (itemKind === null) throw new OpenApiError(`${label}: arrays of ${items.type ?? 'untyped'} items are not supported (string, integer, number or boolean items)`, doc.where([...path, 'items']));
    const delimiter = style === 'spaceDelimited' ? ' ' : style === 'pipeDelimited' ? '|' : ',';
    if (style !== 'form' && explode) throw new OpenApiError(`${label}: style ${style} needs explode: false`, doc.where([...p.path, 'explode']));
    // Path and header values are one field: an exploded simple array is the same comma-separated list.
    return { kind: 'array', items: itemKind, delimiter, explode: explode && (p.in === 'query' || p.in === 'cookie') };
  }
  throw new OpenApiError(`${label}: ${type} parameters are not supported (string, integer, number, boolean or an array of them)`, doc.where([...path, 'type']));
}

/** Compiles a schema, turning Ajv's refusal into a load error at the schema's line. */
function compileAt(doc: OpenApiDocument, schemas: SchemaCompiler, path: DocPath, label: string): ReturnType<SchemaCompiler['compile']> {
  try {
    return schemas.compile(path);
  } catch (err) {
    throw new OpenApiError(`${label}: ${(err as Error).message}`, doc.where(path));
  }
}

/** Lower-case type/subtype of a content key, or null for a media range (any type, `text/` anything) or nonsense. */
function mediaTypeOf(key: string): string | null {
  const type = (key.split(';')[0] ?? '').trim().toLowerCase();
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : null;
}

function isJsonType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

/** The request body part of the contract. */
function bodyContract(doc: OpenApiDocument, schemas: SchemaCompiler, op: OpenApiOperation): Pick<OperationContract, 'mediaTypes' | 'bodyRequired' | 'body'> {
  if (valueAt(doc.root, [...op.path, 'requestBody']) === undefined) {
    // No requestBody: the operation takes no body, so a request that sends one is refused (415).
    return { mediaTypes: new Map(), bodyRequired: false, body: null };
  }
  const rb = resolve(doc, [...op.path, 'requestBody']);
  if (!isObject(rb.value)) throw new OpenApiError('requestBody must be a mapping', doc.where(rb.path));
  const required = rb.value.required ?? false;
  if (typeof required !== 'boolean') throw new OpenApiError('requestBody.required must be true or false', doc.where([...rb.path, 'required']));
  const content = rb.value.content;
  if (!isObject(content) || Object.keys(content).length === 0) throw new OpenApiError('requestBody needs content (at least one media type)', doc.where([...rb.path, 'content']));
  const mediaTypes = new Map<string, MediaTypeRule>();
  let jsonSchema: { readonly path: DocPath; readonly text: string } | null = null;
  let validator: BodyValidator | null = null;
  for (const key of Object.keys(content)) {
    const type = mediaTypeOf(key);
    if (type === null) throw new OpenApiError(`media type "${clip(key)}": give exact media types (a range such as */* or text/* is not accepted)`, doc.where([...rb.path, 'content', key]));
    const json = isJsonType(type);
    if (mediaTypes.has(type)) throw new OpenApiError(`media type ${type} is given twice`, doc.where([...rb.path, 'content', key]));
    mediaTypes.set(type, { json, charsets: null });
    const schemaPath = [...rb.path, 'content', key, 'schema'];
    if (!json || valueAt(doc.root, schemaPath) === undefined) continue;
    const target = resolve(doc, schemaPath);
    const text = JSON.stringify(target.value);
    if (jsonSchema !== null && jsonSchema.text !== text) {
      throw new OpenApiError(`JSON media types ${[...mediaTypes.keys()].filter((t) => mediaTypes.get(t)?.json === true).join(', ')} have different schemas; one operation has one JSON body schema`, doc.where(schemaPath));
    }
    if (jsonSchema !== null) continue;
    jsonSchema = { path: schemaPath, text };
    const validate = compileAt(doc, schemas, schemaPath, `schema of ${type}`);
    validator = (value: unknown) => (validate(value) ? null : failureOf(validate.errors));
  }
  return { mediaTypes, bodyRequired: required, body: validator };
}

/**
 * The request contract of one operation on the route that takes it. The route's path pattern must
 * be the operation's path template with the same literal segments and a parameter (`{name}` or `*`)
 * wherever the template has one — optionally after a fixed prefix (`/api` + `/pets/{id}`) — and the
 * route's methods must be the operation's (HEAD too for GET). Throws OpenApiError naming the line.
 */
export function operationContract(doc: OpenApiDocument, schemas: SchemaCompiler, op: OpenApiOperation, route: OperationRoute): OperationContract {
  const source = `${doc.file}#${op.operationId ?? `${op.method} ${op.template}`}`;
  const template = templateSegments(op.template);
  if (typeof template === 'string') throw new OpenApiError(`path ${clip(op.template)}: ${template}`, doc.where(op.itemPath));
  const prefix = route.pattern.segments.length - template.length;
  const mismatch = (why: string): OpenApiError => new OpenApiError(`the route's path ${route.pattern.source} does not fit the operation's path ${clip(op.template)}: ${why}`, doc.where(op.itemPath));
  if (prefix < 0) throw mismatch('the route has fewer segments');
  route.pattern.segments.forEach((s, i) => {
    if (s.kind === 'glob') throw mismatch('"**" matches paths the operation does not describe');
    const t = template[i - prefix];
    if (t === undefined) return;
    if (t.kind === 'param' && s.kind !== 'param') throw mismatch(`{${t.name}} is a literal segment in the route`);
    if (t.kind === 'literal') {
      const canonical = t.value === '' ? { ok: true as const, value: '' } : canonicalSegment(t.value, route.allowSemicolon);
      if (s.kind !== 'literal' || !canonical.ok || canonical.value !== s.value) throw mismatch(`segment ${i + 1} differs ("${clip(t.value)}")`);
    }
  });
  const methods = route.methods;
  if (methods === null || [...methods].some((m) => m !== op.method && !(m === 'HEAD' && op.method === 'GET'))) {
    throw new OpenApiError(`the route takes ${methods === null ? 'any method' : [...methods].join(', ')}; a route validated against ${op.method} ${clip(op.template)} takes ${op.method}${op.method === 'GET' ? ' (and HEAD)' : ''} only`, doc.where(op.path));
  }

  const specs: ParameterSpec[] = [];
  const pathNames = new Set<string>();
  for (const p of declaredParameters(doc, op)) {
    if (p.in === 'header' && IGNORED_HEADERS.has(p.name.toLowerCase())) continue;
    let segment = -1;
    if (p.in === 'path') {
      const index = template.findIndex((t) => t.kind === 'param' && t.name === p.name);
      if (index === -1) throw new OpenApiError(`path parameter ${clip(p.name)} is not in the path ${clip(op.template)}`, doc.where(p.path));
      segment = prefix + index;
      pathNames.add(p.name);
    }
    const required = p.value.required ?? false;
    if (typeof required !== 'boolean') throw new OpenApiError(`parameter ${clip(p.name)}: required must be true or false`, doc.where([...p.path, 'required']));
    if (p.in === 'path' && !required) throw new OpenApiError(`path parameter ${clip(p.name)} must have required: true`, doc.where(p.path));
    const shape = shapeOf(doc, p);
    const schemaPath = [...p.path, 'schema'];
    const validate = p.value.schema === undefined ? null : compileAt(doc, schemas, schemaPath, `${p.in} parameter ${clip(p.name)}`);
    specs.push({ name: p.name, in: p.in, required, shape, validate, segment });
  }
  const body = bodyContract(doc, schemas, op);
  const undeclared = template.find((t) => t.kind === 'param' && !pathNames.has(t.name));
  if (undeclared !== undefined && undeclared.kind === 'param') {
    throw new OpenApiError(`path parameter {${clip(undeclared.name)}} of ${clip(op.template)} is not declared in parameters`, doc.where(op.path));
  }
  // A list-valued header may be repeated (its fields are one list, RFC 9110 §5.3); a single value may not.
  const headers = specs.filter((s) => s.in === 'header' && s.shape.kind !== 'array').map((s) => s.name.toLowerCase());
  return { source, ...body, parameters: parameterCheck(specs), headers };
}
