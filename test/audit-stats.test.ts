// `portcullis audit stats` over a known trail (totals, top lists, time range, JSON and human
// output), and the bounded counter under a flood of distinct identities: memory capped, heavy
// hitters still on top, counts never below the truth.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { serialiseRecord } from '../src/audit/audit-record.js';
import { linkText } from '../src/audit/chain.js';
import { StatsCollector, TopCounter, type TrailStats } from '../src/audit/read/stats.js';
import { ChainWriter, at, requestRecord } from './harness/query-trail.js';
import { runCli } from './harness/cli.js';

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: readonly string[]): Promise<Run> {
  return runCli(['audit', 'stats', ...args]);
}

async function stats(args: readonly string[]): Promise<TrailStats> {
  const run = await cli([...args, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as TrailStats;
}

describe('audit stats on a known trail', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-stats-'));
    const main = new ChainWriter(dir).begin(at(0));
    const w1 = new ChainWriter(dir, 'w1').begin(at(0));
    let s = 1;
    const deny = (who: string | null, reason: string, status: number): Parameters<ChainWriter['request']>[0] => ({
      decision: 'deny', reason, status, identity: who === null ? null : { subject: who, authMethod: 'apiKey', keyId: 'k1' }, upstream: null, upstreamStatus: null,
    });
    // alice: 5 allowed on orders; bob: 3 allowed on billing, 2 forbidden; carol: 1 rate limited; anonymous: 4 unauthenticated.
    for (let i = 0; i < 5; i++) main.request({ time: at(s++), identity: { subject: 'alice', authMethod: 'jwt', keyId: null } });
    for (let i = 0; i < 3; i++) w1.request({ time: at(s++), route: 'billing', identity: { subject: 'bob', authMethod: 'jwt', keyId: null } });
    main.rotate(at(s++));
    for (let i = 0; i < 2; i++) w1.request({ time: at(s++), route: 'billing', ...deny('bob', 'forbidden', 403) });
    w1.request({ time: at(s++), ...deny('carol', 'rate_limited', 429) });
    for (let i = 0; i < 4; i++) main.request({ time: at(s++), ...deny(null, 'unauthenticated', 401) });
    main.request({ time: at(s++), status: 502, decision: 'error', reason: 'upstream_unavailable', identity: { subject: 'alice', authMethod: 'jwt', keyId: null } });
    main.request({ time: at(s++), kind: 'admin', route: null, path: '/admin/keys', method: 'POST', identity: { subject: 'admin', authMethod: 'adminToken', keyId: null }, upstream: null, upstreamStatus: null });
    main.object({ kind: 'alert', time: at(s++), detector: 'authFailureSpike', severity: 'high', subject: 'global', summary: 'spike', evidence: {} });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('totals by kind, decision and status class, and the top identities, routes and denial codes', async () => {
    const st = await stats(['--from', dir]);
    assert.equal(st.exact, true);
    assert.deepEqual(st.byDecision, { allow: 9, deny: 7, error: 1 });
    assert.deepEqual(st.byStatusClass, { '2xx': 9, '4xx': 7, '5xx': 1 });
    assert.equal(st.byKind.request, 16);
    assert.equal(st.byKind.admin, 1);
    assert.equal(st.byKind.alert, 1);
    assert.equal(st.byKind.file, 3, 'two files of main, one of w1');
    assert.equal(st.byKind.checkpoint, 1);
    assert.deepEqual(st.topIdentities, [
      { key: 'alice', count: 6, maxOverestimate: 0 },
      { key: 'bob', count: 5, maxOverestimate: 0 },
      { key: 'admin', count: 1, maxOverestimate: 0 },
      { key: 'carol', count: 1, maxOverestimate: 0 },
    ]);
    assert.deepEqual(st.topRoutes.map((r) => [r.key, r.count]), [['orders', 11], ['billing', 5]]);
    assert.deepEqual(st.topReasons.map((r) => [r.key, r.count]), [['unauthenticated', 4], ['forbidden', 2], ['rate_limited', 1], ['upstream_unavailable', 1]]);
    assert.equal(st.from, at(0));
  });

  it('--top limits every list; --since/--until choose the time range', async () => {
    const top1 = await stats(['--from', dir, '--top', '1']);
    assert.deepEqual(top1.topIdentities.map((r) => r.key), ['alice']);
    assert.deepEqual(top1.topReasons.map((r) => r.key), ['unauthenticated']);
    // Seconds 9 to 13: bob's 2 denials, carol's rate limit and the first 2 unauthenticated.
    const range = await stats(['--from', dir, '--since', at(10), '--until', at(14)]);
    assert.deepEqual(range.byDecision, { deny: 5 });
    assert.deepEqual(range.topReasons.map((r) => [r.key, r.count]), [['forbidden', 2], ['unauthenticated', 2], ['rate_limited', 1]]);
    assert.equal(range.from, at(10));
    assert.equal(range.to, at(14));
  });

  it('prints a human summary on request, with every key escaped', async () => {
    const hostile = mkdtempSync(join(tmpdir(), 'portcullis-stats-hostile-'));
    try {
      const chain = new ChainWriter(hostile).begin(at(0));
      const line = chain.request({ time: at(1), identity: { subject: 'x', authMethod: 'jwt', keyId: null } })
        .replace('"subject":"x"', '"subject":"\\u001b[2J\\u009b\u202eevil"');
      appendFileSync(chain.activePath, `${line}\n`);
      const run = await cli(['--from', hostile, '--color', 'always']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Top identities:\n +1 +\\x1b\[2J\\x9b\\u202eevil\n/);
      // eslint-disable-next-line no-control-regex -- looking for control characters is the point
      assert.doesNotMatch(run.stdout.replace(/\u001b\[[0-9;]*m/g, ''), /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
      const json = await cli(['--from', hostile, '--json']);
      assert.doesNotMatch(json.stdout, /[\u202a-\u202e]/, 'JSON output escapes bidi controls too');
      assert.equal((JSON.parse(json.stdout) as TrailStats).topIdentities[0]?.key, '\u001b[2J\u009b\u202eevil');
    } finally {
      rmSync(hostile, { recursive: true, force: true });
    }
  });

  it('exit 1 for a missing trail, 2 for bad arguments', async () => {
    assert.equal((await cli(['--from', join(dir, 'missing')])).code, 1);
    for (const args of [['--top', '0'], ['--top', 'ten'], ['--top', '1001'], ['--since', 'last week'], ['--since', '1h', '--until', '1d']]) {
      const run = await cli(['--from', dir, ...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    }
  });
});

describe('bounded counting', () => {
  it('is exact up to its capacity', () => {
    const c = new TopCounter(100);
    for (let i = 0; i < 100; i++) for (let j = 0; j <= i % 7; j++) c.add(`k${i}`);
    assert.equal(c.exact, true);
    assert.equal(c.size, 100);
    const top = c.top(3);
    assert.deepEqual(top.map((t) => t.count), [7, 7, 7]);
    assert.ok(top.every((t) => t.maxOverestimate === 0));
  });

  it('under a flood of distinct keys: never more than its capacity, heavy hitters kept, counts never below the truth', () => {
    const capacity = 200;
    const c = new TopCounter(capacity);
    const truth = new Map<string, number>();
    const add = (k: string): void => { c.add(k); truth.set(k, (truth.get(k) ?? 0) + 1); };
    let n = 0;
    for (let round = 0; round < 50_000; round++) {
      add(`flood-${n++}`);
      if (round % 10 === 0) add('heavy-1');
      if (round % 25 === 0) add('heavy-2');
      if (round % 100 === 0) add('heavy-3');
      assert.ok(c.size <= capacity);
    }
    assert.equal(c.exact, false);
    const top = c.top(3);
    assert.deepEqual(top.map((t) => t.key), ['heavy-1', 'heavy-2', 'heavy-3']);
    for (const t of c.top(capacity)) {
      const real = truth.get(t.key) ?? 0;
      assert.ok(t.count >= real, `${t.key}: ${t.count} is at least its true ${real}`);
      assert.ok(t.count - t.maxOverestimate <= real, `${t.key}: ${t.count} - ${t.maxOverestimate} is at most its true ${real}`);
    }
  });

  it('caps a key at 512 characters', () => {
    const c = new TopCounter(10);
    c.add('x'.repeat(10_000));
    assert.equal(c.top(1)[0]?.key.length, 512);
  });

  it('the CLI on a trail of 30000 distinct identities says its counts are approximate and still finds the heavy hitter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-stats-flood-'));
    try {
      const chain = new ChainWriter(dir).begin(at(0));
      let head = chain.head;
      const out: string[] = [];
      for (let i = 0; i < 30_000; i++) {
        const subject = i % 20 === 0 ? 'attacker' : `user-${i}`;
        const linked = linkText(serialiseRecord(requestRecord({ time: at(1 + (i % 1000)), decision: 'deny', status: 401, reason: 'unauthenticated', identity: { subject, authMethod: 'apiKey', keyId: null } })), head);
        head = { seq: linked.seq, hash: linked.hash };
        out.push(linked.line);
      }
      appendFileSync(chain.activePath, out.join(''));
      const run = await cli(['--from', dir, '--color', 'always']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Top identities:\n +1500 +attacker\n/);
      assert.match(run.stdout, /Counts marked ≤ are upper bounds: more than 10000 distinct keys/);
      const st = await stats(['--from', dir]);
      assert.equal(st.exact, false);
      assert.equal(st.byDecision.deny, 30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a collector counts kinds it does not know as other, so a tampered trail cannot grow its totals', () => {
    const s = new StatsCollector({ top: 5, maxDistinct: 10 });
    for (let i = 0; i < 1000; i++) s.add({ kind: `kind-${i}`, decision: `d-${i}`, status: i, time: 'not a time' });
    const r = s.result();
    assert.deepEqual(r.byKind, { other: 1000 });
    assert.equal(r.from, null);
  });
});
