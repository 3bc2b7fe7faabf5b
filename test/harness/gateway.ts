import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { stringify } from 'yaml';
import { Gateway } from '../../src/server/gateway.js';
import type { AuditRecord } from '../../src/audit/audit-log.js';
import type { Clock } from '../../src/lib/clock.js';

/** The CLI entry point, compiled. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export type ConfigObject = Record<string, unknown>;

/** Fills what every test config needs: loopback listeners on free ports and a temp data dir. */
function withTestDefaults(config: ConfigObject, dataDir: string): ConfigObject {
  const listen = (config.listen ?? {}) as { http?: Record<string, unknown>; https?: Record<string, unknown> };
  const admin = (config.admin ?? {}) as Record<string, unknown>;
  return {
    ...config,
    listen: {
      ...listen,
      http: { host: '127.0.0.1', port: 0, ...listen.http },
      ...(listen.https === undefined ? {} : { https: { host: '127.0.0.1', port: 0, ...listen.https } }),
    },
    admin: { host: '127.0.0.1', port: 0, ...admin },
    dataDir: config.dataDir ?? dataDir,
    log: config.log ?? { level: 'warn' },
  };
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly port: number;
  /** `https://127.0.0.1:<port>` when the config has an HTTPS listener, else null. */
  readonly httpsUrl: string | null;
  readonly adminUrl: string;
  readonly dir: string;
  readonly configFile: string;
  /** Operational log lines the gateway wrote. */
  readonly logs: string[];
  /** Rewrites the config file (for reload tests); does not reload. */
  writeConfig(config: ConfigObject): Promise<void>;
  /** Waits until at least `count` audit records are on disk, or with no count until every record of what happened before the call is, then returns all of them. */
  audit(count?: number): Promise<AuditRecord[]>;
  /** Waits (bounded) for the audit records of one request id; normally exactly one. */
  auditFor(requestId: string): Promise<AuditRecord[]>;
  /** Waits (bounded) until some audit record matches; returns every one that does. */
  auditWhere(match: (record: AuditRecord) => boolean, timeoutMs?: number): Promise<AuditRecord[]>;
  /** Resolves once every record of what happened before the call is on disk: see `auditBarrier`. */
  auditBarrier(): Promise<void>;
  close(): Promise<void>;
}

/** A one-line YAML doc from an object; JSON-compatible so tests can also write raw text. */
export function toYaml(config: ConfigObject): string {
  return stringify(config);
}

/** Starts a gateway in this process from a config object, on free loopback ports. */
export async function startGateway(
  config: ConfigObject, options: { env?: NodeJS.ProcessEnv; beforeStart?: (dir: string) => Promise<void>; clock?: Clock } = {},
): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-test-'));
  await options.beforeStart?.(dir);
  const configFile = join(dir, 'gateway.yaml');
  const full = withTestDefaults(config, join(dir, 'data'));
  await writeFile(configFile, toYaml(full));
  const logs: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')));
  const gateway = await Gateway.fromFile(configFile, {
    logDestination: sink,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const addresses = await gateway.start();
  const auditFile = join(gateway.config.dataDir, gateway.config.audit.file);
  const adminUrl = `http://127.0.0.1:${addresses.admin?.port ?? 0}`;
  return {
    gateway,
    url: `http://127.0.0.1:${addresses.http?.port ?? 0}`,
    port: addresses.http?.port ?? 0,
    httpsUrl: addresses.https == null ? null : `https://127.0.0.1:${addresses.https.port}`,
    adminUrl,
    dir,
    configFile,
    logs,
    writeConfig: (next) => writeFile(configFile, toYaml(withTestDefaults(next, join(dir, 'data')))),
    audit: (count = 0) => auditAfter(adminUrl, auditFile, count),
    auditFor: (requestId) => auditFor(auditFile, requestId),
    auditWhere: (match, timeoutMs) => auditWhere(auditFile, match, timeoutMs),
    auditBarrier: () => auditBarrier(adminUrl, auditFile),
    async close() {
      await gateway.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `check` now and again after each change in the directory of `file`, until it returns true
 * or `timeoutMs` passes; true when `check` succeeded. The directory is watched rather than the
 * file, so a file that is created, replaced or moved away is followed too.
 */
async function whenFileChanges(file: string, timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> {
  let changed = true;
  let wake: () => void = () => undefined;
  const notify = (): void => { changed = true; wake(); };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dirname(file), notify);
    watcher.on('error', notify);
  } catch { /* no directory (yet): only the deadline ends the wait */ }
  let timedOut = false;
  const deadline = setTimeout(() => { timedOut = true; wake(); }, timeoutMs);
  try {
    for (;;) {
      changed = false;
      if (await check()) return true;
      if (timedOut) return false;
      // A change seen while `check` ran is checked at once; otherwise wait for the next one.
      if (!changed) await new Promise<void>((resolve) => { wake = resolve; });
    }
  } finally {
    clearTimeout(deadline);
    watcher?.close();
  }
}

/** The admin path of the marker requests `auditBarrier` sends; their records are left out of every read. */
const BARRIER_PATH = '/audit-barrier/';

/** Every whole JSON line of the audit file, the harness's own barrier markers left out. */
async function readRecords(file: string): Promise<AuditRecord[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  // Only whole lines: the writer may be in the middle of the next one.
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditRecord)
    // Request and admin records only: the chain's own records (file, start, checkpoint, gap) are not a request's.
    .filter((r) => (r.kind === 'request' || r.kind === 'admin') && !(r.kind === 'admin' && r.path.startsWith(BARRIER_PATH)));
}

/** Reads JSON-line audit records, waiting (bounded) until at least `count` exist. */
export async function readAudit(file: string, count = 0, timeoutMs = 3000): Promise<AuditRecord[]> {
  let records: AuditRecord[] = [];
  await whenFileChanges(file, timeoutMs, async () => (records = await readRecords(file)).length >= count);
  return records;
}

/**
 * The trail as `audit(count)` returns it. With no count, every record of what happened before the
 * call is on disk first (the writer spaces its writes, so a record can trail its response by a few
 * milliseconds): a barrier is passed, unless the admin listener no longer answers, in which case
 * the gateway has stopped and flushed everything it had.
 */
async function auditAfter(adminUrl: string, file: string, count: number): Promise<AuditRecord[]> {
  if (count === 0) {
    try {
      await auditBarrier(adminUrl, file);
    } catch (error) {
      if (!isRefused(error)) throw error;
    }
  }
  return readAudit(file, count);
}

/** True for a fetch that failed because nothing listens (a stopped gateway, or no admin listener). */
function isRefused(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } } | null)?.cause;
  return error instanceof TypeError && (cause?.code === 'ECONNREFUSED' || cause?.code === 'EADDRNOTAVAIL');
}

/** Waits (bounded) until some record on disk matches; returns every one that does. */
export async function auditWhere(file: string, match: (record: AuditRecord) => boolean, timeoutMs = 3000): Promise<AuditRecord[]> {
  let records: AuditRecord[] = [];
  await whenFileChanges(file, timeoutMs, async () => (records = (await readRecords(file)).filter(match)).length > 0);
  return records;
}

/** Waits (bounded) until a record for `requestId` is on disk; returns every record with that id. */
export function auditFor(file: string, requestId: string, timeoutMs = 3000): Promise<AuditRecord[]> {
  return auditWhere(file, (r) => r.requestId === requestId, timeoutMs);
}

/**
 * Sends a marker request to the admin listener and waits (bounded) until its record is on disk.
 * Records are written in the order their requests end, and the marker is sent only after
 * everything the test did before, so once its record is there no earlier record is still pending:
 * a test that asserts "exactly one record" reads after the barrier instead of sleeping. The
 * marker's own record is left out of every read of the trail.
 */
export async function auditBarrier(adminUrl: string, file: string, timeoutMs = 3000): Promise<void> {
  const path = `${BARRIER_PATH}${randomUUID()}`;
  const res = await fetch(`${adminUrl}${path}`);
  await res.arrayBuffer();
  const seen = await whenFileChanges(file, timeoutMs, async () => {
    const text = await readFile(file, 'utf8').catch(() => '');
    return text.includes(`"path":"${path}"`);
  });
  if (!seen) throw new Error(`the audit record of the barrier ${path} did not arrive within ${timeoutMs} ms`);
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly dir: string;
  readonly configFile: string;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exited: Promise<number | null>;
  writeConfig(config: ConfigObject): Promise<void>;
  audit(count?: number): Promise<AuditRecord[]>;
  /** Resolves once every record of what happened before the call is on disk: see `auditBarrier`. */
  auditBarrier(): Promise<void>;
  /** Waits (bounded) until a stdout line contains `text`, including lines already written; true when one did. */
  logged(text: string, timeoutMs?: number): Promise<boolean>;
  /** Sends a signal and waits for exit (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Starts `portcullis start` as a child process on free ports; resolves once it logs that it listens. */
export async function startGatewayProcess(config: ConfigObject, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; args?: readonly string[] } = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-proc-'));
  const configFile = join(dir, 'gateway.yaml');
  const dataDir = join(dir, 'data');
  const full = withTestDefaults({ log: { level: 'info' }, ...config }, dataDir);
  await writeFile(configFile, toYaml(full));
  const child = spawn(process.execPath, [CLI, 'start', '-c', configFile, ...(options.args ?? [])], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  /** Called after each stdout line, for `logged`. */
  const lineListeners = new Set<() => void>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<{ http: number; admin: number }>((resolve, reject) => {
    // A process that never says it listens is killed, so it cannot keep the test run alive.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway process did not start:\n${stderr.join('')}\n${stdout.join('\n')}`));
    }, options.timeoutMs ?? 30_000);
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        stdout.push(line);
        for (const listener of lineListeners) listener();
        if (line.includes('"gateway listening"')) {
          const parsed = JSON.parse(line) as { http: number; admin: number };
          clearTimeout(timer);
          resolve(parsed);
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`gateway process exited with ${code}:\n${stderr.join('')}`)); });
  });
  const ports = await ready;
  const auditFile = join(dataDir, 'audit', 'audit.log');
  return {
    child, dir, configFile, stdout, stderr, exited,
    url: `http://127.0.0.1:${ports.http}`,
    port: ports.http,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    writeConfig: (next) => writeFile(configFile, toYaml(withTestDefaults({ log: { level: 'info' }, ...next }, dataDir))),
    audit: (count = 0) => auditAfter(`http://127.0.0.1:${ports.admin}`, auditFile, count),
    auditBarrier: () => auditBarrier(`http://127.0.0.1:${ports.admin}`, auditFile),
    logged: (text, timeoutMs = 5000) => new Promise<boolean>((resolve) => {
      const check = (): void => {
        if (!stdout.some((l) => l.includes(text))) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (seen: boolean): void => { clearTimeout(timer); lineListeners.delete(check); resolve(seen); };
      lineListeners.add(check);
      check();
    }),
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * Starts several gateway processes at once. If any fails to start, the ones that did are stopped
 * before the error is thrown, so a failed start never leaves a process behind.
 */
export async function startGatewayProcesses(configs: readonly ConfigObject[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; args?: readonly string[] } = {}): Promise<GatewayProcess[]> {
  const settled = await Promise.allSettled(configs.map((config) => startGatewayProcess(config, options)));
  const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return started;
  await Promise.all(started.map((g) => g.stop('SIGKILL')));
  throw failed.reason;
}
