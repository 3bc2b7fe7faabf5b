import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOAK = join(ROOT, 'bench', 'soak.mjs');
const RUN_TIMEOUT_MS = 60_000;

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `node bench/soak.mjs` to its end; past RUN_TIMEOUT_MS it is sent SIGTERM (it then stops its children and exits 130). */
function runSoak(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK, ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS, killSignal: 'SIGTERM',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.once('error', reject);
    child.once('close', (code) => { resolve({ code, stdout, stderr }); });
  });
}

/** bench/flatness.mjs, typed for what this test calls. */
interface Judgement { start: number | null; end: number | null; judged: boolean; slopeJudged: boolean; flat: boolean | null; why: string | null }
interface Flatness {
  judgeSeries(samples: readonly { t: number; v: number | null }[], key: 'v', durationSec: number, rule: { unit: string; ratio: number; slack: number; maxSlopePerMin: number }): Judgement;
  slopePerMin(times: readonly number[], values: readonly number[]): number | null;
}
const flatness = (await import(new URL('../../bench/flatness.mjs', import.meta.url).href)) as Flatness;
const RULE = { unit: 'MiB', ratio: 1.1, slack: 16, maxSlopePerMin: 2 };

/** A 600 s series sampled every 5 s: `base + perMin × t/60`, with a ±`wobble` sawtooth. */
function series(base: number, perMin: number, wobble = 0): { t: number; v: number }[] {
  return Array.from({ length: 121 }, (_, i) => ({ t: i * 5, v: base + (perMin * i * 5) / 60 + (i % 4 < 2 ? wobble : -wobble) }));
}

describe('npm run soak', () => {
  it('holds a given rate on the full pipeline, answers every request and prints the report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-soak-test-'));
    try {
      const out = join(dir, 'soak.json');
      const run = await runSoak(['--rate', '50'], { SOAK_DURATION: '3', SOAK_WARMUP: '1', SOAK_OUT: out });
      const output = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.code, 0, output);
      // 50 requests/s for 3 s after a 1 s warm-up ramping from 0: exactly 25 + 150 requests, open loop.
      assert.match(run.stdout, /^requests: sent 175, ok 175, failed 0 \(connect 0, read 0, write 0, status 0, timeout 0, overload 0, unanswered 0\)\n {2}of which after the warm-up: sent 150, ok 150$/m, output);
      assert.match(run.stdout, /^latency \(measured phase\): p50 \d+\.\d{3} ms, p99 \d+\.\d{3} ms, p99\.9 \d+\.\d{3} ms, max \d+\.\d{3} ms$/m, output);
      assert.match(run.stdout, /^RSS: start \d+\.\d, end \d+\.\d, max \d+\.\d MiB; .*\(not judged: the run is shorter than 60 s\)$/m, output);
      assert.match(run.stdout, /^event-loop delay p99: start \d+\.\d\d, end \d+\.\d\d, max \d+\.\d\d ms; /m, output);
      assert.match(run.stdout, /^heap used: start \d+\.\d, end \d+\.\d, max \d+\.\d MiB; /m, output);
      assert.match(run.stdout, /^verdict: PASS — no failed request; flatness not judged/m, output);
      const report = JSON.parse(readFileSync(out, 'utf8')) as { rate: number; pass: boolean; capacity: unknown; samples: { t: number; rssMiB: number | null; loopP99Ms: number | null }[] };
      assert.equal(report.rate, 50);
      assert.equal(report.capacity, null, '--rate skips the capacity run');
      assert.equal(report.pass, true);
      const measured = report.samples.filter((s) => s.t >= 0 && s.t <= 3);
      assert.ok(measured.length >= 3, `samples over the measured phase: ${measured.length}\n${output}`);
      assert.ok(measured.every((s) => s.rssMiB !== null && s.rssMiB > 0 && s.loopP99Ms !== null), 'every sample has RSS and event-loop delay');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad arguments with exit 2 and one line, before starting anything', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--rate', '0'], {}, /--rate must be an integer from 1 to 100000, got "0"/],
      [['--rate', '12abc'], {}, /--rate must be an integer/],
      [['--rate', '100001'], {}, /--rate must be an integer from 1 to 100000/],
      [['--rate'], {}, /argument missing|--rate/],
      [['--bogus'], {}, /Unknown option '--bogus'/],
      [['extra'], {}, /Unexpected argument 'extra'/],
      [[], { SOAK_RATE: '-5' }, /SOAK_RATE must be an integer/],
      [[], { SOAK_LOAD: '0' }, /SOAK_LOAD must be a number above 0 and at most 1/],
      [[], { SOAK_LOAD: '1.5' }, /SOAK_LOAD must be a number above 0 and at most 1/],
      [[], { SOAK_LOAD: '0x1' }, /SOAK_LOAD must be a number/],
      [[], { SOAK_DURATION: '0' }, /SOAK_DURATION must be an integer ≥ 1/],
      [[], { SOAK_DURATION: '3601' }, /SOAK_DURATION must be at most 3600/],
      [[], { SOAK_WARMUP: '-1' }, /SOAK_WARMUP must be an integer ≥ 0/],
      [[], { BENCH_LOADGEN: 'ab' }, /BENCH_LOADGEN must be wrk or autocannon/],
    ];
    const runs = await Promise.all(cases.map(([args, env]) => runSoak(args, env)));
    for (const [i, [args, env, reason]] of cases.entries()) {
      const run = runs[i];
      assert.ok(run !== undefined);
      const label = `${args.join(' ')} ${JSON.stringify(env)}`;
      assert.equal(run.code, 2, label);
      assert.equal(run.stdout, '', label);
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `${label}: ${run.stderr}`);
      assert.match(run.stderr, reason, label);
    }
  });

  it('answers --help with its usage', async () => {
    const run = await runSoak(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^usage: npm run soak \[-- --rate N\]/);
    for (const name of ['SOAK_RATE', 'SOAK_LOAD', 'SOAK_DURATION', 'SOAK_WARMUP', 'SOAK_OUT']) assert.ok(run.stdout.includes(name), name);
  });
});

describe('the soak flatness rule', () => {
  it('passes a flat series with a garbage-collector sawtooth', () => {
    const j = flatness.judgeSeries(series(150, 0, 8).map(({ t, v }) => ({ t, v })), 'v', 600, RULE);
    assert.equal(j.judged, true);
    assert.equal(j.slopeJudged, true);
    assert.equal(j.flat, true, j.why ?? '');
  });

  it('fails a slow leak by its slope even when the end stays under start × 1.10 + slack', () => {
    // +3 MiB/min: the last minute averages 178.5 MiB, under 150 × 1.1 + 16 = 181.
    const j = flatness.judgeSeries(series(150, 3), 'v', 600, RULE);
    assert.ok(j.end !== null && j.end < 181, `end ${j.end}`);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /slope over the second half 3\.00 MiB\/min > 2/);
  });

  it('fails a series whose end is above start × ratio + slack', () => {
    const samples = series(150, 0).map(({ t, v }) => ({ t, v: t >= 540 ? v + 40 : v }));
    const j = flatness.judgeSeries(samples, 'v', 600, RULE);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /^end 190\.0 MiB > start × 1\.1 \+ 16 MiB = 181\.0/);
  });

  it('judges nothing on runs shorter than a minute, and no slope on runs shorter than four', () => {
    const short = flatness.judgeSeries([{ t: 0, v: 100 }, { t: 1, v: 500 }, { t: 2, v: 900 }], 'v', 2, RULE);
    assert.equal(short.judged, false);
    assert.equal(short.flat, null);
    const minute = flatness.judgeSeries(Array.from({ length: 13 }, (_, i) => ({ t: i * 5, v: 100 + i })), 'v', 60, RULE);
    assert.equal(minute.judged, true);
    assert.equal(minute.slopeJudged, false);
    assert.equal(minute.flat, true, minute.why ?? '');
  });

  it('leaves out samples without a value, and says so when a window is empty', () => {
    const j = flatness.judgeSeries([{ t: 0, v: null }, { t: 300, v: 100 }, { t: 600, v: null }], 'v', 600, RULE);
    assert.equal(j.flat, false);
    assert.match(j.why ?? '', /no samples in the start or end window/);
  });

  it('fits the least-squares slope per minute', () => {
    assert.equal(flatness.slopePerMin([0, 60, 120], [10, 11, 12]), 1);
    assert.equal(flatness.slopePerMin([5], [1]), null);
    assert.equal(flatness.slopePerMin([5, 5], [1, 2]), null);
  });
});
