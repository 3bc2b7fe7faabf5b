// The timestamp and duration accessors rules call are the gateway's own (they replace CEL's
// standard ones: a formatter per zone built once, no process-local zone), so the CEL conformance
// suite's cases for them run here against the gateway's environment, with cases of our own around
// daylight-saving changes and zones with odd offsets. The rest of CEL is the library's to test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCelError, parse } from '@bufbuild/cel';
import { tests } from '@bufbuild/cel-spec/testdata/conformance.js';
import { ruleEnvironment } from '../src/policy/rule-environment.js';
import { plan } from '@bufbuild/cel';

interface Suite { readonly name: string; readonly suites?: readonly Suite[]; readonly tests?: readonly { readonly original: { readonly expr: string; readonly value?: unknown; readonly bindings?: unknown } }[] }

/** The conformance cases of the accessors: the timestamp selectors (with and without a zone) and the duration converters, without bindings. */
function accessorCases(): { expr: string; expected: bigint }[] {
  const out: { expr: string; expected: bigint }[] = [];
  const walk = (s: Suite, path: string): void => {
    const here = `${path}/${s.name}`;
    if (/\/timestamps\/(timestamp_selectors|timestamp_selectors_tz|duration_converters)$/.test(here)) {
      for (const t of s.tests ?? []) {
        const value = t.original.value as { int64Value?: string } | undefined;
        if (t.original.bindings !== undefined || value?.int64Value === undefined) continue;
        out.push({ expr: t.original.expr, expected: BigInt(value.int64Value) });
      }
    }
    for (const c of s.suites ?? []) walk(c, here);
  };
  walk(tests, '');
  return out;
}

function evaluate(expr: string): unknown {
  const zones = new Set([...expr.matchAll(/get\w+\('([^']*)'\)/g)].map((m) => m[1] ?? ''));
  return plan(ruleEnvironment(new Set(), zones), parse(expr))();
}

describe('the timestamp and duration accessors of rules', () => {
  const cases = accessorCases();
  it('finds the conformance suite\'s accessor cases', () => {
    assert.ok(cases.length >= 25, `${cases.length} cases`);
    assert.ok(cases.some((c) => c.expr.includes("'Asia/Kathmandu'")) && cases.some((c) => c.expr.includes("'02:00'")));
  });
  for (const { expr, expected } of cases) {
    it(`${expr} == ${expected} (CEL conformance)`, () => assert.equal(evaluate(expr), expected));
  }

  const ours: readonly (readonly [string, bigint])[] = [
    // Europe/Berlin leaves CET for CEST at 01:00 UTC on 29 March 2026, and returns at 01:00 UTC on 25 October.
    ["timestamp('2026-03-29T00:59:59Z').getHours('Europe/Berlin')", 1n],
    ["timestamp('2026-03-29T01:00:00Z').getHours('Europe/Berlin')", 3n],
    ["timestamp('2026-10-25T00:59:59Z').getHours('Europe/Berlin')", 2n],
    ["timestamp('2026-10-25T01:00:00Z').getHours('Europe/Berlin')", 2n],
    ["timestamp('2026-10-25T01:00:00Z').getMinutes('Europe/Berlin')", 0n],
    // The day of the week and of the year follow the zone across midnight and new year.
    ["timestamp('2026-06-05T22:30:00Z').getDayOfWeek('Europe/Berlin')", 6n],
    ["timestamp('2026-06-05T22:30:00Z').getDayOfWeek()", 5n],
    ["timestamp('2026-12-31T23:30:00Z').getDayOfYear('Europe/Berlin')", 0n],
    ["timestamp('2026-12-31T23:30:00Z').getFullYear('Europe/Berlin')", 2027n],
    ["timestamp('2026-12-31T23:30:00Z').getDayOfYear()", 364n],
    // Offsets that are not whole hours, both ways of the date line.
    ["timestamp('2026-06-03T10:00:00Z').getMinutes('Asia/Kolkata')", 30n],
    ["timestamp('2026-06-03T10:00:00Z').getHours('Pacific/Chatham')", 22n],
    ["timestamp('2026-06-03T10:00:00Z').getDate('Pacific/Kiritimati')", 4n],
    ["timestamp('2026-06-03T10:00:00Z').getDate('-11:00')", 2n],
    // Seconds and milliseconds of an instant are the instant's, in any zone.
    ["timestamp('2026-06-03T10:00:07.250Z').getSeconds('Asia/Kathmandu')", 7n],
    ["timestamp('2026-06-03T10:00:07.250Z').getMilliseconds('Europe/Berlin')", 250n],
    // Before the epoch.
    ["timestamp('1969-12-31T23:59:58.500Z').getSeconds()", 58n],
    ["timestamp('1969-12-31T23:59:58.500Z').getMilliseconds()", 500n],
    ["duration('-90m').getHours()", -1n],
  ];
  for (const [expr, expected] of ours) {
    it(`${expr} == ${expected}`, () => assert.equal(evaluate(expr), expected));
  }

  it('refuses an accessor on a value that is neither a timestamp nor a duration (an error, not a number)', () => {
    assert.ok(isCelError(evaluate("dyn('x').getHours('UTC')")));
    assert.ok(isCelError(evaluate("dyn(1).getHours()")));
    assert.ok(isCelError(evaluate("duration('1h').getDayOfWeek()")));
  });

  it('gives the same answers whatever the process\'s own time zone (none of it is read)', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = `import('${new URL('../src/policy/rule-environment.js', import.meta.url).href}').then(async ({ ruleEnvironment }) => {
      const { parse, plan } = await import('@bufbuild/cel');
      const env = ruleEnvironment(new Set(), new Set(['Europe/Berlin']));
      process.stdout.write(String(plan(env, parse("timestamp('2026-03-29T01:00:00Z').getHours('Europe/Berlin') * 100 + timestamp('2026-03-29T01:30:00Z').getHours()"))()));
    });`;
    for (const tz of ['UTC', 'America/St_Johns', 'Pacific/Kiritimati', 'Europe/Berlin']) {
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TZ: tz }, encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname });
      assert.equal(run.stdout, '301', `TZ=${tz}: ${run.stderr}`);
    }
  });
});
