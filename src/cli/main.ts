#!/usr/bin/env node
import { ConfigError } from '../config/errors.js';
import { OperatorError } from '../lib/operator-error.js';
import { UsageError, asUsageError, helpText, parseInvocation, shown, usageText, type Command } from './command.js';
import { ROOT } from './commands.js';
import { packageVersion } from './version.js';

const isHelp = (arg: string | undefined): boolean => arg === '--help' || arg === '-h';

/** A usage error of `command`: one line and its usage, on stderr; exit 2. */
function usage(command: Command, problem: string): number {
  process.stderr.write(usageText(command, problem));
  return 2;
}

function help(command: Command): number {
  process.stdout.write(helpText(command));
  return 0;
}

/** Finds the command `words` name below `group`: the deepest match and the words after it. */
function resolveCommand(group: Command, words: readonly string[]): { command: Command; rest: readonly string[] } | { group: Command; problem: string } {
  const [word, ...rest] = words;
  if (group.verbs === undefined) return { command: group, rest: words };
  const what = group === ROOT ? 'command' : `${group.path.join(' ')} command`;
  const known = group.verbs.map((v) => v.path[v.path.length - 1]).join(', ');
  if (word === undefined) return { group, problem: `missing ${what} (one of: ${known})` };
  if (word.startsWith('-')) return { group, problem: `unknown option ${shown(word)}` };
  const next = group.verbs.find((v) => v.path[v.path.length - 1] === word);
  if (next === undefined) return { group, problem: `unknown ${what} "${shown(word)}" (one of: ${known})` };
  return resolveCommand(next, rest);
}

/** `portcullis help [COMMAND [VERB]]`. */
function helpCommand(words: readonly string[]): number {
  if (words.length === 0) return help(ROOT);
  const found = resolveCommand(ROOT, words);
  if ('problem' in found) {
    // `help keys` lands here with "missing keys command": the group's help is what was asked for.
    if (found.group !== ROOT && words.length === found.group.path.length) return help(found.group);
    return usage(ROOT.verbs?.find((c) => c.path[0] === 'help') ?? ROOT, found.problem);
  }
  return help(found.command);
}

async function main(argv: readonly string[]): Promise<number> {
  const [first] = argv;
  if (first === '--version' || first === '-V') {
    if (argv.length > 1) return usage(ROOT, `unexpected argument "${shown(argv[1] ?? '')}" after ${first}`);
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (isHelp(first) && argv.length === 1) return help(ROOT);
  const found = resolveCommand(ROOT, argv);
  if ('problem' in found) return isHelp(argv[found.group.path.length]) ? help(found.group) : usage(found.group, found.problem);
  const { command, rest } = found;
  try {
    const invocation = parseInvocation(command, rest);
    if (invocation.help) return help(command);
    if (command.path[0] === 'help') return helpCommand(invocation.positionals);
    if (command.run === undefined) throw new Error(`command ${command.path.join(' ')} has no run function`);
    return await command.run(invocation);
  } catch (err) {
    const mistake = err instanceof UsageError ? err : asUsageError(err, command);
    if (mistake !== null) return usage(command, mistake.message);
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n${err.total} problem${err.total === 1 ? '' : 's'} in config\n`);
      return 1;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (err: unknown) => {
  if (err instanceof OperatorError) {
    process.stderr.write(`portcullis: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`portcullis: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
