import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** A loopback port free at the time of the call (for a server a test starts as a child process). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/**
 * Polls `answers` every `everyMs` until the server started as `child` answers as itself (true) or
 * exits first (false: the port was taken by another process between the check and the bind);
 * throws after `tries` polls.
 */
export async function untilAnswering(child: ChildProcess, answers: () => Promise<boolean>, tries: number, everyMs: number, what: string): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (await answers()) return true;
    await delay(everyMs);
  }
  throw new Error(`${what} did not start`);
}

/**
 * Starts a server on a free loopback port: `start(port)` resolves true once it answers as itself,
 * false when it exited instead (another test file was given the same port a moment earlier); then a
 * fresh port is tried, four in all. Resolves the port the server listens on.
 */
export async function listenOnFreePort(what: string, start: (port: number) => Promise<boolean>): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    if (await start(port)) return port;
    if (attempt === 4) throw new Error(`${what} could not listen on a free port`);
  }
}
