// Every command of the CLI's table, groups and verbs alike, answers --help, -h and `portcullis help
// <command>` on stdout with exit 0, and refuses an unknown option with one line and its usage on
// stderr, exit 2, never a stack trace. The walk reads the same table the CLI is built from, so a
// command added to it is tested without touching this file.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { UsageError, parseInvocation, type Command } from '../src/cli/command.js';
import { ROOT, allCommands } from '../src/cli/commands.js';
import { runCli } from './harness/cli.js';

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: readonly string[]): Promise<Run> {
  // No config in reach: help and usage errors must not need one.
  return runCli(args, { PORTCULLIS_CONFIG: '/nonexistent/gateway.yaml' });
}

const name = (c: Command): string => ['portcullis', ...c.path].join(' ');
const STACK = /^\s+at /m;
const COMMANDS = allCommands();
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function assertHelp(run: Run, command: Command, how: string): void {
  assert.equal(run.code, 0, `${how}: ${run.stderr}`);
  assert.equal(run.stderr, '', `${how}: nothing on stderr`);
  assert.ok(run.stdout.startsWith(`${name(command)} — ${command.summary}\n`), `${how}: starts with the name and summary:\n${run.stdout}`);
  assert.match(run.stdout, new RegExp(`^Usage:\\n  ${name(command)}`, 'm'), how);
  assert.match(run.stdout, /^Options:\n/m, how);
  assert.match(run.stdout, /^Examples?:\n {2}\S/m, how);
  for (const o of command.options) assert.ok(run.stdout.includes(`--${o.name}`), `${how}: lists --${o.name}`);
  for (const v of command.verbs ?? []) assert.ok(run.stdout.includes(`  ${v.path.join(' ')} `), `${how}: lists ${v.path.join(' ')}`);
}

function assertUsageError(run: Run, command: Command, problem: string | RegExp, how: string): void {
  assert.equal(run.code, 2, `${how}: ${run.stderr}`);
  assert.equal(run.stdout, '', `${how}: nothing on stdout`);
  assert.doesNotMatch(run.stderr, STACK, `${how}: no stack trace`);
  const [line = '', blank, ...usage] = run.stderr.split('\n');
  const prefix = `${name(command)}: `;
  assert.ok(line?.startsWith(prefix), `${how}: one line naming the command first:\n${run.stderr}`);
  if (typeof problem === 'string') assert.equal(line.slice(prefix.length), problem, how);
  else assert.match(line.slice(prefix.length), problem, how);
  assert.equal(blank, '', how);
  assert.ok(usage.join('\n').includes(`Usage:\n  ${name(command)}`), `${how}: then the usage`);
}

/** A documented example line as arguments: single quotes kept together, `KEY=$(…)` and `> file` peeled off. */
function exampleArgs(example: string): string[] {
  const inner = /portcullis (.*?)\)?(?: > \S+)?$/.exec(example)?.[1] ?? '';
  return [...inner.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

describe('portcullis --help for every command', () => {
  it('the table has every command the docs promise, each with a summary, options described and an example', () => {
    const paths = COMMANDS.map((c) => c.path.join(' '));
    for (const expected of ['start', 'check', 'explain', 'keys', 'keys create', 'keys list', 'keys show', 'keys revoke', 'keys rotate', 'admin', 'admin token', 'certs', 'certs dev', 'demo', 'schema', 'help']) {
      assert.ok(paths.includes(expected), `the table has "${expected}"`);
    }
    for (const c of [ROOT, ...COMMANDS]) {
      assert.ok(c.summary.length > 0 && c.examples.length > 0, `${name(c)}: a summary and an example`);
      assert.ok(c.run !== undefined || c.verbs !== undefined || c.path[0] === 'help', `${name(c)}: runs, or is a group of verbs`);
      for (const o of c.options) assert.ok(o.description.length > 0, `${name(c)} --${o.name}: described`);
      assert.equal(new Set(c.options.map((o) => o.name)).size, c.options.length, `${name(c)}: option names are unique`);
    }
    assert.deepEqual(COMMANDS.find((c) => c.path[0] === 'demo')?.options.map((o) => o.name), ['port', 'https-port', 'admin-port', 'host']);
    assert.ok(COMMANDS.find((c) => c.path[0] === 'start')?.options.some((o) => o.name === 'wait-ready'));
  });

  it('every example in the table parses against its own command', () => {
    for (const c of COMMANDS.filter((x) => x.verbs === undefined)) {
      for (const example of c.examples) {
        const args = exampleArgs(example);
        assert.deepEqual(args.slice(0, c.path.length), [...c.path], `${example}: runs ${name(c)}`);
        assert.doesNotThrow(() => parseInvocation(c, args.slice(c.path.length)), UsageError, example);
      }
    }
  });

  it('--help, -h and `portcullis help …` print the usage, options and examples on stdout, exit 0', async () => {
    await Promise.all([ROOT, ...COMMANDS].map(async (c) => {
      const asked = [[...c.path, '--help'], [...c.path, '-h'], ['help', ...c.path]];
      // A help flag wins over whatever else is on the line, even an unknown option.
      if (c.verbs === undefined && c.path.length > 0) asked.push([...c.path, '--no-such-option', '--help']);
      for (const args of asked) assertHelp(await cli(args), c, args.join(' '));
    }));
  });

  it('an unknown option is one line naming it, then the usage, on stderr; exit 2', async () => {
    await Promise.all([ROOT, ...COMMANDS].map(async (c) => {
      const args = [...c.path, '--no-such-option'];
      assertUsageError(await cli(args), c, 'unknown option --no-such-option', args.join(' '));
      const short = [...c.path, '-Z'];
      assertUsageError(await cli(short), c, 'unknown option -Z', short.join(' '));
    }));
  });

  it('missing, empty, duplicated and mistyped values and arguments are usage errors too', async () => {
    const find = (path: string): Command => {
      const c = [ROOT, ...COMMANDS].find((x) => x.path.join(' ') === path);
      assert.ok(c !== undefined, path);
      return c;
    };
    const cases: [string[], string, string | RegExp][] = [
      [[], '', /^missing command \(one of: start, check, explain, policy, keys, audit, admin, certs, import, demo, schema, help\)$/],
      [['frobnicate'], '', /^unknown command "frobnicate"/],
      [['keys'], 'keys', /^missing keys command \(one of: create, list, show, revoke, rotate\)$/],
      [['keys', 'frobnicate'], 'keys', /^unknown keys command "frobnicate"/],
      [['admin', 'rotate'], 'admin', /^unknown admin command "rotate" \(one of: token\)$/],
      [['help', 'frobnicate'], 'help', /^unknown command "frobnicate"/],
      [['help', 'keys', 'frobnicate'], 'help', /^unknown keys command "frobnicate"/],
      [['check', '--config'], 'check', '--config needs a value (FILE)'],
      [['check', '-c'], 'check', '--config needs a value (FILE)'],
      [['check', '--config='], 'check', '--config needs a value (FILE)'],
      [['check', '-c', 'a.yaml', '-c', 'b.yaml'], 'check', '-c given twice; give it once'],
      [['check', '--config=a.yaml', '-c', 'b.yaml'], 'check', '-c given twice; give it once'],
      [['check', 'gateway.yaml'], 'check', 'unexpected argument "gateway.yaml"'],
      [['start', '--workers', 'two'], 'start', /^--workers: expected a number of workers from 1 to 999, or auto/],
      [['start', '--wait-ready', '10 sec'], 'start', '--wait-ready: expected a duration such as 30s, 2m or 0s (got "10 sec")'],
      [['start', '--workers'], 'start', '--workers needs a value (N|auto)'],
      [['explain', 'GET'], 'explain', 'missing TARGET'],
      [['explain'], 'explain', 'missing METHOD TARGET'],
      [['explain', '--json=yes', 'GET', '/'], 'explain', '--json takes no value'],
      [['explain', 'GET', '/', 'extra'], 'explain', 'unexpected argument "extra"'],
      [['keys', 'show'], 'keys show', 'missing ID'],
      [['keys', 'show', 'a', 'b'], 'keys show', 'unexpected argument "b"'],
      [['keys', 'rotate', '0123456789abcdef'], 'keys rotate', /^needs --grace DURATION/],
      [['keys', 'create', '--name'], 'keys create', '--name needs a value (NAME)'],
      [['admin', 'token', '--json', '--json'], 'admin token', '--json given twice; give it once'],
      [['admin', 'token', 'now'], 'admin token', 'unexpected argument "now"'],
      [['schema', '--json'], 'schema', 'unknown option --json'],
      [['--version', 'now'], '', 'unexpected argument "now" after --version'],
    ];
    await Promise.all(cases.map(async ([args, path, problem]) => assertUsageError(await cli(args), find(path), problem, args.join(' '))));
  });

  it('an option echoed back is escaped and bounded: no terminal control sequence, no unbounded line', async () => {
    const escape = await cli(['check', '--\u001b[2Jevil']);
    assertUsageError(escape, ROOT.verbs?.find((c) => c.path[0] === 'check') as Command, 'unknown option --\\u001b[2Jevil', 'escape');
    const long = await cli(['check', `--${'x'.repeat(10_000)}`]);
    assert.equal(long.code, 2);
    assert.ok((long.stderr.split('\n')[0] ?? '').length < 120, 'the echoed option is clipped');
  });

  it('--version and -V print the version of package.json', async () => {
    for (const flag of ['--version', '-V']) {
      const run = await cli([flag]);
      assert.deepEqual(run, { code: 0, stdout: `${VERSION}\n`, stderr: '' }, flag);
    }
  });
});

describe('the README', () => {
  it('its CLI section names every command and verb of the table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## CLI\n'), readme.indexOf('\n## ', readme.indexOf('## CLI\n') + 1));
    for (const c of COMMANDS) {
      const [group, verb] = c.path;
      if (verb === undefined) assert.ok(section.includes(`portcullis ${group ?? ''}`), `README CLI section: portcullis ${group ?? ''}`);
      else assert.match(section, new RegExp(`portcullis ${group ?? ''} (\\S*[|])?${verb}\\b`), `README CLI section: portcullis ${c.path.join(' ')}`);
    }
    assert.ok(section.includes('portcullis --version'));
  });
});
