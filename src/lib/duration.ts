const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(0|[1-9][0-9]{0,5})([smhd])$/;

/** `90d`, `24h`, `30m`, `45s` (or `0s`) in milliseconds, or null when `text` is not such a duration. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text);
  if (m === null) return null;
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

/** The largest whole unit that expresses `ms` exactly (`7776000000` → `90d`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
