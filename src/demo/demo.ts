import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gateway } from '../server/gateway.js';
import { ConfigError } from '../config/errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { OperatorError } from '../lib/operator-error.js';
import { ListenError } from '../server/listen-error.js';
import { serve } from '../cli/serve.js';
import { parseDemoArgs } from './demo-args.js';
import { startDemoIssuer } from './demo-issuer.js';
import { DEMO_RESOURCE, startDemoAuthorizationServer, type DemoAuthorizationServer } from './demo-authorization-server.js';
import { startEchoUpstream } from './echo-upstream.js';
import { demoCertificates } from './demo-certificates.js';

/** The quickstart config shipped with the package; tests load the same file. */
export const QUICKSTART_CONFIG = fileURLToPath(new URL('../../../examples/quickstart/gateway.yaml', import.meta.url));

/**
 * How long the demo's API keys live: past the default expiryWarning (14 days), so a demo key in
 * use does not warn "expires soon", and within the quickstart's maxLifetime (90 days).
 */
const DEMO_KEY_LIFETIME = '30d';

/** A port to suggest instead of a busy one. */
const another = (port: number): number => (port < 65535 ? port + 1 : port - 1);

/** The demo's flag and variable for each listener setting, for advice naming the one to change. */
const HOW_TO_SET: Readonly<Record<string, { readonly what: string; readonly set: (port: number) => string }>> = {
  'listen.http.port': { what: 'public port', set: (port) => `--port N or PORT=N (PORT=${another(port)} npm start)` },
  'listen.http.host': { what: 'public address', set: () => '--host ADDRESS (left out: 127.0.0.1)' },
  'listen.https.port': { what: 'HTTPS port', set: (port) => `--https-port N or HTTPS_PORT=N (HTTPS_PORT=${another(port)} npm start)` },
  'listen.https.host': { what: 'public address', set: () => '--host ADDRESS (left out: 127.0.0.1)' },
  'admin.port': { what: 'admin port', set: (port) => `--admin-port N or ADMIN_PORT=N (ADMIN_PORT=${another(port)} npm start)` },
};

/** A listener that could not bind, in the demo's words: which of its ports, and the flag or variable that moves it. */
function demoListenFailure(err: ListenError): OperatorError {
  const how = HOW_TO_SET[`${err.option}.${err.setting}`];
  if (how === undefined) return err;
  if (err.code === 'EADDRINUSE') {
    return new OperatorError(`the demo's ${how.what} ${err.port} is in use (EADDRINUSE): another process listens there; choose another with ${how.set(err.port)}, or stop that process`, { cause: err });
  }
  return new OperatorError(`${err.message}; the demo sets its ${how.what} with ${how.set(err.port)}`, { cause: err });
}

/** True for an address only this machine reaches. */
function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  const v6 = host.toLowerCase();
  return v6 === '::1' || /^::ffff:127\./.test(v6);
}

/** The host to put in the URLs the demo prints: a wildcard bind is reached on loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * The port the public listener will use: the one asked for, or for 0 a port free now on `host`
 * (the login client's redirect URI at the provider names the port before the gateway listens).
 * Left free again at once; should another process take it meanwhile, the gateway's bind fails
 * with the usual advice.
 */
async function publicPort(host: string, asked: string): Promise<string> {
  if (asked !== '0') return asked;
  const probe = async (on: string): Promise<string> => {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, on, () => { server.off('error', reject); resolve(); });
    });
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return String(port);
  };
  try {
    return await probe(host);
  } catch {
    // An address this machine does not have: any port will do, the gateway's bind says what is wrong.
    return await probe('127.0.0.1');
  }
}

/** A demo's state directory is `portcullis-demo-<pid>-<random>` in the temporary directory. */
const STATE_PREFIX = 'portcullis-demo-';
const STATE_DIR = new RegExp(`^${STATE_PREFIX}([1-9][0-9]{0,9})-[^/]+$`);

/**
 * Removes the state directories of demos that ended without removing their own (killed with
 * SIGKILL, or the machine stopped): those whose process is gone. A directory of a running demo,
 * or of another user's (kill(pid, 0) answers EPERM), is left alone, and so is one that cannot be
 * removed; removing them is housekeeping, never a reason not to start.
 */
function removeAbandonedStateDirs(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(STATE_DIR.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid === process.pid || alive(pid)) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
    } catch {
      // Not ours to remove, or in use in a way we cannot see: leave it.
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * `portcullis demo`: an echo upstream, a local token issuer and an OAuth 2.0 authorization server
 * (opaque tokens, introspection) on free loopback ports, the gateway on 127.0.0.1:8080 (--port,
 * --host) with examples/quickstart/gateway.yaml, its state in a fresh temporary directory removed
 * on exit, and commands to paste. The gateway and the issuer read one clock, so the demo's JWTs
 * are stamped on the time the gateway judges by (the authorization server, oidc-provider, reads
 * the system clock). Returns 2 for a usage error (also set as the exit code), and -1 once the
 * demo runs until a signal stops it.
 */
export async function runDemo(args: string[], clock: Clock = systemClock): Promise<number> {
  const parsed = parseDemoArgs(args, process.env);
  if (!parsed.ok) {
    process.stderr.write(`portcullis demo: ${parsed.error}\n`);
    process.exitCode = 2;
    return 2;
  }
  const options = parsed.options;
  // This run's keys, usage and audit trail: nothing is shared with another run or left in the tree.
  removeAbandonedStateDirs(tmpdir());
  const dataDir = await mkdtemp(join(tmpdir(), `${STATE_PREFIX}${process.pid}-`));
  process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const tls = await demoCertificates(join(dataDir, 'tls'), options.host);
  const echo = await startEchoUpstream(0);
  const idp = await startDemoIssuer(clock);
  const port = await publicPort(options.host, options.port);
  // The browser logs in at localhost, which browsers treat as a secure origin (the session cookie is
  // Secure), and a host name other than the provider's 127.0.0.1, so their cookies stay apart.
  const loginOrigin = `http://localhost:${port}`;
  const as = await startDemoAuthorizationServer({
    login: { redirectUri: `${loginOrigin}/oauth2/callback`, postLogoutRedirectUri: `${loginOrigin}/hello/logged-out`, backChannelLogoutUri: `${loginOrigin}/oauth2/back-channel-logout` },
  });
  const closeAll = async () => { await Promise.all([echo.close(), idp.close(), as.close()]); };
  // A fresh admin token per run: only its hash goes into the config.
  const adminApiToken = randomBytes(24).toString('base64url');
  const env = {
    ...process.env, ECHO_URL: echo.url, DEMO_ISSUER: idp.issuer, DEMO_JWKS_URI: idp.jwksUri,
    DEMO_ADMIN_TOKEN_HASH: `sha256:${createHash('sha256').update(adminApiToken).digest('hex')}`,
    DEMO_LOGIN_ORIGIN: loginOrigin, DEMO_LOGIN_SECRET: as.login?.clientSecret ?? '',
    PORT: port, HTTPS_PORT: options.httpsPort, ADMIN_PORT: options.adminPort, DEMO_HOST: options.host, PORTCULLIS_DATA_DIR: dataDir,
    DEMO_TLS_DIR: tls.dir, DEMO_AS_ISSUER: as.issuer, DEMO_INTROSPECTION_SECRET: as.gateway.clientSecret,
  };
  let gateway: Gateway;
  try {
    gateway = await Gateway.fromFile(QUICKSTART_CONFIG, { env, clock });
  } catch (err) {
    await closeAll();
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); process.exit(1); }
    throw err;
  }
  try {
    await serve(gateway, { onStop: closeAll });
  } catch (err) {
    await closeAll();
    throw err instanceof ListenError ? demoListenFailure(err) : err;
  }
  if (!isLoopback(options.host)) {
    process.stderr.write(`portcullis demo: warning: listening on ${options.host}, reachable from the network; the demo's routes are public and its echo shows every header sent (omit --host to listen on 127.0.0.1 only)\n`);
  }
  const base = `http://${urlHost(options.host)}:${gateway.addresses().http?.port ?? options.port}`;
  const secure = `https://${urlHost(options.host)}:${gateway.addresses().https?.port ?? 0}`;
  const admin = gateway.addresses().admin;
  const hour = 3600;
  const user = await idp.token({ sub: 'alice', tenant: 'acme', scope: 'orders:read', roles: ['clerk'], email: 'alice@acme.example' }, hour);
  const adminToken = await idp.token({ sub: 'root', tenant: 'acme', scope: 'orders:read', roles: ['admin'] }, hour);
  const expired = await idp.token({ sub: 'alice', tenant: 'acme', scope: 'orders:read', roles: ['clerk'] }, 60, Math.floor(clock.now() / 1000) - 2 * hour);
  const opaque = await opaqueTokenLines(base, as);
  const login = loginLines(loginOrigin, as.issuer);
  const keys = admin === null ? '' : await apiKeyWalkthrough(base, `http://127.0.0.1:${admin.port}`, adminApiToken);
  const limits = await rateLimitWalkthrough(base);
  process.stdout.write(`
Portcullis demo is running: gateway ${base} and ${secure} -> echo upstream ${echo.url}
Listening on ${options.host}${isLoopback(options.host) ? ' (this machine only)' : ''}, admin API on 127.0.0.1; config: ${QUICKSTART_CONFIG}

Allowed (public route; the upstream echoes what it received, gateway headers included):
  curl -s ${base}/hello/world

Spoofed identity headers never reach the upstream (look for x-user-id in the echo: it is gone):
  curl -s -H 'X-User-Id: admin' -H 'X_Roles: root' ${base}/hello/world

Denied by default: no route matches, nothing is forwarded (404, application/problem+json):
  curl -si ${base}/internal/secrets

Ambiguous paths are rejected before routing (400): encoded slash, dot segments climbing out:
  curl -si --path-as-is '${base}/hello/..%2F..%2Finternal'
  curl -si --path-as-is '${base}/../internal'

Method not allowed on a known path (405 with Allow):
  curl -si -X DELETE ${base}/hello/world

HTTPS (TLS 1.2 and 1.3) with a development CA made for this run (portcullis certs dev makes your own;
docs/tls.md for production): every route is served on both ports.
  curl -s --cacert ${tls.caFile} ${secure}/hello/world
  # without --cacert, curl refuses the certificate: nothing trusts this run's CA but you
  curl -sv ${secure}/hello/world 2>&1 | grep -i 'certificate'

Mutual TLS: services call with a client certificate from that CA instead of a token. The demo made
one for ${tls.client.spiffeId}; the mtls authenticator maps that ID to tenant acme, role service:
  # 200: the echo shows the identity the certificate carries (x-user-id, x-tenant-id, x-roles, x-auth-method)
  curl -s --cacert ${tls.caFile} --cert ${tls.client.cert} --key ${tls.client.key} ${secure}/api/services/status
  # 401 without it (the listener asks for a certificate but does not require one: other routes work without)
  curl -si --cacert ${tls.caFile} ${secure}/api/services/status

Authentication: a local issuer signed these tokens (ES256; its JWKS is ${idp.jwksUri}).
Paste the three lines into your shell, then try the requests:
  USER_TOKEN=${user}
  ADMIN_TOKEN=${adminToken}
  EXPIRED_TOKEN=${expired}

  # 200: alice (tenant acme, scope orders:read); the echo shows x-user-id, x-tenant-id, x-roles, x-scopes
  curl -s -H "Authorization: Bearer $USER_TOKEN" ${base}/api/acme/orders/42
  # 403 insufficient_role: the admin route needs role admin
  curl -si -H "Authorization: Bearer $USER_TOKEN" ${base}/api/admin/stats
  # 200: the admin token has it
  curl -si -H "Authorization: Bearer $ADMIN_TOKEN" ${base}/api/admin/stats
  # 403 tenant_mismatch: alice is in tenant acme, not globex
  curl -si -H "Authorization: Bearer $USER_TOKEN" ${base}/api/globex/orders/42
  # 401 invalid_credential (expired) and 401 unauthenticated (no token), with WWW-Authenticate
  curl -si -H "Authorization: Bearer $EXPIRED_TOKEN" ${base}/api/acme/orders/42
  curl -si ${base}/api/acme/orders/42
${login}${opaque}${keys}${limits}${admin === null ? '' : `
Health, readiness (with the config version) and Prometheus metrics on the admin listener:
  curl -s http://127.0.0.1:${admin.port}/readyz
  curl -s http://127.0.0.1:${admin.port}/metrics | grep portcullis_requests_total
`}
Audit trail (one JSON line per request): ${join(gateway.config.dataDir, gateway.config.audit.file)}
This run's keys, certificates and audit trail are in ${dataDir}, removed when the demo stops.
Press Ctrl+C to stop.
`);
  return -1;
}

/**
 * The lines for the demo's opaque token: one the authorization server issued for alice, the
 * requests that present it to the gateway, and the introspection request the gateway makes.
 */
async function opaqueTokenLines(base: string, as: DemoAuthorizationServer): Promise<string> {
  const token = await as.userToken('alice', 'orders:read', { tenant: 'acme', roles: ['clerk'], email: 'alice@acme.example' });
  return `
OAuth 2.0 opaque tokens (docs/oauth.md). The demo also runs an authorization server (oidc-provider,
keys and client secrets made for this run) at ${as.issuer}. It issued this opaque token
for alice; the gateway asks the server's introspection endpoint (RFC 7662) what it means, caches
the answer and forwards alice's identity. Paste the line into your shell, then try the requests:
  OPAQUE_TOKEN=${token}

  # 200: the echo shows x-user-id alice, x-tenant-id acme and x-auth-method introspection
  curl -s -H "Authorization: Bearer $OPAQUE_TOKEN" ${base}/api/opaque/profile
  # 401 invalid_credential: a token the server never issued is not active
  curl -si -H "Authorization: Bearer not-a-token-of-this-server" ${base}/api/opaque/profile
  # what the gateway asks, as the client ${as.gateway.clientId} (its secret was made for this run), and the answer:
  # active: true, sub alice, tenant acme, scope orders:read, aud ${DEMO_RESOURCE}, exp in an hour
  curl -s -u ${as.gateway.clientId}:${as.gateway.clientSecret} -d "token=$OPAQUE_TOKEN" ${as.introspectionEndpoint}
`;
}

/** The lines for the browser login: where to go, what to type, and how to log out. */
function loginLines(origin: string, issuer: string): string {
  return `
Browser login (OpenID Connect, docs/oidc.md). Open this in a browser on this machine:
    ${origin}/app/
The gateway sends you to the demo's provider (${issuer}), whose development login form takes any
name and any password; allow the consent page, and you are back at /app/, where the echo shows the
identity the gateway forwards: x-user-id (the name), x-user-email, x-roles clerk, x-tenant-id acme,
x-auth-method oidc. The browser holds only the gateway's session cookie (__Host-portcullis-session-demo-login);
the upstream never sees it. Log out (here and at the provider) with:
    ${origin}/oauth2/logout
  # without a session, a page request is sent to log in (302 to the provider); an API call gets 401
  curl -si -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate' ${origin}/app/
  curl -si ${origin}/app/
`;
}

interface IssuedKey { readonly key: string; readonly id: string }

/**
 * Creates two API keys through the admin API, shows one working and the other refused once
 * revoked, and returns the lines that let the user do the same.
 */
async function apiKeyWalkthrough(base: string, adminBase: string, adminToken: string): Promise<string> {
  const auth = { authorization: `Bearer ${adminToken}` };
  const create = async (name: string): Promise<IssuedKey> => {
    const res = await fetch(`${adminBase}/admin/keys`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name, tenant: 'acme', scopes: ['orders:read'], roles: ['service'], expires: DEMO_KEY_LIFETIME }),
    });
    if (res.status !== 201) throw new Error(`demo: creating an API key failed with ${res.status}: ${await res.text()}`);
    return await res.json() as IssuedKey;
  };
  const statusWith = async (key: string): Promise<number> => {
    const res = await fetch(`${base}/api/acme/orders/42`, { headers: { 'x-api-key': key } });
    await res.arrayBuffer();
    return res.status;
  };
  const shown = await create('demo-report-job');
  const before = await statusWith(shown.key);
  const revoke = await fetch(`${adminBase}/admin/keys/${shown.id}/revoke`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' } });
  await revoke.arrayBuffer();
  const after = await statusWith(shown.key);
  const yours = await create('demo-billing-service');
  return `
API keys for machine clients (docs/api-keys.md). Just now the demo created key ${shown.id} through
the admin API: GET /api/acme/orders/42 with it answered ${before}; after POST /admin/keys/${shown.id}/revoke, ${after}.
Here is another key (shown once, stored only as a hash; it expires in ${DEMO_KEY_LIFETIME.replace('d', ' days')}), its id and
the admin token of this run; paste the three lines into your shell:
  API_KEY=${yours.key}
  KEY_ID=${yours.id}
  PORTCULLIS_ADMIN_TOKEN=${adminToken}

  # 200: the echo shows x-auth-method apiKey, x-api-key-id (the KEY_ID) and the key's tenant and scopes
  curl -s -H "X-API-Key: $API_KEY" ${base}/api/acme/orders/42
  # list keys (never secrets), then revoke this one: the same request is refused at once (401)
  curl -s -H "Authorization: Bearer $PORTCULLIS_ADMIN_TOKEN" ${adminBase}/admin/keys
  curl -s -X POST -H "Authorization: Bearer $PORTCULLIS_ADMIN_TOKEN" -H "Content-Type: application/json" ${adminBase}/admin/keys/$KEY_ID/revoke
  curl -si -H "X-API-Key: $API_KEY" ${base}/api/acme/orders/42
`;
}

/** Headers of a rate-limited response worth showing, in this order. */
const LIMIT_HEADERS = ['retry-after', 'ratelimit-policy', 'ratelimit', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'];

/** Sends a burst to the rate-limited route, and returns what happened and the lines to try it. */
async function rateLimitWalkthrough(base: string): Promise<string> {
  const statuses: number[] = [];
  let last: Response | null = null;
  for (let i = 0; i < 7; i++) {
    last = await fetch(`${base}/limited/burst`);
    await last.arrayBuffer();
    statuses.push(last.status);
  }
  const shown = LIMIT_HEADERS.flatMap((name) => {
    const value = last?.headers.get(name);
    return value === null || value === undefined ? [] : [`    ${name}: ${value}`];
  });
  return `
Rate limits (docs/rate-limits.md). Just now the demo sent 7 requests to /limited/burst, which allows
5 every 10 s per client address: ${statuses.join(' ')}. The last answer (429 problem+json) carried:
${shown.join('\n')}
  # a burst of your own (the bucket refills one request every 2 s), then one with its headers
  for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} ' ${base}/limited/burst; done; echo
  curl -si ${base}/limited/burst
`;
}
