import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEMO_RESOURCE, startDemoAuthorizationServer, type DemoAuthorizationServer, type DemoClient } from '../src/demo/demo-authorization-server.js';

const MODULE = fileURLToPath(new URL('../src/demo/demo-authorization-server.js', import.meta.url));

const basic = (client: DemoClient): string => `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;

async function post(url: string, body: URLSearchParams | string, authorization?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization === undefined ? {} : { authorization }) }, body });
  const text = await res.text();
  return { status: res.status, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> };
}

/** Resolves with whether a TCP connection to host:port is accepted. */
async function accepts(host: string, port: number): Promise<boolean> {
  const socket = connect({ host, port });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

describe('the demo\'s authorization server', () => {
  let as: DemoAuthorizationServer;
  before(async () => { as = await startDemoAuthorizationServer(); });
  after(async () => { await as.close(); });
  const introspect = (token: string, client: DemoClient = as.gateway) => post(as.introspectionEndpoint, new URLSearchParams({ token }), basic(client));

  it('publishes its endpoints by discovery, on 127.0.0.1', async () => {
    assert.match(as.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${as.issuer}/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    const meta = await res.json() as Record<string, unknown>;
    assert.equal(meta.issuer, as.issuer);
    assert.equal(meta.introspection_endpoint, as.introspectionEndpoint);
    assert.equal(meta.token_endpoint, as.tokenEndpoint);
    assert.equal(meta.revocation_endpoint, as.revocationEndpoint);
    assert.ok((meta.grant_types_supported as string[]).includes('client_credentials'));
    const jwks = await (await fetch(String(meta.jwks_uri))).json() as { keys: { kty: string; alg: string; d?: string }[] };
    assert.deepEqual(jwks.keys.map((k) => [k.kty, k.alg, k.d]), [['EC', 'ES256', undefined]], 'one public signing key');
  });

  it('mints opaque tokens for a user that introspect with their claims, for the demo resource', async () => {
    const token = await as.userToken('alice', 'orders:read', { tenant: 'acme', roles: ['clerk'], email: 'alice@acme.example' });
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, 'opaque, and safe to paste into a shell');
    const { status, json } = await introspect(token);
    assert.equal(status, 200);
    const now = Math.floor(Date.now() / 1000);
    assert.deepEqual({ ...json, exp: undefined, iat: undefined }, {
      active: true, sub: 'alice', tenant: 'acme', roles: ['clerk'], email: 'alice@acme.example', client_id: as.service.clientId,
      iss: as.issuer, aud: DEMO_RESOURCE, scope: 'orders:read', token_type: 'Bearer', exp: undefined, iat: undefined,
    });
    assert.ok(Math.abs(Number(json.iat) - now) <= 5);
    assert.equal(Number(json.exp) - Number(json.iat), 3600);
  });

  it('answers only the gateway what a token means: another client, a wrong secret or none learn nothing', async () => {
    const token = await as.userToken('alice', 'orders:read', {});
    assert.deepEqual(await introspect(token, as.service), { status: 200, json: { active: false } });
    const wrong = await introspect(token, { clientId: as.gateway.clientId, clientSecret: `${as.gateway.clientSecret}x` });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error, 'invalid_client');
    assert.equal(wrong.json.active, undefined);
    const anonymous = await post(as.introspectionEndpoint, new URLSearchParams({ token }));
    assert.ok(anonymous.status === 400 || anonymous.status === 401, String(anonymous.status));
    assert.equal(anonymous.json.active, undefined);
    // A token it never issued, and an oversized one, are simply not active.
    assert.deepEqual(await introspect('not-a-token-of-this-server'), { status: 200, json: { active: false } });
    assert.deepEqual(await introspect('A'.repeat(4096)), { status: 200, json: { active: false } });
  });

  it('issues client credentials tokens for the demo resource only, and revokes them', async () => {
    const issued = await post(as.tokenEndpoint, new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read' }), basic(as.service));
    assert.equal(issued.status, 200);
    assert.equal(issued.json.token_type, 'Bearer');
    assert.equal(issued.json.expires_in, 3600);
    const token = String(issued.json.access_token);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const seen = await introspect(token);
    assert.equal(seen.json.active, true);
    assert.equal(seen.json.client_id, as.service.clientId);
    assert.equal(seen.json.aud, DEMO_RESOURCE);
    const elsewhere = await post(as.tokenEndpoint, new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'https://elsewhere.example' }), basic(as.service));
    assert.equal(elsewhere.status, 400);
    assert.equal(elsewhere.json.error, 'invalid_target');
    // A scope the resource does not have is not granted.
    const unknownScope = await post(as.tokenEndpoint, new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:write' }), basic(as.service));
    assert.equal(unknownScope.json.scope, undefined);
    assert.equal((await introspect(String(unknownScope.json.access_token))).json.scope, undefined);
    const revoked = await post(as.revocationEndpoint, new URLSearchParams({ token }), basic(as.service));
    assert.equal(revoked.status, 200);
    assert.deepEqual(await introspect(token), { status: 200, json: { active: false } });
  });

  it('makes its secrets and keys at start: two servers share none', async () => {
    const other = await startDemoAuthorizationServer();
    try {
      assert.notEqual(other.issuer, as.issuer);
      assert.notEqual(other.gateway.clientSecret, as.gateway.clientSecret);
      assert.notEqual(other.service.clientSecret, as.service.clientSecret);
      assert.ok(as.gateway.clientSecret.length >= 43);
      const keys = async (server: DemoAuthorizationServer) => JSON.stringify(await (await fetch(`${server.issuer}/jwks`)).json());
      assert.notEqual(await keys(other), await keys(as));
      // One server's secret is nothing to the other.
      assert.equal((await post(other.introspectionEndpoint, new URLSearchParams({ token: 'x' }), basic(as.gateway))).status, 401);
    } finally {
      await other.close();
    }
  });

  it('listens on loopback only, and closing it leaves nothing listening', async () => {
    const server = await startDemoAuthorizationServer();
    const port = Number(new URL(server.issuer).port);
    assert.ok(await accepts('127.0.0.1', port));
    const others = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === 'IPv4').map((a) => a?.address ?? '');
    for (const address of others) assert.equal(await accepts(address, port), false, `reachable on ${address}`);
    // A keep-alive connection does not hold it open.
    assert.equal((await fetch(`${server.issuer}/jwks`)).status, 200);
    await server.close();
    assert.equal(await accepts('127.0.0.1', port), false);
  });

  it('prints nothing: no development notices from oidc-provider', () => {
    const script = `const { startDemoAuthorizationServer } = await import(${JSON.stringify(MODULE)});
      const as = await startDemoAuthorizationServer();
      const token = await as.userToken('alice', 'orders:read', { tenant: 'acme' });
      const auth = 'Basic ' + Buffer.from(as.gateway.clientId + ':' + as.gateway.clientSecret).toString('base64');
      const res = await fetch(as.introspectionEndpoint, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
      if ((await res.json()).active !== true) process.exitCode = 3;
      const cc = await fetch(as.tokenEndpoint, { method: 'POST', headers: { authorization: 'Basic ' + Buffer.from(as.service.clientId + ':' + as.service.clientSecret).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&scope=orders:read' });
      if (cc.status !== 200) process.exitCode = 4;
      await as.close();`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.deepEqual({ status: run.status, stdout: run.stdout, stderr: run.stderr }, { status: 0, stdout: '', stderr: '' });
  });
});
