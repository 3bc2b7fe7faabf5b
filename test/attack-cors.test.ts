// Hostile and unlucky input against CORS at the gateway: what a shared cache in front of it keeps
// for one request must be right for the next one it serves the copy to.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

let echo: EchoUpstream;
let gw: TestGateway;
let counter = 0;

before(async () => {
  echo = await startEchoUpstream();
  gw = await startGateway({
    upstreams: { echo: { targets: [echo.url] } },
    cors: { anyone: { origins: ['*'] }, app: { origins: ['https://app.example.com'] } },
    routes: [
      { name: 'open', match: { path: '/open/**', methods: ['GET'] }, upstream: 'echo', public: true, cors: 'anyone' },
      { name: 'app', match: { path: '/app/**', methods: ['GET'] }, upstream: 'echo', public: true, cors: 'app' },
    ],
  });
});

after(async () => {
  await gw.close();
  await echo.close();
});

function get(path: string, lines: readonly string[] = []): Promise<RawResponse> {
  return rawRequest(gw.port, requestHead('GET', path, [...lines, 'Connection: close']), { timeoutMs: 3000, settleMs: 0 });
}

const varies = (res: RawResponse): string[] => (res.headers.vary ?? '').toLowerCase().split(',').map((t) => t.trim()).filter((t) => t !== '');

describe('CORS and shared caches', () => {
  it('a policy of every origin answers "*" whether the request had an Origin or not, so a response without Vary: Origin is right for every origin', async () => {
    for (const lines of [[], ['Origin: https://anywhere.test'], ['Origin: null']]) {
      const res = await get(`/open/${++counter}`, lines);
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], '*', lines.join() || 'no Origin');
      assert.equal(varies(res).includes('origin'), false);
      assert.match(res.headers['access-control-expose-headers'] ?? '', /X-Request-Id/);
    }
  });

  it('a policy of listed origins says Vary: Origin on a response to a request without one (its copy has no Access-Control-Allow-Origin)', async () => {
    const res = await get(`/app/${++counter}`);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.ok(varies(res).includes('origin'));
    const allowed = await get(`/app/${++counter}`, ['Origin: https://app.example.com']);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.ok(varies(allowed).includes('origin'));
  });
});
