import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  const listen = (config.listen ?? {}) as { http?: Record<string, unknown> };
  const admin = (config.admin ?? {}) as Record<string, unknown>;
  return {
    ...config,
    listen: { ...listen, http: { host: '127.0.0.1', port: 0, ...listen.http } },
    admin: { host: '127.0.0.1', port: 0, ...admin },
    dataDir: config.dataDir ?? dataDir,
    log: config.log ?? { level: 'warn' },
  };
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly dir: string;
  readonly configFile: string;
  /** Operational log lines the gateway wrote. */
  readonly logs: string[];
  /** Rewrites the config file (for reload tests); does not reload. */
  writeConfig(config: ConfigObject): Promise<void>;
  /** Waits until at least `count` audit records are on disk, then returns all of them. */
  audit(count?: number): Promise<AuditRecord[]>;
  /** Waits (bounded) for the audit records of one request id; normally exactly one. */
  auditFor(requestId: string): Promise<AuditRecord[]>;
  close(): Promise<void>;
}

/** A one-line YAML doc from an object; JSON-compatible so tests can also write raw text. */
export function toYaml(config: ConfigObject): string {
  return stringify(config);
}

/** Starts a gateway in this process from a config object, on free loopback ports. */
export async function startGateway(config: ConfigObject, options: { env?: NodeJS.ProcessEnv; beforeStart?: (dir: string) => Promise<void>; clock?: Clock } = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-test-'));
  await options.beforeStart?.(dir);
  const configFile = join(dir, 'gateway.yaml');
  const full = withTestDefaults(config, join(dir, 'data'));
  await writeFile(configFile, toYaml(full));
  const logs: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')));
  const gateway = await Gateway.fromFile(configFile, {
    logDestination: sink, ...(options.env === undefined ? {} : { env: options.env }), ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const addresses = await gateway.start();
  const auditFile = join(gateway.config.dataDir, gateway.config.audit.file);
  return {
    gateway,
    url: `http://127.0.0.1:${addresses.http.port}`,
    port: addresses.http.port,
    adminUrl: `http://127.0.0.1:${addresses.admin?.port ?? 0}`,
    dir,
    configFile,
    logs,
    writeConfig: (next) => writeFile(configFile, toYaml(withTestDefaults(next, join(dir, 'data')))),
    audit: (count = 0) => readAudit(auditFile, count),
    auditFor: (requestId) => auditFor(auditFile, requestId),
    async close() {
      await gateway.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Reads JSON-line audit records, waiting (bounded) until at least `count` exist. */
export async function readAudit(file: string, count = 0, timeoutMs = 3000): Promise<AuditRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const records = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord);
    if (records.length >= count || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits (bounded) until a record for `requestId` is on disk; returns every record with that id. */
export async function auditFor(file: string, requestId: string, timeoutMs = 3000): Promise<AuditRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = (await readAudit(file)).filter((r) => r.requestId === requestId);
    if (records.length > 0 || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 20));
  }
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
  /** Sends a signal and waits for exit (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Starts `portcullis start` as a child process on free ports; resolves once it logs that it listens. */
export async function startGatewayProcess(config: ConfigObject, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-proc-'));
  const configFile = join(dir, 'gateway.yaml');
  const dataDir = join(dir, 'data');
  const full = withTestDefaults({ log: { level: 'info' }, ...config }, dataDir);
  await writeFile(configFile, toYaml(full));
  const child = spawn(process.execPath, [CLI, 'start', '-c', configFile], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
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
    audit: (count = 0) => readAudit(auditFile, count),
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
export async function startGatewayProcesses(configs: readonly ConfigObject[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<GatewayProcess[]> {
  const settled = await Promise.allSettled(configs.map((config) => startGatewayProcess(config, options)));
  const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return started;
  await Promise.all(started.map((g) => g.stop('SIGKILL')));
  throw failed.reason;
}
