// A private nats-server with JetStream per test file: a free loopback port and a temp store
// directory, both kept across kill/restart so a stream survives a restart.
// Without the binary the caller skips with one line, except under CI=true, where it fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { listenOnFreePort, untilAnswering } from './free-port.js';

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


/**
 * Whether the server on `port` is the one named `name` (its INFO greeting carries the name): another
 * test file may have been given the same free port a moment earlier, and its server must not be
 * taken for this one.
 */
async function greetsAs(port: number, name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('data', (d) => { resolve(d.toString().startsWith('INFO ') && d.toString().includes(`"server_name":"${name}"`)); socket.destroy(); });
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
  const name = `portcullis-test-${process.pid}-${basename(dir)}`;
  let child: ChildProcess | null = null;
  /** Starts the server on `port`; false when it exited instead (the port was taken meanwhile). */
  const launchOn = (port: number): Promise<boolean> => {
    const c = spawn(BINARY, ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port), '--name', name, ...args], { stdio: 'ignore' });
    child = c;
    // A test process that exits without running its after() hooks still stops the server (not one killed by a signal).
    const reap = (): void => { c.kill('SIGKILL'); };
    process.once('exit', reap);
    c.once('exit', () => process.removeListener('exit', reap));
    return untilAnswering(c, () => greetsAs(port, name), 200, 25, `nats-server on port ${port}`);
  };
  const port = await listenOnFreePort('nats-server', launchOn);
  const launch = async (): Promise<void> => {
    if (!await launchOn(port)) throw new Error(`nats-server could not listen on port ${port} again`);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (c === null || c.exitCode !== null) return;
    const exited = new Promise((done) => c.once('exit', done));
    c.kill('SIGKILL');
    await exited;
    child = null;
  };
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
