// HTTP/2 on the TLS listener: chosen by ALPN beside HTTP/1.1, every stream through the same request
// path with its own audit record, pseudo-headers never forwarded, hostile targets and headers
// refused as on HTTP/1.1, and the session-level floods (rapid reset, CONTINUATION) cut off.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClientHttp2Session } from 'node:http2';
import type { AuditRecord } from '../src/audit/audit-record.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { h2Closed, h2Connect, h2Request, type H2Response } from './harness/h2-client.js';
import { FLAG, FRAME, frame, H2_ERROR, headerBlock, indexedStatus, RawH2 } from './harness/h2-frames.js';
import { wire } from './harness/raw-client.js';
import { httpsGet, testPki, writeCertificate, type TestPki } from './harness/tls.js';
import { skipWithout } from './harness/commands.js';

const MAX_HEADER_BYTES = 4096;
const MAX_HEADER_COUNT = 30;
const BODY_LIMIT = 1024;
const MAX_RESETS = 20;
const BIG_BODY = 4 * 1024 * 1024;
const WRITE_IDLE_MS = 300;

/** An upstream that answers with response fields HTTP/2 cannot carry as they are. */
async function startOddUpstream(): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url === '/odd/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BODY) });
      res.end(Buffer.alloc(BIG_BODY, 0x7a));
      return;
    }
    if (req.url === '/odd/slow') {
      // Headers, then nothing until the client gives up.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      return;
    }
    if (req.url === '/odd/repeated') {
      // Two Content-Type fields: HTTP/1.1 relays both, HTTP/2 allows one.
      res.writeHead(200, [['Content-Type', 'text/plain'], ['Content-Type', 'text/html'], ['Content-Length', '2']]);
      res.end('ok');
      return;
    }
    res.writeHead(200, [['Content-Type', 'text/plain'], ['Keep-Alive', 'timeout=5'], ['HTTP2-Settings', 'AAMAAABk'], ['Upgrade', 'h2c'], ['Connection', 'Upgrade, X-Hop'], ['X-Hop', '1'], ['X-End', 'kept'], ['Content-Length', '2']]);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}

describe('HTTP/2 on the HTTPS listener', () => {
  let echo: EchoUpstream;
  let odd: Awaited<ReturnType<typeof startOddUpstream>>;
  let pki: TestPki;
  let gw: TestGateway;
  let session: ClientHttp2Session;
  let port: number;

  const config = (): ConfigObject => ({
    listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', http2: { maxStreamResets: MAX_RESETS, streamResetWindowMs: 600000 } } },
    // Sessions idle between tests stay open; idle closing is tested on its own.
    limits: { maxHeaderBytes: MAX_HEADER_BYTES, maxHeaderCount: MAX_HEADER_COUNT, keepAliveTimeoutMs: 120000 },
    upstreams: { echo: { targets: [echo.url] }, odd: { targets: [odd.url] } },
    routes: [
      { name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true },
      { name: 'limited', match: { path: '/limited/**' }, upstream: 'echo', public: true, limits: { maxBodyBytes: BODY_LIMIT, bodyIdleTimeoutMs: 300 } },
      { name: 'odd', match: { path: '/odd/**' }, upstream: 'odd', public: true, limits: { writeIdleTimeoutMs: WRITE_IDLE_MS } },
    ],
  });

  before(async () => {
    echo = await startEchoUpstream();
    odd = await startOddUpstream();
    pki = await testPki();
    gw = await startGateway(config(), {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'tls'));
        await writeCertificate(join(dir, 'tls'), 'server', pki.server);
      },
    });
    port = Number(new URL(gw.httpsUrl ?? '').port);
    session = await h2Connect(gw.httpsUrl ?? '', pki.ca.cert);
  });
  after(async () => {
    session.destroy();
    await gw.close();
    await echo.close();
    await odd.close();
  });

  /** The one record of a response (by its request id). */
  async function recordOf(res: H2Response | { headers: Record<string, unknown> }): Promise<AuditRecord> {
    const header = res.headers['x-request-id'];
    const id = typeof header === 'string' ? header : '';
    assert.notEqual(id, '', 'response without a request id');
    const records = await gw.auditFor(id);
    assert.equal(records.length, 1, `records for ${id}: ${JSON.stringify(records)}`);
    return records[0] as AuditRecord;
  }

  /** Echoed requests received for a path. */
  const receivedFor = (url: string): number => echo.received.filter((r) => r.url === url).length;

  async function metric(name: string, labels: string): Promise<number> {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  }

  /**
   * The counter once it reached `value` (a session is counted when the server's side of it has
   * closed, which may follow the client's by a moment), or its last reading after 10 s (a bound, not a wait).
   */
  async function metricReaching(name: string, labels: string, value: number): Promise<number> {
    const deadline = Date.now() + 10_000;
    let seen = await metric(name, labels);
    while (seen < value && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      seen = await metric(name, labels);
    }
    return seen;
  }

  describe('ALPN', () => {
    it('serves h2 and http/1.1 clients on the same port, each recorded with its version', async () => {
      const h2 = await h2Request(session, { ':path': '/open/alpn-h2' });
      assert.equal(h2.status, 200);
      const h1 = await httpsGet(`${gw.httpsUrl}/open/alpn-h1`, pki.ca.cert);
      assert.equal(h1.status, 200);
      assert.equal((await recordOf(h2)).httpVersion, '2.0');
      assert.equal((await recordOf(h1)).httpVersion, '1.1');
      const plain = await fetch(`${gw.url}/open/alpn-plain`);
      assert.equal((await recordOf({ headers: { 'x-request-id': plain.headers.get('x-request-id') } })).httpVersion, '1.1');
    });

    it('serves curl --http2', async (t) => {
      if (skipWithout(t, 'curl', 'curl as a real HTTP/2 client')) return;
      const run = promisify(execFile);
      const { stdout: features } = await run('curl', ['--version']).catch(() => ({ stdout: '' }));
      if (!/\bHTTP2\b/.test(features)) { t.skip('curl without HTTP/2'); return; }
      const dir = join(gw.dir, 'tls');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(dir, 'ca.crt'), pki.ca.cert);
      const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', join(dir, 'ca.crt'), '--resolve', `localhost:${port}:127.0.0.1`,
        '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://localhost:${port}/open/curl`]);
      assert.equal(stdout, '2 200');
    });
  });

  describe('streams', () => {
    it('gives concurrent streams on one session each its own response and record', async () => {
      const paths = Array.from({ length: 10 }, (_, i) => `/open/concurrent/${i}`);
      const responses = await Promise.all(paths.map((p) => h2Request(session, { ':path': p })));
      for (const [i, res] of responses.entries()) {
        assert.equal(res.status, 200);
        assert.equal((JSON.parse(res.body) as { url: string }).url, paths[i]);
        const record = await recordOf(res);
        assert.equal(record.path, paths[i]);
        assert.equal(record.decision, 'allow');
        // Bytes of this stream's response, not of the shared connection.
        assert.equal(record.bytesOut, Buffer.byteLength(res.body));
      }
      assert.equal(new Set(responses.map((r) => r.headers['x-request-id'])).size, 10);
    });

    it('forwards no pseudo-header and takes :authority as the Host', async () => {
      const res = await h2Request(session, { ':path': '/open/pseudo', ':authority': 'api.example.com' });
      assert.equal(res.status, 200);
      const seen = echo.received.find((r) => r.url === '/open/pseudo');
      assert.ok(seen !== undefined);
      assert.ok(!seen.rawHeaders.some((h, i) => i % 2 === 0 && h.startsWith(':')), JSON.stringify(seen.rawHeaders));
      assert.equal(seen.headers['x-forwarded-host'], 'api.example.com');
    });

    it('joins the cookie fields HTTP/2 splits into one for the HTTP/1.1 upstream', async () => {
      const res = await h2Request(session, { ':path': '/open/cookies', cookie: ['a=1', 'b=2'] });
      assert.equal(res.status, 200);
      const seen = echo.received.find((r) => r.url === '/open/cookies');
      assert.deepEqual(seen?.rawHeaders.filter((_, i, all) => i % 2 === 1 && all[i - 1]?.toLowerCase() === 'cookie'), ['a=1; b=2']);
    });

    it('answers 100-continue only when forwarding, and 417 for another expectation', async () => {
      const ok = await h2Request(session, { ':path': '/open/expect', expect: '100-continue', 'content-length': '5' }, 'hello');
      assert.equal(ok.status, 200);
      assert.equal((JSON.parse(ok.body) as { bodyBytes: number }).bodyBytes, 5);
      const refused = await h2Request(session, { ':path': '/open/expect-other', expect: 'something' });
      assert.equal(refused.status, 417);
      assert.equal((await recordOf(refused)).reason, 'expectation_failed');
      assert.equal(receivedFor('/open/expect-other'), 0);
    });

    it('refuses a body on GET sent as DATA without Content-Length with 400 body_not_allowed', async () => {
      const res = await h2Request(session, { ':method': 'GET', ':path': '/open/get-body' }, 'smuggled');
      assert.equal(res.status, 400);
      assert.equal((await recordOf(res)).reason, 'body_not_allowed');
      assert.equal(receivedFor('/open/get-body'), 0);
    });

    it('forwards a body sent without Content-Length whole, counted in bytesIn', async () => {
      const res = await h2Request(session, { ':path': '/open/streamed-body' }, Buffer.alloc(3000, 0x62));
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(res.body) as { bodyBytes: number }).bodyBytes, 3000);
      assert.equal((await recordOf(res)).bytesIn, 3000);
    });

    it('refuses a streamed body past the route limit with 413 on that stream only', async () => {
      const res = await h2Request(session, { ':path': '/limited/big' }, Buffer.alloc(BODY_LIMIT * 4, 0x61));
      assert.equal(res.status, 413);
      assert.equal((await recordOf(res)).reason, 'body_too_large');
      const after = await h2Request(session, { ':path': '/open/after-413' });
      assert.equal(after.status, 200, 'the session carries on');
    });
  });

  describe('flow control and resets', () => {
    /** A session of its own, whose connection window never blocks (only the stream's own window does). */
    async function wideSession(): Promise<ClientHttp2Session> {
      const wide = await h2Connect(gw.httpsUrl ?? '', pki.ca.cert);
      wide.setLocalWindowSize(2 * BIG_BODY);
      return wide;
    }

    it('resets only the stream whose client stops reading (write idle timeout), audited abort; the session carries on', async () => {
      const own = await wideSession();
      after(() => own.destroy());
      const stream = own.request({ ':path': '/odd/big' });
      let status = 0;
      let requestId = '';
      stream.on('response', (h) => { status = Number(h[':status']); requestId = String(h['x-request-id']); });
      stream.on('error', () => undefined);
      // Never read: the stream's flow-control window fills, then the gateway's buffer for it.
      stream.pause();
      const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0)));
      // Meanwhile the same session serves another stream.
      assert.equal((await h2Request(own, { ':path': '/open/beside-stalled' })).status, 200);
      assert.equal(await closed, H2_ERROR.CANCEL, 'the stalled stream was not reset with CANCEL');
      assert.equal(status, 200);
      const [record] = await gw.auditFor(requestId);
      assert.equal(record?.decision, 'abort');
      assert.match(record?.detail ?? '', /did not read the response/);
      assert.ok((record?.bytesOut ?? BIG_BODY) < BIG_BODY, 'the whole body was counted as sent');
      assert.equal((await h2Request(own, { ':path': '/open/after-stall' })).status, 200);
    });

    it('answers 408 on a stream whose body stops arriving (per-stream body idle timeout), while the session carries on', async () => {
      const own = await wideSession();
      after(() => own.destroy());
      const stream = own.request({ ':method': 'POST', ':path': '/limited/slow-body', 'content-length': '100' }, { endStream: false });
      stream.on('error', () => undefined);
      stream.write('only part of it');
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      const status = await new Promise<number>((resolve) => stream.on('response', (h) => resolve(Number(h[':status']))));
      assert.equal(status, 408);
      // The stream is closed for it (RST_STREAM NO_ERROR after the whole answer): the client stops sending.
      assert.equal(await new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1))), H2_ERROR.NO_ERROR);
      assert.equal((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status: number }).status, 408);
      // Another stream on the same connection keeps the connection busy: the idle body is the stream's own.
      assert.equal((await h2Request(own, { ':path': '/open/beside-slow-body' })).status, 200);
      const [record] = await gw.auditWhere((r) => r.path === '/limited/slow-body');
      assert.equal(record?.reason, 'request_timeout');
      assert.equal(receivedFor('/limited/slow-body'), 0);
    });

    it('records a stream the client resets mid-response as client_aborted and aborts its upstream request', async () => {
      const own = await wideSession();
      after(() => own.destroy());
      const stream = own.request({ ':path': '/odd/slow' });
      stream.on('error', () => undefined);
      const requestId = await new Promise<string>((resolve) => stream.on('response', (h) => resolve(String(h['x-request-id']))));
      stream.close(H2_ERROR.CANCEL);
      const [record] = await gw.auditFor(requestId);
      assert.equal(record?.decision, 'abort');
      assert.equal(record?.reason, 'client_aborted');
      assert.equal(record?.upstream, 'odd');
      assert.equal((await h2Request(own, { ':path': '/open/after-cancel' })).status, 200);
    });
  });

  describe('hostile targets and headers, as on HTTP/1.1', () => {
    // [:path, status, reason]: what the request path refuses, answered and recorded, nothing forwarded.
    const TARGETS: [string, number, string][] = [
      ['/open/a%2Fb', 400, 'ambiguous_path'],
      ['/open/a%5cb', 400, 'ambiguous_path'],
      ['/open/..%2f..%2fadmin', 400, 'ambiguous_path'],
      ['/open/../../admin', 400, 'ambiguous_path'],
      ['/open/%2e%2e/%2e%2e/admin', 400, 'ambiguous_path'],
      ['/open/a%00b', 400, 'invalid_target'],
      ['/open/%C0%AE', 400, 'invalid_target'],
      ['*', 400, 'invalid_target'],
      [`/open/${'a'.repeat(9000)}`, 414, 'uri_too_long'],
    ];
    for (const [path, status, reason] of TARGETS) {
      it(`refuses :path ${path.slice(0, 40)} with ${status} ${reason}`, async () => {
        const before = echo.received.length;
        const res = await h2Request(session, { ':path': path, ...(path === '*' ? { ':method': 'OPTIONS' } : {}) });
        if (res.status === 0) {
          // nghttp2 reset it before the request path (header list too large for this :path).
          assert.notEqual(res.rstCode, 0);
        } else {
          assert.equal(res.status, status, res.body);
          assert.match(String(res.headers['content-type']), /application\/problem\+json/);
          assert.equal((await recordOf(res)).reason, reason);
        }
        assert.equal(echo.received.length, before, 'forwarded');
      });
    }

    it('normalises dot segments as on HTTP/1.1 and forwards the canonical path', async () => {
      const res = await h2Request(session, { ':path': '/open/x/./y/../z' });
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(res.body) as { url: string }).url, '/open/x/z');
    });

    // Sent as raw frames: node's client would not send these.
    const RAW_REFUSED: [string, [string, string][]][] = [
      ['an absolute-form :path', [[':path', 'http://evil.example/open/x']]],
      ['a control character in :path', [[':path', '/open/a\x01b']]],
      ['a Connection field', [[':path', '/open/raw'], ['connection', 'keep-alive']]],
      ['Transfer-Encoding', [[':path', '/open/raw'], ['transfer-encoding', 'chunked']]],
      ['Upgrade', [[':path', '/open/raw'], ['upgrade', 'websocket']]],
      ['Keep-Alive', [[':path', '/open/raw'], ['keep-alive', '5']]],
      ['Proxy-Connection', [[':path', '/open/raw'], ['proxy-connection', 'keep-alive']]],
      ['TE other than trailers', [[':path', '/open/raw'], ['te', 'gzip']]],
      ['an upper-case field name', [[':path', '/open/raw'], ['X-Upper', '1']]],
      ['a repeated :path', [[':path', '/open/raw'], [':path', '/open/other']]],
      ['extended CONNECT (:protocol, not offered)', [[':path', '/open/raw'], [':protocol', 'websocket']]],
    ];
    for (const [label, fields] of RAW_REFUSED) {
      it(`resets a stream with ${label} (PROTOCOL_ERROR), forwards nothing, and keeps serving the session`, async () => {
        const others = (): number => echo.received.filter((r) => r.url !== '/open/after-reset').length;
        const before = others();
        const raw = await RawH2.connect(port, pki.ca.cert);
        try {
          const first = fields.findIndex(([n]) => n === ':path');
          const path = fields[first]?.[1] ?? '/';
          const rest = fields.filter((_, i) => i !== first);
          const method = label.startsWith('extended CONNECT') ? 'CONNECT' : 'GET';
          raw.request(1, [[':method', method], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ...rest]);
          const reset = await raw.waitFor((f) => f.type === FRAME.RST_STREAM && f.streamId === 1);
          assert.equal(raw.resetCode(1), H2_ERROR.PROTOCOL_ERROR, `no reset for ${label}`);
          assert.ok(reset !== null);
          raw.request(3, [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/open/after-reset']]);
          const answer = await raw.waitFor((f) => f.type === FRAME.HEADERS && f.streamId === 3);
          assert.equal(answer === null ? null : indexedStatus(answer.payload), 200);
        } finally {
          raw.close();
        }
        assert.equal(others(), before);
      });
    }

    it('refuses :authority and Host naming different hosts with 400 invalid_header', async () => {
      const raw = await RawH2.connect(port, pki.ca.cert);
      try {
        raw.request(1, [[':method', 'GET'], [':scheme', 'https'], [':authority', 'api.example.com'], [':path', '/open/mismatch'], ['host', 'admin.internal']]);
        const answer = await raw.waitFor((f) => f.type === FRAME.HEADERS && f.streamId === 1);
        assert.ok(answer !== null);
        assert.equal(indexedStatus(answer.payload), 400);
      } finally {
        raw.close();
      }
      const [record] = await gw.auditWhere((r) => r.path === '/open/mismatch');
      assert.equal(record?.reason, 'invalid_header');
      assert.equal(record?.httpVersion, '2.0');
      assert.equal(receivedFor('/open/mismatch'), 0);
      // The same host in both is one Host.
      const same = await h2Request(session, { ':path': '/open/same-host', ':authority': 'api.example.com', host: 'API.example.com' });
      assert.equal(same.status, 200);
    });

    it('refuses :scheme http on the TLS listener with 400', async () => {
      const raw = await RawH2.connect(port, pki.ca.cert);
      try {
        raw.request(1, [[':method', 'GET'], [':scheme', 'http'], [':authority', 'localhost'], [':path', '/open/scheme']]);
        const answer = await raw.waitFor((f) => f.type === FRAME.HEADERS && f.streamId === 1);
        assert.equal(answer === null ? null : indexedStatus(answer.payload), 400);
      } finally {
        raw.close();
      }
      const [record] = await gw.auditWhere((r) => r.path === '/open/scheme');
      assert.equal(record?.reason, 'bad_request');
      assert.equal(receivedFor('/open/scheme'), 0);
    });

    it('refuses CONNECT with 400 invalid_target, as on HTTP/1.1, and tunnels nothing', async () => {
      const res = await h2Request(session, { ':method': 'CONNECT', ':authority': 'evil.example:443' });
      assert.equal(res.status, 400);
      const record = await recordOf(res);
      assert.equal(record.reason, 'invalid_target');
      assert.equal(record.method, 'CONNECT');
    });

    it('strips spoofed identity and forwarding headers, in any spelling', async () => {
      const res = await h2Request(session, {
        ':path': '/open/spoof',
        'x-user-id': 'admin', 'x-tenant-id': 'other', 'x-roles': 'admin', 'x-scopes': 'all', 'x-auth-method': 'jwt',
        'x-client-cert-subject': 'CN=admin', 'x_user_id': 'admin', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil',
        'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-request-id': 'chosen-by-client', 'x-end-to-end': 'kept',
      });
      assert.equal(res.status, 200);
      const seen = echo.received.find((r) => r.url === '/open/spoof');
      assert.ok(seen !== undefined);
      for (const name of ['x-user-id', 'x-tenant-id', 'x-roles', 'x-scopes', 'x-auth-method', 'x-client-cert-subject', 'x_user_id', 'x-real-ip', 'forwarded']) {
        assert.equal(seen.headers[name], undefined, `${name} forwarded`);
      }
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-host'], 'localhost:' + String(port));
      assert.notEqual(seen.headers['x-request-id'], 'chosen-by-client');
      assert.equal(seen.headers['x-end-to-end'], 'kept');
    });

    it('answers 431 for a header list past maxHeaderBytes, and resets one past twice that before reading it whole', async () => {
      const big = await h2Request(session, { ':path': '/open/big-headers', 'x-big': 'a'.repeat(MAX_HEADER_BYTES) });
      assert.equal(big.status, 431);
      assert.equal((await recordOf(big)).reason, 'headers_too_large');
      const huge = await h2Request(session, { ':path': '/open/huge-headers', 'x-big': 'a'.repeat(MAX_HEADER_BYTES * 3) });
      assert.equal(huge.status, 0);
      assert.equal(huge.rstCode, H2_ERROR.ENHANCE_YOUR_CALM);
      assert.equal(receivedFor('/open/big-headers') + receivedFor('/open/huge-headers'), 0);
      assert.equal((await h2Request(session, { ':path': '/open/after-431' })).status, 200);
    });

    it('answers 431 for more header fields than maxHeaderCount, pseudo-headers not counted', async () => {
      const fields = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-f${i}`, 'v']));
      const at = await h2Request(session, { ':path': '/open/count-ok', ...fields(MAX_HEADER_COUNT) });
      assert.equal(at.status, 200);
      const over = await h2Request(session, { ':path': '/open/count-over', ...fields(MAX_HEADER_COUNT + 1) });
      assert.equal(over.status, 431);
      assert.equal((await recordOf(over)).reason, 'headers_too_large');
    });
  });

  describe('upstream responses', () => {
    it('drops connection-specific response fields for both protocols', async () => {
      const res = await h2Request(session, { ':path': '/odd/hop' });
      assert.equal(res.status, 200);
      for (const name of ['keep-alive', 'http2-settings', 'upgrade', 'connection', 'x-hop']) assert.equal(res.headers[name], undefined, name);
      assert.equal(res.headers['x-end'], 'kept');
      const h1 = await httpsGet(`${gw.httpsUrl}/odd/hop`, pki.ca.cert);
      assert.equal(h1.status, 200);
      assert.equal(h1.headers['http2-settings'], undefined);
    });

    it('answers 502 over HTTP/2 when the upstream repeats a field HTTP/2 allows once', async () => {
      const res = await h2Request(session, { ':path': '/odd/repeated' });
      assert.equal(res.status, 502);
      const record = await recordOf(res);
      assert.equal(record.reason, 'upstream_error');
      assert.match(record.detail ?? '', /content-type/i);
      const h1 = await httpsGet(`${gw.httpsUrl}/odd/repeated`, pki.ca.cert);
      assert.equal(h1.status, 200, 'HTTP/1.1 relays it as it came');
    });
  });

  describe('floods', () => {
    /** HEADERS and, at once, RST_STREAM for `count` streams from `first`, in one write: the attack's pattern. */
    const resetPairs = (first: number, count: number): Buffer => Buffer.concat(Array.from({ length: count }, (_, i) => [
      frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, first + 2 * i, headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/open/reset']])),
      frame(FRAME.RST_STREAM, 0, first + 2 * i, Buffer.from([0, 0, 0, H2_ERROR.CANCEL])),
    ]).flat());

    it('closes a session that resets streams rapidly (CVE-2023-44487) with GOAWAY ENHANCE_YOUR_CALM, and serves others', async () => {
      const before = echo.received.length;
      const closedBefore = await metric('portcullis_http2_sessions_closed_total', 'reason="rapid_reset"');
      const unhandledBefore = await metric('portcullis_http2_streams_reset_total', 'when="unhandled"');
      const raw = await RawH2.connect(port, pki.ca.cert);
      try {
        // Nothing of the client's left unread when the server closes (unread bytes would make its
        // close a TCP reset, which can discard the GOAWAY before the client reads it).
        await raw.settled();
        raw.send(resetPairs(1, MAX_RESETS + 1));
        assert.ok(await raw.closed(), 'session not closed');
        assert.equal(raw.goaway()?.code, H2_ERROR.ENHANCE_YOUR_CALM);
      } finally {
        raw.close();
      }
      assert.equal(await metricReaching('portcullis_http2_sessions_closed_total', 'reason="rapid_reset"', closedBefore + 1), closedBefore + 1);
      // Reset in the same read as their HEADERS, they never reached the request path: counted, not audited, not forwarded.
      assert.equal(await metricReaching('portcullis_http2_streams_reset_total', 'when="unhandled"', unhandledBefore + MAX_RESETS + 1), unhandledBefore + MAX_RESETS + 1);
      assert.equal(echo.received.length, before);
      await gw.auditBarrier();
      assert.equal((await gw.audit()).filter((r) => r.path === '/open/reset').length, 0);
      assert.equal((await h2Request(session, { ':path': '/open/after-reset' })).status, 200);
    });

    it('ends a sustained reset flood with the session closed, memory bounded, and others served', async () => {
      const before = echo.received.length;
      const raw = await RawH2.connect(port, pki.ca.cert);
      const heapBefore = process.memoryUsage().heapUsed;
      let sent = 0;
      try {
        for (let id = 1; sent < 5000 && !raw.ended; sent += 50, id += 100) {
          if (!raw.send(resetPairs(id, 50))) await raw.drained();
        }
        assert.ok(await raw.closed(), 'session not closed');
      } finally {
        raw.close();
      }
      assert.ok(sent < 5000, 'the whole flood was taken');
      assert.ok(echo.received.length - before <= MAX_RESETS, `${echo.received.length - before} forwarded`);
      assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, 'heap grew by more than 64 MiB');
      assert.equal((await h2Request(session, { ':path': '/open/after-reset-flood' })).status, 200);
    });

    it('cuts off a CONTINUATION flood (CVE-2024-27316) at the header list limit, and serves others', async () => {
      const before = echo.received.length;
      const raw = await RawH2.connect(port, pki.ca.cert);
      const heapBefore = process.memoryUsage().heapUsed;
      try {
        raw.request(1, [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/open/continuation']], { endHeaders: false });
        const piece = headerBlock([['x-pad', 'p'.repeat(1000)]]);
        let sent = 0;
        for (; sent < 10000 && !raw.ended; sent++) {
          if (!raw.send(frame(FRAME.CONTINUATION, 0, 1, piece))) await raw.drained();
        }
        const cut = await raw.waitFor((f) => f.type === FRAME.GOAWAY || (f.type === FRAME.RST_STREAM && f.streamId === 1));
        assert.ok(cut !== null || raw.ended, 'neither reset nor closed');
        // Cut off long before the 10 MB the client would have sent.
        assert.ok(sent < 10000, `all ${sent} CONTINUATION frames were taken`);
      } finally {
        raw.close();
      }
      assert.equal(echo.received.length, before);
      assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, 'heap grew by more than 64 MiB');
      assert.equal((await h2Request(session, { ':path': '/open/after-continuation' })).status, 200);
    });
    // [label, what the client sends]: frame floods node:http2 and nghttp2 cut off (CVE-2019-9512, -9515, -9518).
    const FRAME_FLOODS: [string, (raw: RawH2) => Buffer, boolean][] = [
      ['empty DATA frames', () => frame(FRAME.DATA, 0, 1), false],
      ['PING frames whose acknowledgements it never reads', () => frame(FRAME.PING, 0, 0, Buffer.alloc(8)), true],
      ['SETTINGS frames whose acknowledgements it never reads', () => frame(FRAME.SETTINGS, 0, 0), true],
    ];
    for (const [label, make, unread] of FRAME_FLOODS) {
      it(`closes a connection that floods ${label}, counted as flood, and serves others`, async () => {
        const floodsBefore = await metric('portcullis_http2_sessions_closed_total', 'reason="flood"');
        const raw = await RawH2.connect(port, pki.ca.cert);
        try {
          // A stream that stays open, for the DATA frames to belong to.
          raw.request(1, [[':method', 'POST'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/open/flood']], { endStream: false });
          if (unread) raw.socket.pause();
          const chunk = Buffer.concat(Array.from({ length: 100 }, () => make(raw)));
          for (let i = 0; i < 2000 && !raw.ended; i++) {
            if (!raw.send(chunk)) await raw.drained(50);
          }
          raw.socket.resume();
          assert.ok(await raw.closed(), 'connection not closed');
        } finally {
          raw.close();
        }
        assert.equal(await metricReaching('portcullis_http2_sessions_closed_total', 'reason="flood"', floodsBefore + 1), floodsBefore + 1);
        assert.equal((await h2Request(session, { ':path': '/open/after-frame-flood' })).status, 200);
      });
    }
  });

  describe('plain listener', () => {
    it('answers an HTTP/2 prior-knowledge preface on the plain listener with 400 and records it', async () => {
      const result = await wire(gw.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      assert.equal(result.responses[0]?.status, 400, JSON.stringify(result.raw));
      assert.ok(result.closed);
      const [record] = await gw.auditWhere((r) => r.stage === 'listener' && (r.detail ?? '').includes('PRI * HTTP/2.0'));
      assert.ok(record !== undefined);
      assert.equal(record.status, 400);
      assert.equal(record.reason, 'bad_request');
      assert.match(record.detail ?? '', /h2c is not served/);
    });
  });
});

describe('HTTP/2 settings', () => {
  it('closes a connection with no stream open for keepAliveTimeoutMs with GOAWAY, counted as idle', async () => {
    const echo = await startEchoUpstream();
    const pki = await testPki();
    const gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      limits: { keepAliveTimeoutMs: 200 },
      upstreams: { echo: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: async (dir) => { await mkdir(join(dir, 'tls')); await writeCertificate(join(dir, 'tls'), 'server', pki.server); } });
    try {
      const session = await h2Connect(gw.httpsUrl ?? '', pki.ca.cert);
      assert.equal((await h2Request(session, { ':path': '/open/idle' })).status, 200);
      let code: number | null = null;
      session.once('goaway', (c: number) => { code = c; });
      assert.ok(await h2Closed(session), 'idle session not closed');
      assert.equal(code, H2_ERROR.NO_ERROR);
      let text = '';
      // Counted once the server's side has closed, which may follow the client's by a moment.
      for (const deadline = Date.now() + 10_000; !/^portcullis_http2_sessions_closed_total\{reason="idle"\} 1$/m.test(text) && Date.now() < deadline;) {
        text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.match(text, /^portcullis_http2_sessions_closed_total\{reason="idle"\} 1$/m);
    } finally {
      await gw.close();
      await echo.close();
    }
  });

  it('serves HTTP/1.1 only with http2.enabled false, and drains sessions with GOAWAY on stop', async () => {
    const echo = await startEchoUpstream();
    const pki = await testPki();
    const dirs = async (dir: string): Promise<void> => { await mkdir(join(dir, 'tls')); await writeCertificate(join(dir, 'tls'), 'server', pki.server); };
    const base = { upstreams: { echo: { targets: [echo.url] } }, routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }] };
    const off = await startGateway({ ...base, listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key', http2: { enabled: false } } } }, { beforeStart: dirs });
    const on = await startGateway({ ...base, listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } } }, { beforeStart: dirs });
    try {
      const offPort = Number(new URL(off.httpsUrl ?? '').port);
      // A client that offers h2 only is refused in the handshake (no_application_protocol).
      await assert.rejects(RawH2.connect(offPort, pki.ca.cert), /no application protocol|ALPN/);
      assert.equal((await httpsGet(`${off.httpsUrl}/open/h1`, pki.ca.cert)).status, 200);
      const session = await h2Connect(on.httpsUrl ?? '', pki.ca.cert);
      assert.equal((await h2Request(session, { ':path': '/open/before-stop' })).status, 200);
      let goaway = false;
      session.once('goaway', () => { goaway = true; });
      await on.gateway.stop();
      assert.ok(await h2Closed(session));
      assert.ok(goaway, 'no GOAWAY before the session closed');
    } finally {
      await off.close();
      await on.close();
      await echo.close();
    }
  });
});
