import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './harness/gateway.js';
import { startEchoUpstream } from './harness/echo.js';

describe('path rewriting and Host towards the upstream', () => {
  it('strips and adds prefixes on whole segments, keeping the query as sent', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] }, keep: { targets: [echo.url], preserveHost: true } },
      routes: [
        { name: 'strip', match: { path: '/api/v1/**' }, upstream: 'echo', public: true, rewrite: { stripPrefix: '/api/v1' } },
        { name: 'both', match: { path: '/old/**' }, upstream: 'echo', public: true, rewrite: { stripPrefix: '/old/', addPrefix: '/new' } },
        { name: 'add', match: { path: '/svc/{id}' }, upstream: 'keep', public: true, rewrite: { addPrefix: '/internal/' } },
      ],
    });
    t.after(async () => { await gw.close(); await echo.close(); });
    const cases: [string, string][] = [
      ['/api/v1/orders?x=%2F', '/orders?x=%2F'],
      ['/api/v1', '/'],
      ['/api/v1/', '/'],
      ['/old/a/b', '/new/a/b'],
      ['/old', '/new/'],
      ['/svc/7', '/internal/svc/7'],
    ];
    for (const [sent, forwarded] of cases) {
      const res = await fetch(gw.url + sent);
      assert.equal(res.status, 200, sent);
      assert.equal((await res.json() as { url: string }).url, forwarded, sent);
    }
    const kept = echo.received.at(-1);
    assert.equal(kept?.headers.host, `127.0.0.1:${gw.port}`, 'preserveHost sends the client Host');
    await fetch(`${gw.url}/api/v1/x`);
    assert.equal(echo.received.at(-1)?.headers.host, `127.0.0.1:${echo.port}`, 'by default the target host is sent');
    assert.equal(echo.received.at(-1)?.headers['x-forwarded-host'], `127.0.0.1:${gw.port}`);
  });
});
