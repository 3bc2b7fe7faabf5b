// The bench upstream: a fixed ~100-byte JSON body with content-length, keep-alive. Runs as its
// own child process (pinned by run.mjs) and reports its port as one JSON line on stdout. A path
// ending in /whoami (the probes of the session scenarios, never under load) is answered with the
// identity headers the upstream received and whether any gateway cookie reached it.
import { createServer } from 'node:http';

const BODY = Buffer.from(JSON.stringify({
  ok: true,
  service: 'bench-upstream',
  message: 'hello from the upstream',
  padding: 'x'.repeat(20),
}));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = createServer({ keepAlive: true }, (req, res) => {
  // Consume any request body before answering so the connection stays reusable.
  req.resume();
  req.once('end', () => {
    if (req.url.endsWith('/whoami')) {
      const seen = Buffer.from(JSON.stringify({
        'x-user-id': req.headers['x-user-id'] ?? null, 'x-tenant-id': req.headers['x-tenant-id'] ?? null, 'x-auth-method': req.headers['x-auth-method'] ?? null,
        gatewayCookie: (req.headers.cookie ?? '').includes('__Host-portcullis-'),
      }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(seen.length) });
      res.end(seen);
      return;
    }
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: 'upstream', port: server.address().port, bodyBytes: BODY.length }) + '\n');
});

const stop = () => { server.close(); server.closeAllConnections(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
