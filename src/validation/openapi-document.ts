import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';

/** A location in an OpenAPI document: the keys and indexes from its root. */
export type DocPath = readonly (string | number)[];

/** Largest OpenAPI document read (YAML or JSON): a bigger one is a mistake, not an API description. */
export const MAX_OPENAPI_DOCUMENT_BYTES = 4 * 1024 * 1024;

/** Most YAML aliases expanded while reading a document (a "billion laughs" document stops here). */
const MAX_ALIASES = 100;
/** Deepest nesting walked in a document. */
const MAX_DEPTH = 256;

/** A problem with an OpenAPI document or one of its operations; `at` is `file:line` (line 1 when unknown). */
export class OpenApiError extends Error {
  override readonly name = 'OpenApiError';
  constructor(message: string, readonly at: string) {
    super(message);
  }
}

/**
 * An OpenAPI 3.1 document read once: its plain JSON value and where each of its values is, so a
 * problem found later names the line. Only local references (`#/…`) are allowed, and each one
 * resolves: checked when the document is read.
 */
export interface OpenApiDocument {
  /** The file as given (relative to the config), for messages. */
  readonly file: string;
  readonly root: Readonly<Record<string, unknown>>;
  /** `file:line` of the value at `path` (the nearest enclosing value that exists). */
  where(path: DocPath): string;
}

/** RFC 6901: `~` and `/` escaped in one reference token. */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A document path as a JSON pointer fragment: `#/paths/~1pets/get`. */
export function pointerOf(path: DocPath): string {
  return `#${path.map((p) => `/${escapePointerToken(String(p))}`).join('')}`;
}

/** The path a local reference (`#/components/schemas/Pet`) names, or null if it is not a local JSON pointer. */
export function refPath(ref: string): string[] | null {
  if (ref === '#') return [];
  if (!ref.startsWith('#/')) return null;
  let decoded: string;
  try { decoded = decodeURIComponent(ref.slice(2)); } catch { return null; }
  return decoded.split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The value at `path`, or undefined. Own properties only. */
export function valueAt(root: unknown, path: DocPath): unknown {
  let current: unknown = root;
  for (const part of path) {
    if (Array.isArray(current) && typeof part === 'number') current = current[part];
    else if (Array.isArray(current) && typeof part === 'string' && /^(0|[1-9][0-9]*)$/.test(part)) current = current[Number(part)];
    else if (isObject(current) && Object.hasOwn(current, String(part))) current = current[String(part)];
    else return undefined;
  }
  return current;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses an OpenAPI document (YAML 1.2, of which JSON is a subset). Refuses: a YAML error or a
 * duplicate key (two readers could take different values), anything but `openapi: 3.1.x`, a
 * `jsonSchemaDialect` other than JSON Schema 2020-12, `$id` (every reference is resolved in this
 * one document), and any `$ref` that is not a local JSON pointer to something that exists. Throws
 * OpenApiError with `file:line`.
 */
export function parseOpenApiDocument(text: string, file: string): OpenApiDocument {
  const lines = new LineCounter();
  const yaml = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const lineOf = (offset: number): number => lines.linePos(offset).line;
  const firstError = yaml.errors[0];
  if (firstError !== undefined) throw new OpenApiError(firstError.message.split('\n')[0] ?? firstError.message, `${file}:${lineOf(firstError.pos[0])}`);
  let root: unknown;
  try {
    root = yaml.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    throw new OpenApiError((err as Error).message, `${file}:1`);
  }
  const where = (path: DocPath): string => {
    let current: unknown = yaml.contents;
    let node: YamlNode | null = isNode(current) ? current : null;
    for (const part of path) {
      if (isMap(current)) {
        const pair = current.items.find((p) => isScalar(p.key) && String(p.key.value) === String(part));
        if (pair === undefined) break;
        current = pair.value;
        // A block collection starts on the line after its key: the key's line is the one to name.
        const next = isNode(pair.key) && (isMap(pair.value) || isSeq(pair.value) || !isNode(pair.value)) ? pair.key : isNode(pair.value) ? pair.value : null;
        if (next !== null) node = next;
      } else if (isSeq(current) && current.items[Number(part)] !== undefined) {
        current = current.items[Number(part)];
        if (isNode(current)) node = current;
      } else break;
    }
    const offset = node?.range?.[0];
    return `${file}:${offset === undefined ? 1 : lineOf(offset)}`;
  };
  if (!isObject(root)) throw new OpenApiError('an OpenAPI document must be a mapping at the top level', `${file}:1`);
  const version = root.openapi;
  if (typeof version !== 'string' || !/^3\.1\.[0-9]+$/.test(version)) {
    throw new OpenApiError(`openapi is ${typeof version === 'string' ? `"${clip(version)}"` : 'missing'}; only OpenAPI 3.1.x documents are supported (openapi: 3.1.0)`, where(['openapi']));
  }
  const dialect = root.jsonSchemaDialect;
  if (dialect !== undefined && dialect !== 'https://json-schema.org/draft/2020-12/schema') {
    throw new OpenApiError('jsonSchemaDialect must be https://json-schema.org/draft/2020-12/schema (or absent)', where(['jsonSchemaDialect']));
  }
  checkReferences(root, where);
  return { file, root, where };
}

function isNode(value: unknown): value is YamlNode {
  return typeof value === 'object' && value !== null && 'range' in value;
}

/** Every `$ref` local and resolvable, no `$id`, nesting bounded: one iterative walk of the document. */
function checkReferences(root: Record<string, unknown>, where: (path: DocPath) => string): void {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: root, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, path } = item;
    if (path.length > MAX_DEPTH) throw new OpenApiError(`the document nests deeper than ${MAX_DEPTH} levels`, where(path));
    if (Array.isArray(value)) {
      value.forEach((v, i) => stack.push({ value: v, path: [...path, i] }));
      continue;
    }
    if (!isObject(value)) continue;
    // A `$ref` key inside `properties` (or examples, which are data) names a property, not a reference.
    const parent = path[path.length - 1];
    const namesOnly = parent === 'properties' || parent === 'patternProperties' || parent === 'examples' || parent === 'example' || parent === 'default' || parent === 'const' || parent === 'enum';
    if (!namesOnly) {
      if (Object.hasOwn(value, '$id')) throw new OpenApiError('$id is not supported: the document is self-contained; refer to components with "#/components/…"', where([...path, '$id']));
      if (Object.hasOwn(value, '$ref')) {
        const ref = value.$ref;
        if (typeof ref !== 'string') throw new OpenApiError('$ref must be a string', where([...path, '$ref']));
        const target = refPath(ref);
        if (target === null) {
          throw new OpenApiError(`$ref "${clip(ref)}" is not a local reference: only references into this document ("#/components/…") are allowed; a file or URL reference would make validation depend on what is fetched`, where([...path, '$ref']));
        }
        if (valueAt(root, target) === undefined) throw new OpenApiError(`$ref "${clip(ref)}" names nothing in this document`, where([...path, '$ref']));
      }
    }
    if (parent === 'example' || parent === 'examples' || parent === 'default' || parent === 'const' || parent === 'enum') continue;
    for (const [k, v] of Object.entries(value)) {
      if (k === 'example' || k === 'default' || k === 'const' || k === 'enum') continue;
      stack.push({ value: v, path: [...path, k] });
    }
  }
}

/** Text from a document quoted in a message: bounded, control characters escaped. */
export function clip(text: string): string {
  const cut = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
