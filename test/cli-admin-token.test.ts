// `portcullis admin token` prints a token and the admin.tokenHash that admits it: a gateway
// configured with the printed hash accepts that token on the admin API and refuses any other.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { admin } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { CLI, startGateway } from './harness/gateway.js';

const run = promisify(execFile);

async function adminToken(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(process.execPath, [CLI, 'admin', 'token', ...args]);
  assert.equal(stderr, '');
  return stdout;
}

describe('portcullis admin token', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEchoUpstream(); });
  after(async () => { await echo.close(); });

  it('prints token: and tokenHash: lines; a gateway with that hash accepts the token and refuses others', async () => {
    const out = await adminToken();
    const m = /^token: ([A-Za-z0-9_-]{43})\ntokenHash: (sha256:[0-9a-f]{64})\n$/.exec(out);
    assert.ok(m !== null, `two lines, token (32 bytes, base64url) then tokenHash:\n${out}`);
    const [, token = '', tokenHash = ''] = m;
    const gw = await startGateway({
      admin: { tokenHash },
      upstreams: { echo: { targets: [echo.url] } },
      routes: [{ name: 'hello', match: { path: '/hello' }, upstream: 'echo', public: true }],
    });
    try {
      const accepted = await admin(gw.adminUrl, 'POST', '/admin/reload', {}, token);
      assert.equal(accepted.status, 200, accepted.body);
      const other = JSON.parse(await adminToken('--json')) as { token: string };
      for (const wrong of [other.token, `${token}x`, token.slice(0, -1), token.toUpperCase(), tokenHash, tokenHash.slice('sha256:'.length)]) {
        const refused = await admin(gw.adminUrl, 'POST', '/admin/reload', {}, wrong);
        assert.equal(refused.status, 401, `refuses ${wrong}`);
      }
    } finally {
      await gw.close();
    }
  });

  it('--json prints exactly {token, tokenHash}; every run draws a new token', async () => {
    const outs = await Promise.all([adminToken('--json'), adminToken('--json'), adminToken('--json')]);
    const parsed = outs.map((o) => JSON.parse(o) as Record<string, string>);
    for (const p of parsed) {
      assert.deepEqual(Object.keys(p), ['token', 'tokenHash']);
      assert.match(p.token ?? '', /^[A-Za-z0-9_-]{43}$/);
      assert.match(p.tokenHash ?? '', /^sha256:[0-9a-f]{64}$/);
    }
    assert.equal(new Set(parsed.map((p) => p.token)).size, 3, 'three runs, three tokens');
  });
});
