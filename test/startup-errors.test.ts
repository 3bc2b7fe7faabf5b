import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { fsFailure, isLastingFsFailure } from '../src/lib/fs-failure.js';
import { OperatorError } from '../src/lib/operator-error.js';
import { Gateway } from '../src/server/gateway.js';
import { CLI, toYaml, type ConfigObject } from './harness/gateway.js';

/** What one `portcullis start` that should not start did. */
interface Failed {
  readonly code: number | null;
  readonly stderr: string;
  readonly stdout: string;
}

const NOBODY = 65534;

/** Runs `portcullis start` on a config in a temp dir (the dir is `dir`, made by `prepare`), until it exits. */
async function start(config: (dir: string) => ConfigObject, options: { args?: string[]; prepare?: (dir: string) => Promise<unknown>; uid?: number } = {}): Promise<Failed> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-startup-'));
  try {
    await options.prepare?.(dir);
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, toYaml(config(dir)));
    if (options.uid !== undefined) {
      await chmod(dir, 0o755);
      await chown(dir, options.uid, options.uid);
      await chown(file, options.uid, options.uid);
    }
    const child = spawn(process.execPath, [CLI, 'start', '-c', file, ...(options.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    // A gateway that starts after all (or restarts workers for ever) is killed, and the test fails on its exit code.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = await once(child, 'exit') as [number | null];
    clearTimeout(timer);
    return { code, stderr, stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Exit 1, and stderr is one line, `portcullis: ` and a message matching `message`, without a stack. */
function assertOneLine(result: Failed, message: RegExp): void {
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
  const lines = result.stderr.split('\n');
  assert.equal(lines.length, 2, `one line on stderr: ${JSON.stringify(result.stderr)}`);
  assert.equal(lines[1], '');
  assert.match(lines[0] ?? '', /^portcullis: /);
  assert.match(lines[0] ?? '', message);
}

const UPSTREAM = { u: { targets: ['http://127.0.0.1:1'] } };
const ROUTES = [{ name: 'r', match: { methods: ['GET'], path: '/x' }, upstream: 'u', public: true }];

/** A config on loopback with free ports unless `listen` / `admin` say otherwise, its data under `dir`. */
function config(dir: string, extra: ConfigObject = {}): ConfigObject {
  const listen = (extra.listen ?? {}) as { http?: ConfigObject };
  return {
    upstreams: UPSTREAM, routes: ROUTES, dataDir: join(dir, 'data'), log: { level: 'warn' },
    ...extra,
    listen: { http: { host: '127.0.0.1', port: 0, ...listen.http } },
    admin: { host: '127.0.0.1', port: 0, ...(extra.admin as ConfigObject | undefined) },
  };
}

/** API keys in the embedded store (SQLite under dataDir). */
const KEYS = {
  apiKeys: { environment: 'test' },
  authenticators: { k: { type: 'apiKey' } },
  routes: [{ name: 'r', match: { methods: ['GET'], path: '/x' }, upstream: 'u', authenticate: ['k'] }],
};

describe('startup failures are one line naming the option', () => {
  let busy: Server;
  let busyPort = 0;
  before(async () => {
    busy = createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
    busyPort = (busy.address() as { port: number }).port;
  });
  after(() => new Promise<void>((done) => busy.close(() => done())));

  const inUse = (option: string) => new RegExp(`^portcullis: ${option.replace('.', '\\.')}\\.port (\\d+) is in use \\(EADDRINUSE\\): another process listens there; pick another port or stop it$`);

  for (const workers of [[], ['--workers', '2']]) {
    const mode = workers.length === 0 ? 'one process' : '--workers 2';
    it(`${mode}: the public port in use names listen.http.port`, async () => {
      const result = await start((dir) => config(dir, { listen: { http: { port: busyPort } } }), { args: workers });
      assertOneLine(result, inUse('listen.http'));
      assert.ok(result.stderr.includes(` ${busyPort} `));
    });

    it(`${mode}: the admin port in use names admin.port`, async () => {
      const result = await start((dir) => config(dir, { admin: { port: busyPort } }), { args: workers });
      assertOneLine(result, inUse('admin'));
    });

    it(`${mode}: a key store file that cannot be opened names apiKeys.store.file and the path`, async () => {
      const result = await start((dir) => config(dir, KEYS), { args: workers, prepare: (dir) => mkdir(join(dir, 'data', 'keys', 'api-keys.db'), { recursive: true }) });
      assertOneLine(result, /^portcullis: apiKeys\.store\.file: the key store \S+\/data\/keys\/api-keys\.db cannot be opened \(SQLITE_CANTOPEN\): .*; point dataDir \(or apiKeys\.store\.file\) at a place the gateway can write$/);
    });
  }

  for (const failing of ['http', 'admin'] as const) {
    it(`a start that fails on the ${failing} port releases what it had opened: the other port is free again`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-startup-'));
      try {
        const other = createServer();
        other.listen(0, '127.0.0.1');
        await once(other, 'listening');
        const otherPort = (other.address() as { port: number }).port;
        await new Promise<void>((done) => other.close(() => done()));
        const ports = failing === 'http' ? { http: busyPort, admin: otherPort } : { http: otherPort, admin: busyPort };
        const file = join(dir, 'gateway.yaml');
        await writeFile(file, toYaml(config(dir, { listen: { http: { port: ports.http } }, admin: { port: ports.admin } })));
        const sink = new PassThrough().resume();
        const gateway = await Gateway.fromFile(file, { logDestination: sink });
        await assert.rejects(gateway.start(), OperatorError);
        // Whichever listener was bound before the other failed holds its port no longer.
        const probe = createServer();
        probe.listen(otherPort, '127.0.0.1');
        await once(probe, 'listening');
        await new Promise<void>((done) => probe.close(() => done()));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('a data directory the file system will not create (under /proc) fails the start in one line instead of hanging', async (t) => {
    if (!existsSync('/proc/self')) { t.skip('no /proc on this machine'); return; }
    const result = await start((dir) => ({ ...config(dir), dataDir: '/proc/portcullis-startup-test' }));
    assertOneLine(result, /^portcullis: dataDir, audit\.file: the audit trail \/proc\/portcullis-startup-test\/\S+ cannot be opened \(ENOENT\): the directory cannot be created there/);
  });

  it('a quota store file that cannot be opened names rateLimiting.quotaFile and the path', async () => {
    const quotas = { quotas: { daily: { limit: 100, period: 'day', by: ['ip'] } }, routes: [{ ...ROUTES[0], quota: 'daily' }] };
    const result = await start((dir) => config(dir, quotas), { prepare: async (dir) => { await mkdir(join(dir, 'data')); await writeFile(join(dir, 'data', 'quotas'), ''); } });
    assertOneLine(result, /^portcullis: rateLimiting\.quotaFile: the quota store \S+\/data\/quotas\/quotas\.db cannot be opened \((ENOTDIR|EEXIST)\): a part of the path is a file, not a directory; point dataDir \(or rateLimiting\.quotaFile\) at a place the gateway can write$/);
  });

  it('an address that is not this machine\'s names listen.http.host', async (t) => {
    const address = '203.0.113.7';
    if (Object.values(networkInterfaces()).flat().some((a) => a?.address === address)) { t.skip(`${address} is an address of this machine`); return; }
    const result = await start((dir) => config(dir, { listen: { http: { host: address } } }));
    assertOneLine(result, /^portcullis: listen\.http\.host 203\.0\.113\.7 is not an address of this machine \(EADDRNOTAVAIL\): use one of its addresses, 127\.0\.0\.1 for this machine only, or 0\.0\.0\.0 for every interface$/);
  });

  it('a name that does not resolve names admin.host', async () => {
    const result = await start((dir) => config(dir, { admin: { host: 'portcullis-startup-test.invalid', tokenHash: `sha256:${'0'.repeat(64)}` } }));
    assertOneLine(result, /^portcullis: admin\.host portcullis-startup-test\.invalid does not resolve to an address \((ENOTFOUND|EAI_AGAIN|EAI_FAIL)\): use an IP address/);
  });

  it('a host with control characters is shown quoted, on one line', async () => {
    const result = await start((dir) => config(dir, { listen: { http: { host: 'bad\nhost\u0007' } } }));
    assertOneLine(result, /^portcullis: listen\.http\.host "bad\\nhost\\u0007" /);
  });

  it('a privileged port without the privilege names listen.http.port and the way out', async (t) => {
    const unprivilegedFrom = Number(await readFile('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').catch(() => '1024'));
    if (unprivilegedFrom <= 1) { t.skip('every port is unprivileged on this machine'); return; }
    // As root every port binds: run the gateway as nobody, as an operator without the privilege would.
    const uid = process.getuid?.() === 0 ? NOBODY : undefined;
    const result = await start((dir) => config(dir, { listen: { http: { port: 1 } } }), uid === undefined ? {} : { uid });
    assertOneLine(result, /^portcullis: listen\.http\.port 1 is a privileged port \(EACCES\): ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up$/);
  });

  it('a data directory under a file names dataDir and the path', async () => {
    const result = await start((dir) => config(dir, { dataDir: join(dir, 'a-file', 'data') }), { prepare: (dir) => writeFile(join(dir, 'a-file'), '') });
    assertOneLine(result, /^portcullis: dataDir, audit\.file: the audit trail \S+\/a-file\/data\/audit\/audit\.log cannot be opened \((ENOTDIR|EEXIST)\): a part of the path is a file, not a directory; point dataDir \(or audit\.file\) at a place the gateway can write$/);
  });

  it('an audit file that is a directory names it', async () => {
    const result = await start((dir) => config(dir), { prepare: (dir) => mkdir(join(dir, 'data', 'audit', 'audit.log'), { recursive: true }), args: ['--workers', '1'] });
    assertOneLine(result, /^portcullis: dataDir, audit\.file: the audit trail \S+\/data\/audit\/audit\.log cannot be opened \(EISDIR\): it is a directory, not a file;/);
  });
});

describe('store open failures', () => {
  const wrapped = (cause: unknown) => new Error('cannot open /x/keys.db', { cause });
  it('a path that cannot be a file fails the start; a lock held for a moment does not', () => {
    const cases: [unknown, boolean][] = [
      [Object.assign(new Error('mkdir'), { code: 'ENOTDIR' }), true],
      [wrapped(Object.assign(new Error('denied'), { code: 'EACCES' })), true],
      [wrapped(Object.assign(new Error('unable to open database file'), { code: 'SQLITE_CANTOPEN' })), true],
      [wrapped(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })), false],
      [wrapped(new Error('no code at all')), false],
      [wrapped(Object.assign(new Error('odd'), { code: 'not a code\n' })), false],
    ];
    for (const [err, lasting] of cases) assert.equal(isLastingFsFailure(err), lasting, String(err));
  });

  it('says why on one line, with the code from the cause', () => {
    assert.equal(fsFailure(wrapped(Object.assign(new Error('x'), { code: 'EISDIR' }))), '(EISDIR): it is a directory, not a file');
    assert.equal(fsFailure(new Error('line one\nline two')), 'line one line two');
  });
});
