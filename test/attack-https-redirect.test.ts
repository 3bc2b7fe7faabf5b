// The redirecting plain listener's own answers (the 308, and the 400s of its edge checks) carry the
// gateway's security headers like every other generated response: never cached, never sniffed,
// never framed. And every response-stage list is made of stages, not of the functions that build
// them (a function has a `name` and an `apply`, so the type checker takes one for a stage).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { requestPath } from '../src/pipeline/request-path.js';
import { redirectPath } from '../src/server/https-redirect.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, toYaml, type TestGateway } from './harness/gateway.js';
import { rawRequest } from './harness/raw-client.js';
import { testPki, writeCertificate } from './harness/tls.js';

const head = (target: string, lines: readonly string[]): string => [`GET ${target} HTTP/1.1`, ...lines, 'Connection: close'].join('\r\n') + '\r\n\r\n';

describe('listen.http.mode: redirect, answers with the security headers', () => {
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    const pki = await testPki();
    gw = await startGateway({
      listen: { http: { mode: 'redirect' }, https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { echo: { targets: [upstream.url] } },
      responseHeaders: { contentSecurityPolicy: "default-src 'none'" },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'tls'));
        await writeCertificate(join(dir, 'tls'), 'server', pki.server);
      },
    });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  for (const [what, lines, status] of [
    ['the 308 to HTTPS', ['Host: localhost'], 308],
    ['a 400 for a hostile Host', ['Host: evil.example@gw.test'], 400],
  ] as const) {
    it(`${what}: no-store, nosniff, the configured X-Frame-Options and Content-Security-Policy, no HSTS on plain HTTP`, async () => {
      const res = await rawRequest(gw.port, head('/open/a', lines), { settleMs: 0 });
      assert.equal(res.status, status);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
      assert.equal(res.headers['referrer-policy'], 'no-referrer');
      assert.equal(res.headers['strict-transport-security'], undefined);
    });
  }
});

describe('response-stage lists', () => {
  const config = compileConfig(loadConfigText(toYaml({
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    routes: [{ name: 'r', match: { path: '/**' }, upstream: 'app', public: true }],
  }), 'gateway.yaml', {}));

  it('hold stages only, on the proxy path and the redirect path alike', () => {
    for (const [name, path] of [['request path', requestPath(config, () => true)], ['redirect path', redirectPath(config, () => true, () => 8443)]] as const) {
      for (const stage of path.response) {
        assert.equal(typeof stage, 'object', `${name}: ${stage.name} is a ${typeof stage}, not a stage (a factory not called?)`);
      }
    }
  });
});
