import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { QUICKSTART_CONFIG } from '../src/demo/demo.js';
import { CLI } from './harness/gateway.js';

describe('examples/quickstart', () => {
  it('compiles with the demo environment', async () => {
    const config = compileConfig(await loadConfigFile(QUICKSTART_CONFIG, { ECHO_URL: 'http://127.0.0.1:1', DEMO_ISSUER: 'http://127.0.0.1:2/', DEMO_JWKS_URI: 'http://127.0.0.1:2/jwks.json', DEMO_ADMIN_TOKEN_HASH: `sha256:${'0'.repeat(64)}` }));
    assert.ok(config.apiKeys !== null, 'the quickstart has API keys');
    assert.ok(config.routes.length >= 2);
    assert.equal(config.listen.http.port, 8080);
    assert.equal(config.admin.port, 9901);
    assert.equal(config.admin.host, '127.0.0.1');
  });

  it('portcullis demo serves the quickstart: allowed, denied, and spoofed headers stripped', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-demo-'));
    const child = spawn(process.execPath, [CLI, 'demo'], {
      env: { ...process.env, PORT: '0', ADMIN_PORT: '0', PORTCULLIS_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.after(async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    });
    let output = '';
    const base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start:\n${output}`)), 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /gateway (http:\/\/localhost:\d+) -> echo upstream/.exec(output);
        if (match?.[1] !== undefined && output.includes('Press Ctrl+C')) { clearTimeout(timer); resolve(match[1]); }
      });
      child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    });
    for (const line of ['curl -s', '/hello/world', '/internal/secrets', 'X-User-Id: admin', '/readyz']) assert.ok(output.includes(line), `demo prints ${line}`);

    const allowed = await fetch(`${base}/hello/world`, { headers: { 'X-User-Id': 'admin', 'X_Roles': 'root' } });
    assert.equal(allowed.status, 200);
    const echoed = await allowed.json() as { url: string; headers: Record<string, string> };
    assert.equal(echoed.url, '/hello/world');
    assert.equal(echoed.headers['x-user-id'], undefined);
    assert.equal(echoed.headers.x_roles, undefined);
    assert.equal(echoed.headers['x-request-id'], allowed.headers.get('x-request-id'));

    const denied = await fetch(`${base}/internal/secrets`);
    assert.equal(denied.status, 404);
    assert.equal(denied.headers.get('content-type'), 'application/problem+json');
    assert.equal((await fetch(`${base}/hello/world`, { method: 'DELETE' })).headers.get('allow'), 'GET, HEAD');

    // The printed tokens do what the printed curl lines say.
    const token = (name: string): string => {
      const match = new RegExp(`^  ${name}=(\\S+)$`, 'm').exec(output);
      assert.ok(match?.[1] !== undefined, `demo prints ${name}`);
      return match[1];
    };
    const as = async (path: string, name?: string) => fetch(`${base}${path}`, { headers: name === undefined ? {} : { authorization: `Bearer ${token(name)}` } });
    const orders = await as('/api/acme/orders/42', 'USER_TOKEN');
    assert.equal(orders.status, 200);
    const seen = await orders.json() as { headers: Record<string, string> };
    assert.equal(seen.headers['x-user-id'], 'alice');
    assert.equal(seen.headers['x-tenant-id'], 'acme');
    assert.equal(seen.headers['x-scopes'], 'orders:read');
    assert.equal(seen.headers['x-user-email'], 'alice@acme.example');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal((await as('/api/admin/stats', 'USER_TOKEN')).status, 403);
    assert.equal((await as('/api/admin/stats', 'ADMIN_TOKEN')).status, 200);
    assert.equal((await as('/api/globex/orders/42', 'USER_TOKEN')).status, 403);
    const expired = await as('/api/acme/orders/42', 'EXPIRED_TOKEN');
    assert.equal(expired.status, 401);
    assert.equal(expired.headers.get('www-authenticate'), 'Bearer realm="portcullis", error="invalid_token"');
    assert.equal((await as('/api/acme/orders/42')).status, 401);
    for (const line of ['$USER_TOKEN', '$ADMIN_TOKEN', '$EXPIRED_TOKEN', '/api/admin/stats']) assert.ok(output.includes(line), `demo prints ${line}`);

    // Rate limits: the demo's burst ended in 429 with Retry-After and the rate-limit headers.
    assert.match(output, /allows\n5 every 10 s per client address: 200 200 200 200 200 429 429\./);
    for (const header of ['retry-after: ', 'ratelimit-policy: "demo-burst";q=5;w=10', 'ratelimit: "demo-burst";r=0;t=', 'x-ratelimit-remaining: 0']) {
      assert.ok(output.includes(`    ${header}`), `demo prints ${header}`);
    }
    // One request every 2 s refills: within three in a row, one is refused.
    let limited = await fetch(`${base}/limited/burst`);
    for (let i = 0; i < 2 && limited.status !== 429; i++) limited = await fetch(`${base}/limited/burst`);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('content-type'), 'application/problem+json');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.ok(output.includes(`curl -si ${base}/limited/burst`));

    // API keys: the demo's own walkthrough, then the printed key and admin lines.
    assert.match(output, /GET \/api\/acme\/orders\/42 with it answered 200; after POST \/admin\/keys\/[0-9a-z]{16}\/revoke, 401\./);
    const apiKey = token('API_KEY');
    assert.match(apiKey, /^pk_demo_[0-9a-z]{16}_[0-9A-Za-z]{49}$/);
    const withKey = async () => fetch(`${base}/api/acme/orders/42`, { headers: { 'x-api-key': apiKey } });
    const keyed = await withKey();
    assert.equal(keyed.status, 200);
    const keyedSeen = await keyed.json() as { headers: Record<string, string> };
    assert.equal(keyedSeen.headers['x-auth-method'], 'apiKey');
    assert.equal(keyedSeen.headers['x-user-id'], 'demo-billing-service');
    assert.equal(keyedSeen.headers['x-api-key'], undefined);
    const revokeLine = /curl -s -X POST -H "Authorization: Bearer \$PORTCULLIS_ADMIN_TOKEN" -H "Content-Type: application\/json" (\S+\/revoke)$/m.exec(output);
    assert.ok(revokeLine?.[1] !== undefined, 'demo prints the revoke line');
    const revoked = await fetch(revokeLine[1], { method: 'POST', headers: { authorization: `Bearer ${token('PORTCULLIS_ADMIN_TOKEN')}`, 'content-type': 'application/json' } });
    assert.equal(revoked.status, 200);
    assert.equal((await withKey()).status, 401);
  });
});
