// The verdict of `npm run soak` on a series sampled during the measured phase: is it flat? Pure
// functions of the samples, so the rule can be checked on made-up series (docs/performance.md#soak).
//
// A series is judged on runs of at least MIN_JUDGED_SEC: under load the gateway's RSS is a
// sawtooth of some 50 MiB with a period of up to a minute (V8 grows its old space, then a major
// collection gives pages back), and a shorter run cannot tell it from a trend; a shorter run is
// checked for failed requests only. A judged series is flat when both hold:
//   1. end ≤ start × ratio + slack — start is the mean of the first minute after the warm-up, end
//      the mean of the last minute;
//   2. the least-squares slope over the second half of the measured phase is at most
//      maxSlopePerMin.
// The max is reported, not judged: one collection or one slow scrape makes a peak, not a trend.

/** Per series: the ratio and absolute slack of rule 1, the slope bound of rule 2 (units per minute). */
export const FLAT_RULES = Object.freeze({
  rssMiB: Object.freeze({ unit: 'MiB', ratio: 1.10, slack: 16, maxSlopePerMin: 2 }),
  loopP99Ms: Object.freeze({ unit: 'ms', ratio: 1.10, slack: 5, maxSlopePerMin: 2 }),
});

/** Shortest measured phase (seconds) whose series are judged. */
export const MIN_JUDGED_SEC = 240;

/** Length of the start and end windows: a minute, or a quarter of a shorter run. */
export function windowSec(durationSec) {
  return Math.min(60, durationSec / 4);
}

function mean(values) {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Least-squares slope of `values` against `times` (seconds), per minute; null with fewer than 2 distinct times. */
export function slopePerMin(times, values) {
  const n = times.length;
  if (n < 2) return null;
  const mt = mean(times);
  const mv = mean(values);
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (times[i] - mt) * (values[i] - mv);
    den += (times[i] - mt) ** 2;
  }
  return den === 0 ? null : (num / den) * 60;
}

/**
 * Judges one series. `samples` are `{ t, [key]: value }` with t in seconds since the measured
 * phase began (0 ≤ t ≤ durationSec); samples whose value is null are left out.
 * Answers { start, end, max, slopePerMin, judged, flat, why }: `flat` is null when
 * the run is too short to judge, `why` says what failed (null unless flat is false).
 */
export function judgeSeries(samples, key, durationSec, rule = FLAT_RULES[key]) {
  const points = samples.filter((s) => s[key] !== null && s[key] !== undefined && Number.isFinite(s[key]));
  const w = windowSec(durationSec);
  const start = mean(points.filter((s) => s.t <= w).map((s) => s[key]));
  const end = mean(points.filter((s) => s.t >= durationSec - w).map((s) => s[key]));
  const max = points.length === 0 ? null : Math.max(...points.map((s) => s[key]));
  const half = points.filter((s) => s.t >= durationSec / 2);
  const slope = slopePerMin(half.map((s) => s.t), half.map((s) => s[key]));
  const judged = durationSec >= MIN_JUDGED_SEC;
  const figures = { start, end, max, slopePerMin: slope, judged };
  if (!judged) return { ...figures, flat: null, why: null };
  const reasons = [];
  if (start === null || end === null) reasons.push('no samples in the start or end window');
  else if (end > start * rule.ratio + rule.slack) {
    reasons.push(`end ${end.toFixed(1)} ${rule.unit} > start × ${rule.ratio} + ${rule.slack} ${rule.unit} = ${(start * rule.ratio + rule.slack).toFixed(1)}`);
  }
  if (slope === null) reasons.push('too few samples in the second half to fit a slope');
  else if (slope > rule.maxSlopePerMin) {
    reasons.push(`slope over the second half ${slope.toFixed(2)} ${rule.unit}/min > ${rule.maxSlopePerMin}`);
  }
  return { ...figures, flat: reasons.length === 0, why: reasons.length === 0 ? null : reasons.join('; ') };
}
