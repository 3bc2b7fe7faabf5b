import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Gateway } from '../server/gateway.js';
import { ConfigError } from '../config/errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { serve } from '../cli/serve.js';
import { startDemoIssuer } from './demo-issuer.js';
import { startEchoUpstream } from './echo-upstream.js';

/** The quickstart config shipped with the package; tests load the same file. */
export const QUICKSTART_CONFIG = fileURLToPath(new URL('../../../examples/quickstart/gateway.yaml', import.meta.url));

/**
 * `portcullis demo`: an echo upstream and a local token issuer on free loopback ports, the gateway
 * on :8080 (or --port) with examples/quickstart/gateway.yaml, and curl lines to paste. The gateway
 * and the issuer read one clock, so the demo's tokens are stamped on the time the gateway judges by.
 */
export async function runDemo(args: string[], clock: Clock = systemClock): Promise<void> {
  const { values } = parseArgs({ args, options: { port: { type: 'string' }, 'admin-port': { type: 'string' } } });
  const echo = await startEchoUpstream(0);
  const idp = await startDemoIssuer(clock);
  const closeAll = async () => { await Promise.all([echo.close(), idp.close()]); };
  const port = values.port ?? process.env.PORT ?? '8080';
  // A fresh admin token per run: only its hash goes into the config.
  const adminApiToken = randomBytes(24).toString('base64url');
  const env = {
    ...process.env, ECHO_URL: echo.url, DEMO_ISSUER: idp.issuer, DEMO_JWKS_URI: idp.jwksUri,
    DEMO_ADMIN_TOKEN_HASH: `sha256:${createHash('sha256').update(adminApiToken).digest('hex')}`,
    PORT: port, ADMIN_PORT: values['admin-port'] ?? process.env.ADMIN_PORT ?? '9901',
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
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      process.stderr.write(`portcullis demo: a port is already in use (${(err as Error).message}); try PORT=8081 npm start\n`);
      process.exit(1);
    }
    throw err;
  }
  const base = `http://localhost:${gateway.addresses().http.port}`;
  const admin = gateway.addresses().admin;
  const hour = 3600;
  const user = await idp.token({ sub: 'alice', tenant: 'acme', scope: 'orders:read', roles: ['clerk'], email: 'alice@acme.example' }, hour);
  const adminToken = await idp.token({ sub: 'root', tenant: 'acme', scope: 'orders:read', roles: ['admin'] }, hour);
  const expired = await idp.token({ sub: 'alice', tenant: 'acme', scope: 'orders:read', roles: ['clerk'] }, 60, Math.floor(clock.now() / 1000) - 2 * hour);
  const keys = admin === null ? '' : await apiKeyWalkthrough(base, `http://127.0.0.1:${admin.port}`, adminApiToken);
  const limits = await rateLimitWalkthrough(base);
  process.stdout.write(`
Portcullis demo is running: gateway ${base} -> echo upstream ${echo.url}
Config: ${QUICKSTART_CONFIG}

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
${keys}${limits}${admin === null ? '' : `
Health, readiness (with the config version) and Prometheus metrics on the admin listener:
  curl -s http://127.0.0.1:${admin.port}/readyz
  curl -s http://127.0.0.1:${admin.port}/metrics | grep portcullis_requests_total
`}
Audit trail (one JSON line per request): ${gateway.config.dataDir}/${gateway.config.audit.file}
Press Ctrl+C to stop.
`);
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
      body: JSON.stringify({ name, tenant: 'acme', scopes: ['orders:read'], roles: ['service'], expires: '1d' }),
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
Here is another key (shown once, stored only as a hash) and the admin token of this run:
  API_KEY=${yours.key}
  PORTCULLIS_ADMIN_TOKEN=${adminToken}

  # 200: the echo shows x-auth-method apiKey, x-api-key-id ${yours.id} and the key's tenant and scopes
  curl -s -H "X-API-Key: $API_KEY" ${base}/api/acme/orders/42
  # list keys (never secrets), then revoke this one: the same request is refused at once (401)
  curl -s -H "Authorization: Bearer $PORTCULLIS_ADMIN_TOKEN" ${adminBase}/admin/keys
  curl -s -X POST -H "Authorization: Bearer $PORTCULLIS_ADMIN_TOKEN" -H "Content-Type: application/json" ${adminBase}/admin/keys/${yours.id}/revoke
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
