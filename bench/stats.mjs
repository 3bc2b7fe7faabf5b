// The bench's arithmetic: medians over rounds, ratios paired by round, and aims checked against
// them. Pure functions of the load generator's reports, so the same figures reach the console,
// .bench/last.json and the --report tables.

export const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export const round = (x, digits) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits);

const medianOrNull = (values) => (values.some((v) => v === null) ? null : median(values));

/**
 * One scenario's figures over its rounds. `runs` are the load generator's reports, each with the
 * server's CPU time (`serverCpuUs`) and largest resident set (`maxRssKiB`) during the window.
 */
export function summariseRuns(runs) {
  const errs = runs.map((r) => Object.values(r.errors).reduce((a, b) => a + b, 0));
  const rps = runs.map((r) => r.requests / (r.durationUs / 1e6));
  return {
    requestsPerSec: round(median(rps), 1),
    latencyMs: {
      mean: round(median(runs.map((r) => r.latencyUs.mean / 1000)), 3),
      p50: round(median(runs.map((r) => r.latencyUs.p50 / 1000)), 3),
      p90: round(median(runs.map((r) => r.latencyUs.p90 / 1000)), 3),
      p99: round(median(runs.map((r) => r.latencyUs.p99 / 1000)), 3),
      p999: round(median(runs.map((r) => r.latencyUs.p999 / 1000)), 3),
      max: round(Math.max(...runs.map((r) => r.latencyUs.max / 1000)), 3),
    },
    // (max − min) ÷ median of requests/s over the rounds: the run-to-run noise of this scenario.
    spread: runs.length < 2 ? null : round((Math.max(...rps) - Math.min(...rps)) / median(rps), 3),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    errors: errs.reduce((a, b) => a + b, 0),
    // CPU of the server under test (all processes and threads of its tree) over the measured window.
    serverCpu: runs.some((r) => r.serverCpuUs === null) ? null : {
      utilisation: round(median(runs.map((r) => r.serverCpuUs / r.durationUs)), 3),
      usPerRequest: round(median(runs.map((r) => r.serverCpuUs / r.requests)), 1),
    },
    // The largest resident set of the server's tree sampled in any round's window, in MiB.
    rssMiB: runs.some((r) => r.maxRssKiB === null) ? null : round(Math.max(...runs.map((r) => r.maxRssKiB)) / 1024, 1),
    rounds: runs.map((r) => ({
      requestsPerSec: round(r.requests / (r.durationUs / 1e6), 1),
      p50Ms: round(r.latencyUs.p50 / 1000, 3), p99Ms: round(r.latencyUs.p99 / 1000, 3), p999Ms: round(r.latencyUs.p999 / 1000, 3),
      serverCpuUsPerRequest: r.serverCpuUs === null ? null : round(r.serverCpuUs / r.requests, 1),
      rssMiB: r.maxRssKiB === null ? null : round(r.maxRssKiB / 1024, 1),
      errors: r.errors,
    })),
  };
}

/**
 * Ratios of a scenario to another. Rounds are paired: round r of both ran minutes apart at most,
 * so each round gives a ratio and the median of those is reported. That cancels most of the slow
 * drift of a shared machine, which a ratio of two medians would not. Null when `base` was not
 * measured; a ratio is null when either side lacks that figure.
 */
export function compare(result, base) {
  if (base === undefined) return null;
  const pairs = result.rounds.map((r, i) => [r, base.rounds[i]]).filter(([, b]) => b !== undefined);
  const ratio = (key) => (a, b) => (a[key] === null || b[key] === null ? null : a[key] / b[key]);
  const paired = (f) => round(medianOrNull(pairs.map(([a, b]) => f(a, b))), 3);
  const rps = ratio('requestsPerSec');
  const cpu = ratio('serverCpuUsPerRequest');
  return {
    against: base.name,
    throughput: paired(rps),
    p50: paired(ratio('p50Ms')),
    p99: paired(ratio('p99Ms')),
    p999: paired(ratio('p999Ms')),
    cpuPerRequest: paired(cpu),
    rss: paired(ratio('rssMiB')),
    addedP50Ms: paired((a, b) => a.p50Ms - b.p50Ms),
    addedP99Ms: paired((a, b) => a.p99Ms - b.p99Ms),
    perRound: pairs.map(([a, b]) => ({
      throughput: round(rps(a, b), 3), cpuPerRequest: round(cpu(a, b), 3), addedP50Ms: round(a.p50Ms - b.p50Ms, 3),
    })),
  };
}

/** What each aim metric reads from a comparison, and whether its bound is a floor or a ceiling. */
const AIM_METRICS = {
  throughput: { label: (against) => `requests/s ÷ ${against}`, bound: 'min' },
  cpuPerRequest: { label: (against) => `CPU µs/request ÷ ${against}`, bound: 'max' },
  addedP50Ms: { label: (against) => `p50 added over ${against} (ms)`, bound: 'max' },
};

/**
 * The scenario's aims, each checked against the scenario it names (default: the baseline).
 * `margin` is the headroom: positive when the aim is met, negative by how much it is missed.
 * An aim whose other scenario was not measured has status 'not measured' and pass null.
 */
export function checkAims(s, byName) {
  return (s.aims ?? []).map((aim) => {
    const against = aim.against ?? s.baseline;
    const metric = AIM_METRICS[aim.metric];
    if (metric === undefined) throw new Error(`scenario ${s.name}: unknown aim metric "${aim.metric}"`);
    const cmp = compare(s, byName.get(against));
    const value = cmp?.[aim.metric] ?? null;
    const base = { scenario: s.name, metric: aim.metric, label: metric.label(against), against, min: aim.min ?? null, goal: aim.goal ?? null, max: aim.max ?? null };
    if (value === null) return { ...base, value: null, status: 'not measured', pass: null, margin: null, perRound: [] };
    const perRound = cmp.perRound.map((p) => p[aim.metric]);
    if (metric.bound === 'min') {
      const status = aim.goal !== undefined && value >= aim.goal ? 'meets goal' : value >= aim.min ? 'meets minimum' : 'BELOW MINIMUM';
      return { ...base, value, status, pass: value >= aim.min, margin: round(value - aim.min, 3), perRound };
    }
    const pass = aim.metric === 'addedP50Ms' ? value < aim.max : value <= aim.max;
    return { ...base, value, status: pass ? 'meets aim' : 'ABOVE AIM', pass, margin: round(aim.max - value, 3), perRound };
  });
}
