import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileConfig, type CompiledConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { explain, type ExplainRequest, type Explanation } from '../src/explain/explain.js';
import { CLI } from './harness/gateway.js';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { demoCertificates } from '../src/demo/demo-certificates.js';

const QUICKSTART = fileURLToPath(new URL('../../examples/quickstart/gateway.yaml', import.meta.url));
const DOC = readFileSync(fileURLToPath(new URL('../../docs/explain.md', import.meta.url)), 'utf8');
const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-explain-'));
/** The environment docs/explain.md sets for the quickstart, with a data directory explain must never create. */
const ENV: Record<string, string> = { PORTCULLIS_DATA_DIR: join(dataDir, 'never-created') };
for (const m of (/^export (.+)$/m.exec(DOC)?.[1] ?? '').matchAll(/([A-Z_]+)=(\S+)/g)) ENV[m[1] ?? ''] = m[2] ?? '';
// The certificates `portcullis certs dev` would write there, in this run's own directory.
ENV.DEMO_TLS_DIR = (await demoCertificates(join(dataDir, 'tls'), '127.0.0.1')).dir;
const config: CompiledConfig = compileConfig(await loadConfigFile(QUICKSTART, ENV));

const alice = { sub: 'alice', roles: ['user'], scopes: ['orders:read'], tenant: 'acme' };

function run(method: string, target: string, options: Partial<ExplainRequest> = {}): Promise<Explanation> {
  return explain(config, { method, target, headers: [], from: '192.0.2.10', ...options });
}

function decidedBy(e: Explanation): { stage: string; status: number | undefined; code: string | undefined } {
  const last = e.stages.at(-1);
  assert.ok(last !== undefined);
  return { stage: last.stage, status: last.status, code: last.code };
}

function header(e: Explanation, name: string): string[] {
  return (e.upstream?.headers ?? []).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

describe('portcullis explain over the quickstart config', () => {
  it('an allowed request: every stage in order, the route, and exactly what the upstream receives', async () => {
    const e = await run('GET', '/api/acme/orders/1?api_key=pk_demo_x&page=2', {
      identity: alice,
      headers: [['Host', 'api.example.com'], ['X-User-Id', 'mallory'], ['Authorization', 'Bearer forged'], ['Accept', 'application/json']],
    });
    assert.deepEqual(e.stages.map((s) => s.stage), [
      'forwarded-for', 'audit-ready', 'http2', 'target', 'header-count', 'host', 'framing', 'upgrade', 'expect', 'header-ambiguity', 'route', 'method-override',
      'request-limits', 'authenticate', 'rate-limit-identity', 'authorize', 'identity-headers', 'forward',
    ]);
    assert.ok(e.stages.every((s) => s.outcome === 'continue'));
    assert.equal(e.route?.name, 'orders');
    assert.deepEqual(e.result, { status: null, code: null, forwarded: true });
    assert.match(e.stages.find((s) => s.stage === 'rate-limit-identity')?.note ?? '', /would count: per-caller/);
    assert.equal(e.upstream?.path, '/api/acme/orders/1?page=2', 'the credential query parameter is not forwarded');
    assert.deepEqual(header(e, 'x-user-id'), ['alice'], 'the spoofed identity header is replaced by the asserted one');
    assert.deepEqual(header(e, 'x-tenant-id'), ['acme']);
    assert.deepEqual(header(e, 'x-scopes'), ['orders:read']);
    assert.deepEqual(header(e, 'x-auth-method'), ['jwt'], 'a given identity takes the type of the route\'s first authenticator');
    assert.deepEqual(header(e, 'authorization'), [], 'credentials are not forwarded');
    assert.deepEqual(header(e, 'accept'), ['application/json']);
    assert.deepEqual(header(e, 'x-forwarded-for'), ['192.0.2.10']);
    assert.deepEqual(header(e, 'x-forwarded-host'), ['api.example.com']);
    assert.deepEqual([...(e.upstream?.dropped ?? [])].sort(), ['authorization', 'host', 'x-user-id'], 'Host is the upstream\'s own unless the route preserves it');
  });

  const denials: [string, string, string, Partial<ExplainRequest>, string, number, string][] = [
    ['a refused target', 'GET', '/hello/a%2Fb', {}, 'target', 400, 'ambiguous_path'],
    ['several Host headers', 'GET', '/hello/x', { headers: [['Host', 'a.example'], ['Host', 'b.example']] }, 'host', 400, 'invalid_header'],
    ['an unknown expectation', 'GET', '/hello/x', { headers: [['Expect', 'magic']] }, 'expect', 417, 'expectation_failed'],
    ['a protocol upgrade', 'GET', '/hello/x', { headers: [['Connection', 'upgrade'], ['Upgrade', 'websocket']] }, 'upgrade', 400, 'upgrade_refused'],
    ['a repeated decision header', 'POST', '/echo', { headers: [['Content-Type', 'application/json'], ['Content-Type', 'text/plain']] }, 'header-ambiguity', 400, 'ambiguous_header'],
    ['no route', 'GET', '/nowhere', {}, 'route', 404, 'route_not_found'],
    ['a method the route does not take', 'DELETE', '/api/acme/orders/1', {}, 'route', 405, 'method_not_allowed'],
    ['a declared body over the limit', 'POST', '/echo', { headers: [['Content-Type', 'application/json'], ['Content-Length', '70000']] }, 'request-limits', 413, 'body_too_large'],
    ['a media type the route refuses', 'POST', '/echo', { headers: [['Content-Type', 'text/plain'], ['Content-Length', '2']] }, 'request-limits', 415, 'unsupported_media_type'],
    ['a body on GET', 'GET', '/hello/x', { headers: [['Content-Length', '2']] }, 'request-limits', 400, 'body_not_allowed'],
    ['no credential', 'GET', '/api/acme/orders/1', {}, 'authenticate', 401, 'unauthenticated'],
    ['a malformed token', 'GET', '/api/acme/orders/1', { headers: [['Authorization', 'Bearer not.a.jwt']] }, 'authenticate', 401, 'invalid_credential'],
    ['a missing scope', 'GET', '/api/acme/orders/1', { identity: { sub: 'bob', tenant: 'acme' } }, 'authorize', 403, 'insufficient_scope'],
    ['another tenant', 'GET', '/api/globex/orders/1', { identity: alice }, 'authorize', 403, 'tenant_mismatch'],
    ['a missing role', 'GET', '/api/admin/users', { identity: alice }, 'authorize', 403, 'insufficient_role'],
  ];
  for (const [what, method, target, options, stage, status, code] of denials) {
    it(`${what}: ${stage} answers ${status} ${code}, nothing is forwarded`, async () => {
      const e = await run(method, target, options);
      assert.deepEqual(decidedBy(e), { stage, status, code });
      assert.deepEqual(e.result, { status, code, forwarded: false });
      assert.equal(e.upstream, null);
    });
  }

  it('near misses say why each other route did not take the request', async () => {
    const e = await run('GET', '/api/admin/orders/1', { identity: { ...alice, roles: ['admin'] } });
    assert.equal(e.route?.name, 'admin');
    const why = new Map(e.nearMisses.map((m) => [m.route, m.why]));
    assert.equal(why.get('orders'), 'matches too, but admin is more specific');
    assert.equal(why.get('hello'), 'path does not match /hello/**');
    assert.equal(why.get('echo-post'), 'path does not match /echo');
    const post = await run('POST', '/hello/x');
    assert.equal(post.route, null);
    assert.equal(new Map(post.nearMisses.map((m) => [m.route, m.why])).get('hello'), 'method POST not in GET, HEAD');
  });

  it('limits are shown as what they would count, and no store or file is touched', async () => {
    for (let i = 0; i < 10; i++) {
      const e = await run('GET', '/limited/x');
      assert.equal(e.result.forwarded, true, 'explain never counts, so the burst limit never refuses');
      assert.match(e.stages.find((s) => s.stage === 'rate-limit')?.note ?? '', /would count: demo-burst/);
    }
    assert.equal(existsSync(ENV.PORTCULLIS_DATA_DIR ?? ''), false, 'the data directory (API key store) was never created');
  });

  it('a token for a remote key set is refused as unavailable without fetching it: explain contacts nothing', async (t) => {
    let contacted = 0;
    const jwks = createServer((_req, res) => { contacted++; res.end('{"keys":[]}'); });
    jwks.listen(0, '127.0.0.1');
    await once(jwks, 'listening');
    t.after(() => { jwks.close(); });
    const uri = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const remote = compileConfig(await loadConfigFile(QUICKSTART, { ...ENV, DEMO_JWKS_URI: uri }));
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })}.${b64({ iss: ENV.DEMO_ISSUER, aud: 'portcullis-demo', sub: 'a', iat: now, exp: now + 60 })}.${'A'.repeat(86)}`;
    const e = await explain(remote, { method: 'GET', target: '/api/acme/orders/1', headers: [['Authorization', `Bearer ${token}`]], from: '192.0.2.10' });
    assert.deepEqual(decidedBy(e), { stage: 'authenticate', status: 503, code: 'authentication_unavailable' });
    assert.equal(contacted, 0, 'the JWKS endpoint was never contacted');
  });

  it('the CLI prints the table, --json for scripts, and exits 2 on a usage error', () => {
    const env = { ...process.env, ...ENV };
    const table = spawnSync(process.execPath, [CLI, 'explain', '-c', QUICKSTART, 'GET', '/api/acme/orders/1', '--identity', JSON.stringify(alice)], { env, encoding: 'utf8' });
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^Route {7}orders \(line \d+\)$/m);
    assert.match(table.stdout, /^ {2}authorize +continue/m);
    assert.match(table.stdout, /^Result {6}forwarded: the upstream answers$/m);
    assert.match(table.stdout, /^ {2}x-user-id: alice$/m);
    const json = spawnSync(process.execPath, [CLI, 'explain', '-c', QUICKSTART, 'GET', '/nowhere', '--json'], { env, encoding: 'utf8' });
    assert.equal(json.status, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as Explanation;
    assert.deepEqual(parsed.result, { status: 404, code: 'route_not_found', forwarded: false });
    for (const args of [['GET'], ['GET', '/x', '--identity', '{"roles":[]}'], ['GET', '/x', '--identity', 'nope'], ['GET', '/x', '--from', 'here'], ['GET', '/x', '--bogus']]) {
      const bad = spawnSync(process.execPath, [CLI, 'explain', '-c', QUICKSTART, ...args], { env, encoding: 'utf8' });
      assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /^portcullis explain: /);
    }
    const broken = spawnSync(process.execPath, [CLI, 'explain', '-c', QUICKSTART, 'GET', '/x'], { env: { ...process.env, ...ENV, ECHO_URL: 'not a url' }, encoding: 'utf8' });
    assert.equal(broken.status, 1, broken.stderr);
  });

  it('every explain example in docs/explain.md runs and prints the result the docs show', () => {
    const examples = [...DOC.matchAll(/```console\n\$ (portcullis explain [^\n]+)\n([\s\S]*?)```/g)];
    assert.ok(examples.length >= 3, 'docs/explain.md has examples');
    for (const [, command, shown] of examples) {
      const args = shellWords((command ?? '').slice('portcullis '.length)).map((a) => (a === 'examples/quickstart/gateway.yaml' ? QUICKSTART : a));
      const out = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...ENV }, encoding: 'utf8' });
      assert.equal(out.status, 0, `${command ?? ''}: ${out.stderr}`);
      const result = /^Result .*$/m.exec(shown ?? '')?.[0];
      assert.ok(result !== undefined, `${command ?? ''}: the docs show its Result line`);
      assert.ok(out.stdout.split('\n').includes(result), `${command ?? ''}: expected "${result}" in\n${out.stdout}`);
    }
  });

  it('cleans up', async () => {
    await rm(dataDir, { recursive: true, force: true });
  });
});

/** Splits a documented command line: words, and single-quoted strings. */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}
