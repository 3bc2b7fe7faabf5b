// Compiling a config (and so `portcullis check`) only describes its remote key sets and API key
// store, its introspection endpoints and their shared Redis: no socket, file handle or timer is
// opened, and no server the config points at is reached.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { CLI } from './harness/gateway.js';

/** A loopback listener that counts the connections it accepts (and closes them). */
async function listener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => { count++; socket.destroy(); });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, connections: () => count };
}

function config(jwksPort: number, apiKeys: string): string {
  return `upstreams:
  orders: { targets: [http://127.0.0.1:1] }
authenticators:
  users:
    type: jwt
    issuer: https://idp.example/
    jwksUri: http://127.0.0.1:${jwksPort}/jwks.json
    audience: orders-api
    algorithms: [RS256]
  machines: { type: apiKey }
  opaque:
    type: introspection
    issuer: http://127.0.0.1:${jwksPort}
    clientId: gateway
    clientSecret: introspection-secret
    cache: { shared: true }
oauth:
  tokenHashKey: compile-opens-nothing-key-0123456789abcdef
  redis: { url: "redis://127.0.0.1:${jwksPort}" }
apiKeys:
${apiKeys}
routes:
  - name: orders
    match: { path: "/orders/**" }
    upstream: orders
    authenticate: [users, machines]
`;
}

const fds = (): number => readdirSync('/proc/self/fd').length;

describe('compiling a config opens nothing', () => {
  let dir: string;
  let jwks: Awaited<ReturnType<typeof listener>>;
  let postgres: Awaited<ReturnType<typeof listener>>;
  let files: { postgres: string; sqlite: string; sqliteDb: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-pure-compile-'));
    [jwks, postgres] = await Promise.all([listener(), listener()]);
    const sqliteDb = join(dir, 'data', 'keys', 'pure.db');
    files = { postgres: join(dir, 'postgres.yaml'), sqlite: join(dir, 'sqlite.yaml'), sqliteDb };
    await writeFile(files.postgres, config(jwks.port, `  store: { type: postgres, url: "postgres://gateway:secret@127.0.0.1:${postgres.port}/keys", listen: true }`));
    await writeFile(files.sqlite, config(jwks.port, `  store: { type: sqlite, file: ${sqliteDb} }`));
  });
  after(async () => {
    await Promise.all([jwks, postgres].map(({ server }) => new Promise((done) => server.close(done))));
    await rm(dir, { recursive: true, force: true });
  });

  it('compiles a remote jwksUri and an API key store on PostgreSQL and on SQLite without a new handle, descriptor or connection', async () => {
    const loaded = [await loadConfigFile(files.postgres), await loadConfigFile(files.sqlite)];
    const handlesBefore = process.getActiveResourcesInfo().sort();
    const fdsBefore = fds();
    const compiled = loaded.map((l) => compileConfig(l));
    assert.deepEqual(process.getActiveResourcesInfo().sort(), handlesBefore, 'no new active handle (socket, timer, file)');
    assert.equal(fds(), fdsBefore, 'no new file descriptor');
    for (const c of compiled) {
      assert.ok(c.resources.some((r) => r.key.startsWith('jwks ')), 'the remote key set is among the resources to start');
      assert.ok(c.apiKeys !== null && c.resources.includes(c.apiKeys), 'the API key backend is among the resources to start');
      assert.ok(c.resources.some((r) => r.key.startsWith('introspection endpoint ')), 'the introspection endpoint (discovered at start) is among the resources to start');
      assert.ok(c.resources.some((r) => r.key.startsWith('introspection shared cache ')), 'the shared introspection cache (Redis) is among the resources to start');
    }
    // Let any connection attempt that was started reach the listeners before counting.
    await new Promise((done) => setImmediate(done));
    assert.equal(jwks.connections(), 0, 'neither the JWKS endpoint, the authorization server\'s metadata nor Redis was reached');
    assert.equal(postgres.connections(), 0, 'the PostgreSQL server was not reached');
    assert.equal(existsSync(files.sqliteDb), false, 'the SQLite file was not created');
  });

  it('portcullis check reaches neither the JWKS endpoint nor the key store', async () => {
    for (const file of [files.postgres, files.sqlite]) {
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'check', '-c', file]);
      assert.match(stdout, /: OK \(version /);
    }
    assert.equal(jwks.connections(), 0, 'neither the JWKS endpoint, the authorization server\'s metadata nor Redis was reached');
    assert.equal(postgres.connections(), 0, 'the PostgreSQL server was not reached');
    assert.equal(existsSync(files.sqliteDb), false, 'the SQLite file was not created');
  });
});
