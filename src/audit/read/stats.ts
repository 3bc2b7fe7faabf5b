// `audit stats`: totals and top lists over a range of the trail, in memory bounded whatever the
// trail holds. An attacker chooses identities (subjects of failed logins, key ids) and paths, so a
// count per distinct key would grow with the attack; the top lists use the space-saving algorithm
// (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
// Streams", ICDT 2005) over at most `maxDistinct` keys.

/** One row of a top list. `count` is exact when `maxOverestimate` is 0; otherwise the true count lies in [count - maxOverestimate, count]. */
export interface TopEntry {
  readonly key: string;
  readonly count: number;
  readonly maxOverestimate: number;
}

interface Bucket {
  readonly count: number;
  readonly entries: Set<Entry>;
  prev: Bucket | null;
  next: Bucket | null;
}

interface Entry {
  key: string;
  /** How much `bucket.count` may exceed the key's true count (the count of the key it replaced). */
  error: number;
  bucket: Bucket;
}

/** Keys longer than this are counted by their first MAX_KEY_CHARS characters (records cap theirs lower). */
export const MAX_KEY_CHARS = 512;

/**
 * Counts of string keys: exact while at most `capacity` distinct keys have been seen; past that,
 * space-saving — a new key takes the place of a key with the smallest count and inherits that
 * count (as its possible overestimate). Every key whose true count exceeds total/capacity is kept,
 * and no kept count is ever less than the key's true count. O(1) per add (the "stream summary":
 * buckets of equal counts in a list ordered by count), memory O(capacity).
 */
export class TopCounter {
  private readonly entries = new Map<string, Entry>();
  /** The bucket of the smallest count, and of the largest. */
  private head: Bucket | null = null;
  private tail: Bucket | null = null;
  private replaced = false;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  /** How many keys are tracked: never more than `capacity`. */
  get size(): number {
    return this.entries.size;
  }

  /** True while no key has been replaced: every count is exact. */
  get exact(): boolean {
    return !this.replaced;
  }

  add(rawKey: string): void {
    const key = rawKey.length > MAX_KEY_CHARS ? rawKey.slice(0, MAX_KEY_CHARS) : rawKey;
    const found = this.entries.get(key);
    if (found !== undefined) { this.increment(found); return; }
    if (this.entries.size < this.capacity) {
      let first = this.head;
      if (first === null || first.count !== 1) first = this.insertAfter(null, 1);
      const entry: Entry = { key, error: 0, bucket: first };
      first.entries.add(entry);
      this.entries.set(key, entry);
      return;
    }
    // Full: the new key replaces one of those with the smallest count.
    const min = this.head;
    const victim = min?.entries.values().next().value;
    if (min === null || victim === undefined) return;
    this.replaced = true;
    this.entries.delete(victim.key);
    victim.key = key;
    victim.error = min.count;
    this.entries.set(key, victim);
    this.increment(victim);
  }

  /** The `n` keys with the largest counts, largest first (equal counts by key). */
  top(n: number): TopEntry[] {
    const out: TopEntry[] = [];
    for (let b = this.tail; b !== null && out.length < n; b = b.prev) {
      const keys = [...b.entries].map((e) => e.key).sort();
      for (const key of keys) {
        const e = this.entries.get(key);
        if (e !== undefined) out.push({ key, count: b.count, maxOverestimate: e.error });
      }
    }
    return out.slice(0, n);
  }

  private increment(entry: Entry): void {
    const from = entry.bucket;
    let to = from.next;
    if (to === null || to.count !== from.count + 1) to = this.insertAfter(from, from.count + 1);
    from.entries.delete(entry);
    to.entries.add(entry);
    entry.bucket = to;
    if (from.entries.size === 0) this.unlink(from);
  }

  /** A new empty bucket of `count` after `before` (at the head when null). */
  private insertAfter(before: Bucket | null, count: number): Bucket {
    const next = before === null ? this.head : before.next;
    const bucket: Bucket = { count, entries: new Set(), prev: before, next };
    if (before === null) this.head = bucket; else before.next = bucket;
    if (next === null) this.tail = bucket; else next.prev = bucket;
    return bucket;
  }

  private unlink(bucket: Bucket): void {
    if (bucket.prev === null) this.head = bucket.next; else bucket.prev.next = bucket.next;
    if (bucket.next === null) this.tail = bucket.prev; else bucket.next.prev = bucket.prev;
  }
}

/** Counts per key of a small fixed set; anything else is counted as `other`, so a tampered trail cannot grow the map. */
function tally(known: readonly string[]): { add(key: unknown): void; result(): Record<string, number> } {
  const counts = new Map<string, number>(known.map((k) => [k, 0]));
  return {
    add(key) {
      const k = typeof key === 'string' && counts.has(key) ? key : 'other';
      counts.set(k, (counts.get(k) ?? 0) + 1);
    },
    result: () => Object.fromEntries([...counts].filter(([, n]) => n > 0)),
  };
}

export interface StatsOptions {
  /** Rows in each top list. */
  readonly top: number;
  /** Distinct keys each top list tracks (see TopCounter). */
  readonly maxDistinct: number;
}

export const STATS_DEFAULTS = Object.freeze({ top: 10, maxDistinct: 10_000 });

/** What `audit stats` reports. */
export interface TrailStats {
  /** The earliest and latest `time` among the records counted; null when none was. */
  readonly from: string | null;
  readonly to: string | null;
  readonly records: number;
  readonly byKind: Readonly<Record<string, number>>;
  /** Request and admin records by decision. */
  readonly byDecision: Readonly<Record<string, number>>;
  /** Request and admin records by status class (`2xx`, …). */
  readonly byStatusClass: Readonly<Record<string, number>>;
  /** By `identity.subject`. */
  readonly topIdentities: readonly TopEntry[];
  /** By `route`. */
  readonly topRoutes: readonly TopEntry[];
  /** Denial codes (`reason`) of records not allowed. */
  readonly topReasons: readonly TopEntry[];
  /** True when every count above is exact; false once a top list held `maxDistinct` keys and replaced one. */
  readonly exact: boolean;
  readonly maxDistinct: number;
}

/** Collects TrailStats from records fed one by one. */
export class StatsCollector {
  private records = 0;
  private from: { ms: number; text: string } | null = null;
  private to: { ms: number; text: string } | null = null;
  private readonly kinds = tally(['request', 'admin', 'alert', 'gap', 'checkpoint', 'file', 'start']);
  private readonly decisions = tally(['allow', 'deny', 'error', 'abort']);
  private readonly classes = tally(['1xx', '2xx', '3xx', '4xx', '5xx']);
  private readonly identities: TopCounter;
  private readonly routes: TopCounter;
  private readonly reasons: TopCounter;

  constructor(private readonly options: StatsOptions = STATS_DEFAULTS) {
    this.identities = new TopCounter(options.maxDistinct);
    this.routes = new TopCounter(options.maxDistinct);
    this.reasons = new TopCounter(options.maxDistinct);
  }

  add(record: Readonly<Record<string, unknown>>): void {
    this.records++;
    this.kinds.add(record.kind);
    if (typeof record.time === 'string') {
      const ms = Date.parse(record.time);
      if (Number.isFinite(ms)) {
        if (this.from === null || ms < this.from.ms) this.from = { ms, text: record.time };
        if (this.to === null || ms > this.to.ms) this.to = { ms, text: record.time };
      }
    }
    if (record.kind !== 'request' && record.kind !== 'admin') return;
    this.decisions.add(record.decision);
    const status = record.status;
    this.classes.add(typeof status === 'number' && Number.isInteger(status) ? `${Math.floor(status / 100)}xx` : null);
    const identity = record.identity;
    if (identity !== null && typeof identity === 'object') {
      const subject = (identity as { subject?: unknown }).subject;
      if (typeof subject === 'string') this.identities.add(subject);
    }
    if (typeof record.route === 'string') this.routes.add(record.route);
    if (record.decision !== 'allow' && typeof record.reason === 'string') this.reasons.add(record.reason);
  }

  result(): TrailStats {
    const n = this.options.top;
    return {
      from: this.from?.text ?? null,
      to: this.to?.text ?? null,
      records: this.records,
      byKind: this.kinds.result(),
      byDecision: this.decisions.result(),
      byStatusClass: this.classes.result(),
      topIdentities: this.identities.top(n),
      topRoutes: this.routes.top(n),
      topReasons: this.reasons.top(n),
      exact: this.identities.exact && this.routes.exact && this.reasons.exact,
      maxDistinct: this.options.maxDistinct,
    };
  }
}
