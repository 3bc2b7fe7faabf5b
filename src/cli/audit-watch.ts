import { pino } from 'pino';
import { AnomalyMonitor } from '../audit/anomaly/monitor.js';
import type { Alert } from '../audit/anomaly/types.js';
import { alertRecord } from '../audit/anomaly/alert-record.js';
import { FileSource, TrailReadError } from '../audit/read/file-source.js';
import { renderRecord, terminalText } from '../audit/read/format.js';
import type { RecordSource } from '../audit/read/source.js';
import { compileAnomalies, type AnomalyOptions } from '../config/compile-anomalies.js';
import { ConfigError, type ConfigProblem } from '../config/errors.js';
import { loadConfigSections } from '../config/load.js';
import { systemClock } from '../lib/clock.js';
import { canonicalJson } from '../audit/canonical.js';
import { sha256Hex } from '../audit/chain.js';
import { UsageError, type Invocation } from './command.js';
import { Output, SourceOpenError, openSource, outputMode, timeOption } from './audit-source.js';
import { configFile } from './config-file.js';

/** Hashes of the records seen most recently: the stream may hold a record twice (a replay after its de-duplication window). */
const SEEN_HASHES = 65_536;

/** A bounded set of the last `capacity` keys added, oldest forgotten first. */
class RecentSet {
  private readonly keys = new Set<string>();
  constructor(private readonly capacity: number) {}

  /** False when `key` was seen recently; else remembers it. */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.values().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
    return true;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
/** The longest chain name kept as it is in a de-duplication key; a longer one is kept as its SHA-256. */
const MAX_CHAIN_KEY_CHARS = 128;

/**
 * The key a record is de-duplicated by: its chain and its hash, at most a few hundred characters
 * whatever the stream holds (a hostile message can carry a 1 MiB `hash` or chain name, and
 * SEEN_HASHES of those would not be a bound). Null for a record without a well-formed hash: it
 * is looked at every time, as a record without a hash always was.
 */
export function seenKey(chain: string, hash: unknown): string | null {
  if (typeof hash !== 'string' || !HEX64.test(hash)) return null;
  return `${chain.length > MAX_CHAIN_KEY_CHARS ? sha256Hex(chain) : chain} ${hash}`;
}

/**
 * The detectors of the config's `audit.anomalies` (every one at its defaults when the section is
 * absent): `audit watch` runs the detectors the gateways are configured with, over all of them.
 */
async function anomalyOptions(values: Invocation['values']): Promise<AnomalyOptions> {
  const loaded = await loadConfigSections(configFile(values.config), ['audit', 'geoDatabase']);
  const problems: ConfigProblem[] = [];
  const audit = loaded.raw.audit ?? {};
  const options = compileAnomalies({ audit: { ...audit, anomalies: { ...audit.anomalies, enabled: true } }, ...(loaded.raw.geoDatabase === undefined ? {} : { geoDatabase: loaded.raw.geoDatabase }) }, loaded, problems);
  if (problems.length > 0 || options === null) throw new ConfigError(problems);
  return options;
}

/**
 * `portcullis audit watch`: the anomaly detectors over a trail as it is written — the NATS stream
 * every gateway publishes to (so a credential used on two instances is seen once, across them), or
 * a trail directory — printing each alert and posting it to the config's webhook. Runs until
 * SIGINT/SIGTERM. Exit codes: 0 stopped, 1 the source or the config cannot be read, 2 bad arguments.
 */
export async function auditWatchCommand({ values }: Invocation): Promise<number> {
  if (typeof values.from !== 'string') throw new UsageError('--from: the NATS stream (nats://host:4222) or a trail directory to watch');
  // Without --since, from now on: the history is not replayed as if it were happening now.
  const replayFrom = timeOption(values, 'since', Date.now());
  const since = replayFrom ?? Date.now();
  const mode = outputMode(values, (process.stdout as { isTTY?: boolean }).isTTY === true);
  const options = await anomalyOptions(values);
  let source: RecordSource;
  try {
    source = await openSource(values);
  } catch (err) {
    if (err instanceof SourceOpenError) { process.stderr.write(`portcullis audit watch: ${terminalText(err.message, 2000)}\n`); return 1; }
    throw err;
  }
  const out = new Output();
  const print = (alert: Alert): void => {
    const record = alertRecord(alert);
    out.line(mode.human ? renderRecord(record, { color: mode.color }) : canonicalJson(record));
  };
  // Operational lines (webhook failures, each alert's log line) go to stderr, as JSON.
  const logger = pino({ level: 'warn', base: { command: 'audit watch' } }, pino.destination(2));
  const monitor = await AnomalyMonitor.create(options, { logger, clock: systemClock }, { print });
  if (monitor === null) throw new UsageError('audit.anomalies is turned off in the config: nothing to watch for');
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const seen = new RecentSet(SEEN_HASHES);
  try {
    for await (const r of source.records({ follow: true, signal: stop.signal, since })) {
      if (out.isClosed) break;
      const key = seenKey(r.chain, r.record.hash);
      if (key !== null && !seen.add(key)) continue;
      // A replay (--since) moves the detectors' windows by the records' own times; live records by the clock.
      const at = replayFrom === undefined ? systemClock.now() : Date.parse(String(r.record.time));
      monitor.observe({ ...r.record, chain: r.chain } as Parameters<AnomalyMonitor['observe']>[0], Number.isFinite(at) ? at : systemClock.now());
      await out.flush();
    }
    await out.flush();
    return 0;
  } catch (err) {
    if (err instanceof TrailReadError || err instanceof SourceOpenError || !(source instanceof FileSource)) {
      await out.flush();
      process.stderr.write(`portcullis audit watch: ${terminalText(err instanceof Error ? err.message : String(err), 2000)}\n`);
      return 1;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await monitor.close();
    await source.close();
  }
}
