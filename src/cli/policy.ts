import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { terminalText } from '../audit/read/format.js';
import type { RecordSource } from '../audit/read/source.js';
import { compileConfig, type CompiledConfig } from '../config/compile.js';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import type { RouteLocator } from '../explain/explain.js';
import type { RuleLocator } from '../policy/coverage.js';
import { SAMPLE_DEFAULTS, sampleAudit, type AuditSample } from '../policy/audit-sample.js';
import { diffPolicies, renderDiff } from '../policy/policy-diff.js';
import { renderPolicyTest, runPolicyTests } from '../policy/policy-test.js';
import { TestFileError, besideConfig, loadTestFiles, type PolicyCase } from '../policy/test-file.js';
import { SourceOpenError, countOption, openSource, timeOption } from './audit-source.js';
import { UsageError, shown, type Invocation } from './command.js';
import { configFile } from './config-file.js';

/** The most test files one run reads. */
export const MAX_TEST_FILES = 100;

/** A config, compiled, and where its routes are written. */
async function compiled(file: string): Promise<{ config: CompiledConfig; locate: RouteLocator & RuleLocator }> {
  const loaded = await loadConfigFile(file);
  // A rule's line: its entry in a `when` list, or the `when` itself when it is one expression.
  return { config: compileConfig(loaded), locate: (route, rule?: number) => loaded.problem(['routes', route.index, ...(rule === undefined ? [] : ['when', rule])], '').line };
}

/** `--tests FILE…` as given (resolved), or null when none was. */
function givenTests(values: Invocation['values']): string[] | null {
  const given = values.tests;
  if (!Array.isArray(given) || given.length === 0) return null;
  if (given.length > MAX_TEST_FILES) throw new UsageError(`--tests: at most ${MAX_TEST_FILES} files`);
  return given.map((f) => resolve(f));
}

/** Reads the test files; their problems are printed and the exit code is 2. */
async function cases(files: readonly string[], command: string): Promise<PolicyCase[] | number> {
  try {
    return await loadTestFiles(files);
  } catch (err) {
    if (!(err instanceof TestFileError)) throw err;
    process.stderr.write(`${err.message}\n${err.total} problem${err.total === 1 ? '' : 's'} in test files\n`);
    process.stderr.write(`portcullis ${command}: the test files cannot be run as written (docs/policy-tests.md)\n`);
    return 2;
  }
}

/**
 * `portcullis policy test`: exit 0 every case passes, 1 a case fails or the config is invalid,
 * 2 bad arguments or a test file that cannot be read or is not valid.
 */
export async function policyTestCommand({ values }: Invocation): Promise<number> {
  const config = configFile(values.config);
  let files = givenTests(values);
  if (files === null) {
    const beside = besideConfig(config);
    if (!existsSync(beside)) throw new UsageError(`no test file: ${shown(beside)} does not exist; write it beside the config, or give --tests FILE`);
    files = [beside];
  }
  const { config: compiledConfig, locate } = await compiled(config);
  const loaded = await cases(files, 'policy test');
  if (typeof loaded === 'number') return loaded;
  const report = await runPolicyTests(compiledConfig, loaded, locate);
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ ...report, ...(values.coverage === true ? {} : { coverage: undefined }) }, null, 2) + '\n');
  } else {
    process.stdout.write(renderPolicyTest(report, values.coverage === true));
  }
  return report.summary.failed > 0 ? 1 : 0;
}

/**
 * `portcullis policy diff OLD NEW`: exit 0 no request changes, 1 some do, 2 bad arguments or a test
 * file problem, 3 a config is invalid or the audit trail cannot be read.
 */
export async function policyDiffCommand({ values, positionals }: Invocation): Promise<number> {
  const [oldGiven = '', newGiven = ''] = positionals;
  const [oldFile, newFile] = [resolve(oldGiven), resolve(newGiven)];
  const sample = countOption(values, 'sample', 1, 100_000, SAMPLE_DEFAULTS.sample);
  const maxRead = countOption(values, 'max-read', 1, 10_000_000, SAMPLE_DEFAULTS.maxRead);
  const since = timeOption(values, 'since', Date.now());
  const audit = typeof values.audit === 'string' ? values.audit : null;
  if (audit === null && (since !== undefined || values.sample !== undefined || values['max-read'] !== undefined)) {
    throw new UsageError('--since, --sample and --max-read choose recorded requests: give --audit PATH|nats://… too');
  }
  let files = givenTests(values);
  if (files === null) {
    const beside = [besideConfig(newFile), besideConfig(oldFile)].find((f) => existsSync(f));
    files = beside === undefined ? [] : [beside];
  }
  if (files.length === 0 && audit === null) {
    throw new UsageError(`nothing to compare: no ${shown(besideConfig(newFile))} or ${shown(besideConfig(oldFile))}; give --tests FILE or --audit PATH|nats://…`);
  }
  let sides;
  try {
    sides = [{ file: oldGiven, ...(await compiled(oldFile)) }, { file: newGiven, ...(await compiled(newFile)) }] as const;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n${err.total} problem${err.total === 1 ? '' : 's'} in config\n`);
    return 3;
  }
  const loaded = files.length === 0 ? [] : await cases(files, 'policy diff');
  if (typeof loaded === 'number') return loaded;
  let sampled: AuditSample | null = null;
  if (audit !== null) {
    const read = await readSample({ ...values, from: audit, config: newFile }, { sample, maxRead, ...(since === undefined ? {} : { since }) });
    if (typeof read === 'number') return read;
    sampled = read;
  }
  const report = await diffPolicies(sides[0], sides[1], loaded, sampled);
  process.stdout.write(values.json === true ? JSON.stringify(report, null, 2) + '\n' : renderDiff(report));
  return report.changes.length > 0 ? 1 : 0;
}

/** The sample of recorded requests, or exit code 3 after saying why the trail cannot be read. */
async function readSample(values: Invocation['values'], options: { sample: number; maxRead: number; since?: number }): Promise<AuditSample | number> {
  let source: RecordSource;
  try {
    source = await openSource(values);
  } catch (err) {
    if (err instanceof SourceOpenError) { process.stderr.write(`portcullis policy diff: ${terminalText(err.message, 2000)}\n`); return 3; }
    throw err;
  }
  try {
    return await sampleAudit(source, options);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    process.stderr.write(`portcullis policy diff: ${terminalText((err as Error).message, 2000)}\n`);
    return 3;
  } finally {
    await source.close();
  }
}
