// The peer gateway: fast-gateway (restana + fast-proxy-lite) proxying to the bench upstream, with
// the bearer-token check its users write as a route middleware: jose `jwtVerify` against the
// issuer's public key, and a small cache of verified tokens so a repeat token skips the signature.
// It does the work of the gateway's `jwt-rs256` route that a JWT check needs — verify signature,
// issuer, audience and expiry, require the `bench:read` scope, send the identity upstream in
// headers, drop Authorization — and nothing else (no audit, metrics, limits or header hygiene).
// Everything else is fast-gateway's defaults, as its documentation shows them.
//
// Usage: node bench/peer-fast-gateway.mjs '{"upstream":…,"prefix":"/jwt-rs256","issuer":…,"audience":…,"publicKeyPem":…}'
// Prints one JSON line with its port.
import gateway from 'fast-gateway';
import { importSPKI, jwtVerify } from 'jose';

const { upstream, prefix, issuer, audience, publicKeyPem } = JSON.parse(process.argv[2] ?? '{}');
if (typeof upstream !== 'string' || typeof prefix !== 'string' || typeof publicKeyPem !== 'string') {
  process.stderr.write('usage: peer-fast-gateway.mjs \'{"upstream":…,"prefix":…,"issuer":…,"audience":…,"publicKeyPem":…}\'\n');
  process.exit(2);
}

const publicKey = await importSPKI(publicKeyPem, 'RS256');
const SCOPE = 'bench:read';
// Bounded like the gateway's own cache; a Map keeps insertion order, so the first key is the oldest.
const MAX_CACHED_TOKENS = 10_000;
const verified = new Map(); // token → { payload, expiresAtMs }

/** The token's claims, from the cache while the token has not expired, else from jose. */
async function verify(token) {
  const hit = verified.get(token);
  if (hit !== undefined) {
    if (hit.expiresAtMs > Date.now()) return hit.payload;
    verified.delete(token);
  }
  const { payload } = await jwtVerify(token, publicKey, { issuer, audience, algorithms: ['RS256'] });
  if (verified.size >= MAX_CACHED_TOKENS) verified.delete(verified.keys().next().value);
  // jwtVerify has checked that exp, when present, is in the future; without exp, no caching.
  if (typeof payload.exp === 'number') verified.set(token, { payload, expiresAtMs: payload.exp * 1000 });
  return payload;
}

function refuse(res, status) {
  res.statusCode = status;
  res.setHeader('www-authenticate', status === 401 ? 'Bearer' : 'Bearer error="insufficient_scope"');
  res.setHeader('content-length', '0');
  res.end();
}

/** The route middleware: 401 without a valid bearer token, 403 without the scope. */
async function requireJwt(req, res, next) {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) return refuse(res, 401);
  let claims;
  try {
    claims = await verify(header.slice(7));
  } catch {
    return refuse(res, 401);
  }
  const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
  if (!scopes.includes(SCOPE)) return refuse(res, 403);
  delete req.headers.authorization;
  req.headers['x-user-id'] = String(claims.sub);
  req.headers['x-tenant-id'] = String(claims.tenant ?? '');
  req.headers['x-scopes'] = scopes.join(' ');
  return next();
}

const server = gateway({
  routes: [{ prefix, prefixRewrite: prefix, target: upstream, methods: ['GET'], middlewares: [requireJwt] }],
});

const http = await server.start(0, '127.0.0.1');
process.stdout.write(JSON.stringify({ ready: 'peer-fast-gateway', port: http.address().port }) + '\n');

const stop = () => { http.close(); http.closeAllConnections(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
