/** A calendar period: a day or a month in a time zone. */
export interface Period {
  /** `2026-11-26` (day) or `2026-11` (month), in the period's time zone. */
  readonly id: string;
  readonly startMs: number;
  /** Exclusive end: the start of the next period. */
  readonly endMs: number;
}

export type PeriodKind = 'day' | 'month';

/** True when `timeZone` is an IANA zone name this runtime knows (`UTC`, `Europe/Berlin`). */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The periods of one kind in one time zone. The current period is cached until it ends, so the
 * request path compares one number; a new one is computed with Intl once per period.
 */
export class Calendar {
  private readonly format: Intl.DateTimeFormat;
  private current: Period | null = null;

  constructor(readonly kind: PeriodKind, readonly timeZone: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
  }

  /** The period holding `now` (ms since the epoch). */
  periodAt(now: number): Period {
    const cached = this.current;
    if (cached !== null && now >= cached.startMs && now < cached.endMs) return cached;
    const { year, month, day } = this.wallClock(now);
    const period = this.kind === 'day'
      ? { id: `${year}-${pad(month)}-${pad(day)}`, startMs: this.midnight(year, month, day), endMs: this.midnight(year, month, day + 1) }
      : { id: `${year}-${pad(month)}`, startMs: this.midnight(year, month, 1), endMs: this.midnight(year, month + 1, 1) };
    this.current = period;
    return period;
  }

  /** The zone's wall-clock date and time at `t`. */
  private wallClock(t: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
    const parts: Record<string, number> = {};
    for (const p of this.format.formatToParts(t)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
    return { year: parts.year ?? 1970, month: parts.month ?? 1, day: parts.day ?? 1, hour: parts.hour ?? 0, minute: parts.minute ?? 0, second: parts.second ?? 0 };
  }

  /** The instant the zone's clock reads 00:00 on the given date (month and day may overflow, as with Date.UTC). */
  private midnight(year: number, month: number, day: number): number {
    const wall = Date.UTC(year, month - 1, day);
    // Subtract the zone's offset at the guess; twice, so a DST change between guess and answer is honoured.
    let t = wall;
    for (let i = 0; i < 2; i++) t = wall - this.offset(t);
    return t;
  }

  /** The zone's offset from UTC at `t`, in ms (the wall clock read as UTC, minus t). */
  private offset(t: number): number {
    const w = this.wallClock(t);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(t / 1000) * 1000;
  }
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
