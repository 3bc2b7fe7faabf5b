import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What pasting some lines into bash did. */
export interface PasteResult {
  /** `bash -n` refused the text, with its message. */
  readonly syntax: string;
  /** What bash wrote to stderr running them (unset variables, redirects from missing files, …). */
  readonly stderr: string;
  /** Files the lines created in the working directory (an unquoted `>` is a redirect). */
  readonly created: string[];
}

/** Commands the pasted lines may run, stubbed so nothing leaves the machine or changes it. */
const STUBS = ['curl', 'npm', 'npx', 'portcullis', 'node', 'git'].map((c) => `${c}() { :; }`).join('\n');

/**
 * Pastes `text` into a fresh bash (no profile, `set -u`) in an empty directory, with the commands
 * it may call stubbed and `vars` set as if the user had pasted them: a `<placeholder>` read as a
 * redirect, an unset variable or a stray `>` shows up in the result.
 */
export function paste(text: string, vars: Readonly<Record<string, string>> = {}): PasteResult {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-paste-'));
  try {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...vars };
    const syntax = spawnSync('bash', ['--noprofile', '--norc', '-n'], { input: text, cwd: dir, env, encoding: 'utf8' });
    const run = spawnSync('bash', ['--noprofile', '--norc', '-u'], { input: `${STUBS}\n${text}\n`, cwd: dir, env, encoding: 'utf8', timeout: 10_000 });
    return { syntax: syntax.status === 0 ? '' : syntax.stderr || `exit ${syntax.status}`, stderr: run.stderr, created: readdirSync(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fenced `sh` blocks of one `## ` section of a Markdown text (none when it has no such section). */
export function shellBlocks(markdown: string, section: string): string[] {
  const start = markdown.indexOf(`\n## ${section}\n`);
  if (start < 0) return [];
  const end = markdown.indexOf('\n## ', start + 1);
  const body = markdown.slice(start, end < 0 ? undefined : end);
  return [...body.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
}

/** The variables the demo prints for the user to paste; the README uses no others. */
export const DEMO_VARIABLES = ['USER_TOKEN', 'ADMIN_TOKEN', 'EXPIRED_TOKEN', 'OPAQUE_TOKEN', 'API_KEY', 'KEY_ID', 'PORTCULLIS_ADMIN_TOKEN'] as const;
