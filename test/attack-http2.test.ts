// Hostile HTTP/2 clients: a client that opens streams and never opens its flow-control window
// holds every stream, its session, and the streams' audit records, unless the gateway bounds it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { FRAME, H2_ERROR, RawH2 } from './harness/h2-frames.js';
import { testPki, writeCertificate, type TestPki } from './harness/tls.js';

/** SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 0: the server may send headers, never a byte of body. */
function zeroWindow(): Buffer {
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(0x4, 0);
  settings.writeUInt32BE(0, 2);
  return settings;
}

describe('HTTP/2: a client that never opens its flow-control window', () => {
  let pki: TestPki;
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    pki = await testPki();
    upstream = await startEchoUpstream();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      limits: { writeIdleTimeoutMs: 300 },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true },
        { name: 'patient', match: { path: '/patient/**' }, upstream: 'echo', public: true, limits: { writeIdleTimeoutMs: 60_000 } },
      ],
    }, { beforeStart: async (dir) => { await mkdir(join(dir, 'tls')); await writeCertificate(join(dir, 'tls'), 'server', pki.server); } });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const port = (): number => Number(new URL(gw.httpsUrl ?? '').port);
  const get = (path: string): [string, string][] => [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path]];

  it('cancels a relayed response and a denial the client never takes after writeIdleTimeoutMs, each recorded as abort', async () => {
    const raw = await RawH2.connect(port(), pki.ca.cert, zeroWindow());
    try {
      await raw.settled();
      raw.request(1, get('/open/stalled'));
      raw.request(3, get('/nowhere/stalled'));
      for (const stream of [1, 3]) {
        const reset = await raw.waitFor((f) => f.type === FRAME.RST_STREAM && f.streamId === stream, 5000);
        assert.ok(reset !== null, `stream ${stream} is never released: ${raw.frames.map((f) => `${f.type}/${f.streamId}`).join(' ')}`);
        assert.equal(raw.resetCode(stream), H2_ERROR.CANCEL, 'cut short: CANCEL, never NO_ERROR');
      }
    } finally {
      raw.close();
    }
    const relayed = await gw.auditWhere((r) => r.path === '/open/stalled');
    assert.equal(relayed.length, 1);
    assert.equal(relayed[0]?.decision, 'abort');
    assert.match(String(relayed[0]?.detail), /did not take the response for 300 ms/);
    const denied = await gw.auditWhere((r) => r.path === '/nowhere/stalled');
    assert.equal(denied.length, 1);
    assert.equal(denied[0]?.status, 404);
    assert.equal(denied[0]?.decision, 'abort');
  });

  it('gives a route its own writeIdleTimeoutMs: a stalled stream there is not cut at the listener\'s', async () => {
    const raw = await RawH2.connect(port(), pki.ca.cert, zeroWindow());
    try {
      await raw.settled();
      raw.request(1, get('/patient/stalled'));
      await raw.waitFor((f) => f.type === FRAME.HEADERS && f.streamId === 1, 5000);
      // Well past the listener's 300 ms: the route allows 60 s.
      const reset = await raw.waitFor((f) => f.type === FRAME.RST_STREAM && f.streamId === 1, 1500);
      assert.equal(reset, null);
    } finally {
      raw.close();
    }
  });
});
