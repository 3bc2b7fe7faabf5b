import { createServer, type OutgoingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** An upstream that answers every request with the same response headers, and remembers what it received. */
export interface HeaderUpstream {
  readonly server: Server;
  readonly url: string;
  /** Method and target of every request received, oldest first. */
  readonly received: { readonly method: string; readonly url: string }[];
  close(): Promise<void>;
}

/**
 * Starts an upstream on loopback that sends `headers` (the ones a framework, a CDN or an older
 * CORS middleware sets: Server, X-Powered-By, Access-Control-*, its own security headers) with a
 * small JSON body.
 */
export async function startHeaderUpstream(headers: OutgoingHttpHeaders): Promise<HeaderUpstream> {
  const received: { method: string; url: string }[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '' });
      const body = '{"ok":true}\n';
      res.writeHead(200, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}
