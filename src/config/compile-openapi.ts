import type { ConfigProblem } from './errors.js';
import type { LoadedConfig } from './load.js';
import {
  findOperation, MAX_OPENAPI_DOCUMENT_BYTES, OpenApiError, operationContract, parseOpenApiDocument, SchemaCompiler,
  type OpenApiDocument, type OperationContract, type OperationRoute,
} from '../validation/openapi.js';

/** `validate.openapi`: the operation of an OpenAPI 3.1 document a route's requests must conform to. */
export interface RawOpenApiOperation {
  readonly document: string;
  readonly operation: string;
}

/** A document read for one compilation, or why it cannot be used. */
type Read = { readonly doc: OpenApiDocument; readonly schemas: SchemaCompiler } | { readonly error: string };

/**
 * Documents already read while compiling one config, by file: several routes validated against
 * operations of one document read, parse and compile it once.
 */
const readByConfig = new WeakMap<LoadedConfig, Map<string, Read>>();

function readDocument(file: string, loaded: LoadedConfig): Read {
  let cache = readByConfig.get(loaded);
  if (cache === undefined) readByConfig.set(loaded, cache = new Map<string, Read>());
  let read = cache.get(file);
  if (read === undefined) {
    const text = loaded.files.readText(file, MAX_OPENAPI_DOCUMENT_BYTES);
    if (!text.ok) read = { error: `${text.message}: give an OpenAPI 3.1 document (YAML or JSON, at most ${MAX_OPENAPI_DOCUMENT_BYTES / 1024 / 1024} MiB), relative to this config` };
    else {
      try {
        const doc = parseOpenApiDocument(text.text, file);
        read = { doc, schemas: new SchemaCompiler(doc) };
      } catch (err) {
        if (!(err instanceof OpenApiError)) throw err;
        read = { error: `${err.at}: ${err.message}` };
      }
    }
    cache.set(file, read);
  }
  return read;
}

/**
 * Compiles `validate.openapi` into the contract parts its operation gives (media types, body,
 * parameters), checked against the route it is on; null with a problem pushed when it cannot be
 * used. A problem in the document names the document's file:line; one in the fit of the operation
 * to the route is located at `validate.openapi.operation`.
 */
export function compileOpenApiOperation(
  raw: RawOpenApiOperation, at: (...path: (string | number)[]) => (string | number)[], route: OperationRoute, loaded: LoadedConfig, problems: ConfigProblem[],
): OperationContract | null {
  const read = readDocument(raw.document, loaded);
  if ('error' in read) {
    problems.push(loaded.problem(at('document'), read.error));
    return null;
  }
  try {
    return operationContract(read.doc, read.schemas, findOperation(read.doc, raw.operation), route);
  } catch (err) {
    if (!(err instanceof OpenApiError)) throw err;
    problems.push(loaded.problem(at('operation'), `${err.at}: ${err.message}`));
    return null;
  }
}
