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

/** The last `capacity` items pushed, oldest first. */
class Ring<T> {
  private items: T[] = [];
  private start = 0;

  constructor(private readonly capacity: number) {}

  push(item: T): void {
    if (this.capacity === 0) return;
    if (this.items.length < this.capacity) { this.items.push(item); return; }
    this.items[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
  }

  drain(): T[] {
    const out = [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
    this.items = [];
    this.start = 0;
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
  const show = (r: SourceRecord): void => {
    if (mode.human) out.line(renderRecord(r.record, { color: mode.color }));
    else out.line((process.stdout as { isTTY?: boolean }).isTTY === true ? terminalJson(r.record) : r.line);
  };
  const ring = new Ring<SourceRecord>(lines);
  let caughtUp = false;
  const catchUp = (): void => {
    if (caughtUp) return;
    caughtUp = true;
    for (const r of ring.drain()) show(r);
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
      if (caughtUp) { show(r); await out.flush(); } else { ring.push(r); armIdle(); }
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
