import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** What the echo upstream saw: returned as the JSON response body and kept for tests. */
export interface EchoedRequest {
  readonly method: string;
  /** The request target exactly as it arrived (path and query). */
  readonly url: string;
  /** Raw header pairs as received, names in their original case. */
  readonly rawHeaders: readonly string[];
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly bodyBytes: number;
}

export interface EchoUpstream {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  /** Every request received, oldest first. */
  readonly received: EchoedRequest[];
  close(): Promise<void>;
}

const MAX_ECHO_BODY = 16 * 1024 * 1024;

/**
 * A small upstream that answers every request with JSON describing what it received. Used by the
 * demo (so a user sees exactly what the gateway forwarded) and by the tests.
 */
export async function startEchoUpstream(port = 0, host = '127.0.0.1'): Promise<EchoUpstream> {
  const received: EchoedRequest[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (bodyBytes > MAX_ECHO_BODY) req.destroy();
    });
    req.on('end', () => {
      const seen: EchoedRequest = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, headers: req.headers, bodyBytes };
      received.push(seen);
      const body = JSON.stringify({ method: seen.method, url: seen.url, headers: seen.headers, bodyBytes }, null, 2) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  return {
    server,
    port: address.port,
    url: `http://${host}:${address.port}`,
    received,
    close: () => new Promise<void>((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}
