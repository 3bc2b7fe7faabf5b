// `portcullis audit tail` over real trail files: chains and rotated files read in order and merged
// by time, every filter, -n, JSON lines and human lines, hostile records that try to drive the
// terminal, malformed lines counted, bad arguments refused, and the config's trail by default.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { serialiseRecord } from '../src/audit/audit-record.js';
import { linkText } from '../src/audit/chain.js';
import { fileSource, parseTrailName } from '../src/audit/read/file-source.js';
import { parseStatus, parseTime } from '../src/audit/read/filter.js';
import { renderRecord, terminalJson } from '../src/audit/read/format.js';
import { outputMode, redactedUrl } from '../src/cli/audit-source.js';
import { waitUntil } from './harness/assertions.js';
import { ManualClock } from './harness/manual-clock.js';
import { ChainWriter, at, requestRecord } from './harness/query-trail.js';
import { runCli } from './harness/cli.js';

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runCli(args, { NO_COLOR: '', ...env });
}

// eslint-disable-next-line no-control-regex -- the colour codes the renderer writes
const SGR = /\u001b\[[0-9;]*m/g;

const lines = (run: Run): string[] => run.stdout.split('\n').filter((l) => l !== '');
const ids = (run: Run): string[] => lines(run).map((l) => (JSON.parse(l) as { requestId?: string; kind: string }).requestId ?? `<${(JSON.parse(l) as { kind: string }).kind}>`);

/** Only SGR colour codes (ESC [ digits m) may reach the terminal; nothing else below 0x20 but none, no C1, no bidi. */
function assertTerminalSafe(text: string, what: string): void {
  const withoutSgr = text.replace(SGR, '');
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  assert.doesNotMatch(withoutSgr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/, `${what}: no raw control, C1 or bidi character`);
}

describe('audit tail over a directory of chains', () => {
  let dir: string;
  const fileLines = new Map<string, string>();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-'));
    const main = new ChainWriter(dir).begin(at(0));
    const w1 = new ChainWriter(dir, 'w1').begin(at(0));
    const keep = (id: string, line: string): void => { fileLines.set(id, line); };
    // Chain main: seconds 1, 3, 5 in its first (sealed) file, 7, 9 in its second (sealed), 11 active.
    keep('m1', main.request({ time: at(1), requestId: 'm1' }));
    keep('m3', main.request({ time: at(3), requestId: 'm3', status: 401, decision: 'deny', reason: 'unauthenticated', stage: 'authenticate', identity: null, upstream: null, upstreamStatus: null }));
    keep('m5', main.request({ time: at(5), requestId: 'm5', route: 'billing', identity: { subject: 'bob', authMethod: 'apiKey', keyId: 'k7f3kq9x2m4b8c1dz' } }));
    main.rotate(at(6));
    keep('m7', main.request({ time: at(7), requestId: 'm7', status: 503, decision: 'error', reason: 'upstream_unavailable', stage: 'forward', upstreamStatus: null }));
    keep('m9', main.request({ time: at(9), requestId: 'm9', kind: 'admin', route: null, path: '/admin/keys', method: 'POST', identity: { subject: 'admin', authMethod: 'adminToken', keyId: null }, upstream: null, upstreamStatus: null }));
    main.rotate(at(10));
    keep('m11', main.request({ time: at(11), requestId: 'm11', status: 403, decision: 'deny', reason: 'forbidden', stage: 'authorize', identity: { subject: 'bob', authMethod: 'apiKey', keyId: 'k7f3kq9x2m4b8c1dz' } }));
    // Chain w1: seconds 2, 4 in a sealed file; 6, 8, 10, 12 active, with an alert and a gap.
    keep('w2', w1.request({ time: at(2), requestId: 'w2', status: 429, decision: 'deny', reason: 'rate_limited', stage: 'rateLimit', limit: 'per-user' }));
    keep('w4', w1.request({ time: at(4), requestId: 'w4', status: 499, decision: 'abort', reason: 'client_aborted', upstream: null, upstreamStatus: null }));
    w1.rotate(at(5));
    keep('w6', w1.request({ time: at(6), requestId: 'w6', status: 500, decision: 'error', reason: 'internal', stage: 'forward' }));
    keep('alert8', w1.object({ kind: 'alert', time: at(8), detector: 'authFailureSpike', severity: 'high', subject: 'global', summary: '40 denials in 1m', evidence: { count: 40 } }));
    keep('gap10', w1.object({ kind: 'gap', time: at(10), droppedRecords: 3, firstDroppedAt: at(9), lastDroppedAt: at(10) }));
    keep('w12', w1.request({ time: at(12), requestId: 'w12', status: 302, route: 'billing' }));
    // Not trail files: ignored.
    writeFileSync(join(dir, 'notes.txt'), 'not a trail\n');
    mkdirSync(join(dir, 'keys'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every chain, sealed files in order then the active one, merged by time, as the stored lines', async () => {
    const run = await cli(['audit', 'tail', '--from', dir, '-n', '100']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.deepEqual(ids(run), ['m1', 'w2', 'm3', 'w4', 'm5', 'w6', 'm7', '<alert>', 'm9', '<gap>', 'm11', 'w12']);
    for (const line of lines(run)) {
      const id = (JSON.parse(line) as { requestId?: string }).requestId;
      if (id !== undefined) assert.equal(line, fileLines.get(id), `${id}: the stored line, byte for byte`);
    }
  });

  it('-n N prints the last N matching records; the default is 20; --kind all adds the chain bookkeeping', async () => {
    assert.deepEqual(ids(await cli(['audit', 'tail', '--from', dir, '-n', '3'])), ['<gap>', 'm11', 'w12']);
    assert.deepEqual(ids(await cli(['audit', 'tail', '--from', dir, '-n', '0'])), []);
    const all = await cli(['audit', 'tail', '--from', dir, '--kind', 'all', '-n', '1000']);
    const kinds = lines(all).map((l) => (JSON.parse(l) as { kind: string }).kind);
    assert.equal(kinds.filter((k) => k === 'file').length, 5, 'three files of main, two of w1');
    assert.equal(kinds.filter((k) => k === 'checkpoint').length, 3);
    assert.equal(kinds.length, 12 + 5 + 5 + 3);
    assert.equal(ids(await cli(['audit', 'tail', '--from', dir, '--kind', 'all'])).length, 20);
  });

  it('each filter selects exactly its records', async () => {
    const cases: [string[], string[]][] = [
      [['--identity', 'bob'], ['m5', 'm11']],
      [['--identity', 'k7f3kq9x2m4b8c1dz'], ['m5', 'm11']],
      [['--identity', 'nobody'], []],
      [['--status', '4xx'], ['w2', 'm3', 'w4', 'm11']],
      [['--status', '401'], ['m3']],
      [['--status', '5xx'], ['w6', 'm7']],
      [['--status', '401,5XX'], ['m3', 'w6', 'm7']],
      [['--route', 'billing'], ['m5', 'w12']],
      [['--decision', 'deny'], ['w2', 'm3', 'm11']],
      [['--decision', 'error'], ['w6', 'm7']],
      [['--decision', 'abort'], ['w4']],
      [['--decision', 'allow', '--route', 'orders'], ['m1']],
      [['--kind', 'admin'], ['m9']],
      [['--kind', 'alert,gap'], ['<alert>', '<gap>']],
      [['--since', at(6), '--until', at(9)], ['w6', 'm7', '<alert>', 'm9']],
      [['--since', '2026-11-30T00:00:10+00:00'], ['<gap>', 'm11', 'w12']],
      [['--until', '2026-11-29'], []],
    ];
    await Promise.all(cases.map(async ([args, expected]) => {
      const run = await cli(['audit', 'tail', '--from', dir, ...args]);
      assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
      assert.deepEqual(ids(run), expected, args.join(' '));
    }));
  });

  it('a single file is read alone', async () => {
    const run = await cli(['audit', 'tail', '--from', join(dir, 'audit.w1.log')]);
    assert.deepEqual(ids(run), ['w6', '<alert>', '<gap>', 'w12']);
  });

  it('human lines with --color always: time, status, method, path, route, identity, decision/reason, latency, in colour', async () => {
    const run = await cli(['audit', 'tail', '--from', dir, '--color', 'always', '-n', '100']);
    assert.equal(run.code, 0, run.stderr);
    const out = lines(run);
    assert.equal(out.length, 12);
    assertTerminalSafe(run.stdout, 'human output');
    const plain = out.map((l) => l.replace(SGR, ''));
    assert.equal(plain[10], `${at(11)} 403 GET    /orders/1  orders  bob (key k7f3kq9x2m4b8c1dz)  deny/forbidden  3.2ms`);
    assert.equal(plain[2], `${at(3)} 401 GET    /orders/1  orders  -  deny/unauthenticated  3.2ms`);
    assert.match(plain[8] ?? '', /^\S+ 200 POST {3}\/admin\/keys {2}admin {2}admin {2}allow {2}3\.2ms$/);
    assert.match(plain[7] ?? '', /ALERT HIGH authFailureSpike global: 40 denials in 1m$/);
    assert.match(plain[9] ?? '', /GAP 3 records dropped/);
    assert.ok((out[10] ?? '').includes('\u001b[33m403\u001b[0m'), '4xx in yellow');
    assert.ok((out[5] ?? '').includes('\u001b[31m500\u001b[0m'), '5xx in red');
    assert.ok((out[0] ?? '').includes('\u001b[32mallow\u001b[0m'), 'allow in green');
  });

  it('output mode: JSON unless a terminal; colours on a terminal unless NO_COLOR or --color never', () => {
    assert.deepEqual(outputMode({}, false, {}), { human: false, color: false });
    assert.deepEqual(outputMode({}, true, {}), { human: true, color: true });
    assert.deepEqual(outputMode({}, true, { NO_COLOR: '1' }), { human: true, color: false });
    assert.deepEqual(outputMode({ color: 'never' }, true, {}), { human: true, color: false });
    assert.deepEqual(outputMode({ color: 'always' }, false, { NO_COLOR: '1' }), { human: true, color: true });
    assert.deepEqual(outputMode({ json: true }, true, {}), { human: false, color: false });
    assert.throws(() => outputMode({ color: 'sometimes' }, true, {}), /--color: auto, always or never/);
  });
});

describe('audit tail and hostile records', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-hostile-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('escapes, CSI, bidi and line separators in path, user agent, subject and reason never reach the terminal', async () => {
    const chain = new ChainWriter(dir).begin(at(0));
    const evil = '\u001b[2J\u001b]0;owned\u0007\u009b31m\u202eevil\u2028line\r\nforged';
    chain.request({ time: at(1), requestId: 'hostile-1', path: `/x${evil}`, userAgent: evil, identity: { subject: `sub${evil}`, authMethod: 'jwt', keyId: null }, reason: `r${evil}`, decision: 'deny', status: 403 });
    // A tampered line: JSON escapes that decode to raw ESC and CSI, and a raw bidi override and C1 byte in the file.
    const tampered = chain.request({ time: at(2), requestId: 'hostile-2' })
      .replace('"/orders/1"', '"/orders/\\u001b[31mRED\\u001b]8;;http://evil\\u0007\u202e\u0085\u2066"')
      .replace('"alice"', '"\\u009b2Jalice\\r"');
    const file = join(dir, 'audit.log');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/.*hostile-2.*\n/, `${tampered}\n`));
    const human = await cli(['audit', 'tail', '--from', dir, '--color', 'always']);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(lines(human).length, 2, 'one line per record: no forged line');
    assertTerminalSafe(human.stdout, 'human lines');
    assert.ok(human.stdout.includes('/orders/\\x1b[31mRED\\x1b]8;;http://evil\\x07\\u202e\\x85\\u2066'), `the tampered escapes are shown, escaped:\n${human.stdout}`);
    assert.ok(human.stdout.includes('\\x9b2Jalice\\x0d'), 'in the subject too');
    for (const record of [JSON.parse(tampered) as Record<string, unknown>]) {
      const line = renderRecord(record, { color: false });
      assertTerminalSafe(line, 'render');
      const json = terminalJson(record);
      assertTerminalSafe(json, 'JSON for a terminal');
      assert.deepEqual(JSON.parse(json), record, 'the same JSON value');
    }
    // Piped (not a terminal), the stored line is passed on unchanged for the next program.
    const piped = await cli(['audit', 'tail', '--from', dir]);
    assert.equal(lines(piped)[1], tampered);
    // A raw ESC byte edited into a line: JSON forbids raw control characters, so the line is
    // counted as malformed and never printed.
    const raw = chain.request({ time: at(3), requestId: 'hostile-3' }).replace('"/orders/1"', '"/orders/\u001b[2J\u001b]0;owned\u0007"');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/.*hostile-3.*\n/, `${raw}\n`));
    assert.ok(raw.includes('\u001b'), 'the file holds a raw ESC');
    const again = await cli(['audit', 'tail', '--from', dir, '--color', 'always']);
    assert.equal(lines(again).length, 2);
    assertTerminalSafe(again.stdout, 'human lines after a raw ESC');
    assert.match(again.stderr, /1 line of .* did not parse as a record and was skipped/);
  });
});

describe('audit tail and malformed input', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-bad-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lines that do not parse, are not objects or are longer than any record are counted once on stderr; the rest prints', async () => {
    const chain = new ChainWriter(dir).begin(at(0));
    chain.request({ time: at(1), requestId: 'ok-1' });
    appendFileSync(chain.activePath, 'not json\n[1,2,3]\nnull\n\n{"kind":"request","time":\n');
    appendFileSync(chain.activePath, `{"kind":"request","requestId":"${'x'.repeat(2 * 1024 * 1024)}"}\n`);
    chain.request({ time: at(2), requestId: 'ok-2' });
    appendFileSync(chain.activePath, '{"kind":"request","requestId":"torn');
    const run = await cli(['audit', 'tail', '--from', dir]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(ids(run), ['ok-1', 'ok-2']);
    assert.equal(run.stderr, `portcullis audit tail: 7 lines of ${dir} did not parse as a record and were skipped (audit verify tells what happened to them)\n`);
  });

  it('a missing trail exits 1 with one line; bad arguments exit 2', async () => {
    const missing = await cli(['audit', 'tail', '--from', join(dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^portcullis audit tail: cannot read .*nope: ENOENT/);
    const bad: [string[], RegExp][] = [
      [['--status', '6xx'], /--status: a status/],
      [['--status', '4x'], /--status: a status/],
      [['--decision', 'maybe'], /--decision: one of allow, deny, error, abort/],
      [['--kind', 'request,bogus'], /--kind: /],
      [['--since', 'yesterday'], /--since: an ISO 8601 time/],
      [['--since', '2026-11-30T10:00'], /--since: an ISO 8601 time/],
      [['--since', '1h', '--until', '2h'], /--until is before --since/],
      [['-n', '-1'], /--lines|-n/],
      [['-n', '100001'], /--lines: a whole number from 0 to 100000/],
      [['--from', 'http://example.com/trail'], /--from: a path or a nats:\/\/ URL/],
      [['--color', 'pink'], /--color: auto, always or never/],
    ];
    await Promise.all(bad.map(async ([args, problem]) => {
      const run = await cli(['audit', 'tail', ...(args.includes('--from') ? [] : ['--from', dir]), ...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr.split('\n')[0] ?? '', problem, args.join(' '));
    }));
  });

  it('parsers: trail names, statuses and times', () => {
    assert.deepEqual(parseTrailName('audit.log', '.log'), { chainKey: 'audit', base: 'audit', seq: null });
    assert.deepEqual(parseTrailName('audit.w12.log', '.log'), { chainKey: 'audit.w12', base: 'audit', seq: null });
    assert.deepEqual(parseTrailName('audit.000000000001.log', '.log'), { chainKey: 'audit', base: 'audit', seq: 1 });
    assert.deepEqual(parseTrailName('audit.w1.000000004001.log', '.log'), { chainKey: 'audit.w1', base: 'audit', seq: 4001 });
    assert.deepEqual(parseTrailName('my.trail.log', '.log'), { chainKey: 'my.trail', base: 'my.trail', seq: null });
    assert.equal(parseTrailName('audit.log.gz', '.log'), null);
    assert.equal(parseTrailName('.log', '.log'), null);
    assert.deepEqual(parseStatus('4xx'), [{ from: 400, to: 499 }]);
    assert.deepEqual(parseStatus('401,5xx'), [{ from: 401, to: 401 }, { from: 500, to: 599 }]);
    for (const bad of ['', '4', '600', '0xx', 'x01', '4xx,', '40a']) assert.equal(parseStatus(bad), null, bad);
    const now = Date.parse('2026-11-30T12:00:00Z');
    assert.equal(parseTime('15m', now), now - 15 * 60_000);
    assert.equal(parseTime('2026-11-30', now), Date.parse('2026-11-30T00:00:00Z'));
    assert.equal(parseTime('2026-11-30T10:00+01:00', now), Date.parse('2026-11-30T09:00:00Z'));
    for (const bad of ['2026-11-30T10:00', 'now', '15 m', '2026-13-45', '']) assert.equal(parseTime(bad, now), null, bad);
  });
});

describe('audit tail without --from', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-config-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the config's trail: dataDir and audit.file, only that trail's files", async () => {
    const data = join(dir, 'data', 'trail');
    mkdirSync(data, { recursive: true });
    writeFileSync(join(dir, 'gateway.yaml'), 'dataDir: ./data\naudit:\n  file: trail/gw.log\nupstreams: {}\n');
    const mine = new ChainWriter(data, null, 'gw-1', 'gw').begin(at(0));
    mine.request({ time: at(1), requestId: 'mine-1' });
    new ChainWriter(data, 'w1', 'gw-1', 'gw').begin(at(0)).request({ time: at(2), requestId: 'mine-2' });
    new ChainWriter(data, null, 'gw-1', 'other').begin(at(0)).request({ time: at(3), requestId: 'not-mine' });
    const run = await cli(['audit', 'tail', '-c', join(dir, 'gateway.yaml')]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(ids(run), ['mine-1', 'mine-2']);
    const noConfig = await cli(['audit', 'tail', '-c', join(dir, 'missing.yaml')]);
    assert.equal(noConfig.code, 1);
    assert.match(noConfig.stderr, /cannot read config/);
  });
});

describe('the file source in process', () => {
  it('names each record with its chain, from the records that carry it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-source-'));
    try {
      const a = new ChainWriter(dir, null, 'edge-7').begin(at(0));
      a.request({ time: at(1), requestId: 'a' });
      const b = new ChainWriter(dir, 'w3', 'edge-7').begin(at(0));
      b.request({ time: at(2), requestId: 'b' });
      // A line the source reads before any record names its chain keeps the file's name.
      writeFileSync(join(dir, 'audit.w4.log'), linkText(serialiseRecord(requestRecord({ time: at(3), requestId: 'c' })), { seq: 0, hash: '0'.repeat(64) }).line);
      const source = fileSource(dir);
      const seen: [string, unknown][] = [];
      for await (const r of source.records({ follow: false })) if (r.record.kind === 'request') seen.push([r.chain, r.record.requestId]);
      await source.close();
      assert.deepEqual(seen, [['edge-7/main', 'a'], ['edge-7/w3', 'b'], ['w4', 'c']]);
      assert.equal(source.malformed, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the file source: polling, seeking, URLs', () => {
  it('follows by polling alone where no file system events come, growth and rotation alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-poll-'));
    const clock = new ManualClock();
    const source = fileSource(dir, { watch: false, clock, pollIntervalMs: 1000 });
    const stop = new AbortController();
    const got: unknown[] = [];
    let caughtUp = false;
    try {
      const chain = new ChainWriter(dir).begin(at(0));
      chain.request({ time: at(1), requestId: 'p1' });
      const reading = (async () => {
        const options = { follow: true, signal: stop.signal, onCaughtUp: () => { caughtUp = true; } };
        for await (const r of source.records(options)) if (r.record.kind === 'request') got.push(r.record.requestId);
      })();
      await waitUntil('caught up', () => caughtUp);
      chain.request({ time: at(2), requestId: 'p2' });
      chain.rotate(at(3));
      chain.request({ time: at(4), requestId: 'p3' });
      // Only the clock wakes the follower here: each look moves it one poll interval.
      await waitUntil(`the polled records (saw ${got.join(', ')})`, () => { clock.advance(1000); return got.length >= 3; });
      assert.deepEqual(got, ['p1', 'p2', 'p3']);
      stop.abort();
      await reading;
    } finally {
      stop.abort();
      await source.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--since skips sealed files that end before it without reading them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-tail-since-'));
    try {
      const chain = new ChainWriter(dir).begin(at(0));
      chain.request({ time: at(1), requestId: 'old' });
      appendFileSync(chain.activePath, 'garbage in a file --since need not read\n');
      chain.rotate(at(5));
      chain.request({ time: at(6), requestId: 'mid' });
      chain.rotate(at(8));
      chain.request({ time: at(9), requestId: 'new' });
      const read = async (since?: number): Promise<{ ids: unknown[]; malformed: number }> => {
        const source = fileSource(dir);
        const ids: unknown[] = [];
        for await (const r of source.records({ follow: false, ...(since === undefined ? {} : { since }) })) if (r.record.kind === 'request') ids.push(r.record.requestId);
        await source.close();
        return { ids, malformed: source.malformed };
      };
      assert.deepEqual(await read(), { ids: ['old', 'mid', 'new'], malformed: 1 });
      // The first file is skipped (the second begins before --since); the second is read, as it may hold later records.
      assert.deepEqual(await read(Date.parse(at(7))), { ids: ['mid', 'new'], malformed: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stream URL in a message carries no credentials', () => {
    assert.equal(redactedUrl('nats://user:s3cret@nats.internal:4222'), 'nats://nats.internal:4222');
    assert.equal(redactedUrl('nats://tok3n@nats.internal:4222'), 'nats://nats.internal:4222');
    assert.equal(redactedUrl('not a url s3cret'), 'the stream URL');
  });
});
