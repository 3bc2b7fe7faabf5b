import { createServer, type AddressInfo } from 'node:net';

/** A loopback port free at the time of the call (for a server a test starts as a child process). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}
