import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { dirname, resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { GatewayConfigSchema, type RawConfig } from './schema.js';
import { ConfigFiles } from './config-files.js';
import type { ConfigPath, ConfigSource } from './config-source.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { yamlLocator } from './yaml-locate.js';
import { convertReferences, flowReferences, interpolate, pathKey } from './env-references.js';
import { PATTERN_MESSAGE } from './schema-parts.js';
import { instancePath, schemaProblems } from './schema-problems.js';
import { AJV_CODE } from '../lib/ajv-code.js';

export type { ConfigPath };

/** A validated raw config and a way to point at any option in its source. */
export interface LoadedConfig extends ConfigSource {
  readonly raw: RawConfig;
  /**
   * SHA-256 of the validated config text after interpolation. The version a compiled config reports
   * (configVersion) also covers every file read through `files`.
   */
  readonly version: string;
}

/** Some top-level sections of a config, validated and interpolated; the rest as written, unchecked. */
export interface LoadedSections extends ConfigSource {
  /** The chosen sections (absent ones stay absent), validated against their part of the schema. */
  readonly raw: Partial<RawConfig>;
  /**
   * The other top-level sections as the file spells them: not interpolated and not validated, only
   * for deciding whether a chosen section is needed (is there an `apiKey` authenticator?).
   */
  readonly unchecked: Readonly<Record<string, unknown>>;
}

// verbose: errors carry the schema node and the value, which the messages describe (never quote).
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true, code: AJV_CODE });
ajv.addKeyword({ keyword: PATTERN_MESSAGE, schemaType: 'string' });
const validate = ajv.compile<RawConfig>(GatewayConfigSchema);
const sectionValidators = new Map<string, ValidateFunction>();

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** The directory of the audit trail and embedded stores: `dataDir` relative to the config file, default ./data. */
export function dataDirOf(file: string, dataDir: string | undefined): string {
  return resolve(dirname(file), dataDir ?? 'data');
}

/**
 * Reads gateway.yaml: YAML (duplicate keys are errors), `${VAR}` / `${VAR:-default}` interpolation
 * (`$${` for a literal `${`), then schema validation. Throws ConfigError listing every problem with
 * file, line, column and option path.
 */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  return loadConfigText(await readConfig(file), file, env);
}

/**
 * Reads only `sections` of gateway.yaml: the other sections are neither interpolated nor validated,
 * so a command that needs the key store does not need the upstreams' variables set. The file must
 * still be YAML. Throws ConfigError for problems in the chosen sections.
 */
export async function loadConfigSections(file: string, sections: readonly (keyof RawConfig)[], env: NodeJS.ProcessEnv = process.env): Promise<LoadedSections> {
  return loadSectionsText(await readConfig(file), file, sections, env);
}

/**
 * The config's text, read up to MAX_CONFIG_BYTES and no further: a device that never ends
 * (`-c /dev/zero`) is refused once it passes the limit instead of filling memory, and a pipe
 * (`-c <(envsubst < gateway.tmpl)`) is read like a file.
 */
async function readConfig(file: string): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      let size = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, size, buf.length - size, null);
        if (bytesRead === 0) break;
        size += bytesRead;
        if (size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
      }
      return buf.subarray(0, size).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new ConfigError([{ file, line: 0, column: 0, option: '', message: `cannot read config: ${(err as Error).message}` }]);
  }
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { raw, problem } = parseValidated(text, file, env, null, validate);
  const version = createHash('sha256').update(JSON.stringify(raw)).digest('hex').slice(0, 16);
  return { file, raw: raw as RawConfig, version, problem, files: new ConfigFiles(dirname(file)) };
}

export function loadSectionsText(text: string, file: string, sections: readonly (keyof RawConfig)[], env: NodeJS.ProcessEnv = process.env): LoadedSections {
  const chosen = new Set<string>(sections);
  const { raw, problem } = parseValidated(text, file, env, chosen, sectionValidator(sections));
  const picked: Record<string, unknown> = {};
  const unchecked: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) (chosen.has(key) ? picked : unchecked)[key] = value;
  return { file, raw: picked, unchecked, problem, files: new ConfigFiles(dirname(file)) };
}

/** A validator of the chosen top-level sections, each optional; other sections pass unchecked. */
function sectionValidator(sections: readonly string[]): ValidateFunction {
  const key = [...sections].sort().join(',');
  let v = sectionValidators.get(key);
  if (v === undefined) {
    const props = Object.fromEntries(sections.map((s) => [s, Type.Optional(GatewayConfigSchema.properties[s as keyof RawConfig])]));
    v = ajv.compile(Type.Object(props, { additionalProperties: true }));
    sectionValidators.set(key, v);
  }
  return v;
}

function parseValidated(
  text: string, file: string, env: NodeJS.ProcessEnv, sections: ReadonlySet<string> | null, check: ValidateFunction,
): { raw: Record<string, unknown>; problem: ConfigSource['problem'] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const at = (offset: number): { line: number; column: number } => {
    const pos = lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const problems: ConfigProblem[] = [];
  const yamlErrors = [...doc.errors, ...doc.warnings];
  if (yamlErrors.length > 0) {
    // An unquoted ${VAR} in a flow collection breaks the parse of everything after it: say how to
    // write it, and keep only the YAML errors before it (the later ones are its consequences).
    const refs = flowReferences(text);
    const first = refs[0]?.offset ?? Infinity;
    for (const e of yamlErrors) {
      if (e.pos[0] < first) problems.push({ file, ...at(e.pos[0]), option: '', message: e.message.split('\n')[0] ?? e.message });
    }
    for (const r of refs) problems.push({ file, ...at(r.offset), option: '', message: r.message });
    throw new ConfigError(problems);
  }

  const problem = yamlLocator(doc, lines, file);

  const whole = interpolate(doc, env, problem, problems, sections);
  if (problems.length > 0) throw new ConfigError(problems);

  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ file, line: 1, column: 1, option: '', message: 'the config must be a mapping (key: value) at the top level' }]);
  }
  // A whole ${VAR} is text until validation says its option needs a number or boolean; then it is
  // converted and validated again (once more is enough: conversion only turns text into those types).
  if (check(raw)) return { raw: raw as Record<string, unknown>, problem };
  const { changed, failed } = convertReferences(raw, check.errors ?? [], whole, problem, problems);
  if (changed && check(raw) && problems.length === 0) return { raw: raw, problem };
  const remaining = (check.errors ?? []).filter((e) => !(e.keyword === 'type' && failed.has(pathKey(instancePath(e)))));
  throw new ConfigError([...problems, ...schemaProblems(remaining, check.schema as object, problem)]);
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
