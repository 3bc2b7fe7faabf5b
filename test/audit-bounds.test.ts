// The audit trail under hostile input and failing disks: every record bounded and escaped, no
// secrets from the target, and a trail that fails closed and then recovers without a restart.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { FIELD_MAX_CHARS, MAX_RECORD_BYTES } from '../src/audit/audit-record.js';
import { boundText } from '../src/audit/bounded-text.js';
import { auditTarget } from '../src/audit/audit-target.js';
import { assertProblem } from './harness/assertions.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { ManualClock } from './harness/manual-clock.js';
import { rawRequest } from './harness/raw-client.js';

/** Bytes each hostile record below may take: path and user agent at their caps plus the rest. */
const HOSTILE_RECORD_BYTES = 2048;

function config(echo: EchoUpstream, extra: ConfigObject = {}): ConfigObject {
  return {
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'a', match: { methods: ['GET'], path: '/a/**' }, upstream: 'echo', public: true }],
    ...extra,
  };
}

/** One raw request on its own connection; `head` lines are joined with CRLF. */
function send(gw: TestGateway, head: (string | Buffer)[]): ReturnType<typeof rawRequest> {
  const parts: Buffer[] = [];
  for (const line of head) parts.push(typeof line === 'string' ? Buffer.from(line, 'latin1') : line, Buffer.from('\r\n'));
  parts.push(Buffer.from('\r\n'));
  return rawRequest(gw.port, Buffer.concat(parts), { settleMs: 0 });
}

async function lines(gw: TestGateway, count: number): Promise<string[]> {
  // Every request the test made has ended; once the barrier's record is written, so are theirs.
  await gw.auditBarrier();
  await gw.audit(count);
  const file = join(gw.gateway.config.dataDir, gw.gateway.config.audit.file);
  // Only whole lines: the writer may be in the middle of the next one.
  const text = await readFile(file, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '');
}

describe('audit records are bounded and escaped', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway(config(echo));
  });
  after(async () => { await gw.close(); await echo.close(); });

  it('keeps each record of a flood of long hostile requests under a fixed size and stores the path once', async () => {
    const count = 60;
    const longPath = `/nowhere/${'A'.repeat(6000)}`;
    // obs-text bytes a client may put in a header: C1 controls (0x9B is CSI), UTF-8 of U+202E read as latin1.
    const agent = Buffer.concat([Buffer.from('evil/1.0 '), Buffer.from([0x9b, 0x33, 0x31, 0x6d, 0xe2, 0x80, 0xae]), Buffer.from('B'.repeat(8000))]);
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) {
      const target = [`${longPath}?token=query-secret-${i}`, `/bad"${'C'.repeat(6000)}?token=query-secret`, `http://user:pass-secret@h.test/${'D'.repeat(6000)}?q=query-secret`][i % 3] ?? '';
      const res = await send(gw, [`GET ${target} HTTP/1.1`, 'Host: gw.test', Buffer.concat([Buffer.from('User-Agent: '), agent]), 'Connection: close']);
      ids.add(assertProblem(res, i % 3 === 0 ? 404 : 400, i % 3 === 0 ? 'route_not_found' : 'invalid_target').requestId);
    }
    // Every request above has ended, so once the barrier's record is written, so are theirs.
    await gw.auditBarrier();
    const mine = (await lines(gw, count)).filter((l) => ids.has((JSON.parse(l) as AuditRecord).requestId));
    assert.equal(mine.length, count, 'one record per request');
    let total = 0;
    for (const line of mine) {
      const bytes = Buffer.byteLength(line) + 1;
      total += bytes;
      assert.ok(bytes <= HOSTILE_RECORD_BYTES, `record of ${bytes} bytes: ${line.slice(0, 200)}`);
      assert.ok(bytes <= MAX_RECORD_BYTES);
      const record = JSON.parse(line) as AuditRecord;
      assert.ok(record.path.length <= FIELD_MAX_CHARS.path);
      assert.match(record.path, /…\[truncated: \d+ chars\]$/, 'a cut field says so');
      assert.ok((record.userAgent ?? '').length <= FIELD_MAX_CHARS.userAgent);
      assert.match(record.userAgent ?? '', /^evil\/1\.0 \\x9b31m/, 'C1 controls are escaped, visibly');
      assert.ok(!(record.detail ?? '').includes('AAAA') && !(record.detail ?? '').includes('CCCC'), `the path is stored once: detail ${record.detail ?? ''}`);
      assert.ok(!line.includes('secret'), `no query or userinfo: ${line.slice(0, 200)}`);
    }
    assert.ok(total <= count * HOSTILE_RECORD_BYTES, `${total} bytes for ${count} records`);
  });

  it('escapes what a header can smuggle (tab, NEL, CSI) so no record can forge a line or drive a terminal', async () => {
    // HTAB and obs-text are legal in a header value (RFC 9110 §5.5); 0x85 is NEL, a line break to
    // some readers, and 0x9B is CSI, which some terminals obey. The HTTP parser refuses the rest.
    const agent = Buffer.concat([Buffer.from('x\t'), Buffer.from([0x85]), Buffer.from('{"requestId":"forged"}'), Buffer.from([0x9b]), Buffer.from('2J')]);
    const res = await send(gw, ['GET /nowhere HTTP/1.1', 'Host: gw.test', Buffer.concat([Buffer.from('User-Agent: '), agent]), 'Connection: close']);
    const doc = assertProblem(res, 404, 'route_not_found');
    const all = await lines(gw, 1);
    const line = all.find((l) => l.includes(doc.requestId)) ?? '';
    // eslint-disable-next-line no-control-regex -- the point is that none of these survive
    const unsafe = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/u;
    assert.doesNotMatch(line, unsafe, 'the line is plain');
    const record = JSON.parse(line) as AuditRecord;
    assert.doesNotMatch(record.userAgent ?? '', unsafe, 'the decoded value is safe for a terminal too (jq -r)');
    assert.equal(record.userAgent, 'x\\x09\\x85{"requestId":"forged"}\\x9b2J');
    assert.equal(all.filter((l) => l.includes('forged')).length, 1, 'one line, not two');
  });

  it('bounds and escapes any text a record field may carry (table)', () => {
    const cases: [string, string, number, string][] = [
      ['plain text', 'curl/8.0', 256, 'curl/8.0'],
      ['newline and escape', 'a\nb\u001b[31m', 256, 'a\\x0ab\\x1b[31m'],
      ['line and paragraph separators', 'a\u2028b\u2029c', 256, 'a\\u2028b\\u2029c'],
      ['bidi override (Trojan Source)', 'user\u202eexe.txt', 256, 'user\\u202eexe.txt'],
      ['C1 control', 'a\u009bb', 256, 'a\\x9bb'],
      ['lone surrogate', 'a\ud800b', 256, 'a\\ud800b'],
      ['astral character kept', 'a😀b', 256, 'a😀b'],
      ['cut with marker', 'x'.repeat(100), 40, `${'x'.repeat(17)}…[truncated: 100 chars]`],
      ['never splits a surrogate pair', `${'x'.repeat(17)}😀${'y'.repeat(40)}`, 40, `${'x'.repeat(17)}…[truncated: 59 chars]`],
      ['escapes count toward the cap', '\u0001'.repeat(40), 40, `${'\\x01'.repeat(4)}\\x…[truncated: 40 chars]`],
    ];
    for (const [name, input, max, expected] of cases) {
      const out = boundText(input, max);
      assert.equal(out, expected, name);
      assert.ok(out.length <= max, `${name}: ${out.length} > ${max}`);
    }
  });

  it('keeps no query, fragment, userinfo or matrix parameters of any raw target form (table)', () => {
    const cases: [string, string][] = [
      ['http://u:p@host/x?q=1', 'http://host/x'],
      ['HTTPS://a:b@c', 'HTTPS://c'],
      ['http://a@b@c/x', 'http://c/x'],
      ['http:/\\u:p@h/x', 'http:/\\h/x'],
      ['//u:p@h/x', '//h/x'],
      ['u:p@host:443', 'host:443'],
      ['host:443', 'host:443'],
      ['http://host/users/@me#frag', 'http://host/users/@me'],
      ['/users/@me?token=x', '/users/@me'],
      ['*', '*'],
      ['/x;jsessionid=SECRET/y', '/x;…/y'], // refused (semicolon), recorded without the session id
      ['/x;a=1;b=2', '/x;…'],
    ];
    for (const [raw, expected] of cases) assert.equal(auditTarget(raw), expected, raw);
  });

  it('never records userinfo or the query of absolute-form, authority-form and upgrade targets', async () => {
    const cases: { head: string[]; path: string; status: number }[] = [
      { head: ['GET http://alice:pw-secret-1@evil.test/a/x?token=q-secret-1 HTTP/1.1', 'Host: gw.test'], path: 'http://evil.test/a/x', status: 400 },
      { head: ['CONNECT alice:pw-secret-2@evil.test:443 HTTP/1.1', 'Host: evil.test:443'], path: 'evil.test:443', status: 400 },
      { head: ['GET http://bob:pw-secret-3@evil.test/a/x?token=q-secret-3 HTTP/1.1', 'Host: gw.test', 'Connection: Upgrade', 'Upgrade: websocket'], path: 'http://evil.test/a/x', status: 400 },
      { head: ['GET /a/x?token=q-secret-4#frag HTTP/1.1', 'Host: gw.test', 'Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'], path: '/a/x', status: 400 },
    ];
    for (const c of cases) {
      const res = await send(gw, [...c.head, 'Connection: close']);
      assert.equal(res.status, c.status, `${c.head[0] ?? ''}: ${res.raw.slice(0, 200)}`);
      const requestId = (JSON.parse(res.body) as { requestId: string }).requestId;
      const records = await gw.auditFor(requestId);
      assert.equal(records.length, 1, c.head[0]);
      assert.equal(records[0]?.path, c.path, c.head[0]);
      assert.doesNotMatch(JSON.stringify(records), /secret/, c.head[0]);
    }
    assert.doesNotMatch(gw.logs.join('\n'), /secret/, 'nor in the operational log');
  });
});

describe('audit trail recovers after write failures', { skip: existsSync('/dev/full') ? false : 'needs /dev/full to simulate a full disk' }, () => {
  /** The trail's retry interval; the tests move their clock by it instead of waiting. */
  const RETRY_MS = 20;

  /**
   * Starts a gateway whose audit file is a symlink to /dev/full: every write fails with ENOSPC.
   * With a `clock`, it retries only when the test moves that clock.
   */
  async function failingGateway(echo: EchoUpstream, audit: ConfigObject, clock?: ManualClock): Promise<{ gw: TestGateway; file: string }> {
    let file = '';
    const gw = await startGateway(config(echo, { audit: { retryIntervalMs: RETRY_MS, ...audit } }), {
      ...(clock === undefined ? {} : { clock }),
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'data', 'audit'), { recursive: true });
        file = join(dir, 'data', 'audit', 'audit.log');
        await symlink('/dev/full', file);
      },
    });
    return { gw, file };
  }

  async function readyz(gw: TestGateway): Promise<{ status: number; audit: string }> {
    const res = await fetch(`${gw.adminUrl}/readyz`);
    return { status: res.status, audit: (await res.json() as { audit: string }).audit };
  }

  /**
   * Repeats `check` (bounded) until it holds, letting the trail finish what it is writing (or
   * retrying, after the test moved the clock) between attempts.
   */
  async function eventually(gw: TestGateway, check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
      await gw.gateway.auditFlushed();
    }
  }

  it('answers 503 while the audit file cannot be written and serves again once it can, without a restart', async (t) => {
    const echo = await startEchoUpstream();
    const clock = new ManualClock();
    const { gw, file } = await failingGateway(echo, {}, clock);
    t.after(async () => { await gw.close(); await echo.close(); });
    const ids: string[] = [];
    const get = async (): Promise<number> => {
      const res = await fetch(`${gw.url}/a/x`);
      ids.push(res.headers.get('x-request-id') ?? '');
      await res.arrayBuffer();
      return res.status;
    };
    await get(); // accepted while the trail looked healthy; its record is the write that fails
    await eventually(gw, async () => (await get()) === 503, 'requests are refused');
    assert.deepEqual(await readyz(gw), { status: 503, audit: 'failing' });
    const forwarded = echo.received.length;
    assert.equal(await get(), 503);
    assert.equal(echo.received.length, forwarded, 'nothing is forwarded while it cannot be audited');

    // Space comes back: the file path now leads to a writable file.
    await rm(file);
    await writeFile(file, '');
    clock.advance(RETRY_MS);
    await eventually(gw, async () => (await readyz(gw)).status === 200, '/readyz is ready again');
    assert.equal((await readyz(gw)).audit, 'ok');
    assert.equal(await get(), 200);
    assert.equal(echo.received.length, forwarded + 1);

    // Every request, served or refused, has exactly one record: the queued ones were written on recovery.
    const records = await gw.audit(); // after a barrier: every record of the requests above is on disk
    for (const id of ids) assert.equal(records.filter((r) => r.requestId === id).length, 1, `one record for ${id}`);
    const refused = records.filter((r) => r.reason === 'audit_unavailable');
    assert.ok(refused.length >= 2 && refused.every((r) => r.status === 503));
    assert.ok(gw.logs.some((l) => l.includes('audit trail write failed')) && gw.logs.some((l) => l.includes('audit trail writable again')));
  });

  it('replaces records that find the queue full by one gap record, and counts them', async (t) => {
    const echo = await startEchoUpstream();
    // The machine's clock: the trail keeps retrying (and failing) while the queue fills, as in production.
    const { gw, file } = await failingGateway(echo, { maxQueueBytes: 65536 });
    t.after(async () => { await gw.close(); await echo.close(); });
    const served: string[] = [];
    // Refused records are about 500 bytes: 200 of them overflow a 64 KiB queue.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${gw.url}/a/${i}`);
      await res.arrayBuffer();
      if (res.status === 200) served.push(res.headers.get('x-request-id') ?? '');
      else assert.equal(res.status, 503);
    }
    assert.ok(served.length < 200 && echo.received.length === served.length, 'only requests accepted before the failure was seen are served');
    const metric = async (): Promise<number> => Number(/portcullis_audit_dropped_total\{sink="file"\} (\d+)/.exec(await (await fetch(`${gw.adminUrl}/metrics`)).text())?.[1] ?? 0);
    const dropped = await metric();
    assert.ok(dropped > 0, 'some records found the queue full');
    await rm(file);
    await writeFile(file, '');
    await eventually(gw, async () => (await readyz(gw)).status === 200, '/readyz is ready again');
    const res = await fetch(`${gw.url}/a/after`);
    await res.arrayBuffer();
    const after = await gw.auditFor(res.headers.get('x-request-id') ?? '');
    assert.equal(after.length, 1);
    const records = await gw.audit();
    for (const id of served) assert.equal(records.filter((r) => r.requestId === id).length, 1, 'every served request was recorded');
    const text = await readFile(file, 'utf8');
    const gaps = text.split('\n').filter((l) => l.includes('"kind":"gap"')).map((l) => JSON.parse(l) as { droppedRecords: number });
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0]?.droppedRecords, dropped);
  });
});

/** prlimit(1) sets another process's file-size limit: a write past it fails with EFBIG, often after a partial write. */
const hasPrlimit = ((): boolean => { try { execFileSync('prlimit', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

describe('audit trail recovers from a file-size limit', { skip: hasPrlimit ? false : 'needs prlimit(1)' }, () => {
  it('finishes a record cut short by a partial write, so every line stays whole, once the limit is lifted', async (t) => {
    const echo = await startEchoUpstream();
    const proc = await startGatewayProcess(config(echo, { audit: { retryIntervalMs: 20 } }));
    t.after(async () => { await proc.stop(); await echo.close(); });
    const pid = String(proc.child.pid ?? 0);
    const file = join(proc.dir, 'data', 'audit', 'audit.log');
    const ids: string[] = [];
    const get = async (path: string): Promise<number> => {
      const res = await fetch(`${proc.url}${path}`);
      ids.push(res.headers.get('x-request-id') ?? '');
      await res.arrayBuffer();
      return res.status;
    };
    assert.equal(await get('/a/first'), 200);
    await proc.audit(1);
    // Room for a little more than one record: the next batch is written in part, then refused.
    const size = statSync(file).size;
    execFileSync('prlimit', ['--pid', pid, `--fsize=${size + 700}:unlimited`]);
    const deadline = Date.now() + 5000;
    while ((await get(`/a/${'x'.repeat(300)}`)) !== 503) assert.ok(Date.now() < deadline, 'requests are refused once writes fail');
    assert.equal((await fetch(`${proc.adminUrl}/readyz`)).status, 503);
    assert.equal(statSync(file).size, size + 700, 'the file ends in a partial line');

    execFileSync('prlimit', ['--pid', pid, '--fsize=unlimited:unlimited']);
    // The process's trail retries on its own clock and says when it writes again.
    await proc.logged('audit trail writable again', Math.max(0, deadline + 5000 - Date.now()));
    while ((await fetch(`${proc.adminUrl}/readyz`)).status !== 200) {
      assert.ok(Date.now() < deadline + 5000, '/readyz is ready again');
      await proc.logged('audit trail writable again', Math.max(0, deadline + 5000 - Date.now()));
    }
    assert.equal(await get('/a/last'), 200);
    const records = await proc.audit(ids.length); // parses every line: a fragment would throw
    for (const id of ids) assert.equal(records.filter((r) => r.requestId === id).length, 1, `one record for ${id}`);
    assert.ok(proc.stdout.some((l) => l.includes('audit trail writable again')));
  });
});
