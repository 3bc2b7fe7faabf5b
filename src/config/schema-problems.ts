import type { ErrorObject } from 'ajv';
import type { ConfigPath } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import { KEY_PATTERN_FORMATS, PATTERN_MESSAGE } from './schema-parts.js';
import { closest } from './suggest.js';

/** The parts of a JSON Schema node the messages read. */
interface SchemaNode {
  readonly type?: string | readonly string[];
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly anyOf?: readonly SchemaNode[];
  readonly allOf?: readonly { readonly then?: SchemaNode }[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly patternProperties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly [PATTERN_MESSAGE]?: string;
}

type Locate = (path: ConfigPath, message: string, atKey?: boolean) => ConfigProblem;

/** Every problem a failed validation found, each once, in words that say what would be right. */
export function schemaProblems(errors: readonly ErrorObject[], root: object, locate: Locate): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const e of relevant(errors)) {
    const p = problemOf(e, root, locate);
    const id = `${p.option}|${p.message}`;
    if (!seen.has(id)) { seen.add(id); out.push(p); }
  }
  return out;
}

/** Ajv's instance path (`/routes/0/match`) as a config path. */
export function instancePath(e: ErrorObject): (string | number)[] {
  if (e.instancePath === '') return [];
  return e.instancePath.slice(1).split('/').map((s) => {
    const key = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(key) ? Number(key) : key;
  });
}

/**
 * The errors worth showing. An `if` error only says "the then branch failed" (its own errors
 * follow). For `anyOf` (a name or a list of names), the branch whose type the value has explains
 * the mistake; when none has it, the one `anyOf` error says every form that is accepted.
 */
function relevant(errors: readonly ErrorObject[]): ErrorObject[] {
  const drop = new Set<ErrorObject>(errors.filter((e) => e.keyword === 'if'));
  // Each anyOf error by its schema and instance path, and the branch whose type the value has, if one.
  const anyOfs = new Map<string, { readonly error: ErrorObject; readonly fitting: number | null }>();
  for (const any of errors) {
    if (any.keyword !== 'anyOf') continue;
    const branches = (any.schema as readonly SchemaNode[] | undefined) ?? [];
    const fitting = branches.map((b, i) => (typeMatches(b, any.data) ? i : -1)).filter((i) => i >= 0);
    anyOfs.set(`${any.schemaPath}|${any.instancePath}`, { error: any, fitting: fitting.length === 1 ? fitting[0] ?? null : null });
    if (fitting.length === 1) drop.add(any);
  }
  if (anyOfs.size === 0) return errors.filter((e) => !drop.has(e));
  for (const e of errors) {
    // Every anyOf the error is under (a list branch's items may be an anyOf of their own): an
    // error from a branch other than the one the value fits, at any level, explains nothing.
    for (let at = e.schemaPath.indexOf('/anyOf/'); at >= 0; at = e.schemaPath.indexOf('/anyOf/', at + 1)) {
      const schemaPath = e.schemaPath.slice(0, at + '/anyOf'.length);
      const branch = Number(e.schemaPath.slice(at + '/anyOf/'.length).split('/')[0]);
      // The anyOf is at this error's instance path or an ancestor of it (a list branch's items are deeper).
      let instance = e.instancePath;
      for (;;) {
        const owner = anyOfs.get(`${schemaPath}|${instance}`);
        if (owner !== undefined) {
          if (owner.fitting !== branch) drop.add(e);
          break;
        }
        if (instance === '') break;
        instance = instance.slice(0, instance.lastIndexOf('/'));
      }
    }
  }
  return errors.filter((e) => !drop.has(e));
}

function typeMatches(node: SchemaNode, data: unknown): boolean {
  const types = node.type === undefined ? [] : typeof node.type === 'string' ? [node.type] : node.type;
  return types.some((t) => t === jsonType(data) || (t === 'number' && jsonType(data) === 'integer'));
}

function jsonType(data: unknown): string {
  if (data === null) return 'null';
  if (Array.isArray(data)) return 'array';
  if (typeof data === 'number') return Number.isInteger(data) ? 'integer' : 'number';
  return typeof data;
}

/** What a value is, in words, without quoting it (a value may be a secret). */
function found(data: unknown): string {
  switch (jsonType(data)) {
    case 'null': return 'nothing (null)';
    case 'array': return 'a list';
    case 'object': return 'a mapping';
    case 'string': return 'text';
    case 'boolean': return 'true or false';
    default: return 'a number';
  }
}

/** A number's unit, read from the option's name (`timeoutMs`, `maxBodyBytes`). */
function unit(option: string | number | undefined): string {
  if (typeof option !== 'string') return '';
  if (/Ms$/.test(option)) return ' (milliseconds)';
  if (/Bytes$/.test(option)) return ' (bytes)';
  return '';
}

/** What a schema node accepts, as a noun phrase ("a whole number from 0 to 65535"), or null when nothing useful can be said. */
export function expected(node: SchemaNode | undefined, option?: string | number): string | null {
  if (node === undefined) return null;
  const message = node[PATTERN_MESSAGE];
  if (typeof message === 'string') return message.replace(/^must be /, '');
  if (node.enum !== undefined) return `one of: ${node.enum.map(String).join(', ')}`;
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.anyOf !== undefined) {
    const forms = node.anyOf.map((b) => (b.type === 'array' ? `a list of ${expected(b.items) ?? 'values'}` : expected(b))).filter((f) => f !== null);
    return forms.length === 0 ? null : forms.join(', or ');
  }
  const types = node.type === undefined ? [] : typeof node.type === 'string' ? [node.type] : node.type;
  if (types.length > 1) return types.map((t) => expected({ ...node, type: t })).join(', or ');
  const range = node.minimum !== undefined && node.maximum !== undefined ? ` from ${node.minimum} to ${node.maximum}`
    : node.minimum !== undefined ? ` of at least ${node.minimum}` : node.maximum !== undefined ? ` of at most ${node.maximum}` : '';
  switch (types[0]) {
    case 'integer': return `a whole number${range}${unit(option)}`;
    case 'number': return `a number${range}${unit(option)}`;
    case 'boolean': return 'true or false';
    case 'string': return (node.minLength ?? 0) > 0 ? 'non-empty text' : 'text';
    case 'array': return node.items === undefined ? 'a list' : `a list of ${expected(node.items) ?? 'values'}`;
    case 'object': return 'a mapping (key: value)';
    default: return null;
  }
}

function problemOf(e: ErrorObject, root: SchemaNode, locate: Locate): ConfigProblem {
  const path = instancePath(e);
  const params = e.params as Record<string, unknown>;
  const parent = e.parentSchema as SchemaNode | undefined;
  const option = path[path.length - 1];
  const must = (node: SchemaNode | undefined, fallback: string): string => {
    const what = expected(node, option);
    return what === null ? fallback : `must be ${what}`;
  };
  switch (e.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      const node = parent?.properties?.[missing];
      const what = node !== undefined && node.type !== 'object' && node.type !== 'array' ? expected(node, missing) : null;
      return locate([...path, missing], what === null ? 'is required' : `is required: ${what}`);
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const [keyPattern] = Object.keys(parent?.patternProperties ?? {});
      if (keyPattern !== undefined) {
        const format = KEY_PATTERN_FORMATS.get(keyPattern);
        return locate([...path, key], `"${key}" is not a valid name: ${format === undefined ? `it must match ${keyPattern}` : `it must be ${format}`}`, true);
      }
      return locate([...path, key], unknownOption(key, Object.keys(parent?.properties ?? {}), root), true);
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const guess = typeof e.data === 'string' ? closest(e.data, allowed) : null;
      return locate(path, `must be one of: ${allowed.join(', ')}${guess === null ? '' : ` (did you mean ${guess}?)`}`);
    }
    case 'type': return locate(path, `${must(parent, `must be ${String(params.type)}`)}, not ${found(e.data)}`);
    case 'pattern': return locate(path, must(parent, 'has an invalid format'));
    case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum':
      return locate(path, must(parent, e.message ?? 'is out of range'));
    case 'minLength': return locate(path, params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long`);
    case 'maxLength': return locate(path, `must be at most ${String(params.limit)} characters long`);
    case 'minItems': return locate(path, `must list at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`);
    case 'maxItems': return locate(path, `must list at most ${String(params.limit)} items`);
    case 'uniqueItems': return locate(path, `lists the same value twice (items ${Math.min(Number(params.i), Number(params.j))} and ${Math.max(Number(params.i), Number(params.j))}); list each once`);
    case 'minProperties': return locate(path, `must have at least ${String(params.limit)} entr${params.limit === 1 ? 'y' : 'ies'}`);
    case 'maxProperties': return locate(path, `must have at most ${String(params.limit)} entries`);
    case 'anyOf': return locate(path, must({ anyOf: e.schema as SchemaNode[] }, 'is not in any accepted form'));
    case 'const': return locate(path, `must be ${JSON.stringify(params.allowedValue)}`);
    default: return locate(path, e.message ?? 'is invalid');
  }
}

/** Where else in the schema an option of this name exists (`upstreams.<name>.timeoutMs`), for a key put in the wrong place. */
function optionIndex(root: SchemaNode): Map<string, string[]> {
  const index = new Map<string, string[]>();
  const walk = (node: SchemaNode, prefix: string, depth: number): void => {
    if (depth > 12) return;
    const variants = [node, ...(node.allOf ?? []).flatMap((v) => (v.then === undefined ? [] : [v.then]))];
    for (const variant of variants) {
      for (const [key, child] of Object.entries(variant.properties ?? {})) {
        if (key === '$schema') continue;
        const path = prefix === '' ? key : `${prefix}.${key}`;
        const list = index.get(key) ?? [];
        if (!list.includes(path)) list.push(path);
        index.set(key, list);
        descend(child, path, depth + 1);
      }
    }
  };
  const descend = (child: SchemaNode, path: string, depth: number): void => {
    if (child.properties !== undefined || child.allOf !== undefined) walk(child, path, depth);
    else if (child.patternProperties !== undefined) {
      const [inner] = Object.values(child.patternProperties);
      if (inner !== undefined) descend(inner, `${path}.<name>`, depth);
    } else if (child.items !== undefined) descend(child.items, `${path}[]`, depth);
  };
  walk(root, '', 0);
  return index;
}

let indexCache: { root: SchemaNode; index: Map<string, string[]> } | null = null;

function unknownOption(key: string, known: readonly string[], root: SchemaNode): string {
  const guess = closest(key, known);
  if (guess !== null) return `is not a known option; did you mean \`${guess}\`?`;
  if (indexCache?.root !== root) indexCache = { root, index: optionIndex(root) };
  const [spelled, elsewhere] = [...indexCache.index].find(([name]) => name === key) ?? [...indexCache.index].find(([name]) => closest(key, [name]) === name) ?? [key, []];
  const places = elsewhere.map((p) => p.slice(0, -(spelled.length + 1)) || '(top level)').sort((a, b) => a.length - b.length);
  const there = places.length === 0 ? '' : `; \`${spelled}\` is an option of ${places.slice(0, 4).map((p) => `\`${p}\``).join(', ')}${places.length > 4 ? ', …' : ''}`;
  const here = known.length === 0 ? 'nothing is allowed here' : known.length <= 16 ? `options here: ${known.join(', ')}` : 'see docs/configuration.md for the options here';
  return `is not a known option (${here})${there}`;
}
