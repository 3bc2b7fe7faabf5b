import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the upstream received it, body included, byte for byte. */
export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export interface BodyUpstream {
  readonly url: string;
  readonly server: Server;
  /** Every request received whole, oldest first. */
  readonly received: RecordedRequest[];
  /** Requests that started arriving (headers read), whole or not. */
  started: number;
  close(): Promise<void>;
}

/** A loopback upstream that records every request's body and answers 200 with its length. */
export async function startBodyUpstream(): Promise<BodyUpstream> {
  const received: RecordedRequest[] = [];
  const state = { started: 0 };
  const server = createServer((req, res) => {
    state.started++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const answer = JSON.stringify({ bytes: body.length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    received,
    get started() { return state.started; },
    set started(n: number) { state.started = n; },
    close: () => new Promise<void>((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}
