import { TrailReadError } from '../audit/read/file-source.js';
import { matches, type RecordFilter } from '../audit/read/filter.js';
import { renderStats, terminalJson, terminalText } from '../audit/read/format.js';
import type { RecordSource } from '../audit/read/source.js';
import { STATS_DEFAULTS, StatsCollector } from '../audit/read/stats.js';
import { UsageError, type Invocation } from './command.js';
import { SourceOpenError, countOption, openSource, outputMode, timeOption } from './audit-source.js';
import { reportMalformed } from './audit-tail.js';

export const MAX_TOP = 1000;

/**
 * `portcullis audit stats`: totals by kind, decision and status class, and the top identities,
 * routes and denial codes, over the records in [--since, --until]. Exit codes: 0 done, 1 the trail
 * cannot be read, 2 bad arguments.
 */
export async function auditStatsCommand({ values }: Invocation): Promise<number> {
  const now = Date.now();
  const sinceMs = timeOption(values, 'since', now);
  const untilMs = timeOption(values, 'until', now);
  if (sinceMs !== undefined && untilMs !== undefined && untilMs < sinceMs) throw new UsageError('--until is before --since');
  const top = countOption(values, 'top', 1, MAX_TOP, STATS_DEFAULTS.top);
  const mode = outputMode(values, (process.stdout as { isTTY?: boolean }).isTTY === true);
  const filter: RecordFilter = { kinds: null, ...(sinceMs === undefined ? {} : { sinceMs }), ...(untilMs === undefined ? {} : { untilMs }) };
  let source: RecordSource;
  try {
    source = await openSource(values);
  } catch (err) {
    if (err instanceof SourceOpenError) { process.stderr.write(`portcullis audit stats: ${terminalText(err.message, 2000)}\n`); return 1; }
    throw err;
  }
  const stats = new StatsCollector({ top, maxDistinct: STATS_DEFAULTS.maxDistinct });
  try {
    for await (const r of source.records({ follow: false, ...(sinceMs === undefined ? {} : { since: sinceMs }) })) {
      if (matches(r.record, filter)) stats.add(r.record);
    }
  } catch (err) {
    // A read failure of any source (a file, the stream) is the trail's failure, not a crash.
    if (err instanceof TrailReadError || err instanceof Error) {
      process.stderr.write(`portcullis audit stats: ${terminalText(err.message, 2000)}\n`);
      await source.close();
      return 1;
    }
    throw err;
  }
  await source.close();
  const result = stats.result();
  process.stdout.write(mode.human ? renderStats(result, { color: mode.color }) : `${terminalJson(result, 2)}\n`);
  reportMalformed('stats', source);
  return 0;
}
