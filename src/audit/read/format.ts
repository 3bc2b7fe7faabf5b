// How `audit tail` and `audit stats` show records to a person at a terminal. Every value comes from
// a file anyone with write access to the trail may have edited: the writer escapes control
// characters, but a tampered line can hold `\u001b` (JSON for a raw ESC) or a raw bidi override,
// so every value is escaped again here (boundText: C0/C1 controls, DEL, line separators, bidi
// controls, lone surrogates) and capped, and only this module's own colour codes reach the screen.
import { boundText } from '../bounded-text.js';
import type { TopEntry, TrailStats } from './stats.js';

export interface RenderOptions {
  /** Wrap values in ANSI SGR colour codes. */
  readonly color: boolean;
}

/** The most characters of one value a human line shows (the JSON output keeps the whole value). */
const SHOWN = Object.freeze({ path: 256, text: 128, summary: 256 });

type Record_ = Readonly<Record<string, unknown>>;

/** A value as text safe for a terminal: escaped, capped at `maxChars` (at least 32), `-` when absent. */
export function terminalText(value: unknown, maxChars: number = SHOWN.text): string {
  if (value === undefined || value === null) return '-';
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : stringified(value) ?? TOO_DEEP;
  return boundText(text, maxChars);
}

/** What is shown for a value JSON.stringify cannot write (nested deeper than its stack allows). */
const TOO_DEEP = '[nested too deeply to show]';

/**
 * JSON.stringify that never throws: a parsed line of under 1 MiB can nest arrays and objects deeper
 * than JSON.stringify's recursion reaches (JSON.parse does not recurse), so a hostile record would
 * otherwise end the command that shows it. Null when it cannot be written.
 */
function stringified(value: unknown, space?: number): string | null {
  try {
    return JSON.stringify(value, null, space) ?? 'null';
  } catch {
    return null;
  }
}

/**
 * Characters JSON.stringify leaves raw in a string that a terminal acts on or shows misleadingly:
 * DEL, C1 controls, line and paragraph separators, bidi controls. (It escapes C0 controls and lone
 * surrogates itself.)
 */
const UNSAFE_AFTER_STRINGIFY = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A value as JSON for a terminal: JSON.stringify's text with every character above written as a
 * `\uXXXX` escape — the same JSON value. For a record read from a line, this drops raw whitespace
 * between tokens (a carriage return) as well.
 */
export function terminalJson(value: unknown, space?: number, line?: string): string {
  // A value nested too deeply for JSON.stringify: its stored line is the same JSON value. A line
  // that parsed holds no raw C0 control but the whitespace between tokens (tab, carriage return),
  // which becomes a space.
  const text = stringified(value, space) ?? line?.replace(/[\t\r]/g, ' ') ?? JSON.stringify(TOO_DEEP);
  return text.replace(UNSAFE_AFTER_STRINGIFY, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const SGR = Object.freeze({ red: '31', green: '32', yellow: '33', magenta: '35', cyan: '36', dim: '2', bold: '1' });
type Colour = keyof typeof SGR;

function paint(text: string, colour: Colour | null, options: RenderOptions): string {
  return options.color && colour !== null ? `\u001b[${SGR[colour]}m${text}\u001b[0m` : text;
}

function statusColour(status: unknown): Colour | null {
  if (typeof status !== 'number') return null;
  if (status >= 500) return 'red';
  if (status >= 400) return 'yellow';
  if (status >= 300) return 'cyan';
  if (status >= 200) return 'green';
  return null;
}

const DECISION_COLOUR: Readonly<Record<string, Colour>> = { allow: 'green', deny: 'yellow', error: 'red', abort: 'magenta' };
const SEVERITY_COLOUR: Readonly<Record<string, Colour>> = { info: 'cyan', low: 'cyan', medium: 'yellow', high: 'red', critical: 'red' };

function identityText(identity: unknown): string {
  if (identity === null || typeof identity !== 'object') return '-';
  const { subject, keyId } = identity as { subject?: unknown; keyId?: unknown };
  const who = terminalText(subject);
  return keyId === undefined ? who : `${who} (key ${terminalText(keyId)})`;
}

function latencyText(latency: unknown): string {
  return typeof latency === 'number' && Number.isFinite(latency) ? `${Math.round(latency * 10) / 10}ms` : '-';
}

/** A request or admin record: time, status, method, path, route, identity, decision/reason, latency. */
function exchangeLine(r: Record_, o: RenderOptions): string {
  const status = paint(terminalText(r.status).padStart(3), statusColour(r.status), o);
  const method = terminalText(r.method, 32).padEnd(6);
  const route = r.kind === 'admin' ? paint('admin', 'bold', o) : terminalText(r.route);
  const decision = typeof r.decision === 'string' ? paint(terminalText(r.decision), DECISION_COLOUR[r.decision] ?? null, o) : '-';
  const reason = r.reason === undefined ? '' : `/${terminalText(r.reason, 64)}`;
  return `${terminalText(r.time, 32)} ${status} ${method} ${terminalText(r.path, SHOWN.path)}  ${route}  ${identityText(r.identity)}  ${decision}${reason}  ${latencyText(r.latencyMs)}`;
}

function alertLine(r: Record_, o: RenderOptions): string {
  const severity = typeof r.severity === 'string' ? paint(terminalText(r.severity, 32).toUpperCase(), SEVERITY_COLOUR[r.severity] ?? null, o) : '-';
  return `${terminalText(r.time, 32)} ${paint('ALERT', 'red', o)} ${severity} ${terminalText(r.detector)} ${terminalText(r.subject)}: ${terminalText(r.summary, SHOWN.summary)}`;
}

function chainLine(r: Record_, o: RenderOptions): string {
  const kind = terminalText(r.kind, 32);
  const head = `${terminalText(r.time, 32)} ${paint(kind.toUpperCase(), 'dim', o)} ${terminalText(r.chain)} seq ${terminalText(r.seq, 32)}`;
  switch (r.kind) {
    case 'checkpoint': return `${head} count ${terminalText(r.count, 32)} key ${terminalText(r.keyId, 64)}`;
    case 'file': return `${head} file ${terminalText(r.file, 32)}`;
    case 'start': return `${head} resumed ${terminalText(r.resumed, 32)}${r.torn === undefined ? '' : ` torn ${terminalText(r.torn)}`}`;
    case 'gap': return `${terminalText(r.time, 32)} ${paint('GAP', 'red', o)} ${terminalText(r.droppedRecords, 32)} records dropped from ${terminalText(r.firstDroppedAt, 32)} to ${terminalText(r.lastDroppedAt, 32)}`;
    default: return head;
  }
}

/** One record as one line for a person (no newline). Never contains a control character other than this module's SGR codes. */
export function renderRecord(record: Record_, options: RenderOptions): string {
  switch (record.kind) {
    case 'request':
    case 'admin':
      return exchangeLine(record, options);
    case 'alert':
      return alertLine(record, options);
    default:
      return chainLine(record, options);
  }
}

function counts(title: string, values: Readonly<Record<string, number>>): string[] {
  const entries = Object.entries(values).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) return [`${title}: none`];
  return [`${title}:`, ...entries.map(([k, n]) => `  ${String(n).padStart(10)}  ${terminalText(k, 32)}`)];
}

function topList(title: string, rows: readonly TopEntry[]): string[] {
  if (rows.length === 0) return [`${title}: none`];
  return [`${title}:`, ...rows.map((r) => `  ${`${r.maxOverestimate > 0 ? '≤' : ''}${r.count}`.padStart(10)}  ${terminalText(r.key)}`)];
}

/** `audit stats` for a person: totals, then each top list. */
export function renderStats(stats: TrailStats, options: RenderOptions): string {
  const lines = [
    paint(`Records ${stats.records}`, 'bold', options) + (stats.from === null ? '' : ` from ${terminalText(stats.from, 32)} to ${terminalText(stats.to, 32)}`),
    ...counts('By kind', stats.byKind),
    ...counts('By decision', stats.byDecision),
    ...counts('By status', stats.byStatusClass),
    ...topList('Top identities', stats.topIdentities),
    ...topList('Top routes', stats.topRoutes),
    ...topList('Top denial codes', stats.topReasons),
  ];
  if (!stats.exact) lines.push(`Counts marked ≤ are upper bounds: more than ${stats.maxDistinct} distinct keys were seen (space-saving approximation).`);
  return lines.join('\n') + '\n';
}
