import type { Logger } from 'pino';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { OperatorError } from '../lib/operator-error.js';
import { MAX_TIMEOUT_MS, systemClock, type Clock, type Timer } from '../lib/clock.js';
import { serialiseRecord, type AuditRecord } from './audit-record.js';
import { checkpointRecord, EMPTY_HEAD, linkObject, linkText, type ChainHead, type Linked, type RecordText } from './chain.js';
import { lockChain, type ChainLock } from './chain-lock.js';
import type { SigningKey } from './signing-key.js';
import type { AuditSink, SinkState } from './sinks/sink.js';
import type { FileSink } from './sinks/file-sink.js';
import type { ChainFiles, ChainResume } from './trail-files.js';

export type { AuditRecord } from './audit-record.js';

/** Why the trail is or is not taking records, for readiness and logs. */
export type AuditState = SinkState;

/** What the trail counts, for the metrics (`portcullis_audit_records_total`, `…_dropped_total{sink}`, `…_checkpoints_total`). */
export interface TrailCounters {
  /** `count` records were chained (counted per link pass, not per record, off the request path). */
  record(count: number): void;
  dropped(sink: string, count: number): void;
  checkpoint(): void;
}

export interface TrailOptions {
  /** `<instance>/<process>`, e.g. `gw-1/main` or `gw-1/w2`. */
  readonly chain: string;
  /** The chain's home: its files hold the chain, and its head is resumed from them. */
  readonly file: FileSink;
  readonly files: ChainFiles;
  /** Reads the chain's files for the head (resumeChain). */
  readonly resume: () => Promise<ChainResume>;
  /** Loads the checkpoint signing key at open. */
  readonly signingKey: () => SigningKey;
  /** Admission bound: request records are refused past it (with the file sink's queue). */
  readonly maxQueueBytes: number;
  readonly checkpointEveryRecords: number;
  readonly checkpointIntervalMs: number;
  readonly rotateMaxBytes: number;
  readonly rotateIntervalMs: number;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly counters?: TrailCounters;
  /** Archiving and retention of the sealed files: started at open, swept after each seal, closed at close. */
  readonly retention?: { start(): void; close(): Promise<void> };
}

/** An open run of records dropped, to be written as one `gap` record. */
interface Gap {
  count: number;
  first: string;
  last: string;
}

/** A record waiting to be linked: a serialised request or admin record, or any other object record. */
type Pending = { readonly text: RecordText } | { readonly object: Readonly<Record<string, unknown>> };

/** A generous estimate of a linked request record's bytes beyond its text: `seq`, `prev`, `hash`, separators. */
const CHAIN_MEMBER_BYTES = 180;

/**
 * The audit trail: the one owner of a process's chain (docs/audit.md, "Chain and checkpoint
 * format"). The request path only serialises its record and queues it; at the end of the turn the
 * queue is linked in order (seq, prev, hash; chain.ts) and each linked line handed to every sink.
 * The trail adds the chain's own records: a `file` record at the start of each file, a `start`
 * record at each open, signed checkpoints (every N records, every T ms when records were written,
 * before a file is sealed and at shutdown), and `gap` records for records a sink could not hold.
 *
 * `healthy` is true while every failClosed sink takes records; requests are refused otherwise
 * (503 `audit_unavailable`). Request records that would overflow the file sink's queue are dropped
 * before they are linked (so the file's chain has no hole) and counted in one `gap` record.
 */
export class AuditTrail {
  readonly chain: string;
  private readonly sinks: AuditSink[] = [];
  private readonly file: FileSink;
  private readonly clock: Clock;
  private head: ChainHead = EMPTY_HEAD;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private linkScheduled = false;
  private opened = false;
  private closed = false;
  /** Records dropped before linking (the queue was full or the trail closed). */
  private gap: Gap | null = null;
  private droppedCount = 0;
  /** Per sink: drops already written as gap records, and the run not yet written. */
  private readonly sinkDrops = new Map<AuditSink, { seen: number; open: Gap | null }>();
  private key: SigningKey | null = null;
  /** The chain's one-writer lock, held from open to close. */
  private lock: ChainLock | null = null;
  private sinceCheckpoint = 0;
  private checkpointTimer: Timer | null = null;
  private rotateTimer: Timer | null = null;
  /** The active file: its number, the seq of its first record, when it began, its bytes. */
  private current = { number: 0, firstSeq: 0, startedAt: 0, bytes: 0 };
  /** Records chained since the counter was last told. */
  private chained = 0;

  constructor(private readonly options: TrailOptions) {
    this.chain = options.chain;
    this.file = options.file;
    this.clock = options.clock ?? systemClock;
    this.sinks.push(options.file);
    // The file's queue emptied: a gap waiting for room is written now, not when the next request comes.
    options.file.whenIdle = () => { if (this.gap !== null && !this.closed && this.closeGap()) this.link(); };
  }

  /** Adds a sink (NATS, HTTP, stdout); before open only. */
  addSink(sink: AuditSink): void {
    if (this.opened) throw new Error('audit sinks are added before the trail opens');
    this.sinks.push(sink);
  }

  /** Every sink, the file first: for readiness. */
  sinkStates(): Record<string, SinkState> {
    const states: Record<string, SinkState> = {};
    for (const sink of this.sinks) states[sink.name] = sink.state;
    return states;
  }

  /**
   * Resumes the chain from its files, opens every sink (an OperatorError when one cannot be used
   * at all), and appends the `file` record of a new file and the `start` record.
   */
  async open(): Promise<void> {
    // One writer per chain: taken before the files are read, so no other process moves the head meanwhile.
    this.lock = lockChain(this.options.files.active, this.chain);
    try {
      await this.openLocked();
    } catch (err) {
      if (!this.opened) {
        this.lock.release();
        this.lock = null;
      }
      throw err;
    }
  }

  private async openLocked(): Promise<void> {
    let resume: ChainResume;
    try {
      resume = await this.options.resume();
    } catch (err) {
      if (err instanceof OperatorError) throw err;
      const path = this.options.files.active;
      throw new OperatorError(`dataDir, audit.file: the audit trail ${shownPath(path)} cannot be opened ${fsFailure(err)}; point dataDir (or audit.file) at a place the gateway can write`, { cause: err });
    }
    this.head = resume.head;
    // The key first: a start that fails on it has connected to no sink and created nothing.
    this.key = this.options.signingKey();
    const started = await Promise.allSettled(this.sinks.map((s) => s.start()));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      // The sinks that did start are closed again, so a refused start leaves no connection or timer behind.
      await Promise.all(this.sinks.filter((_, i) => started[i]?.status === 'fulfilled').map((s) => s.close().catch(() => undefined)));
      throw failed.reason;
    }
    this.opened = true;
    const now = this.clock.now();
    const resumed = resume.head.seq > 0;
    if (resume.current === null) {
      this.beginFile(resume.nextFile);
    } else {
      this.current = { number: resume.current.number, firstSeq: resume.current.firstSeq, startedAt: resume.current.startedAt ?? now, bytes: resume.current.bytes };
    }
    this.emit(linkObject({ kind: 'start', chain: this.chain, time: iso(now), resumed, ...(resume.torn > 0 ? { torn: { bytes: resume.torn } } : {}) }, this.head));
    if (resume.torn > 0) this.options.logger.warn({ file: this.options.files.active, bytes: resume.torn }, 'the audit trail ended in an incomplete line (the process was killed during a write); it is ended and the chain resumes after the last complete record');
    this.armCheckpoint();
    this.armRotation();
    this.options.retention?.start();
    // Records queued before the trail opened follow its start record.
    if (this.pending.length > 0 || this.gap !== null) this.link();
  }

  /** False when the trail cannot take more records; requests are then refused. */
  get healthy(): boolean {
    return this.state === 'ok';
  }

  /**
   * `closed` before open and after close; otherwise the worst state of a failClosed sink
   * (`failing` before `backlogged`), and `backlogged` while records were dropped and their gap
   * record is not queued yet. failOpen sinks never make the trail unhealthy.
   */
  get state(): AuditState {
    if (!this.opened || this.closed) return 'closed';
    let state: AuditState = 'ok';
    for (const sink of this.sinks) {
      if (sink.onFailure !== 'failClosed') continue;
      const s = sink.state;
      if (s === 'failing' || s === 'closed') return s;
      if (s === 'backlogged') state = 'backlogged';
    }
    if (state === 'ok' && this.gap !== null && this.file.onFailure === 'failClosed') return 'backlogged';
    if (state === 'ok' && this.file.onFailure === 'failClosed' && this.backlog() * 4 >= this.options.maxQueueBytes * 3) return 'backlogged';
    return state;
  }

  /** Request and admin records that could not be queued at all. */
  get droppedRecords(): number {
    return this.droppedCount;
  }

  private backlog(): number {
    return this.pendingBytes + this.file.queuedBytes;
  }

  /**
   * Re-reads the signing key (after `portcullis audit rotate-key`), so the running gateway signs
   * with the new key without a restart. What is linked so far is first checkpointed with the old
   * key, so every record stays covered by a key whose public half rotate-key kept. True when the
   * key changed; throws an OperatorError (the running key stays) when the new one cannot be used.
   */
  reloadSigningKey(): boolean {
    if (!this.opened || this.closed) return false;
    const next = this.options.signingKey();
    if (next.keyId === this.key?.keyId) return false;
    this.link();
    if (this.sinceCheckpoint > 0) this.checkpoint();
    this.key = next;
    return true;
  }

  /** Queues one request or admin record; false when it was dropped (the queue was full, or the trail closed), which a gap record counts. */
  write(record: AuditRecord): boolean {
    const text = serialiseRecord(record);
    const bytes = text[0].length + text[1].length + text[2].length + text[3].length + CHAIN_MEMBER_BYTES;
    if (this.closed || !this.closeGap(bytes) || this.backlog() + bytes > this.options.maxQueueBytes) {
      this.drop(record.time);
      return false;
    }
    this.queue({ text }, bytes);
    return true;
  }

  /** Queues an object record (an alert, or any record other than a request's): linked after what was queued before it. It must not carry `seq`, `prev` or `hash`. */
  append(record: Readonly<Record<string, unknown>>): void {
    if (this.closed) { this.drop(iso(this.clock.now())); return; }
    const rest = Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'seq' && k !== 'prev' && k !== 'hash'));
    this.queue({ object: rest }, JSON.stringify(rest).length + CHAIN_MEMBER_BYTES);
  }

  private queue(item: Pending, bytes: number): void {
    this.pending.push(item);
    this.pendingBytes += bytes;
    if (!this.linkScheduled) { this.linkScheduled = true; setImmediate(this.link); }
  }

  private drop(time: string): void {
    this.droppedCount++;
    this.options.counters?.dropped(this.file.name, 1);
    if (this.gap === null) this.gap = { count: 1, first: time, last: time };
    else { this.gap.count++; this.gap.last = time; }
  }

  /**
   * Queues the gap record of records dropped before linking once it fits together with the
   * `following` bytes of the record that comes next; false while they do not. Closing a gap only
   * when the next record fits too keeps one outage one gap record.
   */
  private closeGap(following = 0, force = false): boolean {
    const gap = this.gap;
    if (gap === null) return true;
    // While the file cannot be written nothing frees room for long: one outage stays one gap.
    if (!force && this.file.state === 'failing') return false;
    const record = gapRecord(gap, null, this.clock.now());
    const bytes = JSON.stringify(record).length + CHAIN_MEMBER_BYTES;
    if (!force && this.backlog() + bytes + following > this.options.maxQueueBytes) return false;
    this.gap = null;
    this.options.logger.error({ dropped: gap.count, from: gap.first, to: gap.last }, 'audit records dropped: the queue was full');
    this.queue({ object: record }, bytes);
    return true;
  }

  /** Links every queued record in order and hands each to every sink. */
  private readonly link = (): void => {
    this.linkScheduled = false;
    if (!this.opened) return;
    const items = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const item of items) {
      this.emit('text' in item ? linkText(item.text, this.head) : linkObject(item.object, this.head));
      if (this.sinceCheckpoint >= this.options.checkpointEveryRecords) this.checkpoint();
      if (this.current.bytes >= this.options.rotateMaxBytes) this.rotate();
    }
    this.noteSinkDrops();
    this.countChained();
    // The queue is empty: a gap waiting for room is written now, not when the next request comes.
    if (this.gap !== null && this.closeGap()) this.link();
  };

  private countChained(): void {
    if (this.chained === 0) return;
    this.options.counters?.record(this.chained);
    this.chained = 0;
  }

  private emit(linked: Linked): void {
    this.head = linked;
    this.current.bytes += Buffer.byteLength(linked.line);
    this.sinceCheckpoint++;
    this.chained++;
    const entry = { chain: this.chain, line: linked.line, hash: linked.hash, seq: linked.seq };
    for (const sink of this.sinks) sink.accept(entry);
  }

  /**
   * Sink drops become gap records, one per run per sink, written once the sink takes records
   * again (so the gap record itself reaches it).
   */
  private noteSinkDrops(): void {
    for (const sink of this.sinks) {
      let seen = this.sinkDrops.get(sink);
      if (seen === undefined) { seen = { seen: 0, open: null }; this.sinkDrops.set(sink, seen); }
      const dropped = sink.dropped;
      if (dropped > seen.seen) {
        const now = iso(this.clock.now());
        const count = dropped - seen.seen;
        seen.seen = dropped;
        this.options.counters?.dropped(sink.name, count);
        if (seen.open === null) seen.open = { count, first: now, last: now };
        else { seen.open.count += count; seen.open.last = now; }
      }
      if (seen.open !== null && (sink.state === 'ok' || this.closed)) {
        const gap = seen.open;
        seen.open = null;
        this.options.logger.error({ sink: sink.name, dropped: gap.count, from: gap.first, to: gap.last }, 'audit records dropped by a sink');
        this.emit(linkObject(gapRecord(gap, sink.name, this.clock.now()), this.head));
        // The gap record itself may have been dropped by a sink still full: counted next time.
        seen.seen = sink.dropped;
      }
    }
  }

  /** Appends a signed checkpoint of the head (docs/audit.md, "Checkpoints"). */
  private checkpoint(): void {
    const key = this.key;
    if (key === null || this.head.seq === 0) return;
    const claim = { chain: this.chain, count: this.head.seq, head: this.head.hash, keyId: key.keyId, time: iso(this.clock.now()) };
    this.sinceCheckpoint = 0;
    this.emit(linkObject(checkpointRecord(claim, key.privateKey), this.head));
    // The checkpoint is not a record a later checkpoint must cover on its own account.
    this.sinceCheckpoint = 0;
    this.options.counters?.checkpoint();
  }

  private beginFile(number: number): void {
    const now = this.clock.now();
    this.current = { number, firstSeq: this.head.seq + 1, startedAt: now, bytes: 0 };
    this.emit(linkObject({ kind: 'file', chain: this.chain, file: number, time: iso(now) }, this.head));
  }

  /** Checkpoints and seals the active file; the next file begins with its `file` record. */
  private rotate(): void {
    this.checkpoint();
    this.file.seal(this.options.files.sealed(this.current.firstSeq));
    this.beginFile(this.current.number + 1);
    this.armRotation();
  }

  private armCheckpoint(): void {
    if (this.closed) return;
    this.checkpointTimer = this.clock.setTimer(() => {
      this.checkpointTimer = null;
      this.link();
      if (this.sinceCheckpoint > 0) this.checkpoint();
      this.noteSinkDrops();
      this.armCheckpoint();
    }, this.options.checkpointIntervalMs);
  }

  private armRotation(): void {
    this.rotateTimer?.cancel();
    this.rotateTimer = null;
    if (this.closed) return;
    const due = this.current.startedAt + this.options.rotateIntervalMs - this.clock.now();
    this.rotateTimer = this.clock.setTimer(() => {
      this.rotateTimer = null;
      this.link();
      // A file with nothing after its own file record is not sealed: it would only add a file.
      if (this.current.startedAt + this.options.rotateIntervalMs <= this.clock.now() && this.head.seq > this.current.firstSeq + 1) this.rotate();
      else if (this.current.startedAt + this.options.rotateIntervalMs <= this.clock.now()) { this.current.startedAt = this.clock.now(); this.armRotation(); }
      else this.armRotation();
    }, Math.min(MAX_TIMEOUT_MS, Math.max(0, due)));
  }

  /** Resolves once every record queued before the call is delivered by every sink, or a sink waits for its next retry. */
  async flushed(): Promise<void> {
    if (this.linkScheduled) this.link();
    await Promise.all(this.sinks.map((s) => s.flushed()));
  }

  /** Links what is queued, appends the shutdown checkpoint, and closes every sink (each delivers what it can). */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.opened) {
      this.link();
      // The file sink keeps room beyond the bound for the trail's own records: the gap is written whatever the queue holds.
      this.closeGap(0, true);
      this.link();
    }
    this.closed = true;
    this.checkpointTimer?.cancel();
    this.rotateTimer?.cancel();
    if (this.opened) {
      this.noteSinkDrops();
      if (this.sinceCheckpoint > 0) this.checkpoint();
      this.countChained();
    }
    await Promise.all(this.sinks.map((s) => s.close().catch((err: unknown) => { this.options.logger.error({ err, sink: s.name }, 'closing an audit sink failed'); })));
    await this.options.retention?.close();
    this.lock?.release();
    this.lock = null;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A `gap` record (docs/audit.md, "Other records"); `sink` names the sink that dropped them, absent when the trail itself did. */
function gapRecord(gap: Gap, sink: string | null, now: number): Record<string, unknown> {
  return { kind: 'gap', time: iso(now), droppedRecords: gap.count, firstDroppedAt: gap.first, lastDroppedAt: gap.last, ...(sink === null ? {} : { sink }) };
}
