// One shape for every CLI command: its options, positionals, help text and examples are data, from
// which the parser, `--help` and the usage errors are all derived, so no command can lack them.
import { parseArgs } from 'node:util';

/** One option of a command. */
export interface OptionSpec {
  readonly name: string;
  readonly short?: string;
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  /** How the value is shown in help (`FILE`, `N|auto`); string options only. */
  readonly value?: string;
  readonly description: string;
}

/** What a command's run function receives: the values of its options and its positionals. */
export interface Invocation {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  /** The arguments as given after the command's name, for a command that passes them on. */
  readonly args: readonly string[];
}

/** A command, or a group of verbs (`keys`, `admin`) when it has `verbs` instead of `run`. */
export interface Command {
  /** The words after `portcullis`: `['keys', 'create']`. */
  readonly path: readonly string[];
  readonly summary: string;
  /** The synopsis after `portcullis <path>`: `-c FILE METHOD TARGET [options]`. */
  readonly synopsis: string;
  /** Paragraphs shown after the usage line. */
  readonly description?: string;
  readonly options: readonly OptionSpec[];
  /** The positionals the command takes, by name (`METHOD`, `TARGET`); all required unless `min` says fewer; with `variadic` the last takes any number. */
  readonly positionals?: { readonly names: readonly string[]; readonly min?: number; readonly variadic?: boolean };
  /** Lines a user can paste; `#` comments allowed. At least one. */
  readonly examples: readonly string[];
  readonly verbs?: readonly Command[];
  /** Exit code, or -1 for a command that keeps running (start, demo). */
  readonly run?: (invocation: Invocation) => Promise<number>;
}

/** A mistake in the command line: exit 2 with one line and the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const HELP: OptionSpec = { name: 'help', short: 'h', type: 'boolean', description: 'show this help' };
const MAX_SHOWN = 60;

/** An argument echoed in an error message: bounded, control characters escaped. */
export function shown(text: string): string {
  const clipped = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return clipped.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function flag(option: OptionSpec): string {
  return `${option.short === undefined ? '    ' : `-${option.short}, `}--${option.name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`;
}

/** How the user wrote an option: `--config` or `-c`, as in the argument list. */
function spelling(option: OptionSpec, raw: string): string {
  return raw.startsWith('--') || option.short === undefined ? `--${option.name}` : `-${option.short}`;
}

/** Parses `args` against the command's options; `help` is true when -h/--help was given. */
export function parseInvocation(command: Command, args: readonly string[]): Invocation & { help: boolean } {
  const options = [...command.options, HELP];
  const config: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of options) config[o.name] = { type: o.type, ...(o.short === undefined ? {} : { short: o.short }), ...(o.multiple === true ? { multiple: true } : {}) };
  // Help first, so `start --help --bogus` still helps: a -h/--help before `--` wins.
  const end = args.indexOf('--');
  if ((end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h')) return { values: {}, positionals: [], args, help: true };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: config, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw asUsageError(err, command) ?? err;
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const option = options.find((o) => o.name === token.name);
    if (option === undefined || option.multiple === true) continue;
    if (seen.has(option.name)) throw new UsageError(`${spelling(option, token.rawName)} given twice; give it once`);
    seen.add(option.name);
    if (option.type === 'string' && token.value === '') throw new UsageError(`${spelling(option, token.rawName)} needs a value (${option.value ?? 'VALUE'})`);
  }
  const names = command.positionals?.names ?? [];
  const min = command.positionals?.min ?? names.length;
  const positionals = parsed.positionals;
  if (positionals.length > names.length && command.positionals?.variadic !== true) throw new UsageError(`unexpected argument "${shown(positionals[names.length] ?? '')}"`);
  if (positionals.length < min) throw new UsageError(`missing ${names.slice(positionals.length, min).join(' ')}`);
  // Only `multiple` string options give arrays, and only of strings: parseArgs's type is wider.
  return { values: parsed.values as Invocation['values'], positionals, args, help: false };
}

/**
 * Node's parseArgs error (from this parser, or from a command that parses its own arguments
 * further) as a usage error naming the option; null for anything else.
 */
export function asUsageError(err: unknown, command: Command): UsageError | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return null;
  return new UsageError(parseProblem(err, [...command.options, HELP]));
}

/** Turns node's parseArgs error into one line naming the option. */
function parseProblem(err: unknown, options: readonly OptionSpec[]): string {
  const code = (err as { code?: string }).code;
  const message = (err as Error).message;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  const named = options.find((o) => quoted.includes(`--${o.name}`));
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${shown(quoted)}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (named === undefined) return shown(message.split('. ')[0] ?? message);
      return named.type === 'boolean' ? `--${named.name} takes no value` : `--${named.name} needs a value (${named.value ?? 'VALUE'})`;
    default:
      return shown(message.split('. ')[0] ?? message);
  }
}

/** The help of one command (or group), as printed by `--help`. */
export function helpText(command: Command): string {
  const name = ['portcullis', ...command.path].join(' ');
  const lines = [`${name} — ${command.summary}`, '', 'Usage:', `  ${name} ${command.synopsis}`.trimEnd()];
  if (command.description !== undefined) lines.push('', command.description);
  if (command.verbs !== undefined) {
    lines.push('', 'Commands:');
    const width = Math.max(...command.verbs.map((v) => v.path.join(' ').length)) + 2;
    for (const v of command.verbs) lines.push(`  ${v.path.join(' ').padEnd(width)}${v.summary}`);
    lines.push('', `Run "${name} <command> --help" for a command's options and examples.`);
  }
  const options = [...command.options, HELP];
  const width = Math.max(...options.map((o) => flag(o).length)) + 3;
  lines.push('', 'Options:');
  for (const o of options) lines.push(...wrap(o.description, WRAP_AT - width - 2).map((text, i) => `  ${(i === 0 ? flag(o) : '').padEnd(width)}${text}`));
  lines.push('', command.examples.length === 1 ? 'Example:' : 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}

const WRAP_AT = 100;

/** `text` in lines of at most `width` characters, broken at spaces (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) { lines.push(line); line = word; } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** The one-line error and the usage, as printed on stderr for a usage error. */
export function usageText(command: Command, problem: string): string {
  return `${['portcullis', ...command.path].join(' ')}: ${problem}\n\n${helpText(command)}`;
}
