import type { Aggregator, Metric, Registry } from 'prom-client';

/**
 * Counters and histograms for the request path. prom-client validates and hashes the label set
 * on every `inc`/`observe`, even through a bound child; these keep one child object per label set,
 * found once by the caller, so counting is an addition. prom-client's registry reads them at
 * scrape time through `get()`, in the same shape its own metrics give (so exposition and the
 * workers' aggregation treat them alike). Label sets are bounded by the callers (config names,
 * status codes, decisions).
 */

type Labels<L extends string> = Readonly<Record<L, string>>;

interface Sample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

interface MetricJson {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: Aggregator;
  readonly values: Sample[];
}

/** What prom-client's registry calls on a metric: its name, and `get`/`reset`. */
abstract class HotMetric<L extends string, C extends { reset(): void }> {
  readonly aggregator: Aggregator = 'sum';
  protected readonly children = new Map<string, { readonly labels: Labels<L>; readonly child: C }>();

  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly L[], registers: readonly Registry[]) {
    // A registry accepts any object with this shape; its type names prom-client's own classes only.
    for (const registry of registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The child of one label set, created at first use; callers keep it. */
  labels(labels: Labels<L>): C {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { labels: { ...labels }, child: this.create() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  protected abstract create(): C;
  abstract get(): MetricJson;

  /** Zeroes every child in place: callers keep their children, which go on counting. */
  reset(): void {
    for (const { child } of this.children.values()) child.reset();
  }
}

/** One counter child: `value` only grows. */
export class CounterChild {
  value = 0;
  inc(): void {
    this.value++;
  }

  reset(): void {
    this.value = 0;
  }
}

export class HotCounter<L extends string> extends HotMetric<L, CounterChild> {
  readonly type = 'counter';

  protected create(): CounterChild {
    return new CounterChild();
  }

  get(): MetricJson {
    const values: Sample[] = [];
    for (const { labels, child } of this.children.values()) values.push({ labels: { ...labels }, value: child.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/**
 * The children of a two-label counter, found by two map look-ups of the label values as they are:
 * counting builds no key and allocates nothing once a label set has been seen.
 */
export class CounterPairs<A extends string, B extends string> {
  private readonly byFirst = new Map<string, Map<string, CounterChild>>();

  constructor(private readonly counter: HotCounter<A | B>, private readonly first: A, private readonly second: B) {}

  inc(a: string, b: string): void {
    let inner = this.byFirst.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.byFirst.set(a, inner);
    }
    let child = inner.get(b);
    if (child === undefined) {
      child = this.counter.labels({ [this.first]: a, [this.second]: b } as Record<A | B, string>);
      inner.set(b, child);
    }
    child.inc();
  }
}

/** One histogram child: a count per bucket (not cumulative; the last is +Inf), the sum and the count. */
export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly upperBounds: readonly number[]) {
    this.counts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.counts[i] as number)++;
    this.sum += value;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramChild> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly L[], readonly upperBounds: readonly number[], registers: readonly Registry[]) {
    super(name, help, labelNames, registers);
  }

  protected create(): HistogramChild {
    return new HistogramChild(this.upperBounds);
  }

  /** As prom-client's histogram gives it: cumulative `_bucket` samples with `le`, then `_sum` and `_count`. */
  get(): MetricJson {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += child.counts[i] as number;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: child.count, metricName: bucket });
      values.push({ labels: { ...labels }, value: child.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: child.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
