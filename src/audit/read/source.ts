/** One record as read back from a trail: a file, a directory of files, or the NATS stream. */
export interface SourceRecord {
  /** The chain it belongs to (docs/audit.md, "Chains"). */
  readonly chain: string;
  /** The line as stored, without its newline. */
  readonly line: string;
  /** The line parsed; a line that does not parse is not yielded (readers count it instead). */
  readonly record: Readonly<Record<string, unknown>>;
}

export interface ReadOptions {
  /** Keep reading as records arrive, until `signal` aborts. */
  readonly follow: boolean;
  /** Only records at or after this time (ms since the epoch), when the source can seek. */
  readonly since?: number;
  readonly signal?: AbortSignal;
}

/** Where `audit tail`, `audit stats` and `audit watch` read records from. */
export interface RecordSource {
  /** A name for messages: the path or the stream URL, never credentials. */
  readonly name: string;
  records(options: ReadOptions): AsyncIterable<SourceRecord>;
  close(): Promise<void>;
}
