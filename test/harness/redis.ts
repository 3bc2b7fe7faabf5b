// A private redis-server per test file: a free loopback port, a temp directory, no persistence.
// Without the binary the caller skips with one line, except under CI=true, where it fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { listenOnFreePort, untilAnswering } from './free-port.js';

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** Kills the server (SIGKILL): connections drop at once, state is lost. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}


/**
 * Whether the server on `port` is the one keeping its files in `dir` (each has its own temp
 * directory): another test file may have been given the same free port a moment earlier, and its
 * server must not be taken for this one.
 */
async function answersAs(port: number, dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('CONFIG GET dir\r\n'));
    socket.on('data', (d) => {
      reply += d.toString();
      // *2 $3 dir $N <dir>: complete once the value's line has ended.
      const lines = reply.split('\r\n');
      if (lines.length < 6 && !reply.startsWith('-')) return;
      resolve(lines[4] === dir);
      socket.destroy();
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { resolve(false); socket.destroy(); });
  });
}

/** Starts redis-server, or returns a one-line reason why it cannot (throws that reason under CI=true). */
export async function startRedis(): Promise<TestRedis | string> {
  if (spawnSync(BINARY, ['--version'], { stdio: 'ignore' }).status !== 0) {
    const reason = `${BINARY} is not installed (Debian: apt-get install redis-server)`;
    if (process.env.CI === 'true') throw new Error(reason);
    return reason;
  }
  // As the server reports it (where the temp directory is under a symlink, its real path).
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-redis-')));
  let child: ChildProcess | null = null;
  /** Starts the server on `port`; false when it exited instead (the port was taken meanwhile). */
  const launchOn = (port: number): Promise<boolean> => {
    const c = spawn(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], { stdio: 'ignore' });
    child = c;
    return untilAnswering(c, () => answersAs(port, dir), 100, 50, `redis-server on port ${port}`);
  };
  const port = await listenOnFreePort('redis-server', launchOn);
  const launch = async (): Promise<void> => {
    if (!await launchOn(port)) throw new Error(`redis-server could not listen on port ${port} again`);
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
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs one command on the test server over a short-lived connection and returns the decoded reply. */
export async function redisCall(redis: TestRedis, command: string, ...args: string[]): Promise<unknown> {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

/** The keys matching `pattern` (KEYS: a test server holds a handful). */
export async function redisKeys(redis: TestRedis, pattern: string): Promise<string[]> {
  const reply = await redisCall(redis, 'KEYS', pattern);
  return Array.isArray(reply) ? reply.filter((k): k is string => typeof k === 'string') : [];
}

/** The string value of `key`, or null. */
export async function redisGet(redis: TestRedis, key: string): Promise<string | null> {
  const reply = await redisCall(redis, 'GET', key);
  return typeof reply === 'string' ? reply : null;
}
