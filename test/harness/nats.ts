// A private nats-server with JetStream per test file: a free loopback port and a temp store
// directory, both kept across kill/restart so a stream survives a restart.
// Without the binary the caller skips with one line, except under CI=true, where it fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './free-port.js';

const BINARY = process.env.NATS_SERVER ?? 'nats-server';

export interface TestNats {
  readonly url: string;
  readonly port: number;
  /** Kills the server (SIGKILL): connections drop at once; what JetStream had synced stays on disk. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}


/** The server greets every client with an INFO line. */
async function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('data', (d) => { resolve(d.toString().startsWith('INFO ')); socket.destroy(); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { resolve(false); socket.destroy(); });
  });
}

/**
 * Starts nats-server -js (with `args` added, e.g. `--user u --pass p`), or returns a one-line reason
 * why it cannot (throws that reason under CI=true).
 */
export async function startNats(args: readonly string[] = []): Promise<TestNats | string> {
  if (spawnSync(BINARY, ['--version'], { stdio: 'ignore' }).status !== 0) {
    const reason = `${BINARY} is not installed (https://github.com/nats-io/nats-server/releases, or apt-get install nats-server)`;
    if (process.env.CI === 'true') throw new Error(reason);
    return reason;
  }
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-nats-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    const c = spawn(BINARY, ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port), ...args], { stdio: 'ignore' });
    child = c;
    // A test process that exits without running its after() hooks still stops the server (not one killed by a signal).
    const reap = (): void => { c.kill('SIGKILL'); };
    process.once('exit', reap);
    c.once('exit', () => process.removeListener('exit', reap));
    for (let i = 0; i < 200; i++) {
      if (c.exitCode !== null) break;
      if (await greets(port)) return;
      await delay(25);
    }
    throw new Error(`nats-server did not start on port ${port}`);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (c === null || c.exitCode !== null) return;
    const exited = new Promise((done) => c.once('exit', done));
    c.kill('SIGKILL');
    await exited;
    child = null;
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
