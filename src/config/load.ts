import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import { dirname } from 'node:path';
import { GatewayConfigSchema, type RawConfig } from './schema.js';
import { ConfigFiles } from './config-files.js';
import type { ConfigPath, ConfigSource } from './config-source.js';

export type { ConfigPath };
import { ConfigError, optionPath, type ConfigProblem } from './errors.js';


/** A validated raw config and a way to point at any option in its source. */
export interface LoadedConfig extends ConfigSource {
  readonly raw: RawConfig;
  /**
   * SHA-256 of the validated config text after interpolation. The version a compiled config reports
   * (configVersion) also covers every file read through `files`.
   */
  readonly version: string;
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile<RawConfig>(GatewayConfigSchema);

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * Reads gateway.yaml: YAML (duplicate keys are errors), `${VAR}` / `${VAR:-default}` interpolation
 * (`$${` for a literal `${`), then schema validation. Throws ConfigError listing every problem with
 * file, line, column and option path.
 */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, column: 0, option: '', message: `cannot read config: ${(err as Error).message}` }]);
  }
  return loadConfigText(text, file, env);
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const at = (offset: number): { line: number; column: number } => {
    const pos = lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const problems: ConfigProblem[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    problems.push({ file, ...at(e.pos[0]), option: '', message: e.message.split('\n')[0] ?? e.message });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const locate = (path: ConfigPath): { node: YamlNode | null; key: YamlNode | null } => {
    let current: unknown = doc.contents;
    let key: YamlNode | null = null;
    for (const part of path) {
      if (isMap(current)) {
        const pair = current.items.find((p) => isScalar(p.key) && String(p.key.value) === String(part));
        if (pair === undefined) break;
        key = pair.key as YamlNode;
        current = pair.value;
      } else if (isSeq(current) && typeof part === 'number' && current.items[part] !== undefined) {
        key = null;
        current = current.items[part];
      } else break;
    }
    return { node: (current ?? null) as YamlNode | null, key };
  };
  const problem = (path: ConfigPath, message: string, atKey = false): ConfigProblem => {
    const { node, key } = locate(path);
    const range = (atKey ? key?.range : null) ?? node?.range ?? key?.range;
    const pos = range === undefined || range === null ? { line: 1, column: 1 } : at(range[0]);
    return { file, ...pos, option: optionPath(path), message };
  };

  interpolate(doc, env, problem, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ file, line: 1, column: 1, option: '', message: 'the config must be a mapping (key: value) at the top level' }]);
  }
  if (!validate(raw)) {
    const seen = new Set<string>();
    // An `if` error only says "the then branch failed"; that branch's own errors are the useful ones.
    for (const e of (validate.errors ?? []).filter((err) => err.keyword !== 'if')) {
      const p = schemaProblem(e, problem);
      const id = `${p.option}|${p.message}`;
      if (!seen.has(id)) { seen.add(id); problems.push(p); }
    }
    throw new ConfigError(problems);
  }
  const version = createHash('sha256').update(JSON.stringify(raw)).digest('hex').slice(0, 16);
  return { file, raw, version, problem, files: new ConfigFiles(dirname(file)) };
}

/**
 * The version of a compiled config, reported by /readyz, reload answers, audit records and the
 * config-info metric: the config text and the path and content hash of every file compilation
 * read. Call it after compilation, when every referenced file has been read.
 */
export function configVersion(loaded: LoadedConfig): string {
  const files = loaded.files.list();
  if (files.length === 0) return loaded.version;
  const hash = createHash('sha256').update(loaded.version);
  for (const f of files) hash.update(`\0${f.path}\0${f.digest}`);
  return hash.digest('hex').slice(0, 16);
}

function schemaProblem(e: ErrorObject, problem: LoadedConfig['problem']): ConfigProblem {
  const path: (string | number)[] = e.instancePath === '' ? [] : e.instancePath.slice(1).split('/').map((s) => {
    const key = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(key) ? Number(key) : key;
  });
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required') return problem([...path, String(params.missingProperty)], 'is required');
  if (e.keyword === 'additionalProperties') return problem([...path, String(params.additionalProperty)], 'is not a known option', true);
  if (e.keyword === 'enum') return problem(path, `must be one of: ${(params.allowedValues as unknown[]).join(', ')}`);
  if (e.keyword === 'pattern') return problem(path, 'has an invalid format');
  return problem(path, e.message ?? 'is invalid');
}

const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Substitutes `${VAR}` in string scalars in place; a bare `${VAR}` plain scalar keeps number/boolean typing. */
function interpolate(doc: Document, env: NodeJS.ProcessEnv, problem: LoadedConfig['problem'], problems: ConfigProblem[]): void {
  visit(doc, {
    Scalar(_key, node, ancestry) {
      if (typeof node.value !== 'string' || !node.value.includes('$')) return;
      const original = node.value;
      const missing: string[] = [];
      const value = original.replace(ENV_REF, (match, name: string | undefined, fallback: string | undefined) => {
        if (name === undefined) return '${';
        const v = env[name];
        if (v !== undefined && (v !== '' || fallback === undefined)) return v;
        if (fallback !== undefined) return fallback;
        missing.push(name);
        return match;
      });
      const [name] = missing;
      if (name !== undefined) {
        problems.push(problem(pathOf(ancestry, node), `environment variable ${name} is not set (use \${${name}:-default} for a default)`));
        return;
      }
      const whole = /^\$\{[^}]+\}$/.test(original) && node.type === 'PLAIN';
      if (whole && /^-?\d+$/.test(value)) node.value = Number(value);
      else if (whole && (value === 'true' || value === 'false')) node.value = value === 'true';
      else node.value = value;
    },
  });
}

function pathOf(ancestry: readonly unknown[], target: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  const chain = [...ancestry, target];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) path.push(parent.items.indexOf(child));
    else if (isMap(parent)) {
      const pair = child as { key?: unknown };
      if (isScalar(pair.key)) path.push(String(pair.key.value));
    }
  }
  return path;
}
