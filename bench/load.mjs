// The closed-loop load generators of a bench run: wrk when it is installed (or BENCH_LOADGEN=wrk),
// else autocannon in its own process (bench/autocannon-driver.mjs). Each run is one child process,
// bounded in time, that prints one JSON report line.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand, launch, stopChild, waitForLine } from './children.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));

/** `{ name: 'wrk' | 'autocannon', version }`; `wanted` is BENCH_LOADGEN ('' picks wrk when on PATH). */
export function pickLoadGenerator(wanted) {
  if (wanted !== '' && wanted !== 'wrk' && wanted !== 'autocannon') throw new Error(`BENCH_LOADGEN must be wrk or autocannon, got "${wanted}"`);
  if (wanted !== 'autocannon' && hasCommand('wrk')) {
    const v = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
    const version = /wrk\s+(\S+)/.exec(`${v.stdout}${v.stderr}`)?.[1] ?? 'unknown';
    return { name: 'wrk', version };
  }
  if (wanted === 'wrk') throw new Error('BENCH_LOADGEN=wrk but wrk is not on PATH');
  const version = JSON.parse(spawnSync(process.execPath, ['-p', 'JSON.stringify(require("autocannon/package.json").version)'], { cwd: ROOT, encoding: 'utf8' }).stdout);
  return { name: 'autocannon', version };
}

/**
 * One bounded load run against `url`; resolves with the generator's report. `method` and `body`
 * (a string, sent with its Content-Length on every request) default to a GET without a body.
 */
export async function runLoad(loadgen, layout, { url, connections, durationSec, headers, streams, ca, method = 'GET', body }) {
  let child;
  if ((method !== 'GET' || body !== undefined) && streams !== undefined) throw new Error('the HTTP/2 load driver sends GET without a body');
  if (streams !== undefined) {
    // HTTP/2: streams multiplexed on each connection, which neither wrk nor autocannon sends.
    child = launch('h2-load', process.execPath, [join(BENCH, 'h2-load-driver.mjs'), JSON.stringify({ url, connections, streams, durationSec, headers, ca })],
      { cpus: layout.loadCore ?? null, layout });
  } else if (loadgen.name === 'wrk') {
    const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    // wrk-report.lua sets the method and body from these (wrk adds the Content-Length).
    const env = { ...process.env, BENCH_METHOD: method, BENCH_BODY: body ?? '' };
    child = launch('wrk', 'wrk', ['-t1', `-c${connections}`, `-d${durationSec}s`, '--timeout', '5s', '-s', join(BENCH, 'wrk-report.lua'), ...headerArgs, url],
      { cpus: layout.loadCore ?? null, layout, env });
  } else {
    child = launch('autocannon', process.execPath, [join(BENCH, 'autocannon-driver.mjs'), JSON.stringify({ url, connections, durationSec, headers, method, body })],
      { cpus: layout.loadCore ?? null, layout });
  }
  const report = waitForLine(child, (line) => {
    const m = /^(?:WRK|LOAD)_JSON (.*)$/.exec(line);
    return m === null ? undefined : JSON.parse(m[1]);
  }, (durationSec + 30) * 1000);
  try {
    return await report;
  } finally {
    await stopChild(child);
  }
}

/** Load-generator errors of one report, summed over their kinds. */
export function errorCount(report) {
  return Object.values(report.errors).reduce((a, b) => a + b, 0);
}
