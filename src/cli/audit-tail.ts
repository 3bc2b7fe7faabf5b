import { DECISIONS, DEFAULT_KINDS, RECORD_KINDS, matches, parseStatus, type RecordFilter } from '../audit/read/filter.js';
import { FileSource, TrailReadError, type FileReadOptions } from '../audit/read/file-source.js';
import { renderRecord, terminalJson, terminalText } from '../audit/read/format.js';
import type { RecordSource, SourceRecord } from '../audit/read/source.js';
import { UsageError, shown, type Invocation } from './command.js';
import { Output, SourceOpenError, countOption, openSource, outputMode, timeOption } from './audit-source.js';

/** The most records `-n` holds back. */
export const MAX_TAIL_LINES = 100_000;
export const DEFAULT_TAIL_LINES = 20;

/** For a source that does not say when it has caught up (the stream): how long without a record counts as caught up. */
const IDLE_CAUGHT_UP_MS = 500;

function oneOf(values: Invocation['values'], name: string, allowed: readonly string[]): string | undefined {
  const v = values[name];
  if (typeof v !== 'string') return undefined;
  if (!allowed.includes(v)) throw new UsageError(`--${name}: one of ${allowed.join(', ')} (got "${shown(v)}")`);
  return v;
}

function kinds(values: Invocation['values']): ReadonlySet<string> | null {
  const v = values.kind;
  if (typeof v !== 'string') return DEFAULT_KINDS;
  if (v === 'all') return null;
  const chosen = v.split(',').map((k) => k.trim());
  for (const k of chosen) {
    if (!(RECORD_KINDS as readonly string[]).includes(k)) throw new UsageError(`--kind: ${[...RECORD_KINDS, 'all'].join(', ')}, or several comma separated (got "${shown(v)}")`);
  }
  return new Set(chosen);
}

/** The filters of the command line; usage errors for values that mean nothing. */
export function tailFilter(values: Invocation['values'], nowMs: number): RecordFilter {
  const status = typeof values.status === 'string' ? parseStatus(values.status) : undefined;
  if (status === null) throw new UsageError(`--status: a status (401), a class (4xx) or several comma separated (got "${shown(String(values.status))}")`);
  const sinceMs = timeOption(values, 'since', nowMs);
  const untilMs = timeOption(values, 'until', nowMs);
  if (sinceMs !== undefined && untilMs !== undefined && untilMs < sinceMs) throw new UsageError('--until is before --since');
  const decision = oneOf(values, 'decision', DECISIONS);
  return {
    kinds: kinds(values),
    ...(typeof values.identity === 'string' ? { identity: values.identity } : {}),
    ...(typeof values.route === 'string' ? { route: values.route } : {}),
    ...(status === undefined ? {} : { status }),
    ...(decision === undefined ? {} : { decision }),
    ...(sinceMs === undefined ? {} : { sinceMs }),
    ...(untilMs === undefined ? {} : { untilMs }),
  };
}

/** The most characters `-n` holds back, whatever N: a tampered trail's lines can be up to 1 MiB each. */
export const MAX_HELD_CHARS = 64 * 1024 * 1024;

/** The last `capacity` lines pushed, oldest first, holding at most `maxChars` characters. */
class LastLines {
  private items: string[] = [];
  private head = 0;
  private chars = 0;
  private pushed = 0;
  /** After drain: how many of the last N were let go for the character budget. */
  dropped = 0;

  constructor(private readonly capacity: number, private readonly maxChars: number) {}

  push(line: string): void {
    if (this.capacity === 0) return;
    this.pushed++;
    this.items.push(line);
    this.chars += line.length;
    while (this.items.length - this.head > this.capacity || (this.chars > this.maxChars && this.items.length - this.head > 1)) {
      this.chars -= (this.items[this.head] ?? '').length;
      this.items[this.head] = ''; // let the line go now, not at the next compaction
      this.head++;
    }
    // Drop the consumed front now and then, so the array does not grow with the trail.
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
  }

  drain(): string[] {
    const out = this.items.slice(this.head);
    this.dropped = Math.min(this.capacity, this.pushed) - out.length;
    this.items = [];
    this.head = 0;
    this.chars = 0;
    return out;
  }
}

/** Reports lines that did not parse, once, on stderr. */
export function reportMalformed(command: string, source: RecordSource): void {
  const n = source instanceof FileSource ? source.malformed : 0;
  if (n > 0) process.stderr.write(`portcullis audit ${command}: ${n} line${n === 1 ? '' : 's'} of ${terminalText(source.name, 2000)} did not parse as a record and ${n === 1 ? 'was' : 'were'} skipped (audit verify tells what happened to them)\n`);
}

/**
 * `portcullis audit tail`: the last N matching records, then with --follow every new one as it is
 * written, until SIGINT/SIGTERM. Exit codes: 0 done, 1 the trail cannot be read, 2 bad arguments.
 */
export async function auditTailCommand({ values }: Invocation): Promise<number> {
  const filter = tailFilter(values, Date.now());
  const lines = countOption(values, 'lines', 0, MAX_TAIL_LINES, DEFAULT_TAIL_LINES);
  const follow = values.follow === true;
  const mode = outputMode(values, (process.stdout as { isTTY?: boolean }).isTTY === true);
  let source: RecordSource;
  try {
    source = await openSource(values);
  } catch (err) {
    if (err instanceof SourceOpenError) { process.stderr.write(`portcullis audit tail: ${terminalText(err.message, 2000)}\n`); return 1; }
    throw err;
  }
  const out = new Output();
  const terminal = (process.stdout as { isTTY?: boolean }).isTTY === true;
  const text = (r: SourceRecord): string => {
    if (mode.human) return renderRecord(r.record, { color: mode.color });
    return terminal ? terminalJson(r.record, undefined, r.line) : r.line;
  };
  const held = new LastLines(lines, MAX_HELD_CHARS);
  let caughtUp = false;
  const catchUp = (): void => {
    if (caughtUp) return;
    caughtUp = true;
    for (const line of held.drain()) out.line(line);
    if (held.dropped > 0) process.stderr.write(`portcullis audit tail: ${held.dropped} of the last ${lines} records not printed: together they pass ${MAX_HELD_CHARS / (1024 * 1024)} MiB\n`);
  };
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const fileSource = source instanceof FileSource;
  let idle: NodeJS.Timeout | null = null;
  const armIdle = (): void => {
    if (!follow || fileSource || caughtUp) return;
    if (idle !== null) clearTimeout(idle);
    idle = setTimeout(() => { catchUp(); void out.flush(); }, IDLE_CAUGHT_UP_MS);
  };
  try {
    const options: FileReadOptions = {
      follow,
      signal: stop.signal,
      onCaughtUp: () => { catchUp(); void out.flush(); },
      ...(filter.sinceMs === undefined ? {} : { since: filter.sinceMs }),
    };
    armIdle();
    for await (const r of source.records(options)) {
      if (out.isClosed) break;
      if (!matches(r.record, filter)) { armIdle(); continue; }
      if (caughtUp) { out.line(text(r)); await out.flush(); } else { held.push(text(r)); armIdle(); }
      if (out.full) await out.flush();
    }
    catchUp();
    await out.flush();
    reportMalformed('tail', source);
    return 0;
  } catch (err) {
    // A read failure of any source (a file, the stream) is the trail's failure, not a crash.
    if (err instanceof TrailReadError || err instanceof SourceOpenError || !fileSource) {
      await out.flush();
      process.stderr.write(`portcullis audit tail: ${terminalText(err instanceof Error ? err.message : String(err), 2000)}\n`);
      return 1;
    }
    throw err;
  } finally {
    if (idle !== null) clearTimeout(idle);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
  }
}
