import type { ValidateFunction } from 'ajv/dist/2020.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { ParameterCheck } from './contract.js';
import { exactDouble } from './json-body.js';
import { escapePointerToken } from './openapi-document.js';
import { failureOf } from './openapi-schemas.js';

export type ParameterLocation = 'path' | 'query' | 'header' | 'cookie';

/** The JSON type a parameter's text is read as before its schema checks it. */
export type ScalarKind = 'string' | 'integer' | 'number' | 'boolean';

/** How a parameter's text becomes a value: a scalar, or an array of scalars split on a delimiter (or repeated, exploded). */
export type ValueShape =
  | { readonly kind: ScalarKind }
  | { readonly kind: 'array'; readonly items: ScalarKind; readonly delimiter: string; readonly explode: boolean };

/** One declared parameter, compiled: where it is, how it is read and the schema it must match. */
export interface ParameterSpec {
  readonly name: string;
  readonly in: ParameterLocation;
  readonly required: boolean;
  readonly shape: ValueShape;
  /** The parameter's schema; null: none declared (any text). */
  readonly validate: ValidateFunction | null;
  /** For a path parameter: the index of its segment in the request path. */
  readonly segment: number;
}

/** Most values an exploded array parameter may repeat (more is refused, not truncated). */
export const MAX_PARAMETER_VALUES = 256;

// A JSON number's syntax, with no sign other than `-`, no spaces, no hex, no Infinity or NaN.
const INTEGER_TEXT = /^-?(?:0|[1-9][0-9]*)$/;
const NUMBER_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A parameter's location as a JSON pointer into the request (`/query/limit`), for the problem's `pointer`. */
export function parameterPointer(spec: Pick<ParameterSpec, 'in' | 'name'>): string {
  return `/${spec.in}/${escapePointerToken(spec.name)}`;
}

/** A query parameter's name as lenient servers read it (lower case; `a[]`, `a.b`, `a b` folded), to find spellings that could reach the same parameter. */
function lenientName(name: string): string {
  const nul = name.indexOf('\0');
  let n = nul === -1 ? name : name.slice(0, nul);
  const bracket = n.indexOf('[');
  if (bracket > 0 && n.indexOf(']', bracket) !== -1) n = n.slice(0, bracket);
  return n.trim().toLowerCase().replace(/[. []/g, '_');
}

/** Percent-decoding, exactly once; `+` is a space (as the upstream's form decoder reads it). Null: not valid UTF-8 or a bad escape. */
function decodeQueryText(raw: string): string | null {
  try { return decodeURIComponent(raw.replace(/\+/g, ' ')); } catch { return null; }
}

type Read = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: string };

function scalar(text: string, kind: ScalarKind): Read {
  switch (kind) {
    case 'string': return { ok: true, value: text };
    case 'boolean':
      return text === 'true' ? { ok: true, value: true } : text === 'false' ? { ok: true, value: false } : { ok: false, reason: 'not true or false' };
    case 'integer': {
      if (!INTEGER_TEXT.test(text)) return { ok: false, reason: 'not an integer' };
      const n = Number(text);
      return Number.isSafeInteger(n) ? { ok: true, value: n } : { ok: false, reason: 'integer outside ±(2^53 − 1)' };
    }
    case 'number': {
      if (!NUMBER_TEXT.test(text)) return { ok: false, reason: 'not a number' };
      // A value the double rounds (`100.0000000000000001`, `1e-400`) is checked as one number and read upstream as another.
      return exactDouble(text) ? { ok: true, value: Number(text) } : { ok: false, reason: 'a number with more precision or magnitude than a double holds' };
    }
  }
}

/** The value of a parameter from its occurrences' texts (already decoded). */
function read(texts: readonly string[], shape: ValueShape): Read {
  if (shape.kind !== 'array') {
    if (texts.length > 1) return { ok: false, reason: `given ${texts.length} times; it takes one value` };
    return scalar(texts[0] ?? '', shape.kind);
  }
  let items: readonly string[];
  if (shape.explode) items = texts;
  else {
    if (texts.length > 1) return { ok: false, reason: `given ${texts.length} times; it takes one ${JSON.stringify(shape.delimiter)}-separated list` };
    const text = texts[0] ?? '';
    items = text === '' ? [] : text.split(shape.delimiter);
  }
  if (items.length > MAX_PARAMETER_VALUES) return { ok: false, reason: `more than ${MAX_PARAMETER_VALUES} values` };
  const values: unknown[] = [];
  for (const item of items) {
    const r = scalar(item, shape.items);
    if (!r.ok) return { ok: false, reason: `an item: ${r.reason}` };
    values.push(r.value);
  }
  return { ok: true, value: values };
}

function refuse(spec: ParameterSpec, reason: string): Denial {
  return { ...deny('invalid_parameter', `${spec.in} parameter ${spec.name}: ${reason}`), pointer: parameterPointer(spec) };
}

/** Checks the occurrences found for one parameter: presence, control characters, reading, schema. */
function checkOne(spec: ParameterSpec, texts: readonly string[] | undefined): Denial | undefined {
  if (texts === undefined || texts.length === 0) return spec.required ? refuse(spec, 'missing') : undefined;
  // A NUL or control character ends or splits a value for some upstream parsers (C strings, log
  // lines): never a value two readers agree on.
  if (texts.some((t) => CONTROL.test(t))) return refuse(spec, 'control character in the value');
  const r = read(texts, spec.shape);
  if (!r.ok) return refuse(spec, r.reason);
  if (spec.validate === null || spec.validate(r.value)) return undefined;
  return refuse(spec, failureOf(spec.validate.errors).reason);
}

/**
 * The query's values for the declared names: `&`-separated, names and values percent-decoded once.
 * A part that lenient servers could read as a declared parameter but that is not spelt exactly like
 * it (`LIMIT=`, `limit[]=`, `limit.=`), or that holds a `;` (a separator to some servers), is
 * ambiguous: the gateway and the upstream could validate and use different values.
 */
function queryValues(query: string, declared: ReadonlyMap<string, ParameterSpec>, lenient: ReadonlyMap<string, ParameterSpec>): Map<string, string[]> | Denial {
  const found = new Map<string, string[]>();
  if (query.length < 2) return found;
  for (const part of query.slice(1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    const name = decodeQueryText(rawName);
    const exact = name === null ? undefined : declared.get(name);
    const subparts = part.split(';');
    const near = subparts.map((p) => {
      const e = p.indexOf('=');
      const n = decodeQueryText(e === -1 ? p : p.slice(0, e));
      return n === null ? undefined : lenient.get(lenientName(n));
    }).find((s) => s !== undefined);
    if (exact === undefined) {
      if (near !== undefined) return refuse(near, 'a query parameter spelt so that some servers read it as this one (case, brackets, dots, ";" or encoding)');
      continue;
    }
    if (subparts.length > 1) return refuse(exact, '";" in the parameter (a separator to some servers); encode it as %3B');
    const value = decodeQueryText(eq === -1 ? '' : part.slice(eq + 1));
    if (value === null) return refuse(exact, 'invalid percent-encoding or UTF-8');
    let list = found.get(exact.name);
    if (list === undefined) found.set(exact.name, list = []);
    if (list.length >= MAX_PARAMETER_VALUES) return refuse(exact, `more than ${MAX_PARAMETER_VALUES} values`);
    list.push(value);
  }
  return found;
}

/** Cookie values by name from every Cookie header (RFC 6265 §5.4 pairs; values as sent, quotes kept). */
function cookieValues(headers: readonly string[] | undefined, wanted: ReadonlySet<string>): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const header of headers ?? []) {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1) continue;
      const name = pair.slice(0, eq).trim();
      if (!wanted.has(name)) continue;
      let list = found.get(name);
      if (list === undefined) found.set(name, list = []);
      list.push(pair.slice(eq + 1).trim());
    }
  }
  return found;
}

/**
 * Every value of the header field `name` (lower case) as received, one per field line: from the raw
 * headers, which HTTP/1.x and HTTP/2 requests (and explain's synthetic ones) all carry.
 */
function fieldValues(raw: readonly string[], name: string): string[] | undefined {
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] ?? '').toLowerCase() === name) (values ??= []).push(raw[i + 1] ?? '');
  }
  return values;
}

/**
 * The check of an operation's parameters, compiled: path parameters from the route's segments
 * (percent-decoded once), query parameters (form style), headers and cookies. Unknown query
 * parameters, headers and cookies are allowed. The first failure ends the request with 400
 * invalid_parameter and the parameter's pointer; the reason never holds a value.
 */
export function parameterCheck(specs: readonly ParameterSpec[]): ParameterCheck | null {
  if (specs.length === 0) return null;
  const query = new Map(specs.filter((s) => s.in === 'query').map((s) => [s.name, s]));
  const lenient = new Map([...query.values()].map((s) => [lenientName(s.name), s]));
  const cookies = new Set(specs.filter((s) => s.in === 'cookie').map((s) => s.name));
  return (ex: Exchange): Denial | undefined => {
    const target = ex.target;
    if (target === null) return deny('invalid_parameter', 'no parsed target to check parameters on');
    const fromQuery = query.size === 0 ? new Map<string, string[]>() : queryValues(target.query, query, lenient);
    if (!(fromQuery instanceof Map)) return fromQuery;
    const fromCookies = cookies.size === 0 ? new Map<string, string[]>() : cookieValues(fieldValues(ex.req.rawHeaders, 'cookie'), cookies);
    for (const spec of specs) {
      let texts: readonly string[] | undefined;
      switch (spec.in) {
        case 'path': {
          const raw = target.segments[spec.segment];
          if (raw === undefined) { texts = undefined; break; }
          // Segments are canonical and percent-encoded; decoded exactly once here. `+` is itself in a path.
          let decoded: string;
          try { decoded = decodeURIComponent(raw); } catch { return refuse(spec, 'invalid percent-encoding or UTF-8'); }
          texts = [decoded];
          break;
        }
        case 'query': texts = fromQuery.get(spec.name); break;
        case 'header': {
          const values = fieldValues(ex.req.rawHeaders, spec.name.toLowerCase());
          // Simple style: a list is one comma-separated value; repeated fields are that list folded (RFC 9110 §5.3).
          texts = values === undefined ? undefined : spec.shape.kind === 'array' ? [values.flatMap((v) => v.split(',').map((item) => item.trim())).join(',')] : values;
          break;
        }
        case 'cookie': texts = fromCookies.get(spec.name); break;
      }
      const denial = checkOne(spec, texts);
      if (denial !== undefined) return denial;
    }
    return undefined;
  };
}
