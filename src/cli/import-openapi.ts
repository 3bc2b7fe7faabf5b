// `portcullis import openapi`: a gateway config with one validated route per operation of an
// OpenAPI 3.1 document, every route refused until it is given a policy.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { ConfigFiles } from '../config/config-files.js';
import { NAME_PATTERN } from '../config/schema-parts.js';
import { importOpenApi } from '../validation/openapi-import.js';
import { MAX_OPENAPI_DOCUMENT_BYTES, OpenApiError, parseOpenApiDocument } from '../validation/openapi.js';
import { UsageError, shown, type Invocation } from './command.js';

export const IMPORT_DEFAULTS = Object.freeze({ upstream: 'api', upstreamUrl: 'http://127.0.0.1:8081', authenticator: 'callers' });

const NAME = new RegExp(NAME_PATTERN);

function nameOption(values: Invocation['values'], option: string, fallback: string): string {
  const value = (values[option] as string | undefined) ?? fallback;
  if (!NAME.test(value)) throw new UsageError(`--${option} "${shown(value)}": a name of letters, digits, "_", "." and "-" that starts with a letter or digit, up to 64 characters`);
  return value;
}

function urlOption(values: Invocation['values']): string {
  const text = (values['upstream-url'] as string | undefined) ?? IMPORT_DEFAULTS.upstreamUrl;
  let url: URL | null = null;
  try { url = new URL(text); } catch { url = null; }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new UsageError(`--upstream-url "${shown(text)}": an http:// or https:// URL without credentials, query or fragment, like http://127.0.0.1:8081`);
  }
  return text;
}

function prefixOption(values: Invocation['values']): string | null {
  const text = values.prefix as string | undefined;
  if (text === undefined) return null;
  if (!/^(\/[A-Za-z0-9._~!$&'()+,=:@-]+)+$/.test(text) || text.split('/').some((s) => s === '.' || s === '..')) {
    throw new UsageError(`--prefix "${shown(text)}": a path of whole literal segments like /api or /api/v1 (no trailing "/", wildcards or dot segments)`);
  }
  return text;
}

/** The document as the config at `out` (or one in the working directory) refers to it: relative, with `/`. */
function documentRef(spec: string, out: string | null): string {
  const from = out === null ? process.cwd() : dirname(resolve(out));
  const rel = relative(from, resolve(spec));
  return (isAbsolute(rel) ? rel : rel.split(sep).join('/')) || spec;
}

/** Exit codes: 0 written, 1 the document cannot be read or used, or --out exists without --force; 2 bad arguments. */
export function importOpenApiCommand({ values, positionals }: Invocation): Promise<number> {
  const spec = positionals[0] ?? '';
  const out = (values.out as string | undefined) ?? null;
  const options = {
    upstream: nameOption(values, 'upstream', IMPORT_DEFAULTS.upstream),
    upstreamUrl: urlOption(values),
    authenticator: nameOption(values, 'authenticator', IMPORT_DEFAULTS.authenticator),
    prefix: prefixOption(values),
    documentRef: documentRef(spec, out),
  };
  if (out !== null && existsSync(out) && values.force !== true) {
    process.stderr.write(`portcullis import openapi: ${out} exists; give --force to replace it\n`);
    return Promise.resolve(1);
  }
  const read = new ConfigFiles(process.cwd(), MAX_OPENAPI_DOCUMENT_BYTES).readText(spec);
  if (!read.ok) {
    process.stderr.write(`portcullis import openapi: ${read.message}\n`);
    return Promise.resolve(1);
  }
  let result;
  try {
    result = importOpenApi(parseOpenApiDocument(read.text, spec), options);
  } catch (err) {
    if (!(err instanceof OpenApiError)) throw err;
    process.stderr.write(`${err.at}: ${err.message}\n`);
    return Promise.resolve(1);
  }
  for (const s of result.skipped) process.stderr.write(`${s.at}: skipped ${s.operation}: ${s.reason}\n`);
  if (result.routes === 0) {
    process.stderr.write(`portcullis import openapi: no operation of ${spec} can be a route\n`);
    return Promise.resolve(1);
  }
  if (out === null) process.stdout.write(result.yaml);
  else writeFileSync(out, result.yaml, { mode: 0o644 });
  process.stderr.write(`${result.routes} route${result.routes === 1 ? '' : 's'}${out === null ? '' : ` written to ${out}`}, each refused until given a policy${result.skipped.length > 0 ? `; ${result.skipped.length} operation${result.skipped.length === 1 ? '' : 's'} skipped` : ''}\n`);
  return Promise.resolve(0);
}
