// The servers a bench run starts in front of the load: the bench upstream and the gateway, each its
// own child process, and the probes that tell when one is ready and answering as it should.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { stringify } from 'yaml';
import { READY_TIMEOUT_MS, failure, launch, scratchDir, waitForLine } from './children.mjs';
import { gatewayConfig } from './scenarios.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const READY_POLL_MS = 100;

/** A `waitForLine` picker for the `{"ready": key, …}` line the bench's own servers print. */
export const jsonLine = (key) => (line) => {
  const msg = JSON.parse(line);
  return msg.ready === key ? msg : undefined;
};

export async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/** One request through a target: it must answer 200 with exactly the upstream's body. */
export async function probe(origin, path, headers, request = {}) {
  // The bench's HTTPS listener serves a certificate of the run's own CA: the probe checks the
  // answer, not the certificate.
  const client = new Client(origin, origin.startsWith('https:') ? { connect: { rejectUnauthorized: false } } : {});
  try {
    const res = await client.request({ method: request.method ?? 'GET', path, headers, ...(request.body === undefined ? {} : { body: request.body }) });
    const body = await res.body.text();
    return { status: res.statusCode, body };
  } finally {
    await client.close();
  }
}

/** Resolves once `origin + path` answers 200 (for servers that print nothing when ready); fails if the child exits first. */
export async function waitForHttp(child, origin, path) {
  let exited = null;
  child.exited.then((status) => { exited = status; });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited !== null) throw failure(child, `exited early (code ${exited.code}, signal ${exited.signal})`);
    try {
      if ((await probe(origin, path, {})).status === 200) return;
    } catch {
      // not listening yet
    }
    await delay(READY_POLL_MS);
  }
  throw failure(child, `not answering ${origin}${path} after ${READY_TIMEOUT_MS} ms`);
}

export async function startUpstream(layout) {
  const child = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs')], { cpus: layout.loadCore ?? null, layout });
  const { port } = await waitForLine(child, jsonLine('upstream'));
  return { child, origin: `http://127.0.0.1:${port}` };
}

/** The authorization server of the introspection scenarios ({ issuer, clientId, clientSecret, token }), or null when none runs. */
let authorizationServer = null;

/** Every gateway config written after this call introspects at `server` (see startAuthorizationServer). */
export function useAuthorizationServer(server) {
  authorizationServer = server;
}

/**
 * The bench's authorization server (bench/authorization-server.mjs: oidc-provider) on the load
 * generator's core, as the upstream: the server under test stays alone on its core. With
 * `redirectUris` it also has the login client of the session scenarios (`web`: { clientId, clientSecret }).
 */
export async function startAuthorizationServer(layout, redirectUris = null) {
  const args = [join(BENCH, 'authorization-server.mjs'), ...(redirectUris === null ? [] : [JSON.stringify({ redirectUris })])];
  const child = launch('authorization-server', process.execPath, args, { cpus: layout.loadCore ?? null, layout });
  const info = await waitForLine(child, jsonLine('authorization-server'));
  return { child, issuer: info.issuer, clientId: info.clientId, clientSecret: info.clientSecret, token: info.token, web: info.web ?? null };
}

/**
 * Writes a gateway config with its own data directory; `ports` fixes the listeners (default: any
 * free port); `login` ({ base, issuer, clientId, clientSecret }) adds the browser-session routes.
 */
export function writeGatewayConfig(name, upstreamOrigin, redisUrl, ports = {}, natsUrl = null, login = null) {
  const workDir = join(scratchDir(), name);
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(workDir, 'gateway.yaml');
  writeFileSync(configFile, stringify(gatewayConfig({ upstreamOrigin, dataDir, workDir, redisUrl, natsUrl, authorizationServer, login, ...ports })));
  return configFile;
}

/**
 * The gateway (`start -c`, one process) on the server core, with the routes of `gatewayConfig`;
 * `profileDir` non-null runs it under `--cpu-prof`. Resolves once it logs `gateway listening`.
 * `variant.httpPort` fixes its plain listener's port (the session scenarios register the callback
 * URL at the provider before the gateway starts); `variant.login` adds the browser-session routes.
 */
export async function startGateway(layout, upstreamOrigin, profileDir, redisUrl, variant = {}) {
  const name = variant.name ?? 'gateway';
  const ports = variant.httpPort === undefined ? {} : { httpPort: variant.httpPort };
  const configFile = writeGatewayConfig(name, upstreamOrigin, redisUrl, ports, variant.natsUrl ?? null, variant.login ?? null);
  const nodeArgs = profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  // `auditOff`: the same gateway with a trail that keeps nothing (bench/gateway-audit-off.mjs).
  const entry = variant.auditOff === true ? [join(BENCH, 'gateway-audit-off.mjs'), configFile] : [join(ROOT, 'dist/src/cli/main.js'), 'start', '-c', configFile];
  const child = launch(name, process.execPath, [...nodeArgs, ...entry], { cpus: layout.serverCore ?? null, layout });
  const msg = await waitForLine(child, (line) => {
    const m = JSON.parse(line);
    return m.msg === 'gateway listening' ? m : undefined;
  });
  return { child, origin: `http://127.0.0.1:${msg.http}`, ...(msg.https === undefined ? {} : { httpsOrigin: `https://127.0.0.1:${msg.https}` }), adminOrigin: `http://127.0.0.1:${msg.admin}`, configFile };
}
