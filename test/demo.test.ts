import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { parseDemoArgs } from '../src/demo/demo-args.js';
import { QUICKSTART_CONFIG } from '../src/demo/demo.js';
import { demoCertificates } from '../src/demo/demo-certificates.js';
import { handshake, httpsGet } from './harness/tls.js';
import { CLI } from './harness/gateway.js';
import { DEMO_VARIABLES, paste, shellBlocks } from './harness/shell.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** A demo process: its output so far, and how it ended once it has. */
interface Demo {
  readonly child: ChildProcess;
  /** stdout (the demo's text and the gateway's log lines) and stderr, as they arrive. */
  readonly out: { stdout: string; stderr: string };
  readonly exited: Promise<number | null>;
  /** Resolves once the demo printed its last line ("Press Ctrl+C"); rejects if it exits first. */
  readonly running: Promise<void>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Runs `portcullis demo` with `args`, PORT / HTTPS_PORT / ADMIN_PORT / HOST cleared unless given in `env`. */
function demo(args: readonly string[], env: NodeJS.ProcessEnv = {}): Demo {
  const cleared = new Set(['PORT', 'HTTPS_PORT', 'ADMIN_PORT', 'HOST', 'DEMO_HOST', 'PORTCULLIS_DATA_DIR', 'DEMO_TLS_DIR']);
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !cleared.has(name)));
  const child = spawn(process.execPath, [CLI, 'demo', ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A demo that neither finishes starting nor exits is killed, so it cannot hold the run.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  void exited.then(() => clearTimeout(timer));
  const running = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out.stdout += chunk.toString('utf8');
      if (out.stdout.includes('Press Ctrl+C to stop.')) { clearTimeout(timer); resolve(); }
    });
    void exited.then((code) => reject(new Error(`demo exited with ${code}:\n${out.stderr}\n${out.stdout}`)));
  });
  running.catch(() => undefined);
  child.stderr.on('data', (chunk: Buffer) => { out.stderr += chunk.toString('utf8'); });
  return {
    child, out, exited, running,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Every file under a directory, relative paths, sorted. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path, `${prefix}${name}/`) : [`${prefix}${name}`];
  }).sort();
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

/** The lines of the demo's text meant for pasting: those indented by exactly two spaces. */
function pastable(stdout: string): string {
  return stdout.split('\n').filter((line) => /^ {2}\S/.test(line)).join('\n');
}

/** Exit 1, one line on stderr without a stack, matching `message`. */
function assertOneLine(stderr: string, code: number | null, message: RegExp, expectedCode = 1): void {
  assert.equal(code, expectedCode, stderr);
  assert.doesNotMatch(stderr, /^\s+at /m);
  assert.equal(stderr.split('\n').length, 2, `one line: ${JSON.stringify(stderr)}`);
  assert.match(stderr.slice(0, -1), message);
}

describe('examples/quickstart', () => {
  it('compiles with the demo environment', async (t) => {
    const tlsDir = mkdtempSync(join(tmpdir(), 'portcullis-demo-tls-'));
    t.after(() => rmSync(tlsDir, { recursive: true, force: true }));
    const tls = await demoCertificates(join(tlsDir, 'tls'), '127.0.0.1');
    const config = compileConfig(await loadConfigFile(QUICKSTART_CONFIG, { ECHO_URL: 'http://127.0.0.1:1', DEMO_ISSUER: 'http://127.0.0.1:2/', DEMO_JWKS_URI: 'http://127.0.0.1:2/jwks.json', DEMO_AS_ISSUER: 'http://127.0.0.1:3', DEMO_INTROSPECTION_SECRET: 's'.repeat(43), DEMO_LOGIN_SECRET: 'l'.repeat(43), DEMO_ADMIN_TOKEN_HASH: `sha256:${'0'.repeat(64)}`, DEMO_TLS_DIR: tls.dir }));
    assert.deepEqual([config.listen.https?.host, config.listen.https?.port], ['127.0.0.1', 8443]);
    assert.deepEqual(config.certificates.map((c) => c.use).sort(), ['client-ca', 'server']);
    assert.ok(config.apiKeys !== null, 'the quickstart has API keys');
    assert.ok(config.routes.length >= 2);
    assert.equal(config.listen.http.port, 8080);
    assert.equal(config.listen.http.host, '127.0.0.1');
    assert.equal(config.admin.port, 9901);
    assert.equal(config.admin.host, '127.0.0.1');
  });

  it('portcullis demo serves the quickstart: allowed, denied, and spoofed headers stripped', async (t) => {
    const run = demo(['--port', '0', '--https-port', '0', '--admin-port', '0']);
    t.after(() => run.stop());
    await run.running;
    const output = run.out.stdout;
    const [, base = '', secure = ''] = /gateway (http:\/\/127\.0\.0\.1:\d+) and (https:\/\/127\.0\.0\.1:\d+) -> echo upstream/.exec(output) ?? [];
    assert.notEqual(base, '', 'demo prints the gateway URL');
    assert.notEqual(secure, '', 'demo prints the HTTPS URL');
    for (const line of ['curl -s', '/hello/world', '/internal/secrets', 'X-User-Id: admin', '/readyz']) assert.ok(output.includes(line), `demo prints ${line}`);

    const allowed = await fetch(`${base}/hello/world`, { headers: { 'X-User-Id': 'admin', 'X_Roles': 'root' } });
    assert.equal(allowed.status, 200);
    const echoed = await allowed.json() as { url: string; headers: Record<string, string> };
    assert.equal(echoed.url, '/hello/world');
    assert.equal(echoed.headers['x-user-id'], undefined);
    assert.equal(echoed.headers.x_roles, undefined);
    assert.equal(echoed.headers['x-request-id'], allowed.headers.get('x-request-id'));

    // HTTPS: the printed CA verifies the certificate for the printed address; the route and the header hygiene are the same.
    const caFile = /^ {2}curl -s --cacert (\S+) https:\/\/\S+\/hello\/world$/m.exec(output)?.[1] ?? '';
    assert.ok(caFile.endsWith('/tls/ca.crt') && existsSync(caFile), `demo prints its CA file: ${caFile}`);
    const ca = readFileSync(caFile, 'utf8');
    const overTls = await httpsGet(`${secure}/hello/world`, ca, { headers: { 'X-User-Id': 'admin' } });
    assert.equal(overTls.status, 200);
    assert.match(overTls.protocol ?? '', /^TLSv1\.[23]$/);
    const tlsEcho = JSON.parse(overTls.body) as { url: string; headers: Record<string, string> };
    assert.equal(tlsEcho.url, '/hello/world');
    assert.equal(tlsEcho.headers['x-user-id'], undefined);
    assert.equal(tlsEcho.headers['x-forwarded-proto'], 'https');
    const tlsDenied = await httpsGet(`${secure}/internal/secrets`, ca);
    assert.equal(tlsDenied.status, 404);
    assert.equal(tlsDenied.headers['content-type'], 'application/problem+json');
    // Nothing else trusts the run's CA: a client with the system's roots refuses it.
    const untrusted = await handshake(Number(new URL(secure).port), { servername: 'localhost' });
    assert.equal(untrusted.ok, false);
    if (!untrusted.ok) assert.equal(untrusted.error.code, 'SELF_SIGNED_CERT_IN_CHAIN');
    // The printed curl line, run as printed, where curl is installed.
    const curlLine = /^ {2}(curl -s --cacert \S+ https:\S+\/hello\/world)$/m.exec(output)?.[1] ?? '';
    if (spawnSync('curl', ['--version']).status === 0) {
      const curl = spawnSync('bash', ['-c', curlLine], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(curl.status, 0, curl.stderr);
      assert.equal((JSON.parse(curl.stdout) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
    }

    // mTLS: the printed client certificate reaches the services route as the demo's service identity; without it, 401.
    const mtlsLine = /^ {2}(curl -s --cacert \S+ --cert (\S+) --key (\S+) (https:\S+\/api\/services\/status))$/m.exec(output);
    assert.ok(mtlsLine !== null, 'demo prints the mTLS curl line');
    const [, mtlsCurl = '', certFile = '', keyFile = '', servicesUrl = ''] = mtlsLine;
    const asService = await httpsGet(servicesUrl, ca, { cert: readFileSync(certFile), key: readFileSync(keyFile) });
    assert.equal(asService.status, 200, asService.body);
    const serviceSeen = JSON.parse(asService.body) as { headers: Record<string, string> };
    assert.equal(serviceSeen.headers['x-user-id'], 'spiffe://portcullis.local/ns/demo/sa/client');
    assert.equal(serviceSeen.headers['x-tenant-id'], 'acme');
    assert.equal(serviceSeen.headers['x-roles'], 'service');
    const withoutCert = await httpsGet(servicesUrl, ca);
    assert.equal(withoutCert.status, 401);
    assert.equal(withoutCert.headers['content-type'], 'application/problem+json');
    assert.equal((await fetch(`${base}/api/services/status`)).status, 401, 'plain HTTP carries no certificate');
    if (spawnSync('curl', ['--version']).status === 0) {
      const curl = spawnSync('bash', ['-c', mtlsCurl], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(curl.status, 0, curl.stderr);
      assert.equal((JSON.parse(curl.stdout) as { headers: Record<string, string> }).headers['x-tenant-id'], 'acme');
    }

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

    // The opaque token: issued by the demo's authorization server, which says what it means when
    // the printed introspection line asks it (as the gateway's client), and to nobody else.
    const opaqueToken = token('OPAQUE_TOKEN');
    assert.match(opaqueToken, /^[A-Za-z0-9_-]{43}$/, 'opaque, and safe to paste');
    const introspectLine = /^ {2}(curl -s -u (gateway):(\S+) -d "token=\$OPAQUE_TOKEN" (http:\/\/127\.0\.0\.1:\d+)\/token\/introspection)$/m.exec(output);
    assert.ok(introspectLine !== null, 'demo prints the introspection line');
    const [, introspectCurl = '', clientId = '', clientSecret = '', asIssuer = ''] = introspectLine;
    assert.ok(output.includes(`authorization server (oidc-provider,\nkeys and client secrets made for this run) at ${asIssuer}.`), 'demo names its authorization server');
    const introspect = async (credentials: string) => {
      const res = await fetch(`${asIssuer}/token/introspection`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: opaqueToken }) });
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    };
    const answer = await introspect(`${clientId}:${clientSecret}`);
    assert.equal(answer.status, 200);
    assert.deepEqual([answer.body.active, answer.body.sub, answer.body.tenant, answer.body.scope, answer.body.aud, answer.body.iss, answer.body.token_type], [true, 'alice', 'acme', 'orders:read', 'urn:portcullis:demo', asIssuer, 'Bearer']);
    assert.deepEqual(answer.body.roles, ['clerk']);
    const lifetime = Number(answer.body.exp) - Math.floor(Date.now() / 1000);
    assert.ok(lifetime > 3000 && lifetime <= 3600, `an hour: ${lifetime}`);
    assert.equal((await introspect(`${clientId}:not-the-secret`)).status, 401);
    if (spawnSync('curl', ['--version']).status === 0) {
      const curl = spawnSync('bash', ['-c', introspectCurl], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, OPAQUE_TOKEN: opaqueToken } });
      assert.equal(curl.status, 0, curl.stderr);
      assert.equal((JSON.parse(curl.stdout) as { sub: string }).sub, 'alice');
    }
    // Through the gateway: the route introspects it and forwards alice's identity, never the token.
    assert.ok(output.includes(`  curl -s -H "Authorization: Bearer $OPAQUE_TOKEN" ${base}/api/opaque/profile\n`), 'demo prints the opaque route line');
    const opaqueSeen = await fetch(`${base}/api/opaque/profile`, { headers: { authorization: `Bearer ${opaqueToken}` } });
    assert.equal(opaqueSeen.status, 200);
    const viaIntrospection = await opaqueSeen.json() as { url: string; headers: Record<string, string> };
    assert.equal(viaIntrospection.url, '/api/opaque/profile');
    assert.deepEqual(
      [viaIntrospection.headers['x-user-id'], viaIntrospection.headers['x-tenant-id'], viaIntrospection.headers['x-scopes'], viaIntrospection.headers['x-roles'], viaIntrospection.headers['x-auth-method'], viaIntrospection.headers['x-user-email']],
      ['alice', 'acme', 'orders:read', 'clerk', 'introspection', 'alice@acme.example'],
    );
    assert.equal(viaIntrospection.headers.authorization, undefined);
    const madeUp = await fetch(`${base}/api/opaque/profile`, { headers: { authorization: 'Bearer not-a-token-of-this-server' } });
    assert.equal(madeUp.status, 401);
    assert.equal(madeUp.headers.get('content-type'), 'application/problem+json');
    assert.equal((await madeUp.json() as { type: string }).type, 'urn:portcullis:error:invalid_credential');
    assert.match(madeUp.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal((await fetch(`${base}/api/opaque/profile`)).status, 401);
    // A JWT of the demo's issuer is not a token of the authorization server: refused, not forwarded.
    assert.equal((await as('/api/opaque/profile', 'USER_TOKEN')).status, 401);

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
    const adminBase = /curl -s (http:\/\/127\.0\.0\.1:\d+)\/readyz$/m.exec(output)?.[1] ?? '';
    assert.notEqual(adminBase, '', 'demo prints the readiness line');
    const adminAuth = { authorization: `Bearer ${token('PORTCULLIS_ADMIN_TOKEN')}`, 'content-type': 'application/json' };
    const keyId = token('KEY_ID');
    assert.equal(keyedSeen.headers['x-api-key-id'], keyId);
    const revokeLine = /curl -s -X POST -H "Authorization: Bearer \$PORTCULLIS_ADMIN_TOKEN" -H "Content-Type: application\/json" (\S+\/revoke)$/m.exec(output);
    assert.equal(revokeLine?.[1], `${adminBase}/admin/keys/$KEY_ID/revoke`, 'the revoke line names the key by $KEY_ID');

    // The demo's keys live past the expiry warning: using one logs nothing. A key that does expire
    // soon still warns; its line coming after the demo key's use shows that one wrote none.
    const created = await fetch(`${adminBase}/admin/keys`, { method: 'POST', headers: adminAuth, body: JSON.stringify({ name: 'short-lived', tenant: 'acme', scopes: ['orders:read'], expires: '1d' }) });
    assert.equal(created.status, 201);
    const shortLived = await created.json() as { key: string; id: string };
    assert.equal((await fetch(`${base}/api/acme/orders/42`, { headers: { 'x-api-key': shortLived.key } })).status, 200);
    const warned = new Promise<void>((resolve) => {
      const check = (): void => { if (run.out.stdout.includes(`"keyId":"${shortLived.id}"`)) resolve(); };
      run.child.stdout?.on('data', check);
      check();
    });
    await warned;
    const warnings = run.out.stdout.split('\n').filter((l) => l.includes('expires soon'));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.ok(warnings[0]?.includes(shortLived.id));

    const revoked = await fetch(`${adminBase}/admin/keys/${keyId}/revoke`, { method: 'POST', headers: adminAuth });
    assert.equal(revoked.status, 200);
    assert.equal((await withKey()).status, 401);

    // What the demo prints to paste pastes: real values, no placeholder, every variable it uses set by a line it prints.
    const printed = [...pastable(output).matchAll(/^ {2}([A-Z_]+)=\S+$/gm)].map((m) => m[1]);
    assert.deepEqual(printed.sort(), [...DEMO_VARIABLES].sort());
    assert.deepEqual(paste(pastable(output)), { syntax: '', stderr: '', created: [] });
    // The README's quick start uses the same variables.
    const readmeVars = new Set(shellBlocks(readFileSync(README, 'utf8'), 'Quick start').flatMap((b) => [...b.matchAll(/\$([A-Z_]+)/g)].map((m) => m[1])));
    assert.deepEqual([...readmeVars].filter((v) => !printed.includes(v)), []);
  });

  it('listens on loopback only, keeps its state in a temporary directory and leaves nothing behind', async (t) => {
    const before = filesUnder(EXAMPLES);
    const run = demo(['--port', '0', '--https-port', '0', '--admin-port', '0'], { HOST: '0.0.0.0' });
    t.after(() => run.stop());
    await run.running;
    const output = run.out.stdout;
    assert.equal(run.out.stderr, '', 'no warning on loopback');
    const port = Number(/gateway http:\/\/127\.0\.0\.1:(\d+) /.exec(output)?.[1]);
    const httpsPort = Number(/ and https:\/\/127\.0\.0\.1:(\d+) -> /.exec(output)?.[1]);
    const adminPort = Number(/curl -s http:\/\/127\.0\.0\.1:(\d+)\/readyz$/m.exec(output)?.[1]);
    const asPort = Number(/ at http:\/\/127\.0\.0\.1:(\d+)\. It issued this opaque token/.exec(output)?.[1]);
    assert.ok(port > 0 && httpsPort > 0 && adminPort > 0 && asPort > 0);
    assert.ok(await accepts('127.0.0.1', port));
    assert.ok(await accepts('127.0.0.1', httpsPort));
    assert.ok(await accepts('127.0.0.1', adminPort));
    assert.ok(await accepts('127.0.0.1', asPort));
    // The machine's other addresses do not reach either listener (HOST in the environment is not an address to listen on).
    const others = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === 'IPv4').map((a) => a?.address ?? '');
    for (const address of others) {
      assert.equal(await accepts(address, port), false, `public port on ${address}`);
      assert.equal(await accepts(address, httpsPort), false, `HTTPS port on ${address}`);
      assert.equal(await accepts(address, adminPort), false, `admin port on ${address}`);
      assert.equal(await accepts(address, asPort), false, `authorization server on ${address}`);
    }
    const stateDir = /^This run's keys, certificates and audit trail are in (\S+), removed when the demo stops\.$/m.exec(output)?.[1] ?? '';
    assert.ok(existsSync(join(stateDir, 'audit', 'audit.log')), 'the audit trail is in the state directory');
    assert.ok(existsSync(join(stateDir, 'tls', 'ca.key')), 'the certificates are in the state directory');
    assert.equal(statSync(join(stateDir, 'tls', 'ca.key')).mode & 0o077, 0, 'the CA key is readable by the demo\'s user only');
    assert.ok(!stateDir.startsWith(EXAMPLES));
    assert.equal(await run.stop(), 0);
    assert.equal(existsSync(stateDir), false, 'the state directory is removed');
    for (const p of [port, httpsPort, adminPort, asPort]) assert.equal(await accepts('127.0.0.1', p), false, `nothing listens on ${p} once the demo stopped`);
    assert.deepEqual(filesUnder(EXAMPLES), before, 'nothing written under examples/');
  });

  it('removes the state directories of demos killed before they could (their process is gone), and no other', async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'portcullis-demo-test-'));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    // A process that has ended: its pid names a demo that was killed.
    const ended = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(ended.stdout);
    assert.ok(deadPid > 0);
    const abandoned = join(tmp, `portcullis-demo-${deadPid}-AbC123`);
    mkdirSync(join(abandoned, 'keys'), { recursive: true });
    writeFileSync(join(abandoned, 'keys', 'api-keys.db'), 'x');
    const running = join(tmp, `portcullis-demo-${process.pid}-XyZ789`);
    const unrelated = join(tmp, 'portcullis-demo-notes');
    for (const d of [running, unrelated]) mkdirSync(d);
    const run = demo(['--port', '0', '--https-port', '0', '--admin-port', '0'], { TMPDIR: tmp });
    t.after(() => run.stop());
    await run.running;
    assert.equal(existsSync(abandoned), false, 'the killed demo\'s directory is removed');
    assert.ok(existsSync(running), 'a running demo\'s directory is kept');
    assert.ok(existsSync(unrelated), 'a directory the demo did not name is kept');
    const stateDir = /^This run's keys, certificates and audit trail are in (\S+), removed when the demo stops\.$/m.exec(run.out.stdout)?.[1] ?? '';
    assert.ok(stateDir.startsWith(join(tmp, `portcullis-demo-${run.child.pid}-`)), stateDir);
    // Killed, it cannot remove its own; the next demo does.
    run.child.kill('SIGKILL');
    await run.exited;
    assert.ok(existsSync(stateDir));
    const next = demo(['--port', '0', '--https-port', '0', '--admin-port', '0'], { TMPDIR: tmp });
    t.after(() => next.stop());
    await next.running;
    assert.equal(existsSync(stateDir), false, 'the next demo removed it');
    assert.equal(await next.stop(), 0);
    assert.deepEqual(readdirSync(tmp).sort(), ['portcullis-demo-notes', `portcullis-demo-${process.pid}-XyZ789`].sort());
  });

  it('--host with a non-loopback address listens there and warns in one line', async (t) => {
    const run = demo(['--port', '0', '--https-port', '0', '--admin-port', '0', '--host', '0.0.0.0']);
    t.after(() => run.stop());
    await run.running;
    assert.match(run.out.stderr, /^portcullis demo: warning: listening on 0\.0\.0\.0, reachable from the network; .*omit --host to listen on 127\.0\.0\.1 only\)\n$/);
    const port = Number(/gateway http:\/\/127\.0\.0\.1:(\d+) /.exec(run.out.stdout)?.[1]);
    const other = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === 'IPv4');
    if (other !== undefined) assert.ok(await accepts(other.address, port), `reachable on ${other.address}`);
  });

  it('a busy port names the demo\'s flag and variable for that port', async (t) => {
    const busy = createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
    t.after(() => new Promise<void>((done) => busy.close(() => done())));
    const taken = String((busy.address() as { port: number }).port);
    const cases = [
      { args: ['--port', taken, '--https-port', '0', '--admin-port', '0'], env: {}, message: new RegExp(`^portcullis: the demo's public port ${taken} is in use \\(EADDRINUSE\\): another process listens there; choose another with --port N or PORT=N \\(PORT=${Number(taken) + 1} npm start\\), or stop that process$`) },
      { args: ['--https-port', '0', '--admin-port', '0'], env: { PORT: taken }, message: /^portcullis: the demo's public port \d+ is in use .* --port N or PORT=N / },
      { args: ['--port', '0', '--https-port', '0', '--admin-port', taken], env: {}, message: new RegExp(`^portcullis: the demo's admin port ${taken} is in use \\(EADDRINUSE\\): another process listens there; choose another with --admin-port N or ADMIN_PORT=N \\(ADMIN_PORT=${Number(taken) + 1} npm start\\), or stop that process$`) },
      { args: ['--port', '0', '--https-port', '0'], env: { ADMIN_PORT: taken }, message: /^portcullis: the demo's admin port \d+ is in use .* --admin-port N or ADMIN_PORT=N / },
      { args: ['--port', '0', '--https-port', taken, '--admin-port', '0'], env: {}, message: new RegExp(`^portcullis: the demo's HTTPS port ${taken} is in use \\(EADDRINUSE\\): another process listens there; choose another with --https-port N or HTTPS_PORT=N \\(HTTPS_PORT=${Number(taken) + 1} npm start\\), or stop that process$`) },
      { args: ['--port', '0', '--admin-port', '0'], env: { HTTPS_PORT: taken }, message: /^portcullis: the demo's HTTPS port \d+ is in use .* --https-port N or HTTPS_PORT=N / },
    ];
    for (const c of cases) {
      const run = demo(c.args, c.env);
      const code = await run.exited;
      assertOneLine(run.out.stderr, code, c.message);
    }
  });

  it('an address that is not the machine\'s names --host, in one line (no warning before it)', async () => {
    const run = demo(['--port', '0', '--https-port', '0', '--admin-port', '0', '--host', '203.0.113.9']);
    const code = await run.exited;
    assertOneLine(run.out.stderr, code, /^portcullis: listen\.http\.host 203\.0\.113\.9 is not an address of this machine \(EADDRNOTAVAIL\): .*; the demo sets its public address with --host ADDRESS \(left out: 127\.0\.0\.1\)$/);
  });

  it('a usage mistake exits 2 before anything starts: first line says what, no stack; a bad value is that one line', async () => {
    const cases: { args: string[]; env?: NodeJS.ProcessEnv; message: RegExp; oneLine: boolean }[] = [
      { args: ['--nope'], message: /^portcullis demo: unknown option .*--nope/, oneLine: false },
      { args: ['extra'], message: /^portcullis demo: unexpected argument "extra"/, oneLine: false },
      { args: ['--port'], message: /^portcullis demo: --port needs a value/, oneLine: false },
      { args: ['--port', '1', '--port', '2'], message: /^portcullis demo: --port (is )?given twice; give it once$/, oneLine: false },
      { args: ['--port', 'abc'], message: /^portcullis demo: --port "abc" is not a port: give a number from 1 to 65535$/, oneLine: true },
      { args: [], env: { PORT: '80 80' }, message: /^portcullis demo: PORT "80 80" is not a port/, oneLine: true },
      { args: ['--port', '9000', '--admin-port', '9000'], message: /^portcullis demo: the public port and the admin port are both 9000: give them different ports$/, oneLine: true },
      { args: ['--https-port', '9000', '--admin-port', '9000'], message: /^portcullis demo: the HTTPS port and the admin port are both 9000: give them different ports$/, oneLine: true },
      { args: ['--https-port', 'x'], message: /^portcullis demo: --https-port "x" is not a port: give a number from 1 to 65535$/, oneLine: true },
      { args: ['--host', 'a b\n'], message: /^portcullis demo: --host "a b\\n" is not an address/, oneLine: true },
    ];
    for (const c of cases) {
      const run = demo(c.args, c.env);
      const code = await run.exited;
      assert.equal(code, 2, run.out.stderr);
      assert.doesNotMatch(run.out.stderr, /^\s+at /m);
      assert.match(run.out.stderr.split('\n')[0] ?? '', c.message);
      if (c.oneLine) assert.equal(run.out.stderr.split('\n').length, 2, `one line: ${JSON.stringify(run.out.stderr)}`);
      assert.equal(run.out.stdout, '', 'nothing started');
    }
  });

  it('parses its options: flags before variables, defaults, and every malformed or ambiguous value refused', () => {
    const ok = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const parsed = parseDemoArgs(args, env);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      return parsed.options;
    };
    assert.deepEqual(ok([]), { port: '8080', httpsPort: '8443', adminPort: '9901', host: '127.0.0.1' });
    assert.deepEqual(ok([], { PORT: '8081', HTTPS_PORT: '8444', ADMIN_PORT: '9902', HOST: '0.0.0.0' }), { port: '8081', httpsPort: '8444', adminPort: '9902', host: '127.0.0.1' });
    assert.deepEqual(ok(['--port', '7000', '--https-port', '7002', '--admin-port=7001', '--host', '::1'], { PORT: '8081', HTTPS_PORT: '8444', ADMIN_PORT: '9902' }), { port: '7000', httpsPort: '7002', adminPort: '7001', host: '::1' });
    assert.deepEqual(ok([], { PORT: '', HTTPS_PORT: '' }), { port: '8080', httpsPort: '8443', adminPort: '9901', host: '127.0.0.1' });
    assert.equal(ok(['--port', '0', '--https-port', '0', '--admin-port', '0']).port, '0');
    const refused: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--nope'], {}, /^unknown option "--nope"; options: --port N, --https-port N, --admin-port N, --host ADDRESS \(portcullis demo --help\)$/],
      [['extra'], {}, /^unexpected argument "extra"; options:/],
      [['--port'], {}, /--port.*; options:/],
      [['--port', '1', '--port', '2'], {}, /^--port is given twice; give it once$/],
      [['--port', '70000'], {}, /^--port "70000" is not a port/],
      [['--port', '08080'], {}, /^--port "08080" is not a port/],
      [['--port', '-1'], {}, /./],
      [['--port', '1e3'], {}, /^--port "1e3" is not a port/],
      [[], { ADMIN_PORT: '-1' }, /^ADMIN_PORT "-1" is not a port/],
      [[], { PORT: 'x'.repeat(10_000) }, /^PORT "x{64}…" is not a port/],
      [['--port', '9901'], {}, /^the public port and the admin port are both 9901/],
      [['--port', '8443'], {}, /^the public port and the HTTPS port are both 8443/],
      [[], { HTTPS_PORT: '9901' }, /^the HTTPS port and the admin port are both 9901/],
      [['--https-port', '65536'], {}, /^--https-port "65536" is not a port/],
      [[], { HTTPS_PORT: '1 2' }, /^HTTPS_PORT "1 2" is not a port/],
      [['--https-port', '1', '--https-port', '2'], {}, /^--https-port is given twice; give it once$/],
      [['--host', ''], {}, /^--host "" is not an address/],
      [['--host', 'a..b'], {}, /^--host "a..b" is not an address/],
      [['--host', 'evil.example/x'], {}, /is not an address/],
      [['--host', '\u0000'], {}, /^--host "\\u0000" is not an address/],
    ];
    for (const [args, env, message] of refused) {
      const parsed = parseDemoArgs(args, env);
      assert.ok(!parsed.ok, `refuses ${JSON.stringify(args)} ${JSON.stringify(env)}`);
      assert.match(parsed.error, message);
      assert.doesNotMatch(parsed.error, /\n/);
    }
  });
});
