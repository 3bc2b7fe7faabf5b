// What `audit tail` and `audit stats` read: `--from PATH` (a trail file or directory), `--from
// nats://…` (the stream, through the NATS source, loaded only then), or without `--from` the trail
// the config names (dataDir and audit.file). Also the parsing of the options both commands share.
import { existsSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { AUDIT_DEFAULTS } from '../config/compile-audit.js';
import { dataDirOf, loadConfigSections } from '../config/load.js';
import type { Clock, Timer } from '../lib/clock.js';
import { FileSource } from '../audit/read/file-source.js';
import { parseTime } from '../audit/read/filter.js';
import type { RecordSource } from '../audit/read/source.js';
import { UsageError, shown, type Invocation } from './command.js';
import { configFile } from './config-file.js';

/** A clock whose timers keep the process alive: a follower waits on them and nothing else. */
const foregroundClock: Clock = {
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number): Timer {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A URL without its credentials, for messages. */
export function redactedUrl(text: string): string {
  try {
    const url = new URL(text);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return 'the stream URL';
  }
}

/**
 * The stream and subject to read: `--stream`/`--subject`, else the config's `audit.nats` when a
 * config is given (or the default one exists), else the sinks' defaults.
 */
async function streamNames(values: Invocation['values']): Promise<{ stream?: string; subject?: string }> {
  const named = { ...(typeof values.stream === 'string' ? { stream: values.stream } : {}), ...(typeof values.subject === 'string' ? { subject: values.subject } : {}) };
  if (named.stream !== undefined && named.subject !== undefined) return named;
  const file = configFile(values.config);
  if (typeof values.config !== 'string' && !existsSync(file)) return named;
  const nats = (await loadConfigSections(file, ['audit'])).raw.audit?.nats;
  return { ...(nats?.stream === undefined ? {} : { stream: nats.stream }), ...(nats?.subject === undefined ? {} : { subject: nats.subject }), ...named };
}

async function natsSource(url: string, values: Invocation['values']): Promise<RecordSource> {
  const names = await streamNames(values);
  const { natsSource: open } = await import('../audit/read/nats-source.js');
  try {
    return open(url, names);
  } catch (err) {
    throw new SourceOpenError(err instanceof Error ? err.message : `cannot read ${redactedUrl(url)}`);
  }
}

/** The source cannot be opened (exit 1). */
export class SourceOpenError extends Error {
  override readonly name = 'SourceOpenError';
}

/**
 * The source `--from` names, else the config's trail directory (only that trail's files: the
 * configured name, its worker and sealed files). Config problems throw ConfigError.
 */
export async function openSource(values: Invocation['values']): Promise<RecordSource> {
  const from = values.from;
  if (typeof from === 'string') {
    if (/^nats:\/\//i.test(from)) return natsSource(from, values);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(from)) throw new UsageError(`--from: a path or a nats:// URL (got "${shown(redactedUrl(from))}")`);
    return new FileSource(resolve(from), { clock: foregroundClock });
  }
  const file = configFile(values.config);
  const loaded = await loadConfigSections(file, ['dataDir', 'audit']);
  const trail = resolve(dataDirOf(file, loaded.raw.dataDir), loaded.raw.audit?.file ?? AUDIT_DEFAULTS.file);
  const extension = extname(trail);
  return new FileSource(dirname(trail), { clock: foregroundClock, base: basename(trail, extension), extension: extension === '' ? '.log' : extension });
}

/** `--since`/`--until` in ms, or undefined when not given. */
export function timeOption(values: Invocation['values'], name: 'since' | 'until', nowMs: number): number | undefined {
  const text = values[name];
  if (typeof text !== 'string') return undefined;
  const ms = parseTime(text, nowMs);
  if (ms === null) throw new UsageError(`--${name}: an ISO 8601 time (2026-11-30T10:00Z) or a duration such as 15m, 24h, 7d (got "${shown(text)}")`);
  return ms;
}

/** A whole number option within [min, max], or `fallback` when not given. */
export function countOption(values: Invocation['values'], name: string, min: number, max: number, fallback: number): number {
  const text = values[name];
  if (typeof text !== 'string') return fallback;
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`--${name}: a whole number from ${min} to ${max} (got "${shown(text)}")`);
  return Number(text);
}

/** Whether output is for a person (human lines) and in colour, from --json, --color, NO_COLOR and whether stdout is a terminal. */
export function outputMode(values: Invocation['values'], isTty: boolean, env: NodeJS.ProcessEnv = process.env): { human: boolean; color: boolean } {
  const color = values.color ?? 'auto';
  if (color !== 'auto' && color !== 'always' && color !== 'never') throw new UsageError(`--color: auto, always or never (got "${shown(String(color))}")`);
  if (values.json === true) return { human: false, color: false };
  if (color === 'always') return { human: true, color: true };
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return { human: isTty, color: isTty && color === 'auto' && !noColor };
}

/** Writes to stdout in batches; resolves false once stdout is closed (a pipe to `head` ended). */
export class Output {
  private closed = false;
  private pending: string[] = [];
  private pendingChars = 0;

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    stream.on('error', () => { this.closed = true; });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  line(text: string): void {
    if (this.closed) return;
    this.pending.push(text, '\n');
    this.pendingChars += text.length + 1;
  }

  /** Writes what is pending; waits for the stream to drain when it asks to. */
  async flush(): Promise<void> {
    if (this.closed || this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingChars = 0;
    if (!this.stream.write(text)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { this.stream.off('drain', done); this.stream.off('error', done); this.stream.off('close', done); resolve(); };
        this.stream.on('drain', done);
        this.stream.on('error', done);
        this.stream.on('close', done);
      });
    }
  }

  /** Whether enough is pending to write it now. */
  get full(): boolean {
    return this.pendingChars >= 64 * 1024;
  }
}
