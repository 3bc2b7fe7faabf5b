// `start --workers N` with a generated assertion key: the workers and the primary race to make it
// at first start and all end up with the one key, the workers signing with it and the primary's
// admin listener publishing it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startEchoUpstream } from './harness/echo.js';
import { startGatewayProcess } from './harness/gateway.js';

/** One GET on a fresh connection, so the primary spreads requests over the workers. */
function fresh(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', () => resolve(0));
    req.end();
  });
}

describe('identity assertions under --workers', () => {
  it('every worker signs with the one generated key, which the primary\'s admin listener and every worker publish', async (t) => {
    const echo = await startEchoUpstream();
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-wassert-'));
    t.after(async () => { await echo.close(); await rm(dataDir, { recursive: true, force: true }); });
    const proc = await startGatewayProcess({
      dataDir,
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { guests: { type: 'anonymous' } },
      identityAssertion: { issuer: 'https://gateway.test' },
      routes: [
        { name: 'open', match: { methods: ['GET'], path: '/open/**' }, upstream: 'echo', authenticate: ['guests'], assertIdentity: true },
        { name: 'jwks', match: { path: '/.well-known/jwks.json' }, public: true, serve: 'identity-jwks' },
      ],
    }, { args: ['--workers', '2'] });
    t.after(() => proc.stop('SIGKILL').then(() => undefined));

    const published = await (await fetch(`${proc.adminUrl}/.well-known/jwks.json`)).json() as JSONWebKeySet;
    assert.equal(published.keys.length, 1);
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${proc.url}/.well-known/jwks.json`, { headers: { connection: 'close' } });
      assert.deepEqual(await res.json(), published, 'every worker publishes the same set');
    }
    for (let i = 0; i < 12; i++) assert.equal(await fresh(`${proc.url}/open/${i}`), 200);
    const keys = createLocalJWKSet(published);
    const subjects = new Set<string>();
    for (const seen of echo.received) {
      const assertion = String(seen.headers.authorization ?? '').replace(/^Bearer /, '');
      const { payload } = await jwtVerify(assertion, keys, { issuer: 'https://gateway.test', audience: 'echo', typ: 'portcullis-identity+jwt', algorithms: ['EdDSA'] });
      subjects.add(`${String(payload.sub)} ${String(payload.auth_method)}`);
    }
    assert.equal(echo.received.length, 12);
    assert.deepEqual([...subjects], ['anonymous anonymous']);
    assert.equal(statSync(join(dataDir, 'identity-assertion', 'eddsa.pem')).mode & 0o777, 0o600);
    assert.equal(await proc.stop('SIGTERM'), 0);
  });
});
