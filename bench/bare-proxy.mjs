// The baseline: the natural minimal reverse proxy on the same stack as the gateway — a node:http
// server and one undici Pool, forwarding method, path and headers and piping the response back.
// No routing, auth, audit, metrics or header hygiene beyond dropping hop-by-hop fields.
//
// Two modes:
//   request (default)  pool.request() + stream.pipeline(body, res): the textbook minimal proxy
//   stream             pool.stream() writing straight into res, as the gateway forwards; on Node 20
//                      it avoids pipeline()'s per-request AbortController (whose abort() builds a
//                      DOMException with a stack trace), so it is the stricter floor
// Usage: node bench/bare-proxy.mjs http://127.0.0.1:PORT [request|stream]
// Prints one JSON line with its port.
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const origin = process.argv[2];
const mode = process.argv[3] ?? 'request';
if (origin === undefined || (mode !== 'request' && mode !== 'stream')) {
  process.stderr.write('usage: bare-proxy.mjs <upstream origin> [request|stream]\n');
  process.exit(2);
}

const pool = new Pool(origin, { connections: 128, keepAliveTimeout: 60_000 });
// Hop-by-hop fields (RFC 9110 §7.6.1) may not be forwarded; undici refuses some of them outright.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'host']);

function strip(headers) {
  const out = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
}

function fail(res) {
  if (res.headersSent) res.destroy();
  else { res.writeHead(502, { 'content-length': '0' }); res.end(); }
}

function viaRequest(req, res, options) {
  pool.request(options)
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, strip(headers));
      pipeline(body, res, () => {});
    })
    .catch(() => fail(res));
}

function relay({ statusCode, headers, opaque: res }) {
  res.writeHead(statusCode, strip(headers));
  return res;
}

function viaStream(req, res, options) {
  pool.stream({ ...options, opaque: res }, relay).catch(() => fail(res));
}

const handle = mode === 'stream' ? viaStream : viaRequest;
const server = createServer((req, res) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  handle(req, res, { method: req.method, path: req.url, headers: strip(req.headers), body: hasBody ? req : null });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: 'bare-proxy', mode, port: server.address().port }) + '\n');
});

const stop = () => { server.close(); server.closeAllConnections(); pool.destroy().finally(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
